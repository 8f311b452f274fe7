/*
 * Unit tests for rules.c: the rules of every app under $REALMFS_EXPORTS
 * load; the role each kind of user gets and the access it gives on owned
 * and foreign documents in the six known apps; the defaults, write
 * implying read, field permissions and stripping; and the message for
 * each kind of role Device Sync refuses, in copies of the exports with a
 * rules file replaced.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "realmfs/app_config.h"
#include "realmfs/ejson.h"
#include "realmfs/rules.h"
#include "test_format.h"

static const char *exports_directory(void)
{
    const char *directory = getenv("REALMFS_EXPORTS");
    ck_assert_msg(directory != NULL, "REALMFS_EXPORTS is not set");
    return directory;
}

/* snprintf that fails the test rather than cut a path short. */
/* JSON text written with single quotes, for readability, as a normalized
 * value. */
static json_t *json_from(const char *text)
{
    char *double_quoted = strdup(text);
    ck_assert_ptr_nonnull(double_quoted);
    for (char *c = double_quoted; *c != '\0'; c++)
        if (*c == '\'')
            *c = '"';
    ejson_error error = {0};
    json_t *value = ejson_parse(double_quoted, strlen(double_quoted), &error);
    ck_assert_msg(value != NULL, "%s: %s", text, error.message);
    free(double_quoted);
    return value;
}

/* ------------------------------------------------------------------------ */
/* Apps and their rules                                                     */

typedef struct loaded_app {
    app_config *app;
    rules *rules;
} loaded_app;

/* app_config_load then rules_load of directory; 0 or the rules_load
 * result, with its message. */
static int load_app(const char *directory, loaded_app *out, char *message, size_t message_size)
{
    out->rules = NULL;
    char config_message[512];
    int result = app_config_load(directory, &out->app, config_message, sizeof config_message);
    ck_assert_msg(result == 0, "%s: %s", directory, config_message);
    return rules_load(out->app, &out->rules, message, message_size);
}

static void load_app_ok(const char *directory, loaded_app *out)
{
    char message[512] = "not written";
    int result = load_app(directory, out, message, sizeof message);
    ck_assert_msg(result == 0, "%s: %s", directory, message);
    ck_assert_str_eq(message, "");
    ck_assert_ptr_nonnull(out->rules);
}

static loaded_app load_export(const char *name)
{
    char directory[PATH_MAX];
    format_checked(directory, sizeof directory, "%s/%s", exports_directory(), name);
    loaded_app loaded;
    load_app_ok(directory, &loaded);
    return loaded;
}

static void unload(loaded_app *loaded)
{
    rules_free(loaded->rules);
    app_config_free(loaded->app);
}

/* A copy of an export in a temporary directory, one file replaced. */
typedef struct scratch_app {
    char root[PATH_MAX];
    char path[PATH_MAX]; /* <root>/app */
} scratch_app;

/* Runs a program with arguments, no shell between, and waits for it. */
static void run_program(const char *const *arguments)
{
    pid_t child;
    ck_assert_int_eq(posix_spawnp(&child, arguments[0], NULL, NULL, (char *const *)arguments,
                                  environ),
                     0);
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s %s failed", arguments[0],
                  arguments[1]);
}

/* export copied, with file (relative to the app) holding text, single
 * quotes standing for double ones, or removed when text is NULL. */
static void scratch_from_export(scratch_app *scratch, const char *export, const char *file,
                                const char *text)
{
    const char *temporary = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    format_checked(scratch->root, sizeof scratch->root, "%s/realmfs-rules-XXXXXX", temporary);
    ck_assert_ptr_nonnull(mkdtemp(scratch->root));
    format_checked(scratch->path, sizeof scratch->path, "%s/app", scratch->root);
    char source[PATH_MAX];
    format_checked(source, sizeof source, "%s/%s", exports_directory(), export);
    run_program((const char *[]){"cp", "-r", source, scratch->path, NULL});
    char path[PATH_MAX];
    format_checked(path, sizeof path, "%s/%s", scratch->path, file);
    if (text == NULL) {
        run_program((const char *[]){"rm", "-f", path, NULL});
        return;
    }
    char directory[PATH_MAX];
    format_checked(directory, sizeof directory, "%.*s", (int)(strrchr(path, '/') - path), path);
    run_program((const char *[]){"mkdir", "-p", directory, NULL});
    json_t *value = json_from(text);
    ck_assert_int_eq(json_dump_file(value, path, 0), 0);
    json_decref(value);
}

static void scratch_remove(const scratch_app *scratch)
{
    run_program((const char *[]){"rm", "-rf", scratch->root, NULL});
}

/* The rules of export with file replaced; the scratch copy is removed at
 * once, as rules keep nothing of the files. */
static loaded_app load_modified_export(const char *export, const char *file, const char *text)
{
    scratch_app scratch;
    scratch_from_export(&scratch, export, file, text);
    loaded_app loaded;
    load_app_ok(scratch.path, &loaded);
    scratch_remove(&scratch);
    return loaded;
}

/* Loading export with file replaced must fail with exactly this. */
static void assert_refused(const char *export, const char *file, const char *text,
                           const char *expected_message)
{
    scratch_app scratch;
    scratch_from_export(&scratch, export, file, text);
    loaded_app loaded;
    char message[512] = "";
    ck_assert_int_eq(load_app(scratch.path, &loaded, message, sizeof message), -EINVAL);
    ck_assert_ptr_null(loaded.rules);
    ck_assert_str_eq(message, expected_message);
    app_config_free(loaded.app);
    scratch_remove(&scratch);
}

/* ------------------------------------------------------------------------ */
/* Users and documents                                                      */

typedef struct test_user {
    filter_user user;
    json_t *custom_data;
} test_user;

static test_user *user_new(const char *id, const char *type, const char *custom_data)
{
    test_user *user = calloc(1, sizeof *user);
    ck_assert_ptr_nonnull(user);
    user->custom_data = custom_data != NULL ? json_from(custom_data) : NULL;
    user->user = (filter_user){id, type, NULL, user->custom_data};
    return user;
}

static void user_free(test_user *user)
{
    json_decref(user->custom_data);
    free(user);
}

static const char *role_name_for(const loaded_app *loaded, const char *collection,
                                 const test_user *user)
{
    const rules_role *role = rules_select_role(loaded->rules, collection, &user->user);
    return role != NULL ? rules_role_name(role) : "(none)";
}

/* What the role user gets on collection grants on a document, as
 * "r" / "w" (readable, writable) and upper case when all fields are. */
static void assert_access(const loaded_app *loaded, const char *collection, const test_user *user,
                          const char *document_text, const char *expected)
{
    const rules_role *role = rules_select_role(loaded->rules, collection, &user->user);
    ck_assert_ptr_nonnull(role);
    json_t *document = json_from(document_text);
    rules_document_access access = rules_evaluate_document(role, document, &user->user);
    char found[3] = "";
    size_t length = 0;
    if (access.readable)
        found[length++] = access.all_fields_readable ? 'R' : 'r';
    if (access.writable)
        found[length++] = access.all_fields_writable ? 'W' : 'w';
    found[length] = '\0';
    ck_assert_msg(strcmp(found, expected) == 0, "%s for %s on %s: expected \"%s\", found \"%s\"",
                  rules_role_name(role), user->user.id, document_text, expected, found);
    json_decref(document);
}

/* Whether user may insert, and delete, the document in collection. */
static void assert_insert_delete(const loaded_app *loaded, const char *collection,
                                 const test_user *user, const char *document_text,
                                 bool may_insert, bool may_delete)
{
    const rules_role *role = rules_select_role(loaded->rules, collection, &user->user);
    ck_assert_ptr_nonnull(role);
    json_t *document = json_from(document_text);
    ck_assert_msg(rules_can_insert(role, document, &user->user) == may_insert, "insert %s",
                  document_text);
    ck_assert_msg(rules_can_delete(role, document, &user->user) == may_delete, "delete %s",
                  document_text);
    json_decref(document);
}

/* ------------------------------------------------------------------------ */
/* The exported apps                                                        */

START_TEST(test_every_export_loads)
{
    DIR *exports = opendir(exports_directory());
    ck_assert_ptr_nonnull(exports);
    size_t loaded_count = 0;
    struct dirent *entry;
    while ((entry = readdir(exports)) != NULL) {
        char directory[PATH_MAX];
        format_checked(directory, sizeof directory, "%s/%s", exports_directory(), entry->d_name);
        struct stat status;
        if (entry->d_name[0] == '.' || stat(directory, &status) != 0 || !S_ISDIR(status.st_mode))
            continue;
        loaded_app loaded;
        load_app_ok(directory, &loaded);
        unload(&loaded);
        loaded_count++;
    }
    closedir(exports);
    ck_assert_uint_ge(loaded_count, 6);
}
END_TEST

START_TEST(test_edge_server_roles)
{
    loaded_app edge = load_export("edge-server");
    test_user *server = user_new("edge-1", "edge", NULL);
    test_user *person = user_new("user-1", "normal", NULL);
    ck_assert_str_eq(role_name_for(&edge, "Item", server), "edgeServerReadAllWriteOwn");
    ck_assert_str_eq(role_name_for(&edge, "Item", person), "write-own-items");
    /* Collections without rules.json, even ones not in the app yet, take
     * the default role. */
    ck_assert_str_eq(role_name_for(&edge, "Note", person), "read-not-write");
    ck_assert(rules_collection_has_roles(edge.rules, "Item"));
    ck_assert(rules_collection_has_roles(edge.rules, "Note"));

    const char *foreign = "{'_id': 1, 'owner_id': 'user-2', 'summary': 'theirs'}";
    assert_access(&edge, "Item", server, foreign, "RW");
    assert_access(&edge, "Item", person, foreign, "R");
    assert_access(&edge, "Item", person, "{'_id': 2, 'owner_id': 'user-1'}", "RW");
    assert_access(&edge, "Note", person, "{'_id': 3, 'owner_id': 'user-1'}", "R");
    user_free(server);
    user_free(person);
    unload(&edge);
}
END_TEST

START_TEST(test_sync_todo_write_own_items)
{
    loaded_app todo = load_export("sync-todo");
    test_user *ann = user_new("ann", "normal", NULL);
    const char *own = "{'_id': {'$oid': '64b7e1f0a1b2c3d4e5f60718'}, 'owner_id': 'ann', "
                      "'summary': 'mine', 'isComplete': false}";
    const char *foreign = "{'_id': {'$oid': '64b7e1f0a1b2c3d4e5f60719'}, 'owner_id': 'bob', "
                          "'summary': 'his', 'isComplete': true}";
    ck_assert_str_eq(role_name_for(&todo, "Item", ann), "write-own-items");
    assert_access(&todo, "Item", ann, own, "RW");
    assert_access(&todo, "Item", ann, foreign, "R");
    assert_insert_delete(&todo, "Item", ann, own, true, true);
    assert_insert_delete(&todo, "Item", ann, foreign, false, false);
    /* The default role reads everything and writes nothing, so its
     * "insert": true does not let anyone insert. */
    assert_insert_delete(&todo, "Note", ann, own, false, false);
    user_free(ann);
    unload(&todo);
}
END_TEST

START_TEST(test_read_and_write_own_data)
{
    loaded_app own_data = load_export("read-and-write-own-data");
    test_user *ann = user_new("ann", "normal", NULL);
    ck_assert_str_eq(role_name_for(&own_data, "Item", ann), "owner-read-write");
    assert_access(&own_data, "Item", ann, "{'_id': 1, 'owner_id': 'ann'}", "RW");
    assert_access(&own_data, "Item", ann, "{'_id': 2, 'owner_id': 'bob'}", "");
    assert_access(&own_data, "Item", ann, "{'_id': 3}", "");
    user_free(ann);
    unload(&own_data);
}
END_TEST

START_TEST(test_restricted_feed_subscribed_to)
{
    loaded_app feed = load_export("restricted-feed");
    test_user *reader = user_new("me", "normal", "{'_id': 'me', 'subscribedTo': ['amy', 'bo']}");
    test_user *loner = user_new("me", "normal", NULL);
    assert_access(&feed, "Item", reader, "{'_id': 1, 'owner_id': 'amy'}", "R");
    assert_access(&feed, "Item", reader, "{'_id': 2, 'owner_id': 'cy'}", "");
    /* Not in subscribedTo, but the write filter passes, and what may be
     * written may be read. */
    assert_access(&feed, "Item", reader, "{'_id': 3, 'owner_id': 'me'}", "RW");
    /* No custom user data: subscribedTo is missing, an empty $in list. */
    assert_access(&feed, "Item", loner, "{'_id': 1, 'owner_id': 'amy'}", "");
    assert_access(&feed, "Item", loner, "{'_id': 3, 'owner_id': 'me'}", "RW");
    user_free(reader);
    user_free(loner);
    unload(&feed);
}
END_TEST

START_TEST(test_add_collaborators)
{
    loaded_app shared = load_export("add-collaborators");
    test_user *owner = user_new("olga", "normal", NULL);
    test_user *helper = user_new("hal", "normal", NULL);
    test_user *stranger = user_new("sam", "normal", NULL);
    const char *item = "{'_id': 1, 'owner_id': 'olga', 'collaborators': ['hal', 'ian'], "
                       "'name': 'plan'}";
    assert_access(&shared, "Item", owner, item, "RW");
    assert_access(&shared, "Item", helper, item, "RW");
    assert_access(&shared, "Item", stranger, item, "");
    assert_insert_delete(&shared, "Item", helper, item, true, true);
    assert_insert_delete(&shared, "Item", stranger, item, false, false);
    user_free(owner);
    user_free(helper);
    user_free(stranger);
    unload(&shared);
}
END_TEST

START_TEST(test_tiered_team_admin)
{
    loaded_app tiered = load_export("tiered");
    test_user *admin = user_new("ada", "normal", "{'team': 'red', 'isTeamAdmin': true}");
    test_user *member = user_new("max", "normal", "{'team': 'red', 'isTeamAdmin': false}");
    test_user *newcomer = user_new("neo", "normal", NULL);
    ck_assert_str_eq(role_name_for(&tiered, "Item", admin), "admin");
    ck_assert_str_eq(role_name_for(&tiered, "Item", member), "user");
    ck_assert_str_eq(role_name_for(&tiered, "Item", newcomer), "user");

    const char *red = "{'_id': 1, 'team': 'red', 'owner_id': 'zoe', 'name': 'r'}";
    const char *blue = "{'_id': 2, 'team': 'blue', 'owner_id': 'max', 'name': 'b'}";
    assert_access(&tiered, "Item", admin, red, "RW");
    assert_access(&tiered, "Item", admin, blue, "");
    assert_access(&tiered, "Item", member, red, "R");
    assert_access(&tiered, "Item", member, blue, "RW");
    assert_access(&tiered, "Item", newcomer, red, "");
    user_free(admin);
    user_free(member);
    user_free(newcomer);
    unload(&tiered);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Defaults and field permissions, in modified copies                       */

static const char *const default_rule_file = "data_sources/mongodb-atlas/default_rule.json";

/* read-and-write-own-data with its one default role replaced by role_text
 * (the rest of the role object after document_filters). */
static loaded_app load_own_data_role(const char *role_text)
{
    char text[2048];
    format_checked(text, sizeof text,
                   "{'roles': [{'name': 'custom', 'apply_when': {}, 'document_filters': "
                   "{'read': {'owner_id': '%%%%user.id'}, "
                   "'write': {'owner_id': '%%%%user.id'}}%s}]}",
                   role_text);
    return load_modified_export("read-and-write-own-data", default_rule_file, text);
}

START_TEST(test_insert_delete_defaults_and_expressions)
{
    test_user *ann = user_new("ann", "normal", NULL);
    const char *own = "{'_id': 1, 'owner_id': 'ann', 'draft': true}";
    const char *published = "{'_id': 2, 'owner_id': 'ann', 'draft': false}";

    loaded_app absent = load_own_data_role(", 'write': true");
    assert_insert_delete(&absent, "Item", ann, own, true, true);
    unload(&absent);

    loaded_app refused = load_own_data_role(", 'write': true, 'insert': false, 'delete': false");
    assert_access(&refused, "Item", ann, own, "RW");
    assert_insert_delete(&refused, "Item", ann, own, false, false);
    unload(&refused);

    /* Expressions see the document: only drafts may be deleted. */
    loaded_app drafts = load_modified_export(
        "read-and-write-own-data", default_rule_file,
        "{'roles': [{'name': 'drafts', 'document_filters': {'read': true, "
        "'write': {'owner_id': '%%user.id'}}, 'write': true, 'delete': {'draft': true}}]}");
    assert_insert_delete(&drafts, "Item", ann, own, true, true);
    assert_insert_delete(&drafts, "Item", ann, published, true, false);
    unload(&drafts);
    user_free(ann);
}
END_TEST

START_TEST(test_write_implies_read)
{
    test_user *ann = user_new("ann", "normal", NULL);
    const char *own = "{'_id': 1, 'owner_id': 'ann', 'title': 't', 'note': 'n'}";

    loaded_app write_only = load_own_data_role(", 'read': false, 'write': true");
    assert_access(&write_only, "Item", ann, own, "RW");
    unload(&write_only);

    loaded_app additional = load_own_data_role(", 'additional_fields': {'write': true}");
    assert_access(&additional, "Item", ann, own, "RW");
    unload(&additional);

    loaded_app field = load_own_data_role(", 'fields': {'title': {'write': true}}");
    assert_access(&field, "Item", ann, own, "rw");
    const rules_role *role = rules_select_role(field.rules, "Item", &ann->user);
    json_t *document = json_from(own);
    rules_document_access access = rules_evaluate_document(role, document, &ann->user);
    const char *title[] = {"title"};
    const char *note[] = {"note"};
    ck_assert(rules_field_readable(role, &access, document, &ann->user, title, 1));
    ck_assert(rules_field_writable(role, &access, document, &ann->user, title, 1));
    ck_assert(!rules_field_readable(role, &access, document, &ann->user, note, 1));
    json_decref(document);
    unload(&field);

    /* Nothing granted: the document filters pass, yet nothing is
     * readable. */
    loaded_app nothing = load_own_data_role("");
    assert_access(&nothing, "Item", ann, own, "");
    unload(&nothing);
    user_free(ann);
}
END_TEST

/* A role granting field by field: owner_id read and write, title read,
 * address only its city, stops (an array of embedded documents) only
 * their names, secret nothing, and other top-level fields read. */
static const char *const field_role =
    ", 'fields': {'owner_id': {'read': true, 'write': true}, 'title': {'read': true}, "
    "'address': {'fields': {'city': {'read': true}, 'geo': {'write': true, "
    "'fields': {'lat': {'read': false}}}}}, "
    "'stops': {'fields': {'name': {'read': true}}}, 'secret': {}}, "
    "'additional_fields': {'read': true}";

static bool path_readable(const rules_role *role, const rules_document_access *access,
                          const json_t *document, const filter_user *user, const char *dotted)
{
    char copy[256];
    format_checked(copy, sizeof copy, "%s", dotted);
    const char *path[8];
    size_t depth = 0;
    for (char *step = strtok(copy, "."); step != NULL && depth < 8; step = strtok(NULL, "."))
        path[depth++] = step;
    return rules_field_readable(role, access, document, user, path, depth);
}

START_TEST(test_field_permissions)
{
    test_user *ann = user_new("ann", "normal", NULL);
    loaded_app loaded = load_own_data_role(field_role);
    const rules_role *role = rules_select_role(loaded.rules, "Item", &ann->user);
    json_t *document = json_from(
        "{'_id': 7, 'owner_id': 'ann', 'title': 't', 'secret': 's', 'extra': 1, "
        "'address': {'city': 'Oslo', 'street': 'Main', 'geo': {'lat': 1, 'lng': 2}}, "
        "'stops': [{'name': 'a', 'at': 1}, {'name': 'b', 'at': 2}], 'tags': 'x'}");
    rules_document_access access = rules_evaluate_document(role, document, &ann->user);
    ck_assert(access.readable && access.writable);
    ck_assert(!access.all_fields_readable && !access.all_fields_writable);

    ck_assert(path_readable(role, &access, document, &ann->user, "_id"));
    ck_assert(path_readable(role, &access, document, &ann->user, "title"));
    ck_assert(path_readable(role, &access, document, &ann->user, "extra"));
    ck_assert(!path_readable(role, &access, document, &ann->user, "secret"));
    ck_assert(path_readable(role, &access, document, &ann->user, "address.city"));
    ck_assert(!path_readable(role, &access, document, &ann->user, "address.street"));
    ck_assert(!path_readable(role, &access, document, &ann->user, "address"));
    /* A field's own grant covers what it embeds, whatever nested fields
     * say: geo may be written, so geo.lat may be read. */
    ck_assert(path_readable(role, &access, document, &ann->user, "address.geo.lat"));
    ck_assert(path_readable(role, &access, document, &ann->user, "stops.name"));
    ck_assert(!path_readable(role, &access, document, &ann->user, "stops.at"));
    /* additional_fields grant a top-level field whole, with what it
     * embeds; they grant nothing inside a field that "fields" names. */
    ck_assert(path_readable(role, &access, document, &ann->user, "extra.inner"));

    const char *owner_id[] = {"owner_id"};
    const char *title[] = {"title"};
    const char *geo_lng[] = {"address", "geo", "lng"};
    ck_assert(rules_field_writable(role, &access, document, &ann->user, owner_id, 1));
    ck_assert(!rules_field_writable(role, &access, document, &ann->user, title, 1));
    ck_assert(rules_field_writable(role, &access, document, &ann->user, geo_lng, 3));

    ck_assert_int_eq(rules_strip_unreadable_fields(role, &access, document, &ann->user), 0);
    json_t *expected = json_from(
        "{'_id': 7, 'owner_id': 'ann', 'title': 't', 'extra': 1, "
        "'address': {'city': 'Oslo', 'geo': {'lat': 1, 'lng': 2}}, "
        "'stops': [{'name': 'a'}, {'name': 'b'}], 'tags': 'x'}");
    char *found = json_dumps(document, JSON_SORT_KEYS);
    ck_assert_msg(json_equal(document, expected), "stripped to %s", found);
    free(found);
    json_decref(expected);

    /* Inserting needs write on every field the document has. */
    assert_insert_delete(&loaded, "Item", ann, "{'_id': 8, 'owner_id': 'ann'}", true, true);
    assert_insert_delete(&loaded, "Item", ann, "{'_id': 8, 'owner_id': 'ann', 'title': 't'}",
                         false, false);
    assert_insert_delete(&loaded, "Item", ann,
                         "{'_id': 8, 'owner_id': 'ann', 'address': {'geo': {'lat': 1}}}", true,
                         true);
    json_decref(document);
    unload(&loaded);
    user_free(ann);
}
END_TEST

START_TEST(test_strip_whole_and_unreadable_documents)
{
    test_user *ann = user_new("ann", "normal", NULL);
    loaded_app loaded = load_own_data_role(field_role);
    const rules_role *role = rules_select_role(loaded.rules, "Item", &ann->user);
    /* A value nested permissions cannot apply to is removed whole. */
    json_t *document = json_from("{'_id': 1, 'owner_id': 'ann', 'address': 'Oslo', "
                                 "'stops': [{'name': 'a'}, 'b']}");
    rules_document_access access = rules_evaluate_document(role, document, &ann->user);
    ck_assert_int_eq(rules_strip_unreadable_fields(role, &access, document, &ann->user), 0);
    json_t *expected = json_from("{'_id': 1, 'owner_id': 'ann'}");
    ck_assert(json_equal(document, expected));
    json_decref(expected);
    json_decref(document);

    /* Someone else's document: not readable, only _id is left. */
    document = json_from("{'_id': 2, 'owner_id': 'bob', 'title': 't'}");
    access = rules_evaluate_document(role, document, &ann->user);
    ck_assert(!access.readable);
    ck_assert_int_eq(rules_strip_unreadable_fields(role, &access, document, &ann->user), 0);
    expected = json_from("{'_id': 2}");
    ck_assert(json_equal(document, expected));
    json_decref(expected);
    json_decref(document);
    unload(&loaded);

    /* Everything readable: the document stays as it is. */
    loaded = load_export("read-and-write-own-data");
    role = rules_select_role(loaded.rules, "Item", &ann->user);
    document = json_from("{'_id': 3, 'owner_id': 'ann', 'secret': 's'}");
    expected = json_deep_copy(document);
    access = rules_evaluate_document(role, document, &ann->user);
    ck_assert(access.all_fields_readable);
    ck_assert_int_eq(rules_strip_unreadable_fields(role, &access, document, &ann->user), 0);
    ck_assert(json_equal(document, expected));
    json_decref(expected);
    json_decref(document);
    unload(&loaded);
    user_free(ann);
}
END_TEST

START_TEST(test_query_filters_ignored)
{
    loaded_app loaded = load_modified_export(
        "sync-todo", "data_sources/mongodb-atlas/todo/Item/rules.json",
        "{'collection': 'Item', 'database': 'todo', "
        "'roles': [{'name': 'all', 'apply_when': {}, 'document_filters': {'read': true, "
        "'write': true}, 'read': true, 'write': true}], "
        "'filters': [{'name': 'hide', 'apply_when': {}, 'query': {'owner_id': 'nobody'}, "
        "'projection': {'summary': 0}}]}");
    test_user *ann = user_new("ann", "normal", NULL);
    assert_access(&loaded, "Item", ann, "{'_id': 1, 'owner_id': 'bob', 'summary': 's'}", "RW");
    user_free(ann);
    unload(&loaded);
}
END_TEST

START_TEST(test_app_without_rules)
{
    loaded_app loaded = load_modified_export("read-and-write-own-data", default_rule_file, NULL);
    test_user *ann = user_new("ann", "normal", NULL);
    ck_assert(!rules_collection_has_roles(loaded.rules, "Item"));
    ck_assert_ptr_null(rules_select_role(loaded.rules, "Item", &ann->user));
    user_free(ann);
    unload(&loaded);

    /* A collection whose rules.json has no roles takes the default ones. */
    loaded = load_modified_export("sync-todo", "data_sources/mongodb-atlas/todo/Item/rules.json",
                                  "{'collection': 'Item', 'database': 'todo', 'roles': []}");
    ann = user_new("ann", "normal", NULL);
    ck_assert_str_eq(role_name_for(&loaded, "Item", ann), "read-not-write");
    user_free(ann);
    unload(&loaded);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Roles Device Sync refuses                                                */

/* tiered is not in Development Mode, and its queryable fields are owner_id
 * and team; its default role "r" becomes {name, document_filters: {read:
 * filters_read, write: {team: ...}}} plus rest. */
static void assert_tiered_role_refused(const char *filters_read, const char *rest,
                                       const char *expected_reason)
{
    char text[2048];
    format_checked(text, sizeof text,
                   "{'roles': [{'name': 'r', 'document_filters': {'read': %s, "
                   "'write': {'team': '%%%%user.custom_data.team'}}%s}]}",
                   filters_read, rest);
    char expected[512];
    format_checked(expected, sizeof expected, "%s: role \"r\": %s", default_rule_file,
                   expected_reason);
    assert_refused("tiered", default_rule_file, text, expected);
}

START_TEST(test_refused_document_filters)
{
    assert_refused("tiered", default_rule_file,
                   "{'roles': [{'name': 'r', 'read': true}]}",
                   "data_sources/mongodb-atlas/default_rule.json: role \"r\": no "
                   "document_filters; Device Sync needs both document_filters.read and "
                   "document_filters.write");
    assert_refused("tiered", default_rule_file,
                   "{'roles': [{'name': 'r', 'document_filters': {'read': true}}]}",
                   "data_sources/mongodb-atlas/default_rule.json: role \"r\": no "
                   "document_filters.write; Device Sync needs both document filters");
    assert_tiered_role_refused("{'secret': '%%user.id'}", "",
                               "document_filters.read reads field \"secret\", which is not "
                               "queryable in collection \"Item\"");
    assert_tiered_role_refused("{'address.city': 'Oslo'}", "",
                               "document_filters.read reads field \"address.city\", which is "
                               "not queryable in collection \"Item\"");
    assert_tiered_role_refused("{'owner_id': '%%root.owner_id'}", "",
                               "document_filters.read.owner_id: unsupported expansion "
                               "%%root.owner_id");
    assert_tiered_role_refused("{'%%user.id': {'%function': {'name': 'isOwner'}}}", "",
                               "document_filters.read.%%user.id: unsupported operator %function");
}
END_TEST

START_TEST(test_refused_permissions)
{
    assert_tiered_role_refused("true", ", 'read': {'owner_id': '%%user.id'}",
                               "read: expected true or false (Device Sync takes no expression "
                               "here), found an object");
    assert_tiered_role_refused("true", ", 'fields': {'title': {'write': 'yes'}}",
                               "fields.title.write: expected true or false (Device Sync takes "
                               "no expression here), found a string");
    assert_tiered_role_refused("true",
                               ", 'fields': {'a': {'fields': {'b': {'read': {'x': 1}}}}}",
                               "fields.a.fields.b.read: expected true or false (Device Sync "
                               "takes no expression here), found an object");
    assert_tiered_role_refused("true", ", 'fields': {'_id': {'read': true}}",
                               "fields._id: Device Sync allows no field permissions for _id");
    assert_tiered_role_refused("true", ", 'additional_fields': {'read': true, 'find': true}",
                               "additional_fields: unknown key \"find\"");
    assert_tiered_role_refused("true", ", 'insert': {'name': 'x'}",
                               "insert reads field \"name\", which is not queryable in "
                               "collection \"Item\"");
    assert_tiered_role_refused("true", ", 'apply_when': {'owner_id': '%%user.id'}",
                               "apply_when reads document field \"owner_id\"; Device Sync "
                               "chooses a role before it reads any document");
    assert_tiered_role_refused("true", ", 'permissions': {}", "unknown key \"permissions\"");
    assert_tiered_role_refused("true", ", 'search': 'always'",
                               "search: expected a boolean or an expression, found a string");
}
END_TEST

START_TEST(test_refused_files)
{
    assert_refused("tiered", default_rule_file, "{'roles': [{'read': true}]}",
                   "data_sources/mongodb-atlas/default_rule.json: roles[0]: name: expected a "
                   "string, found nothing");
    assert_refused("tiered", default_rule_file,
                   "{'roles': [{'name': 'a', 'document_filters': {'read': true, 'write': true}}, "
                   "{'name': 'a', 'document_filters': {'read': true, 'write': true}}]}",
                   "data_sources/mongodb-atlas/default_rule.json: roles[1]: name: \"a\" is also "
                   "the name of roles[0]");
    assert_refused("tiered", default_rule_file, "{'roles': {}}",
                   "data_sources/mongodb-atlas/default_rule.json: roles: expected an array, "
                   "found an object");
    assert_refused("tiered", default_rule_file, "{'roles': [], 'filters': [{'query': {}}]}",
                   "data_sources/mongodb-atlas/default_rule.json: filters[0]: name: expected a "
                   "string, found nothing");
    /* A collection's own rules are checked against its queryable fields,
     * and named by their file. */
    assert_refused("tiered", "data_sources/mongodb-atlas/Item/Item/rules.json",
                   "{'roles': [{'name': 'owner', 'document_filters': {'read': {'secret': 1}, "
                   "'write': false}}]}",
                   "data_sources/mongodb-atlas/Item/Item/rules.json: role \"owner\": "
                   "document_filters.read reads field \"secret\", which is not queryable");
}
END_TEST

/* In Development Mode fields become queryable as clients use them, so a
 * filter on any field loads. */
START_TEST(test_development_mode_accepts_any_field)
{
    loaded_app loaded = load_modified_export(
        "read-and-write-own-data", default_rule_file,
        "{'roles': [{'name': 'r', 'document_filters': {'read': {'secret': '%%user.id'}, "
        "'write': false}, 'read': true}]}");
    test_user *ann = user_new("ann", "normal", NULL);
    assert_access(&loaded, "Item", ann, "{'_id': 1, 'secret': 'ann'}", "R");
    assert_access(&loaded, "Item", ann, "{'_id': 1, 'secret': 'bob'}", "");
    user_free(ann);
    unload(&loaded);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("rules");
    TCase *exports = tcase_create("exports");
    tcase_add_test(exports, test_every_export_loads);
    tcase_add_test(exports, test_edge_server_roles);
    tcase_add_test(exports, test_sync_todo_write_own_items);
    tcase_add_test(exports, test_read_and_write_own_data);
    tcase_add_test(exports, test_restricted_feed_subscribed_to);
    tcase_add_test(exports, test_add_collaborators);
    tcase_add_test(exports, test_tiered_team_admin);
    suite_add_tcase(suite, exports);

    TCase *permissions = tcase_create("permissions");
    tcase_add_test(permissions, test_insert_delete_defaults_and_expressions);
    tcase_add_test(permissions, test_write_implies_read);
    tcase_add_test(permissions, test_field_permissions);
    tcase_add_test(permissions, test_strip_whole_and_unreadable_documents);
    tcase_add_test(permissions, test_query_filters_ignored);
    tcase_add_test(permissions, test_app_without_rules);
    suite_add_tcase(suite, permissions);

    TCase *refused = tcase_create("refused");
    tcase_add_test(refused, test_refused_document_filters);
    tcase_add_test(refused, test_refused_permissions);
    tcase_add_test(refused, test_refused_files);
    tcase_add_test(refused, test_development_mode_accepts_any_field);
    suite_add_tcase(suite, refused);
    return suite;
}
