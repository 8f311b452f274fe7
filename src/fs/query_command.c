/*
 * query_command.c — `realmfs query MOUNT COLLECTION PREDICATE`.
 *
 * The predicate runs over the store itself, opened read-only beside the
 * daemon (LMDB allows any number of reader processes), so nothing goes
 * through FUSE: far faster than reading every file with jq.  Each object's
 * text is parsed only for the fields the predicate reads (the others are
 * skipped unchecked: the store holds only canonical text, checked when it
 * was written), and its id is decoded only when it matches.
 */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_command.h"
#include "realmfs/ejson.h"
#include "realmfs/object_name.h"
#include "realmfs/rql.h"
#include "realmfs/store.h"

typedef struct query_walk {
    const rql_query *query;
    const ejson_field_set *fields; /* the fields the query reads */
    const char *prefix;     /* "<mountpoint>/<collection>/" */
    char separator;
    size_t matches;
    size_t unreadable;
} query_walk;

static int print_match(query_walk *walk, const store_object_view *object)
{
    json_t *id;
    int result = store_object_view_id(object, &id);
    if (result != 0)
        return result;
    char name[OBJECT_NAME_MAX + 1];
    if (object_name_from_id(id, name) == 0) {
        printf("%s%s%c", walk->prefix, name, walk->separator);
        walk->matches++;
    }
    json_decref(id);
    return 0;
}

static int print_if_matching(const store_object_view *object, void *context)
{
    query_walk *walk = context;
    ejson_error error;
    json_t *document =
        ejson_parse_canonical_fields(object->text, object->info.size, walk->fields, &error);
    if (!document) {
        walk->unreadable++;
        return 0;
    }
    bool matches = rql_matches(walk->query, document);
    json_decref(document);
    return matches ? print_match(walk, object) : 0;
}

/* Prints the name of every object of collection that query matches;
 * returns the exit status. */
static int print_matches(store *store, const char *collection, const rql_query *query,
                         const char *prefix, char separator)
{
    ejson_field_set *fields = ejson_field_set_new();
    if (!fields || rql_add_fields(query, fields) != 0) {
        fprintf(stderr, "realmfs: out of memory\n");
        ejson_field_set_free(fields);
        return 1;
    }
    query_walk walk = {.query = query, .fields = fields, .prefix = prefix,
                       .separator = separator};
    int exit_status = 0;
    int error = store_scan_object_texts(store, collection, NULL, false, print_if_matching, &walk);
    if (error < 0) {
        fprintf(stderr, "realmfs: %s\n", store_last_error());
        exit_status = 1;
    }
    if (walk.unreadable)
        fprintf(stderr, "realmfs: %zu stored objects could not be read\n", walk.unreadable);
    ejson_field_set_free(fields);
    return exit_status;
}

static void print_predicate_error(const char *predicate, const rql_error *error)
{
    fprintf(stderr, "realmfs: invalid predicate: %s\n  %s\n  %*s^\n", error->message, predicate,
            (int)error->position, "");
}

/* The collection's schema, when it has one, lets the parser reject unknown
 * fields and link traversal. */
static json_t *load_schema(store *store, const char *collection)
{
    char *text;
    size_t size;
    if (store_get_schema(store, collection, &text, &size) != 0)
        return NULL;
    json_t *schema = json_loadb(text, size, 0, NULL);
    free(text);
    return schema;
}

int query_command_run(int argc, char **argv)
{
    char separator = '\n';
    int option;
    optind = 1;
    while ((option = getopt(argc, argv, "+0")) != -1) {
        if (option != '0') {
            fprintf(stderr, "usage: realmfs query [-0] MOUNTPOINT COLLECTION PREDICATE\n");
            return 2;
        }
        separator = '\0';
    }
    if (optind != argc - 3) {
        fprintf(stderr, "usage: realmfs query [-0] MOUNTPOINT COLLECTION PREDICATE\n");
        return 2;
    }
    const char *mountpoint = argv[optind];
    const char *collection = argv[optind + 1];
    const char *predicate = argv[optind + 2];

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.realmfs/status", mountpoint);
    json_t *status = json_load_file(path, 0, NULL);
    const char *data = json_string_value(json_object_get(status, "data"));
    if (!data) {
        fprintf(stderr, "realmfs: %s is not a realmfs mount\n", mountpoint);
        json_decref(status);
        return 1;
    }
    store *store = NULL;
    store_options options = {.read_only = true};
    if (store_open(data, &options, &store) != 0) {
        fprintf(stderr, "realmfs: cannot open the store of %s: %s\n", mountpoint,
                store_last_error());
        json_decref(status);
        return 1;
    }
    json_decref(status);
    int exit_status = 0;
    json_t *schema = load_schema(store, collection);
    rql_error parse_error;
    rql_query *query = rql_parse(predicate, NULL, schema, &parse_error);
    if (!query) {
        print_predicate_error(predicate, &parse_error);
        exit_status = 2;
    } else if (store_has_collection(store, collection) != 1) {
        fprintf(stderr, "realmfs: %s has no collection %s\n", mountpoint, collection);
        exit_status = 1;
    } else {
        char prefix[PATH_MAX];
        snprintf(prefix, sizeof prefix, "%s/%s/", mountpoint, collection);
        exit_status = print_matches(store, collection, query, prefix, separator);
    }
    rql_free(query);
    json_decref(schema);
    store_close(store);
    return exit_status;
}
