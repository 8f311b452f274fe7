/*
 * query_bench.c — how fast realmfs evaluates Flexible Sync subscriptions,
 * compared in the same run with SQLite's JSON functions over the same
 * documents.
 *
 * It writes OBJECTS deterministic "Task" documents (query_documents.h)
 * twice, into a fresh directory under --dir (default /tmp):
 *
 *   store/        a realmfs store (LMDB), collection "Task", each object as
 *                 its canonical pretty Extended JSON, which is what realmfs
 *                 keeps
 *   docs.sqlite   a table docs(id INTEGER PRIMARY KEY, body TEXT) holding
 *                 the same text with the insignificant whitespace removed
 *                 (dates stay {"$date": "2026-01-01T00:00:00Z"}), no index
 *
 * and then times five subscriptions (the table `subscriptions` below) over
 * all of them:
 *
 *   sqlite           SELECT count(*) FROM docs WHERE <json_extract predicate>
 *   rql on store     the whole path `realmfs query` takes, the same loop:
 *                    store_scan_object_texts over the collection,
 *                    ejson_parse_canonical_fields of each object's text for
 *                    the fields the query reads (rql_add_fields; the other
 *                    fields are skipped unchecked: the store holds canonical
 *                    text only), rql_matches, and
 *                    store_object_view_id for each object that matches
 *   rql on parsed    rql_matches alone, over the documents already parsed in
 *                    memory: the query engine without storage and parsing
 *
 * and, independent of the query, where the "rql on store" time goes:
 *
 *   store scan       the LMDB walk alone (cursor, record header), ids not
 *                    decoded, as store_scan_object_texts visits
 *   scan with ids    the same walk decoding every id (store_scan_objects)
 *   scan + check     the walk plus ejson_parse_fields with no field: every
 *                    object's text checked, nothing built
 *   scan + parse     the walk plus ejson_parse and json_decref of every
 *                    object: what reading whole documents costs
 *   sqlite scan      count(*) WHERE length(body) > 0: reading every body
 *   sqlite parse     count(*) WHERE json_valid(body): reading and parsing it
 *
 * Every measurement runs once untimed (warming the page cache, SQLite's
 * cache and the allocator), then --rounds times (default 3), the engines
 * taking turns within each round; the median is reported as nanoseconds
 * per stored object, both in CPU time of the measuring thread (the main
 * table: it leaves out time the thread was not running, as happens when
 * another process shares the machine's cores) and in wall-clock time.
 * "ratio" is SQLite's time over realmfs's: above 1 realmfs is faster.
 * Each subscription's match count must be the same from every engine and
 * every round, or the program exits with status 1 after printing them.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "query_documents.h"
#include "realmfs/ejson.h"
#include "realmfs/rql.h"
#include "realmfs/store.h"

#define COLLECTION "Task"
#define DEFAULT_OBJECTS 1000000u
#define DEFAULT_ROUNDS 3u
#define MAX_ROUNDS 25u
/* Every stored object gets this modification time (2026-11-26T00:00:00Z),
 * so two runs write identical stores. */
#define MODIFIED_NS INT64_C(1795651200000000000)

typedef struct subscription {
    const char *rql;
    /* The same predicate for SQLite, on the text in docs.body.  On this
     * data the two mean the same thing; comments say where the meanings of
     * the two languages differ in general. */
    const char *sql_where;
} subscription;

static const subscription subscriptions[] = {
    {"owner_id == \"user-42\"",
     "json_extract(body, '$.owner_id') = 'user-42'"},
    /* json_extract gives 0 for false; the data never stores 0 there */
    {"isComplete == false AND priority >= 3",
     "json_extract(body, '$.isComplete') = 0 AND json_extract(body, '$.priority') >= 3"},
    /* lower() folds ASCII only, [c] also Latin-1, Greek, Cyrillic...; of
     * those only U+017F (long s) folds to an ASCII letter, and "report" has
     * no s, so here both find the same summaries */
    {"summary CONTAINS[c] \"report\"",
     "instr(lower(json_extract(body, '$.summary')), 'report') > 0"},
    {"ANY tags == \"urgent\"",
     "EXISTS (SELECT 1 FROM json_each(body, '$.tags') WHERE value = 'urgent')"},
    /* Dates compare as their ISO-8601 strings, which order like the
     * instants because every stored date has the same form (whole seconds,
     * "Z"); a missing due gives NULL, which is not greater than anything,
     * as RQL's null is not. */
    {"due > 2026-01-01@00:00:00 AND project.archived == false",
     "json_extract(body, '$.due.\"$date\"') > '2026-01-01T00:00:00Z'"
     " AND json_extract(body, '$.project.archived') = 0"},
};
#define SUBSCRIPTION_COUNT (sizeof subscriptions / sizeof subscriptions[0])

/* What to measure (--measure); all by default. */
enum {
    MEASURE_SQLITE = 1 << 0,
    MEASURE_STORE = 1 << 1,
    MEASURE_PARSED = 1 << 2,
    MEASURE_BREAKDOWN = 1 << 3,
    MEASURE_ALL = (1 << 4) - 1,
};

typedef struct options {
    uint32_t objects;
    unsigned rounds;
    const char *parent;      /* where the work directory is made */
    bool keep;               /* leave the work directory behind */
    unsigned measure;        /* MEASURE_* bits */
    unsigned queries;        /* bit k: subscription k + 1 */
} options;

typedef struct bench {
    options options;
    char work[PATH_MAX];        /* "" until made */
    char store_path[PATH_MAX];
    char sqlite_path[PATH_MAX];
    store *store;
    sqlite3 *db;
    json_t **parsed;            /* options.objects documents, or NULL */
} bench;

/* One timed measurement: its medians and the count it returned. */
typedef struct measurement {
    bool measured;
    int64_t cpu_ns;     /* median CPU time of the thread over a run */
    int64_t wall_ns;    /* median wall-clock time of a run */
    uint64_t count;
} measurement;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                              */

static int64_t clock_ns(clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static int64_t monotonic_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

/* User and system time this thread has run: unlike wall-clock time, it
 * does not count the time another process held the CPU, which matters on
 * a shared machine with two cores. */
static int64_t thread_cpu_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double per_object(int64_t ns, uint32_t objects)
{
    return (double)ns / (double)objects;
}

/* The JSON text without the whitespace between tokens, into out (which
 * holds at least length bytes); returns its length.  Whitespace inside
 * strings is kept: a string is copied verbatim, escapes included. */
static size_t compact_json(const char *text, size_t length, char *out)
{
    size_t written = 0;
    bool in_string = false;
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        if (in_string) {
            out[written++] = c;
            if (c == '\\' && i + 1 < length)
                out[written++] = text[++i];
            else if (c == '"')
                in_string = false;
        } else if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
            out[written++] = c;
            in_string = c == '"';
        }
    }
    return written;
}

static const char *file_system_name(const char *path)
{
    struct statfs info;
    if (statfs(path, &info) != 0)
        return "unknown";
    switch ((unsigned long)info.f_type) {
    case TMPFS_MAGIC:
        return "tmpfs (RAM)";
    case EXT4_SUPER_MAGIC:
        return "ext4 (disk, read through the page cache)";
    case BTRFS_SUPER_MAGIC:
        return "btrfs";
    case XFS_SUPER_MAGIC:
        return "xfs";
    default:
        return "other";
    }
}

static int remove_entry(const char *path, const struct stat *info, int flag, struct FTW *ftw)
{
    (void)info;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0) {
        fprintf(stderr, "query_bench: cannot remove %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                      */

static int make_work_directory(bench *b)
{
    int n = snprintf(b->work, sizeof b->work, "%s/realmfs-query-bench.XXXXXX",
                     b->options.parent);
    if (n < 0 || (size_t)n >= sizeof b->work) {
        fprintf(stderr, "query_bench: --dir is too long\n");
        b->work[0] = '\0';
        return -1;
    }
    if (mkdtemp(b->work) == NULL) {
        fprintf(stderr, "query_bench: cannot make a directory in %s: %s\n", b->options.parent,
                strerror(errno));
        b->work[0] = '\0';
        return -1;
    }
    /* both fit: the suffixes are shorter than the template's */
    snprintf(b->store_path, sizeof b->store_path, "%.*s/store", PATH_MAX - 16, b->work);
    snprintf(b->sqlite_path, sizeof b->sqlite_path, "%.*s/docs.sqlite", PATH_MAX - 16, b->work);
    return 0;
}

static int sqlite_exec(sqlite3 *db, const char *sql)
{
    char *message = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
        fprintf(stderr, "query_bench: sqlite: %s: %s\n", sql, message ? message : "?");
        sqlite3_free(message);
        return -1;
    }
    return 0;
}

static int open_engines(bench *b)
{
    /* Room for the objects (about 600 bytes each in LMDB's B-tree) with a
     * wide margin, instead of the default 64 GiB of address space, which
     * valgrind cannot map. */
    store_options options_for_store = {
        .map_size = (UINT64_C(1) << 30) + (uint64_t)b->options.objects * 2048,
    };
    if (store_open(b->store_path, &options_for_store, &b->store) != 0 ||
        store_create_collection(b->store, COLLECTION) != 0) {
        fprintf(stderr, "query_bench: store: %s\n", store_last_error());
        return -1;
    }
    if (sqlite3_open_v2(b->sqlite_path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        NULL) != SQLITE_OK) {
        fprintf(stderr, "query_bench: sqlite: cannot open %s: %s\n", b->sqlite_path,
                b->db ? sqlite3_errmsg(b->db) : "out of memory");
        return -1;
    }
    /* No journal and no fsync while loading: the table is rebuilt on every
     * run, and the queries only read.  Everything else (page size, cache
     * size, no mmap) stays at SQLite's defaults. */
    return sqlite_exec(b->db, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                              "CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT)");
}

typedef struct load_totals {
    uint64_t store_bytes;      /* canonical text */
    uint64_t sqlite_bytes;     /* compact text */
    int64_t store_ns;
    int64_t sqlite_ns;
    int64_t other_ns;          /* generating, formatting, parsing */
} load_totals;

/* Object i: into the store as canonical text (one store_put_object per
 * object, as realmfs commits them), into SQLite as compact text (the
 * caller wraps all inserts in one transaction), and, parsed from the
 * canonical text exactly as the store path will parse it, into
 * b->parsed[i] when that is measured. */
static int load_object(bench *b, uint32_t i, sqlite3_stmt *insert, char **compact,
                       size_t *compact_capacity, load_totals *totals)
{
    int64_t t0 = monotonic_ns();
    json_t *document = query_document_new(i);
    size_t length = 0;
    char *text = document ? ejson_format_pretty(document, &length) : NULL;
    if (text == NULL) {
        json_decref(document);
        fprintf(stderr, "query_bench: out of memory making object %" PRIu32 "\n", i);
        return -1;
    }
    if (length > *compact_capacity) {
        char *grown = realloc(*compact, length);
        if (grown == NULL) {
            free(text);
            json_decref(document);
            fprintf(stderr, "query_bench: out of memory\n");
            return -1;
        }
        *compact = grown;
        *compact_capacity = length;
    }
    size_t compact_length = compact_json(text, length, *compact);
    int64_t t1 = monotonic_ns();

    int result = store_put_object(b->store, COLLECTION, json_object_get(document, "_id"), text,
                                  length, MODIFIED_NS, NULL);
    if (result != 0)
        fprintf(stderr, "query_bench: store: %s\n", store_last_error());
    int64_t t2 = monotonic_ns();

    if (result == 0 &&
        (sqlite3_bind_int64(insert, 1, i) != SQLITE_OK ||
         sqlite3_bind_text(insert, 2, *compact, (int)compact_length, SQLITE_STATIC) != SQLITE_OK ||
         sqlite3_step(insert) != SQLITE_DONE || sqlite3_reset(insert) != SQLITE_OK)) {
        fprintf(stderr, "query_bench: sqlite insert: %s\n", sqlite3_errmsg(b->db));
        result = -1;
    }
    int64_t t3 = monotonic_ns();

    if (result == 0 && b->parsed != NULL) {
        ejson_error error;
        b->parsed[i] = ejson_parse(text, length, &error);
        if (b->parsed[i] == NULL) {
            fprintf(stderr, "query_bench: object %" PRIu32 " does not parse: %s\n", i,
                    error.message);
            result = -1;
        }
    }
    free(text);
    json_decref(document);
    int64_t t4 = monotonic_ns();

    totals->store_bytes += length;
    totals->sqlite_bytes += compact_length;
    totals->store_ns += t2 - t1;
    totals->sqlite_ns += t3 - t2;
    totals->other_ns += (t1 - t0) + (t4 - t3);
    return result;
}

/* Writes both files out now, so that the kernel's writeback of them does
 * not run during the timed runs (on a disk file system; on tmpfs this does
 * nothing).  Their pages stay in the page cache for reading. */
static int flush_to_disk(bench *b)
{
    if (store_sync(b->store) != 0) {
        fprintf(stderr, "query_bench: store: %s\n", store_last_error());
        return -1;
    }
    int fd = open(b->sqlite_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        fprintf(stderr, "query_bench: %s: %s\n", b->sqlite_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (close(fd) != 0) {
        fprintf(stderr, "query_bench: %s: %s\n", b->sqlite_path, strerror(errno));
        return -1;
    }
    return 0;
}

static int load(bench *b)
{
    uint32_t objects = b->options.objects;
    if (b->options.measure & MEASURE_PARSED) {
        b->parsed = calloc(objects, sizeof *b->parsed);
        if (b->parsed == NULL) {
            fprintf(stderr, "query_bench: out of memory\n");
            return -1;
        }
    }
    sqlite3_stmt *insert = NULL;
    if (sqlite_exec(b->db, "BEGIN") != 0)
        return -1;
    if (sqlite3_prepare_v2(b->db, "INSERT INTO docs(id, body) VALUES (?, ?)", -1, &insert,
                           NULL) != SQLITE_OK) {
        fprintf(stderr, "query_bench: sqlite: %s\n", sqlite3_errmsg(b->db));
        return -1;
    }
    char *compact = NULL;
    size_t compact_capacity = 0;
    load_totals totals = {0};
    int result = 0;
    for (uint32_t i = 0; i < objects && result == 0; i++)
        result = load_object(b, i, insert, &compact, &compact_capacity, &totals);
    free(compact);
    sqlite3_finalize(insert);
    int64_t commit_start = monotonic_ns();
    if (result == 0)
        result = sqlite_exec(b->db, "COMMIT");
    totals.sqlite_ns += monotonic_ns() - commit_start;
    if (result != 0)
        return result;

    if (flush_to_disk(b) != 0)
        return -1;
    store_statistics statistics;
    struct stat sqlite_file;
    if (store_get_statistics(b->store, &statistics) != 0) {
        fprintf(stderr, "query_bench: store: %s\n", store_last_error());
        return -1;
    }
    if (stat(b->sqlite_path, &sqlite_file) != 0) {
        fprintf(stderr, "query_bench: %s: %s\n", b->sqlite_path, strerror(errno));
        return -1;
    }
    printf("loaded:    store %.0f MB of canonical text (%.0f B/object), file %.0f MB, "
           "%.1f us/object (one transaction each)\n",
           (double)totals.store_bytes / 1e6, (double)totals.store_bytes / objects,
           (double)statistics.file_bytes / 1e6, per_object(totals.store_ns, objects) / 1000);
    printf("           sqlite %.0f MB of compact text (%.0f B/object), file %.0f MB, "
           "%.1f us/object (one transaction)\n",
           (double)totals.sqlite_bytes / 1e6, (double)totals.sqlite_bytes / objects,
           (double)sqlite_file.st_size / 1e6, per_object(totals.sqlite_ns, objects) / 1000);
    printf("           generating, formatting%s: %.1f us/object\n",
           b->parsed ? " and parsing for \"rql on parsed\"" : "",
           per_object(totals.other_ns, objects) / 1000);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The measured loops                                                         */

/* One run of something measured: 0 and *count set, or -1 (message
 * printed). */
typedef int run_function(bench *b, const void *argument, uint64_t *count);

enum walk_work {
    WALK_SCAN,            /* visit only */
    WALK_PARSE,           /* ejson_parse every object */
    WALK_PARSE_FIELDS,    /* ejson_parse_fields every object */
    WALK_QUERY,           /* what realmfs query does: read the query's fields of canonical
                             text, match, id of matches */
};

typedef struct store_run {
    enum walk_work work;
    bool decode_ids;                /* scan with store_scan_objects, every id decoded */
    const rql_query *query;         /* WALK_QUERY */
    const ejson_field_set *fields;  /* WALK_PARSE_FIELDS and WALK_QUERY */
} store_run;

typedef struct store_walk {
    const store_run *run;
    uint64_t count;
} store_walk;

/* The document of a stored object, or NULL (message printed): realmfs
 * query skips such an object, but here it is a bug in the benchmark or
 * the store. */
static json_t *read_stored(const store_run *run, const store_object_view *object)
{
    ejson_error error;
    json_t *document =
        run->work == WALK_PARSE ? ejson_parse(object->text, object->info.size, &error)
        : run->work == WALK_QUERY
            ? ejson_parse_canonical_fields(object->text, object->info.size, run->fields, &error)
            : ejson_parse_fields(object->text, object->info.size, run->fields, &error);
    if (document == NULL)
        fprintf(stderr, "query_bench: a stored object does not parse: %s\n", error.message);
    return document;
}

/* A match counts once its id is decoded, as realmfs query decodes it to
 * print the object's name. */
static int count_match(store_walk *walk, const store_object_view *object)
{
    json_t *id;
    int result = store_object_view_id(object, &id);
    if (result != 0)
        return result;
    json_decref(id);
    walk->count++;
    return 0;
}

static int visit_stored(const store_object_view *object, void *context)
{
    store_walk *walk = context;
    const store_run *run = walk->run;
    if (run->work == WALK_SCAN) {
        walk->count++;
        return 0;
    }
    json_t *document = read_stored(run, object);
    if (document == NULL)
        return -EINVAL;
    bool matches = run->work != WALK_QUERY || rql_matches(run->query, document);
    json_decref(document);
    if (!matches)
        return 0;
    if (run->work == WALK_QUERY)
        return count_match(walk, object);
    walk->count++;
    return 0;
}

static int run_store(bench *b, const void *argument, uint64_t *count)
{
    const store_run *run = argument;
    store_walk walk = {.run = run};
    int result = run->decode_ids
                     ? store_scan_objects(b->store, COLLECTION, NULL, false, visit_stored, &walk)
                     : store_scan_object_texts(b->store, COLLECTION, NULL, false, visit_stored,
                                               &walk);
    if (result != 0) {
        if (result != -EINVAL)
            fprintf(stderr, "query_bench: store scan: %s\n", store_last_error());
        return -1;
    }
    *count = walk.count;
    return 0;
}

static int run_parsed(bench *b, const void *argument, uint64_t *count)
{
    const rql_query *query = argument;
    uint64_t matches = 0;
    for (uint32_t i = 0; i < b->options.objects; i++)
        if (rql_matches(query, b->parsed[i]))
            matches++;
    *count = matches;
    return 0;
}

static int run_sqlite(bench *b, const void *argument, uint64_t *count)
{
    sqlite3_stmt *statement = (sqlite3_stmt *)argument;
    if (sqlite3_reset(statement) != SQLITE_OK || sqlite3_step(statement) != SQLITE_ROW) {
        fprintf(stderr, "query_bench: sqlite: %s\n", sqlite3_errmsg(b->db));
        return -1;
    }
    *count = (uint64_t)sqlite3_column_int64(statement, 0);
    if (sqlite3_step(statement) != SQLITE_DONE) {
        fprintf(stderr, "query_bench: sqlite: %s\n", sqlite3_errmsg(b->db));
        return -1;
    }
    return 0;
}

/* Something measured: run(b, argument), its medians going into *out. */
typedef struct contender {
    run_function *run;
    const void *argument;
    measurement *out;
} contender;

#define MAX_CONTENDERS 6

static int64_t median(int64_t *times, unsigned count)
{
    qsort(times, count, sizeof times[0], compare_int64);
    return times[count / 2];
}

/*
 * Runs every contender once untimed, then --rounds rounds in which each
 * contender runs once, timed.  Interleaving the rounds spreads any
 * disturbance (another process, frequency changes) over all contenders
 * alike instead of over whichever ran at that moment.  Every run of a
 * contender must return the same count.
 */
static int measure_together(bench *b, const contender *contenders, size_t count)
{
    int64_t cpu[MAX_CONTENDERS][MAX_ROUNDS], wall[MAX_CONTENDERS][MAX_ROUNDS];
    uint64_t first_count[MAX_CONTENDERS];
    if (count > MAX_CONTENDERS) {
        fprintf(stderr, "query_bench: more than %d contenders\n", MAX_CONTENDERS);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        if (contenders[i].run(b, contenders[i].argument, &first_count[i]) != 0)
            return -1;
    unsigned rounds = b->options.rounds;
    for (unsigned round = 0; round < rounds; round++) {
        for (size_t i = 0; i < count; i++) {
            uint64_t counted;
            int64_t wall_start = monotonic_ns(), cpu_start = thread_cpu_ns();
            if (contenders[i].run(b, contenders[i].argument, &counted) != 0)
                return -1;
            cpu[i][round] = thread_cpu_ns() - cpu_start;
            wall[i][round] = monotonic_ns() - wall_start;
            if (counted != first_count[i]) {
                fprintf(stderr,
                        "query_bench: a run counted %" PRIu64 ", the one before %" PRIu64 "\n",
                        counted, first_count[i]);
                return -1;
            }
        }
    }
    for (size_t i = 0; i < count; i++)
        *contenders[i].out = (measurement){
            .measured = true,
            .cpu_ns = median(cpu[i], rounds),
            .wall_ns = median(wall[i], rounds),
            .count = first_count[i],
        };
    return 0;
}

static int prepare_sqlite(bench *b, const char *where, sqlite3_stmt **statement)
{
    char sql[512];
    int n = snprintf(sql, sizeof sql, "SELECT count(*) FROM docs WHERE %s", where);
    if (n < 0 || (size_t)n >= sizeof sql) {
        fprintf(stderr, "query_bench: SQL too long: %s\n", where);
        return -1;
    }
    if (sqlite3_prepare_v2(b->db, sql, -1, statement, NULL) != SQLITE_OK) {
        fprintf(stderr, "query_bench: sqlite: %s: %s\n", sql, sqlite3_errmsg(b->db));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Reporting                                                                  */

static int64_t time_of(const measurement *r, bool wall)
{
    return wall ? r->wall_ns : r->cpu_ns;
}

static void print_ns(const measurement *r, uint32_t objects, bool wall)
{
    if (r->measured)
        printf(" %.0f |", per_object(time_of(r, wall), objects));
    else
        printf(" - |");
}

static void print_ratio(const measurement *sqlite, const measurement *realmfs, bool wall)
{
    if (sqlite->measured && realmfs->measured && time_of(realmfs, wall) > 0)
        printf(" %.2f |", (double)time_of(sqlite, wall) / (double)time_of(realmfs, wall));
    else
        printf(" - |");
}

/* "a / b / c" in one cell, "-" for what was not measured. */
static void print_counts(const measurement *rows, size_t count, bool agree)
{
    for (size_t i = 0; i < count; i++) {
        printf(i == 0 ? " " : " / ");
        if (rows[i].measured)
            printf("%" PRIu64, rows[i].count);
        else
            printf("-");
    }
    printf("%s |", agree ? "" : " MISMATCH");
}

/* Whether every measured count equals the others. */
static bool counts_agree(const measurement *rows, size_t count)
{
    const measurement *first = NULL;
    for (size_t i = 0; i < count; i++) {
        if (!rows[i].measured)
            continue;
        if (first != NULL && rows[i].count != first->count)
            return false;
        first = &rows[i];
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* The benchmark                                                              */

enum { ENGINE_SQLITE, ENGINE_STORE, ENGINE_PARSED, ENGINE_COUNT };

/* Measures the subscription with every engine asked for, together. */
static int run_subscription(bench *b, const subscription *s, measurement results[ENGINE_COUNT])
{
    rql_error error;
    rql_query *query = rql_parse(s->rql, NULL, NULL, &error);
    if (query == NULL) {
        fprintf(stderr, "query_bench: %s: %s\n", s->rql, error.message);
        return -1;
    }
    ejson_field_set *fields = ejson_field_set_new();
    if (fields == NULL || rql_add_fields(query, fields) != 0) {
        fprintf(stderr, "query_bench: out of memory\n");
        ejson_field_set_free(fields);
        rql_free(query);
        return -1;
    }
    sqlite3_stmt *statement = NULL;
    unsigned measure_bits = b->options.measure;
    int status = 0;
    if (measure_bits & MEASURE_SQLITE)
        status = prepare_sqlite(b, s->sql_where, &statement);

    store_run query_run = {.work = WALK_QUERY, .query = query, .fields = fields};
    contender contenders[MAX_CONTENDERS];
    size_t count = 0;
    if (measure_bits & MEASURE_SQLITE)
        contenders[count++] = (contender){run_sqlite, statement, &results[ENGINE_SQLITE]};
    if (measure_bits & MEASURE_STORE)
        contenders[count++] = (contender){run_store, &query_run, &results[ENGINE_STORE]};
    if (measure_bits & MEASURE_PARSED)
        contenders[count++] = (contender){run_parsed, query, &results[ENGINE_PARSED]};
    if (status == 0)
        status = measure_together(b, contenders, count);

    sqlite3_finalize(statement);
    ejson_field_set_free(fields);
    rql_free(query);
    return status;
}

static void print_results_table(const bench *b, measurement results[][ENGINE_COUNT], bool wall)
{
    uint32_t objects = b->options.objects;
    printf("\n| # | subscription | matches (sqlite / store / parsed) |"
           " SQLite ns/obj | rql on store ns/obj | ratio | rql on parsed ns/obj | ratio |\n");
    printf("|---|---|---|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < SUBSCRIPTION_COUNT; k++) {
        if (!(b->options.queries & (1u << k)))
            continue;
        const measurement *r = results[k];
        printf("| %zu | `%s` |", k + 1, subscriptions[k].rql);
        print_counts(r, ENGINE_COUNT, counts_agree(r, ENGINE_COUNT));
        print_ns(&r[ENGINE_SQLITE], objects, wall);
        print_ns(&r[ENGINE_STORE], objects, wall);
        print_ratio(&r[ENGINE_SQLITE], &r[ENGINE_STORE], wall);
        print_ns(&r[ENGINE_PARSED], objects, wall);
        print_ratio(&r[ENGINE_SQLITE], &r[ENGINE_PARSED], wall);
        printf("\n");
    }
}

static int run_subscriptions(bench *b, bool *all_agree)
{
    measurement results[SUBSCRIPTION_COUNT][ENGINE_COUNT] = {{{0}}};
    *all_agree = true;
    for (size_t k = 0; k < SUBSCRIPTION_COUNT; k++) {
        if (!(b->options.queries & (1u << k)))
            continue;
        printf("measuring subscription %zu ...\n", k + 1);
        fflush(stdout);
        if (run_subscription(b, &subscriptions[k], results[k]) != 0)
            return -1;
        *all_agree = *all_agree && counts_agree(results[k], ENGINE_COUNT);
    }
    printf("\nCPU time of the measuring thread, median of %u rounds:\n", b->options.rounds);
    print_results_table(b, results, false);
    printf("\nThe same runs in wall-clock time:\n");
    print_results_table(b, results, true);
    printf("\nSQLite predicates (SELECT count(*) FROM docs WHERE ...):\n");
    for (size_t k = 0; k < SUBSCRIPTION_COUNT; k++)
        if (b->options.queries & (1u << k))
            printf("  %zu. %s\n", k + 1, subscriptions[k].sql_where);
    return 0;
}

/* Where the time of "rql on store" goes, next to SQLite's own reading
 * and parsing, with no predicate at all. */
static int run_breakdown(bench *b)
{
    enum { STEPS = 6 };
    static const char *const names[STEPS] = {
        "store scan (LMDB walk, ids not decoded)",
        "store scan decoding every id",
        "store scan + ejson_parse_fields of no field (checking every text)",
        "store scan + ejson_parse + json_decref (the whole document)",
        "sqlite scan: count(*) WHERE length(body) > 0",
        "sqlite parse: count(*) WHERE json_valid(body)",
    };
    ejson_field_set *no_fields = ejson_field_set_new();
    if (no_fields == NULL) {
        fprintf(stderr, "query_bench: out of memory\n");
        return -1;
    }
    store_run scan = {.work = WALK_SCAN}, scan_ids = {.work = WALK_SCAN, .decode_ids = true};
    store_run check = {.work = WALK_PARSE_FIELDS, .fields = no_fields};
    store_run parse = {.work = WALK_PARSE};
    sqlite3_stmt *length_statement = NULL, *valid_statement = NULL;
    measurement results[STEPS] = {{0}};
    int status = prepare_sqlite(b, "length(body) > 0", &length_statement);
    if (status == 0)
        status = prepare_sqlite(b, "json_valid(body)", &valid_statement);
    if (status == 0) {
        contender contenders[STEPS] = {
            {run_store, &scan, &results[0]},
            {run_store, &scan_ids, &results[1]},
            {run_store, &check, &results[2]},
            {run_store, &parse, &results[3]},
            {run_sqlite, length_statement, &results[4]},
            {run_sqlite, valid_statement, &results[5]},
        };
        status = measure_together(b, contenders, STEPS);
    }
    sqlite3_finalize(length_statement);
    sqlite3_finalize(valid_statement);
    ejson_field_set_free(no_fields);
    if (status != 0)
        return -1;
    uint32_t objects = b->options.objects;
    printf("\n| where the time goes (no predicate) | CPU ns/obj | wall ns/obj |\n"
           "|---|---:|---:|\n");
    for (size_t i = 0; i < STEPS; i++) {
        if (results[i].count != objects) {
            fprintf(stderr, "query_bench: %s counted %" PRIu64 " objects of %" PRIu32 "\n",
                    names[i], results[i].count, objects);
            return -1;
        }
        printf("| %s | %.0f | %.0f |\n", names[i], per_object(results[i].cpu_ns, objects),
               per_object(results[i].wall_ns, objects));
    }
    return 0;
}

static void release(bench *b)
{
    if (b->parsed != NULL) {
        for (uint32_t i = 0; i < b->options.objects; i++)
            json_decref(b->parsed[i]);
        free(b->parsed);
    }
    if (b->db != NULL && sqlite3_close(b->db) != SQLITE_OK)
        fprintf(stderr, "query_bench: sqlite close: %s\n", sqlite3_errmsg(b->db));
    store_close(b->store);
    if (b->work[0] == '\0')
        return;
    if (b->options.keep)
        printf("kept %s\n", b->work);
    else if (nftw(b->work, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "query_bench: could not remove all of %s\n", b->work);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                               */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: query_bench [--objects N] [--rounds N] [--dir DIR] [--keep]\n"
            "                   [--measure sqlite,store,parsed,breakdown]\n"
            "                   [--queries 1,2,...]\n"
            "  --objects N   documents stored (default %u, at most %" PRIu32 ")\n"
            "  --rounds N    timed runs per measurement, median reported (default %u)\n"
            "  --dir DIR     where the store and the SQLite file are made (default /tmp)\n"
            "  --keep        leave them there afterwards\n"
            "  --measure     only these measurements (e.g. store, for a profiler)\n"
            "  --queries     only these subscriptions (1..%zu)\n",
            DEFAULT_OBJECTS, QUERY_DOCUMENT_MAX_COUNT - 1, DEFAULT_ROUNDS, SUBSCRIPTION_COUNT);
}

static bool parse_unsigned(const char *text, unsigned long max, unsigned long *value)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v == 0 || v > max)
        return false;
    *value = v;
    return true;
}

/* "a,b,c" into bits: names[i] sets bit i; NULL names means 1-based numbers. */
static bool parse_list(char *text, const char *const *names, size_t name_count, unsigned *bits)
{
    *bits = 0;
    for (char *save = NULL, *item = strtok_r(text, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < name_count; i++) {
            char number[16];
            snprintf(number, sizeof number, "%zu", i + 1);
            if (strcmp(item, names != NULL ? names[i] : number) == 0)
                break;
        }
        if (i == name_count)
            return false;
        *bits |= 1u << i;
    }
    return *bits != 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    static const char *const measure_names[] = {"sqlite", "store", "parsed", "breakdown"};
    static const struct option long_options[] = {
        {"objects", required_argument, NULL, 'n'}, {"rounds", required_argument, NULL, 'r'},
        {"dir", required_argument, NULL, 'd'},     {"keep", no_argument, NULL, 'k'},
        {"measure", required_argument, NULL, 'm'}, {"queries", required_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    *o = (options){
        .objects = DEFAULT_OBJECTS,
        .rounds = DEFAULT_ROUNDS,
        .parent = "/tmp",
        .measure = MEASURE_ALL,
        .queries = (1u << SUBSCRIPTION_COUNT) - 1,
    };
    int option;
    unsigned long value;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'n':
            if (!parse_unsigned(optarg, QUERY_DOCUMENT_MAX_COUNT - 1, &value))
                goto invalid;
            o->objects = (uint32_t)value;
            break;
        case 'r':
            if (!parse_unsigned(optarg, MAX_ROUNDS, &value))
                goto invalid;
            o->rounds = (unsigned)value;
            break;
        case 'd':
            o->parent = optarg;
            break;
        case 'k':
            o->keep = true;
            break;
        case 'm':
            if (!parse_list(optarg, measure_names, 4, &o->measure))
                goto invalid;
            break;
        case 'q':
            if (!parse_list(optarg, NULL, SUBSCRIPTION_COUNT, &o->queries))
                goto invalid;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            goto invalid;
        }
    }
    if (optind != argc)
        goto invalid;
    return 0;
invalid:
    usage(stderr);
    return -1;
}

int main(int argc, char **argv)
{
    bench b = {0};
    if (parse_options(argc, argv, &b.options) != 0)
        return 2;
    printf("query_bench: %" PRIu32 " objects, median of %u rounds after one warm-up run, "
           "SQLite %s, jansson %s\n",
           b.options.objects, b.options.rounds, sqlite3_libversion(), JANSSON_VERSION);
    int status = 1;
    bool all_agree = true;
    if (make_work_directory(&b) == 0) {
        printf("data:      %s on %s\n", b.work, file_system_name(b.work));
        fflush(stdout);
        if (open_engines(&b) == 0 && load(&b) == 0 &&
            run_subscriptions(&b, &all_agree) == 0 &&
            (!(b.options.measure & MEASURE_BREAKDOWN) || run_breakdown(&b) == 0))
            status = all_agree ? 0 : 1;
    }
    if (!all_agree)
        fprintf(stderr, "query_bench: the engines disagree on a match count (see MISMATCH)\n");
    release(&b);
    return status;
}
