/*
 * sync_download.c — the instructions of download changesets: effects of
 * changes on a view, and replacements (sync_download.h).
 */
#include "sync_download.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/ejson.h"
#include "realmfs/value.h"

/* Walks before's fields alongside after's: each field after shares with
 * before must be the next shared one in before's order. */
bool sync_download_diff_keeps_order(const json_t *before, const json_t *after)
{
    if (value_type_of(before) != VALUE_DOCUMENT || value_type_of(after) != VALUE_DOCUMENT)
        return true;
    void *old_field = json_object_iter((json_t *)before);
    bool passed_new_field = false;
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)after, name, value) {
        const json_t *old_value = json_object_get(before, name);
        if (old_value == NULL) {
            passed_new_field = true;
            continue;
        }
        if (passed_new_field)
            return false;
        while (old_field != NULL &&
               json_object_get(after, json_object_iter_key(old_field)) == NULL)
            old_field = json_object_iter_next((json_t *)before, old_field);
        if (old_field == NULL || strcmp(json_object_iter_key(old_field), name) != 0)
            return false;
        old_field = json_object_iter_next((json_t *)before, old_field);
        if (!sync_download_diff_keeps_order(old_value, value))
            return false;
    }
    return true;
}

int sync_download_append_effect(const char *collection, const json_t *id, const json_t *before,
                                const json_t *after, changeset *download, char *message,
                                size_t message_size)
{
    size_t count = download->count;
    int result =
        before != NULL && after != NULL && !sync_download_diff_keeps_order(before, after)
            ? changeset_replace(collection, id, after, download, message, message_size)
            : changeset_diff(collection, id, before, after, download, message, message_size);
    if (result < 0)
        return result;
    return download->count > count ? 1 : 0;
}

char *sync_download_object_key(const char *collection, const json_t *id)
{
    size_t length;
    char *id_text = ejson_format_line(id, &length);
    if (id_text == NULL)
        return NULL;
    char *key = NULL;
    if (asprintf(&key, "%s/%s", collection, id_text) < 0)
        key = NULL;
    free(id_text);
    return key;
}

int sync_download_access_note(sync_download_access *access, const char *collection,
                              const json_t *id, bool writable)
{
    if (access->entries == NULL && (access->entries = json_object()) == NULL)
        return -ENOMEM;
    char *key = sync_download_object_key(collection, id);
    json_t *entry = json_pack("[s, O, b]", collection, id, writable);
    int result = -ENOMEM;
    if (key != NULL && entry != NULL)
        result = json_object_set_new(access->entries, key, entry) == 0 ? 0 : -ENOMEM;
    else
        json_decref(entry);
    free(key);
    return result;
}

bool sync_download_access_has(const sync_download_access *access, const char *collection,
                              const json_t *id)
{
    if (access->entries == NULL)
        return false;
    char *key = sync_download_object_key(collection, id);
    bool has = key != NULL && json_object_get(access->entries, key) != NULL;
    free(key);
    return has;
}

int sync_download_access_forget(sync_download_access *access, const char *collection,
                                const json_t *id)
{
    if (access->entries == NULL)
        return 0;
    char *key = sync_download_object_key(collection, id);
    if (key == NULL)
        return -ENOMEM;
    json_object_del(access->entries, key); /* -1 when there was no note: nothing to do */
    free(key);
    return 0;
}

int sync_download_access_add_to(const sync_download_access *access,
                                protocol_download_body *download)
{
    const char *key;
    json_t *entry;
    json_object_foreach(access->entries, key, entry) {
        int result = protocol_download_add_access(download,
                                                  json_string_value(json_array_get(entry, 0)),
                                                  json_array_get(entry, 1),
                                                  json_is_true(json_array_get(entry, 2)));
        if (result != 0)
            return result;
    }
    return 0;
}

void sync_download_access_clear(sync_download_access *access)
{
    json_decref(access->entries);
    access->entries = NULL;
}
