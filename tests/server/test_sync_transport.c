/*
 * Client connections (sync_transport.h) against a real realmfs-server on
 * a free loopback port: the binary named by $REALMFS_SERVER, serving the
 * read-and-write-own-data app of $REALMFS_EXPORTS, which allows anonymous
 * logins.
 */
#include <check.h>
#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "realmfs/protocol.h"
#include "realmfs/sync_transport.h"

static pid_t server_pid;
static char server_url[128];
static char app_id[128];
static char data_directory[] = "/tmp/realmfs-transport-test.XXXXXX";

/* Start the server and read its port and app id from its "listening on"
 * log line. */
static void start_server(void)
{
    ck_assert_ptr_nonnull(mkdtemp(data_directory));
    const char *binary = getenv("REALMFS_SERVER");
    const char *exports = getenv("REALMFS_EXPORTS");
    ck_assert_msg(binary && exports, "REALMFS_SERVER and REALMFS_EXPORTS must be set");
    char app[4096];
    snprintf(app, sizeof app, "%s/read-and-write-own-data", exports);
    int log_pipe[2];
    ck_assert_int_eq(pipe(log_pipe), 0);
    server_pid = fork();
    ck_assert_int_ge(server_pid, 0);
    if (server_pid == 0) {
        dup2(log_pipe[1], STDERR_FILENO);
        close(log_pipe[0]);
        execl(binary, binary, "serve", "--app", app, "--data", data_directory, "--listen",
              "127.0.0.1:0", (char *)NULL);
        _exit(127);
    }
    close(log_pipe[1]);
    FILE *log = fdopen(log_pipe[0], "r");
    char line[1024];
    int port = 0;
    while (!port && fgets(line, sizeof line, log)) {
        const char *listening = strstr(line, "listening on ws://127.0.0.1:");
        if (listening &&
            sscanf(listening, "listening on ws://127.0.0.1:%d/api/client/v2.0/app/%127[^/]",
                   &port, app_id) == 2)
            break;
        port = 0;
    }
    ck_assert_msg(port > 0, "the server did not say where it listens");
    snprintf(server_url, sizeof server_url, "ws://127.0.0.1:%d", port);
    /* Keep reading its log so that it never blocks on a full pipe. */
    if (fork() == 0) {
        while (fgets(line, sizeof line, log))
            continue;
        _exit(0);
    }
    fclose(log);
}

static void stop_server(void)
{
    kill(server_pid, SIGTERM);
    int status;
    waitpid(server_pid, &status, 0);
    char command[256];
    snprintf(command, sizeof command, "rm -rf %s", data_directory);
    ck_assert_int_eq(system(command), 0);
}

typedef struct observed {
    bool connected;
    bool closed;
    int close_code;
    int http_status;
    char reason[256];
    char last_frame[512];
    size_t frames;
    bool woken;
} observed;

static void on_connected(sync_transport_connection *connection, void *context)
{
    (void)connection;
    ((observed *)context)->connected = true;
}

static void on_received(sync_transport_connection *connection, const char *text, size_t length,
                        void *context)
{
    (void)connection;
    observed *seen = context;
    ck_assert_uint_eq(strlen(text), length);
    snprintf(seen->last_frame, sizeof seen->last_frame, "%s", text);
    seen->frames++;
}

static void on_closed(sync_transport_connection *connection, int close_code, int http_status,
                      const char *reason, void *context)
{
    (void)connection;
    observed *seen = context;
    seen->closed = true;
    seen->close_code = close_code;
    seen->http_status = http_status;
    snprintf(seen->reason, sizeof seen->reason, "%s", reason);
}

static const sync_transport_handlers handlers = {on_connected, on_received, on_closed};

static void on_woken(void *context)
{
    ((observed *)context)->woken = true;
}

/* Serve until *flag is true; fails after five seconds. */
static void serve_until(sync_transport *transport, const bool *flag)
{
    time_t deadline = time(NULL) + 5;
    while (!*flag) {
        ck_assert_msg(time(NULL) < deadline, "timed out");
        ck_assert_int_eq(sync_transport_service(transport, 20), 0);
    }
}

static sync_transport *new_transport(observed *seen)
{
    sync_transport_options options = {.woken = on_woken, .woken_context = seen};
    sync_transport *transport;
    char message[256];
    ck_assert_msg(sync_transport_new(&options, &transport, message, sizeof message) == 0, "%s",
                  message);
    return transport;
}

static sync_transport_connection *connect_as(sync_transport *transport, const char *app,
                                             const char *authorization, observed *seen)
{
    sync_transport_connection *connection;
    char message[256];
    ck_assert_msg(sync_transport_connect(transport, server_url, app, authorization, &handlers,
                                         seen, &connection, message, sizeof message) == 0,
                  "%s", message);
    return connection;
}

START_TEST(test_frames_go_both_ways)
{
    observed seen = {0};
    sync_transport *transport = new_transport(&seen);
    sync_transport_connection *connection = connect_as(transport, app_id, "Anonymous", &seen);
    static const char ping[] = "{\"type\":\"ping\",\"timestamp\":1714560000000}";
    ck_assert_int_eq(sync_transport_send(connection, ping, sizeof ping - 1), 0);
    ck_assert_uint_eq(sync_transport_queued_bytes(connection), sizeof ping - 1);
    serve_until(transport, &seen.connected);
    /* The login message with the session token comes first. */
    while (seen.frames < 2)
        ck_assert_int_eq(sync_transport_service(transport, 20), 0);
    ck_assert_str_eq(seen.last_frame, "{\"type\":\"pong\",\"timestamp\":1714560000000}");
    ck_assert_uint_eq(sync_transport_queued_bytes(connection), 0);
    sync_transport_close(connection);
    ck_assert_int_eq(sync_transport_send(connection, ping, sizeof ping - 1), -ENOTCONN);
    serve_until(transport, &seen.closed);
    ck_assert_int_eq(seen.http_status, 0);
    sync_transport_free(transport);
}
END_TEST

START_TEST(test_refused_upgrades_report_the_http_status)
{
    observed unknown_app = {0}, bad_password = {0};
    sync_transport *transport = new_transport(&unknown_app);
    connect_as(transport, "no-such-app", "Anonymous", &unknown_app);
    connect_as(transport, app_id, "Basic bm9ib2R5QGV4YW1wbGUuY29tOndyb25n", &bad_password);
    serve_until(transport, &unknown_app.closed);
    serve_until(transport, &bad_password.closed);
    ck_assert(!unknown_app.connected && !bad_password.connected);
    ck_assert_int_eq(unknown_app.http_status, 404);
    ck_assert_int_eq(bad_password.http_status, 401);
    sync_transport_free(transport);
}
END_TEST

/* A 2 MiB frame goes out whole (the server parses it, and refuses its
 * unknown member), and the server's close code comes back. */
START_TEST(test_large_frames_and_close_codes)
{
    observed seen = {0};
    sync_transport *transport = new_transport(&seen);
    sync_transport_connection *connection = connect_as(transport, app_id, "Anonymous", &seen);
    size_t size = 2 * 1024 * 1024;
    char *frame = malloc(size + 64);
    ck_assert_ptr_nonnull(frame);
    int length = snprintf(frame, 64, "{\"type\":\"ping\",\"timestamp\":1,\"padding\":\"");
    memset(frame + length, 'x', size);
    memcpy(frame + length + size, "\"}", 2);
    ck_assert_int_eq(sync_transport_send(connection, frame, (size_t)length + size + 2), 0);
    free(frame);
    serve_until(transport, &seen.closed);
    ck_assert(seen.connected);
    ck_assert_int_eq(seen.close_code, 1002);
    ck_assert_ptr_nonnull(strstr(seen.last_frame, "\"code\":100"));
    sync_transport_free(transport);
}
END_TEST

static void *wake_later(void *transport)
{
    usleep(50 * 1000);
    sync_transport_wake(transport);
    return NULL;
}

START_TEST(test_wake_from_another_thread)
{
    observed seen = {0};
    sync_transport *transport = new_transport(&seen);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, wake_later, transport), 0);
    serve_until(transport, &seen.woken);
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
    sync_transport_free(transport);
}
END_TEST

START_TEST(test_bad_urls_are_refused)
{
    observed seen = {0};
    sync_transport *transport = new_transport(&seen);
    static const char *const urls[] = {"http://127.0.0.1:1", "127.0.0.1", "ws://"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        sync_transport_connection *connection;
        char message[256];
        ck_assert_int_eq(sync_transport_connect(transport, urls[i], app_id, NULL, &handlers, &seen,
                                                &connection, message, sizeof message),
                         -EINVAL);
        ck_assert_ptr_nonnull(strstr(message, "url"));
    }
    sync_transport_free(transport);
}
END_TEST

Suite *unit_suite(void)
{
    lws_set_log_level(0, NULL);
    Suite *suite = suite_create("sync_transport");
    TCase *against_server = tcase_create("against a server");
    tcase_add_unchecked_fixture(against_server, start_server, stop_server);
    tcase_set_timeout(against_server, 60);
    tcase_add_test(against_server, test_frames_go_both_ways);
    tcase_add_test(against_server, test_refused_upgrades_report_the_http_status);
    tcase_add_test(against_server, test_large_frames_and_close_codes);
    tcase_add_test(against_server, test_wake_from_another_thread);
    tcase_add_test(against_server, test_bad_urls_are_refused);
    suite_add_tcase(suite, against_server);
    return suite;
}
