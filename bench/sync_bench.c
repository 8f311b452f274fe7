/*
 * sync_bench — load generator and stopwatch for realmfs-server, over real
 * WebSocket connections on loopback (bench/run-sync drives it; results and
 * method in BENCHMARKS.md, "Sync server").
 *
 *   sync_bench bootstrap --url URL --app APP [--collection Item]
 *   sync_bench upload    --url URL --app APP --changesets N [--batch 100]
 *   sync_bench fanout    --url URL --app APP --clients N [--rounds 20]
 *   sync_bench idle      --url URL --app APP --clients N --server-pid PID
 *   sync_bench generate  --count N          (N Item documents as JSON lines)
 *   sync_bench scan      --data DIR [--collection Item]      (reference)
 *   sync_bench integrate --data DIR --changesets N           (reference)
 *
 * Clients log in anonymously (the benchmark app enables anon-user) and
 * parse every frame they receive with protocol_parse, as a real client
 * must.  The two reference modes do the same work on the server's store
 * directly, without the network and the protocol, so run-sync can print
 * how much of the time the server adds.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "realmfs/changeset.h"
#include "realmfs/protocol.h"
#include "realmfs/protocol_download_reader.h"
#include "realmfs/sync_store.h"
#include "realmfs/sync_transport.h"
#include "realmfs/value.h"

typedef struct bench_options {
    const char *mode;
    const char *url;
    const char *app;
    const char *collection;
    const char *data;
    long changesets;
    long batch;
    long clients;
    long rounds;
    long server_pid;
    long count;
} bench_options;

typedef struct bench_client bench_client;

/* What one mode does with a connection's messages. */
typedef void (*message_handler)(bench_client *client, const protocol_message *message);

struct bench_client {
    sync_transport_connection *connection;
    message_handler on_message;
    bool connected;
    bool closed;
    bool bound;             /* ident received */
    bool bootstrapped;      /* last_in_batch of query version 1 */
    uint64_t acknowledged;  /* last_integrated_client_version */
    uint64_t objects;       /* create instructions received */
    uint64_t server_version;
    double received_at;     /* fan-out: when the round's change arrived */
};

static sync_transport *transport;
static int failures;

static double now_seconds(void)
{
    struct timespec time;
    clock_gettime(CLOCK_MONOTONIC, &time);
    return (double)time.tv_sec + (double)time.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec time;
    clock_gettime(CLOCK_REALTIME, &time);
    return (int64_t)time.tv_sec * 1000 + time.tv_nsec / 1000000;
}

static void die(const char *format, const char *detail)
{
    fprintf(stderr, "sync_bench: ");
    fprintf(stderr, format, detail);
    fputc('\n', stderr);
    exit(1);
}

static void send_message(bench_client *client, const protocol_message *message)
{
    protocol_error error;
    size_t length;
    char *text = protocol_serialize(message, &length, &error);
    if (!text)
        die("cannot write a message: %s", error.message);
    if (sync_transport_send(client->connection, text, length) != 0)
        die("cannot queue a frame%s", "");
    free(text);
}

static void count_objects(bench_client *client, const protocol_download_body *download)
{
    for (size_t i = 0; i < download->changeset_count; i++) {
        const changeset *changes = &download->changesets[i].changeset;
        for (size_t j = 0; j < changes->count; j++)
            client->objects += changes->instructions[j].operation == CHANGESET_CREATE;
    }
}

static void on_received(sync_transport_connection *connection, const char *text, size_t length,
                        void *context)
{
    (void)connection;
    bench_client *client = context;
    protocol_message message;
    protocol_error error;
    /* The mount's own reader: a bootstrap measures what a client pays. */
    if (protocol_read_received(text, length, &message, &error) != 0)
        die("the server sent a frame that does not parse: %s", error.message);
    switch (message.type) {
    case PROTOCOL_MESSAGE_IDENT:
        client->bound = true;
        break;
    case PROTOCOL_MESSAGE_DOWNLOAD:
        client->acknowledged = message.body.download.last_integrated_client_version;
        client->server_version = message.body.download.server_version;
        count_objects(client, &message.body.download);
        if (message.body.download.query_version == 1 && message.body.download.last_in_batch)
            client->bootstrapped = true;
        break;
    case PROTOCOL_MESSAGE_ERROR:
    case PROTOCOL_MESSAGE_QUERY_ERROR:
        fprintf(stderr, "sync_bench: server error: %.*s\n", (int)length, text);
        failures++;
        break;
    default:
        break;
    }
    if (client->on_message)
        client->on_message(client, &message);
    protocol_message_clear(&message);
}

static void on_connected(sync_transport_connection *connection, void *context)
{
    (void)connection;
    ((bench_client *)context)->connected = true;
}

static void on_closed(sync_transport_connection *connection, int close_code, int http_status,
                      const char *reason, void *context)
{
    (void)connection;
    bench_client *client = context;
    client->closed = true;
    client->connection = NULL;
    fprintf(stderr, "sync_bench: connection closed (code %d, HTTP %d): %s\n", close_code,
            http_status, reason);
    failures++;
}

static const sync_transport_handlers client_handlers = {
    .connected = on_connected, .received = on_received, .closed = on_closed};

/* Open a connection, bind session 1 as a new file, and (when query is not
 * NULL) subscribe to it on collection. */
static void client_start(bench_client *client, const bench_options *options, const char *query)
{
    char message[256];
    if (sync_transport_connect(transport, options->url, options->app, "Anonymous",
                               &client_handlers, client, &client->connection, message,
                               sizeof message) != 0)
        die("%s", message);
    protocol_message bind;
    protocol_message_init(&bind, PROTOCOL_MESSAGE_BIND, 1);
    send_message(client, &bind);
    if (query) {
        protocol_message subscribe;
        protocol_message_init(&subscribe, PROTOCOL_MESSAGE_QUERY, 1);
        subscribe.body.query.query_version = 1;
        if (protocol_query_add(&subscribe.body.query, options->collection, "bench", query) != 0)
            die("out of memory%s", "");
        send_message(client, &subscribe);
        protocol_message_clear(&subscribe);
    }
}

/* Run the event loop until every client satisfies done, or timeout. */
static void wait_for(bench_client *clients, long count, bool (*done)(const bench_client *),
                     double timeout_seconds, const char *what)
{
    double deadline = now_seconds() + timeout_seconds;
    for (;;) {
        long waiting = 0;
        for (long i = 0; i < count; i++)
            waiting += !done(&clients[i]);
        if (!waiting)
            return;
        if (failures)
            die("giving up while waiting for %s", what);
        if (now_seconds() > deadline)
            die("timed out waiting for %s", what);
        if (sync_transport_service(transport, 10) != 0)
            die("the event loop failed while waiting for %s", what);
    }
}

static bool is_bound(const bench_client *client) { return client->bound; }
static bool is_bootstrapped(const bench_client *client) { return client->bootstrapped; }

static int run_bootstrap(const bench_options *options)
{
    bench_client client = {0};
    double start = now_seconds();
    client_start(&client, options, "TRUEPREDICATE");
    wait_for(&client, 1, is_bootstrapped, 3600, "the bootstrap");
    double seconds = now_seconds() - start;
    printf("bootstrap objects=%" PRIu64 " seconds=%.3f objects_per_second=%.0f\n", client.objects,
           seconds, (double)client.objects / seconds);
    return 0;
}

/* A changeset of file origin, version client_version, that creates (or
 * overwrites) Item number item_number with three fields: an item as a
 * device makes it. */
static void make_item_changeset(changeset *out, uint64_t origin, uint64_t client_version,
                                uint64_t item_number, const char *owner, const char *summary,
                                const char *collection)
{
    /* A device's changesets have increasing timestamps, as a mount's
     * outbox gives them: a change in the same millisecond as the one
     * before it would otherwise tie with it and change nothing. */
    static int64_t last_timestamp;
    int64_t now = wall_ms();
    memset(out, 0, sizeof *out);
    out->origin = origin;
    out->client_version = client_version;
    out->timestamp = last_timestamp = now > last_timestamp ? now : last_timestamp + 1;
    uint8_t bytes[VALUE_OBJECT_ID_SIZE] = {0};
    for (int i = 0; i < 8; i++)
        bytes[VALUE_OBJECT_ID_SIZE - 1 - i] = (uint8_t)(item_number >> (8 * i));
    bytes[0] = (uint8_t)origin;
    json_t *id = value_new_object_id(bytes);
    json_t *document = json_pack("{s:s, s:s, s:b}", "owner_id", owner, "summary", summary,
                                 "isComplete", 0);
    char message[256];
    if (!id || !document ||
        changeset_diff(collection, id, NULL, document, out, message, sizeof message) != 0)
        die("cannot make a changeset: %s", message);
    json_decref(document);
    json_decref(id);
}

static bool upload_done_target;
static uint64_t upload_target;
static bool is_acknowledged(const bench_client *client)
{
    return upload_done_target && client->acknowledged >= upload_target;
}

static uint64_t file_identity_of_new_file;
static void remember_identity(bench_client *client, const protocol_message *message)
{
    (void)client;
    if (message->type == PROTOCOL_MESSAGE_IDENT)
        file_identity_of_new_file = message->body.ident.file_identity;
}

static int run_upload(const bench_options *options)
{
    bench_client client = {.on_message = remember_identity};
    /* A client writes only what its view holds. */
    client_start(&client, options, "owner_id == \"bench\"");
    wait_for(&client, 1, is_bound, 60, "ident");
    double start = now_seconds();
    for (long sent = 0; sent < options->changesets;) {
        protocol_message upload;
        protocol_message_init(&upload, PROTOCOL_MESSAGE_UPLOAD, 1);
        for (long i = 0; i < options->batch && sent < options->changesets; i++, sent++) {
            changeset changes;
            make_item_changeset(&changes, file_identity_of_new_file, (uint64_t)sent + 1,
                                (uint64_t)sent, "bench", "an item made by the upload benchmark",
                                options->collection);
            if (protocol_upload_add(&upload.body.upload, &changes) != 0)
                die("out of memory%s", "");
        }
        send_message(&client, &upload);
        protocol_message_clear(&upload);
    }
    upload_target = (uint64_t)options->changesets;
    upload_done_target = true;
    wait_for(&client, 1, is_acknowledged, 3600, "the acknowledgement");
    double seconds = now_seconds() - start;
    double fields = 3.0 * (double)options->changesets;
    printf("upload changesets=%ld field_changes=%.0f seconds=%.3f field_changes_per_second=%.0f\n",
           options->changesets, fields, seconds, fields / seconds);
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void note_arrival(bench_client *client, const protocol_message *message)
{
    if (message->type == PROTOCOL_MESSAGE_DOWNLOAD && message->body.download.changeset_count > 0 &&
        client->received_at == 0)
        client->received_at = now_seconds();
}
static bool has_arrived(const bench_client *client) { return client->received_at != 0; }

static int run_fanout(const bench_options *options)
{
    long count = options->clients;
    bench_client *clients = calloc((size_t)count + 1, sizeof *clients);
    if (!clients)
        die("out of memory%s", "");
    bench_client *writer = &clients[count];
    writer->on_message = remember_identity;
    client_start(writer, options, "owner_id == \"fanout\"");
    wait_for(writer, 1, is_bound, 60, "the writer's ident");
    uint64_t writer_identity = file_identity_of_new_file;
    for (long i = 0; i < count; i++) {
        client_start(&clients[i], options, "owner_id == \"fanout\"");
        if (i % 100 == 99)
            wait_for(clients, i + 1, is_bootstrapped, 600, "subscribers to bootstrap");
    }
    wait_for(clients, count, is_bootstrapped, 600, "subscribers to bootstrap");
    size_t samples = 0;
    double *latencies = calloc((size_t)(count * options->rounds), sizeof *latencies);
    if (!latencies)
        die("out of memory%s", "");
    for (long round = 0; round < options->rounds; round++) {
        for (long i = 0; i < count; i++) {
            clients[i].received_at = 0;
            clients[i].on_message = note_arrival;
        }
        char summary[64];
        snprintf(summary, sizeof summary, "round %ld", round);
        changeset changes;
        make_item_changeset(&changes, writer_identity, (uint64_t)round + 1, 1, "fanout", summary,
                            options->collection);
        protocol_message upload;
        protocol_message_init(&upload, PROTOCOL_MESSAGE_UPLOAD, 1);
        if (protocol_upload_add(&upload.body.upload, &changes) != 0)
            die("out of memory%s", "");
        double sent_at = now_seconds();
        send_message(writer, &upload);
        protocol_message_clear(&upload);
        wait_for(clients, count, has_arrived, 60, "the change to reach every subscriber");
        for (long i = 0; i < count; i++)
            latencies[samples++] = (clients[i].received_at - sent_at) * 1000.0;
    }
    qsort(latencies, samples, sizeof *latencies, compare_doubles);
    printf("fanout clients=%ld rounds=%ld samples=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
           count, options->rounds, samples, latencies[samples / 2],
           latencies[(size_t)((double)samples * 0.99)], latencies[samples - 1]);
    free(latencies);
    free(clients);
    return 0;
}

static long resident_kib(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *file = fopen(path, "r");
    if (!file)
        die("cannot read %s", path);
    long kib = -1;
    while (fgets(line, sizeof line, file))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(file);
    return kib;
}

static int run_idle(const bench_options *options)
{
    long count = options->clients;
    bench_client *clients = calloc((size_t)count, sizeof *clients);
    if (!clients)
        die("out of memory%s", "");
    long before = resident_kib(options->server_pid);
    for (long i = 0; i < count; i++) {
        client_start(&clients[i], options, NULL);
        if (i % 200 == 199)
            wait_for(clients, i + 1, is_bound, 600, "connections to bind");
    }
    wait_for(clients, count, is_bound, 600, "connections to bind");
    double settle = now_seconds() + 2;
    while (now_seconds() < settle)
        sync_transport_service(transport, 50);
    long after = resident_kib(options->server_pid);
    printf("idle connections=%ld server_rss_before_kib=%ld server_rss_kib=%ld "
           "kib_per_connection=%.1f\n",
           count, before, after, (double)(after - before) / (double)count);
    free(clients);
    return 0;
}

static int count_scanned(const sync_store_document_view *document, void *context)
{
    json_t *parsed = json_loadb(document->text, document->size, 0, NULL);
    if (!parsed)
        return -EIO;
    json_decref(parsed);
    (*(uint64_t *)context)++;
    return 0;
}

/* The store side of a bootstrap alone: read and parse every document. */
static int run_scan(const bench_options *options)
{
    sync_store *store;
    if (sync_store_open(options->data, 0, &store) != 0)
        die("cannot open the store: %s", sync_store_last_error());
    sync_store_snapshot *snapshot;
    if (sync_store_snapshot_begin(store, &snapshot) != 0)
        die("cannot read the store: %s", sync_store_last_error());
    uint64_t objects = 0;
    double start = now_seconds();
    if (sync_store_snapshot_scan(snapshot, options->collection, NULL, count_scanned, &objects) !=
        0)
        die("cannot scan the store: %s", sync_store_last_error());
    double seconds = now_seconds() - start;
    sync_store_snapshot_end(snapshot);
    sync_store_close(store);
    printf("scan objects=%" PRIu64 " seconds=%.3f objects_per_second=%.0f\n", objects, seconds,
           (double)objects / seconds);
    return 0;
}

/* The store side of an upload alone: integrate the same changesets, in
 * the same batches, into a fresh store. */
static int run_integrate(const bench_options *options)
{
    sync_store *store;
    if (sync_store_open(options->data, 0, &store) != 0)
        die("cannot open the store: %s", sync_store_last_error());
    uint64_t identity;
    if (sync_store_create_file(store, "bench", wall_ms(), &identity) != 0)
        die("cannot make a file: %s", sync_store_last_error());
    changeset *batch = calloc((size_t)options->batch, sizeof *batch);
    sync_store_integration *results = calloc((size_t)options->batch, sizeof *results);
    if (!batch || !results)
        die("out of memory%s", "");
    double start = now_seconds();
    for (long done = 0; done < options->changesets;) {
        long size = 0;
        for (; size < options->batch && done + size < options->changesets; size++)
            make_item_changeset(&batch[size], identity, (uint64_t)(done + size) + 1,
                                (uint64_t)(done + size), "bench",
                                "an item made by the upload benchmark", options->collection);
        if (sync_store_integrate(store, batch, (size_t)size, wall_ms(), results) != 0)
            die("cannot integrate: %s", sync_store_last_error());
        for (long i = 0; i < size; i++) {
            changeset_clear(&batch[i]);
            sync_store_integration_clear(&results[i]);
        }
        done += size;
    }
    double seconds = now_seconds() - start;
    double fields = 3.0 * (double)options->changesets;
    printf("integrate changesets=%ld field_changes=%.0f seconds=%.3f "
           "field_changes_per_second=%.0f\n",
           options->changesets, fields, seconds, fields / seconds);
    free(batch);
    free(results);
    sync_store_close(store);
    return 0;
}

/* Documents for the import that fills the server: mongoexport's format. */
static int run_generate(const bench_options *options)
{
    for (long i = 0; i < options->count; i++)
        printf("{\"_id\":{\"$oid\":\"%024lx\"},\"owner_id\":\"user-%ld\","
               "\"summary\":\"item %ld of the bootstrap benchmark\",\"isComplete\":%s}\n",
               i + 1, i % 1000, i, i % 3 ? "false" : "true");
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sync_bench bootstrap|upload|fanout|idle --url URL --app APP [options]\n"
            "       sync_bench scan|integrate --data DIR [options]\n"
            "       sync_bench generate --count N\n"
            "options: --collection NAME (Item) --changesets N (10000) --batch N (100)\n"
            "         --clients N (1000) --rounds N (20) --server-pid PID\n");
    exit(2);
}

static void parse_options(int argc, char **argv, bench_options *options)
{
    static const struct option long_options[] = {
        {"url", required_argument, NULL, 'u'},        {"app", required_argument, NULL, 'a'},
        {"collection", required_argument, NULL, 'c'}, {"data", required_argument, NULL, 'd'},
        {"changesets", required_argument, NULL, 'n'}, {"batch", required_argument, NULL, 'b'},
        {"clients", required_argument, NULL, 'k'},    {"rounds", required_argument, NULL, 'r'},
        {"server-pid", required_argument, NULL, 'p'}, {"count", required_argument, NULL, 'N'},
        {NULL, 0, NULL, 0},
    };
    *options = (bench_options){.collection = "Item", .changesets = 10000, .batch = 100,
                               .clients = 1000, .rounds = 20};
    if (argc < 2)
        usage();
    options->mode = argv[1];
    optind = 2;
    for (int option; (option = getopt_long(argc, argv, "", long_options, NULL)) != -1;) {
        switch (option) {
        case 'u': options->url = optarg; break;
        case 'a': options->app = optarg; break;
        case 'c': options->collection = optarg; break;
        case 'd': options->data = optarg; break;
        case 'n': options->changesets = atol(optarg); break;
        case 'b': options->batch = atol(optarg); break;
        case 'k': options->clients = atol(optarg); break;
        case 'r': options->rounds = atol(optarg); break;
        case 'p': options->server_pid = atol(optarg); break;
        case 'N': options->count = atol(optarg); break;
        default: usage();
        }
    }
    if (options->changesets < 1 || options->batch < 1 || options->clients < 1 ||
        options->rounds < 1)
        usage();
}

int main(int argc, char **argv)
{
    bench_options options;
    parse_options(argc, argv, &options);
    if (strcmp(options.mode, "generate") == 0)
        return run_generate(&options);
    if (strcmp(options.mode, "scan") == 0 || strcmp(options.mode, "integrate") == 0) {
        if (!options.data)
            usage();
        return strcmp(options.mode, "scan") == 0 ? run_scan(&options) : run_integrate(&options);
    }
    if (!options.url || !options.app)
        usage();
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    lws_set_log_level(LLL_ERR, NULL);
    char message[256];
    if (sync_transport_new(NULL, &transport, message, sizeof message) != 0)
        die("%s", message);
    int status = strcmp(options.mode, "bootstrap") == 0 ? run_bootstrap(&options)
                 : strcmp(options.mode, "upload") == 0  ? run_upload(&options)
                 : strcmp(options.mode, "fanout") == 0  ? run_fanout(&options)
                 : strcmp(options.mode, "idle") == 0 && options.server_pid > 0
                     ? run_idle(&options)
                     : (usage(), 2);
    sync_transport_free(transport);
    return status;
}
