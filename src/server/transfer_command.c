/*
 * transfer_command.c — `realmfs-server import` and `realmfs-server export`.
 *
 * Import turns each good line into instructions made by the server
 * (origin 0): a create and a set per field, as changeset_diff writes a
 * document from nothing.  So an imported document merges with the object
 * of the same _id under the rules every client write follows, a running
 * server's clients receive it like any change, and importing the same
 * file again leaves the same documents.  Lines are batched,
 * IMPORT_BATCH_DOCUMENTS to a changeset, each changeset one transaction:
 * a line is imported whole or not at all, but the import as a whole is
 * not one transaction.
 *
 * In Development Mode, import extends the schemas as a client's upload
 * would (sync_schema.h): a document with a field or a collection the
 * schema lacks teaches it to the schema, saved in the data directory.  A
 * server running on the same data directory learns of it at its next
 * start.
 *
 * Export writes the documents of one snapshot, in id order, as the store
 * keeps them: Relaxed Extended JSON on one line each.
 */
#include "transfer_command.h"

#include "sync_schema.h"

#include "realmfs/app_config.h"
#include "realmfs/changeset.h"
#include "realmfs/ejson.h"
#include "realmfs/schema.h"
#include "realmfs/sync_store.h"
#include "realmfs/value.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum {
    IMPORT_BATCH_DOCUMENTS = 1000,
    MESSAGE_SIZE = 512,
    /* A reason quotes a message of another module. */
    REASON_SIZE = 2 * MESSAGE_SIZE,
};

static const char import_usage[] =
    "usage: realmfs-server import --app APPDIR --data DIR COLLECTION FILE\n"
    "\n"
    "Load the JSON lines of FILE (\"-\": standard input), one document a line as\n"
    "mongoexport writes them (Relaxed or Canonical Extended JSON; blank lines are\n"
    "ignored), into COLLECTION of the sync store in DIR.  Each document needs an\n"
    "_id (string, long or objectId) and must match the collection's schema in the\n"
    "app export APPDIR.  COLLECTION must be in the app, or be its custom user\n"
    "data collection, unless development mode is on; then documents extend the\n"
    "schemas as clients' writes do.  A line that does not qualify is reported as\n"
    "FILE:LINE: reason and skipped; the others are imported.  A document whose _id exists is merged\n"
    "into it, field by field, as a newer write.\n"
    "\n"
    "Exit status: 0 every line imported; 3 the file was read, but some lines were\n"
    "skipped; 1 failure (the documents of batches written before it stay);\n"
    "2 usage error.\n";

static const char export_usage[] =
    "usage: realmfs-server export --app APPDIR --data DIR COLLECTION [FILE]\n"
    "\n"
    "Write every document of COLLECTION in the sync store in DIR, in _id order, as\n"
    "one line of Relaxed Extended JSON each, to FILE (default: standard output).\n"
    "COLLECTION must be in the app export APPDIR unless development mode is on.\n"
    "\n"
    "Exit status: 0 done; 1 failure; 2 usage error.\n";

/* A command's name and usage text, for its messages. */
typedef struct transfer_command {
    const char *name;  /* "import" */
    const char *usage;
    int positional_min;
    int positional_max;
} transfer_command;

typedef struct transfer_arguments {
    const char *app_directory;
    const char *data_directory;
    const char *collection;
    const char *file;  /* NULL when not given */
} transfer_arguments;

/* What both commands work on. */
typedef struct transfer_target {
    app_config *app;
    sync_schema *schema;  /* import only */
    sync_store *store;
} transfer_target;

/* ------------------------------------------------------------------ */
/* Command line                                                        */

__attribute__((format(printf, 2, 3)))
static int fail(const transfer_command *command, const char *format, ...)
{
    fprintf(stderr, "realmfs-server %s: ", command->name);
    va_list arguments;
    va_start(arguments, format);
    vfprintf(stderr, format, arguments);
    va_end(arguments);
    fputc('\n', stderr);
    return TRANSFER_EXIT_FAILED;
}

static int usage_error(const transfer_command *command, const char *problem, const char *argument)
{
    fprintf(stderr, "realmfs-server %s: %s%s\n%s", command->name, problem, argument,
            command->usage);
    return TRANSFER_EXIT_USAGE;
}

/* true to go on; false when the command is over, with its exit status in
 * *status (--help, or a usage error). */
static bool parse_arguments(const transfer_command *command, int argc, char **argv,
                            transfer_arguments *arguments, int *status)
{
    static const struct option options[] = {
        { "app", required_argument, NULL, 'a' },
        { "data", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    *arguments = (transfer_arguments){ 0 };
    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (option) {
        case 'a':
            arguments->app_directory = optarg;
            break;
        case 'd':
            arguments->data_directory = optarg;
            break;
        case 'h':
            fputs(command->usage, stdout);
            *status = TRANSFER_EXIT_OK;
            return false;
        case ':':
            *status = usage_error(command, "this option needs a value: ", argv[optind - 1]);
            return false;
        default:
            *status = usage_error(command, "unknown option ", argv[optind - 1]);
            return false;
        }
    }
    int positional = argc - optind;
    if (arguments->app_directory == NULL)
        *status = usage_error(command, "missing --app APPDIR", "");
    else if (arguments->data_directory == NULL)
        *status = usage_error(command, "missing --data DIR", "");
    else if (positional < command->positional_min)
        *status = usage_error(command, "missing argument", "");
    else if (positional > command->positional_max)
        *status = usage_error(command, "unexpected argument ",
                              argv[optind + command->positional_max]);
    else {
        arguments->collection = argv[optind];
        arguments->file = positional > 1 ? argv[optind + 1] : NULL;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* The app and the store                                               */

/* Operators load custom user data with import, so its collection is
 * accepted without being in the app (tiered keeps it in "User"). */
static int check_collection(const transfer_command *command, const transfer_arguments *arguments,
                            const app_config *app)
{
    const app_custom_user_data *custom = app_config_custom_user_data(app);
    if (app_config_find_collection(app, arguments->collection) != NULL
        || app_config_sync(app)->development_mode
        || (custom != NULL && strcmp(custom->collection, arguments->collection) == 0))
        return 0;
    return fail(command, "the app export %s has no collection \"%s\" (and its development "
                         "mode is off)",
                arguments->app_directory, arguments->collection);
}

/* 0, or the exit status of the failure it reported. */
static int open_target(const transfer_command *command, const transfer_arguments *arguments,
                       bool create_store, transfer_target *target)
{
    *target = (transfer_target){ 0 };
    char message[MESSAGE_SIZE];
    if (app_config_load(arguments->app_directory, &target->app, message, sizeof message) != 0)
        return fail(command, "cannot load the app export %s: %s", arguments->app_directory,
                    message);
    int status = check_collection(command, arguments, target->app);
    if (status != 0)
        return status;
    char sync_directory[PATH_MAX];
    struct stat file;
    snprintf(sync_directory, sizeof sync_directory, "%s/sync", arguments->data_directory);
    if (!create_store && stat(sync_directory, &file) != 0)
        return fail(command, "no sync store in %s (%s: %s)", arguments->data_directory,
                    sync_directory, strerror(errno));
    if (sync_store_open(arguments->data_directory, 0, &target->store) != 0)
        return fail(command, "%s", sync_store_last_error());
    if (create_store
        && sync_schema_open(target->app, arguments->data_directory, &target->schema, message,
                            sizeof message) != 0)
        return fail(command, "cannot open the schemas: %s", message);
    return 0;
}

static void close_target(transfer_target *target)
{
    sync_schema_close(target->schema);
    sync_store_close(target->store);
    app_config_free(target->app);
}

/* ------------------------------------------------------------------ */
/* Import                                                              */

typedef struct import_run {
    const transfer_command *command;
    const char *source;  /* the file's name in messages */
    const char *collection;
    const app_config *app;
    sync_schema *schema;
    sync_store *store;
    changeset batch;
    size_t batch_documents;
    int64_t last_timestamp;
    uint64_t imported;
    uint64_t skipped;
} import_run;

static int64_t current_time_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Integrates the batch as one changeset of the server.  0 or the exit
 * status of the failure it reported. */
static int flush_batch(import_run *run)
{
    if (run->batch_documents == 0)
        return 0;
    /* The server's changesets need increasing timestamps, even when two
     * batches take the same millisecond. */
    int64_t now = current_time_ms();
    run->batch.timestamp = now > run->last_timestamp ? now : run->last_timestamp + 1;
    run->last_timestamp = run->batch.timestamp;
    sync_store_integration result;
    int integrated = sync_store_integrate(run->store, &run->batch, 1, now, &result);
    changeset_clear(&run->batch);
    if (integrated != 0)
        return fail(run->command, "%s", sync_store_last_error());
    sync_store_integration_clear(&result);
    run->imported += run->batch_documents;
    run->batch_documents = 0;
    return 0;
}

static bool is_blank(const char *line, size_t length)
{
    for (size_t index = 0; index < length; index++)
        if (!isspace((unsigned char)line[index]))
            return false;
    return true;
}

/*
 * Whether the document fits its collection's schema: 0, -ENOMEM, or
 * -EINVAL with message.  In Development Mode it first extends the schema,
 * after which the only fields the schema lacks hold null, which Realm
 * does not tell from an absent field.  Validation makes integers doubles
 * where the schema asks for doubles.
 */
static int fit_schema(const import_run *run, json_t *document, char *message,
                      size_t message_size)
{
    bool development_mode = sync_schema_development_mode(run->schema);
    if (development_mode) {
        bool extended;
        int result = sync_schema_admit_document(run->schema, run->collection, document,
                                                &extended, message, message_size);
        if (result != 0)
            return result;
    }
    const app_collection *collection = app_config_find_collection(run->app, run->collection);
    if (collection == NULL || collection->schema == NULL)
        return 0;
    if (development_mode && schema_strip_unknown_fields(collection->schema, document) < 0)
        return -EINVAL;
    return schema_validate_document(collection->schema, document, message, message_size);
}

/* The document of a line, checked; NULL with the reason when it does not
 * qualify. */
static json_t *read_document(const import_run *run, const char *line, size_t length,
                             char *reason, size_t reason_size)
{
    ejson_error error;
    json_t *document = ejson_parse(line, length, &error);
    if (document == NULL) {
        if (error.column > 0)
            snprintf(reason, reason_size, "column %d: %s", error.column, error.message);
        else
            snprintf(reason, reason_size, "%s", error.message);
        return NULL;
    }
    const json_t *id = json_object_get(document, "_id");
    value_type id_type = id != NULL ? value_type_of(id) : VALUE_NULL;
    if (id == NULL)
        snprintf(reason, reason_size, "the document has no _id");
    else if (id_type != VALUE_STRING && id_type != VALUE_INT && id_type != VALUE_OBJECT_ID)
        snprintf(reason, reason_size, "_id must be a string, long or objectId, not %s",
                 value_type_name(id_type));
    else {
        char message[MESSAGE_SIZE];
        int result = fit_schema(run, document, message, sizeof message);
        if (result == 0)
            return document;
        if (result == -EINVAL)
            snprintf(reason, reason_size, "does not match the schema of %s: %s",
                     run->collection, message);
        else
            snprintf(reason, reason_size, "%s", result == -ENOMEM ? "out of memory" : message);
    }
    json_decref(document);
    return NULL;
}

/* Adds the document of one line to the batch, or reports why not.  0, or
 * the exit status of a failure. */
static int import_line(import_run *run, const char *line, size_t length, uint64_t line_number)
{
    if (is_blank(line, length))
        return 0;
    char reason[REASON_SIZE];
    json_t *document = read_document(run, line, length, reason, sizeof reason);
    if (document != NULL) {
        int added = changeset_diff(run->collection, json_object_get(document, "_id"), NULL,
                                   document, &run->batch, reason, sizeof reason);
        json_decref(document);
        if (added == -ENOMEM || added == -E2BIG)
            return fail(run->command, "%s:%llu: %s", run->source,
                        (unsigned long long)line_number, strerror(-added));
        if (added == 0) {
            run->batch_documents++;
            return run->batch_documents == IMPORT_BATCH_DOCUMENTS ? flush_batch(run) : 0;
        }
    }
    fprintf(stderr, "%s:%llu: %s\n", run->source, (unsigned long long)line_number, reason);
    run->skipped++;
    return 0;
}

static int import_stream(import_run *run, FILE *input)
{
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    uint64_t line_number = 0;
    int status = 0;
    while (status == 0 && (length = getline(&line, &capacity, input)) >= 0) {
        line_number++;
        status = import_line(run, line, (size_t)length, line_number);
    }
    free(line);
    if (status == 0 && ferror(input))
        status = fail(run->command, "cannot read %s: %s", run->source, strerror(errno));
    if (status == 0)
        status = flush_batch(run);
    changeset_clear(&run->batch);
    return status;
}

int transfer_command_import(int argc, char **argv)
{
    static const transfer_command command = {
        .name = "import", .usage = import_usage, .positional_min = 2, .positional_max = 2,
    };
    transfer_arguments arguments;
    int status;
    if (!parse_arguments(&command, argc, argv, &arguments, &status))
        return status;
    bool from_stdin = strcmp(arguments.file, "-") == 0;
    FILE *input = from_stdin ? stdin : fopen(arguments.file, "r");
    if (input == NULL)
        return fail(&command, "cannot open %s: %s", arguments.file, strerror(errno));
    transfer_target target;
    status = open_target(&command, &arguments, true, &target);
    if (status == 0) {
        import_run run = {
            .command = &command,
            .source = from_stdin ? "stdin" : arguments.file,
            .collection = arguments.collection,
            .app = target.app,
            .schema = target.schema,
            .store = target.store,
        };
        status = import_stream(&run, input);
        fprintf(stderr, "imported %llu documents into %s, skipped %llu\n",
                (unsigned long long)run.imported, arguments.collection,
                (unsigned long long)run.skipped);
        if (status == 0 && run.skipped > 0)
            status = TRANSFER_EXIT_SKIPPED;
    }
    close_target(&target);
    if (!from_stdin)
        fclose(input);
    return status;
}

/* ------------------------------------------------------------------ */
/* Export                                                              */

static int write_document(const sync_store_document_view *document, void *context)
{
    FILE *output = context;
    if (fwrite(document->text, 1, document->size, output) != document->size
        || putc('\n', output) == EOF)
        return -errno;
    return 0;
}

static int export_collection(const transfer_command *command, const transfer_arguments *arguments,
                             sync_store *store, FILE *output)
{
    const char *destination = arguments->file != NULL ? arguments->file : "standard output";
    sync_store_snapshot *snapshot;
    if (sync_store_snapshot_begin(store, &snapshot) != 0)
        return fail(command, "%s", sync_store_last_error());
    int result = sync_store_snapshot_scan(snapshot, arguments->collection, NULL, write_document,
                                          output);
    sync_store_snapshot_end(snapshot);
    if (result == 0 && fflush(output) != 0)
        result = -errno;
    if (result == 0)
        return 0;
    /* The scan's own failures set the store's message; a write's do not. */
    if (ferror(output))
        return fail(command, "cannot write %s: %s", destination, strerror(-result));
    return fail(command, "%s", sync_store_last_error());
}

int transfer_command_export(int argc, char **argv)
{
    static const transfer_command command = {
        .name = "export", .usage = export_usage, .positional_min = 1, .positional_max = 2,
    };
    transfer_arguments arguments;
    int status;
    if (!parse_arguments(&command, argc, argv, &arguments, &status))
        return status;
    transfer_target target;
    status = open_target(&command, &arguments, false, &target);
    FILE *output = stdout;
    if (status == 0 && arguments.file != NULL) {
        output = fopen(arguments.file, "w");
        if (output == NULL)
            status = fail(&command, "cannot create %s: %s", arguments.file, strerror(errno));
    }
    if (status == 0)
        status = export_collection(&command, &arguments, target.store, output);
    if (output != NULL && output != stdout && fclose(output) != 0 && status == 0)
        status = fail(&command, "cannot write %s: %s", arguments.file, strerror(errno));
    close_target(&target);
    return status;
}
