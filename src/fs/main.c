/*
 * main.c — the `realmfs` command: mount, unmount, status, wait, query.
 *
 * Subcommands other than mount talk to a running mount only through its
 * files (.realmfs/status gives the daemon's pid and data directory), so
 * they work for any user who can read the mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mount.h"
#include "query_command.h"
#include "sync_client.h"

static const char usage_text[] =
    "usage: realmfs <command> [options]\n"
    "\n"
    "  mount [--data DIR] [-f] [-d] [-o OPTION]... MOUNTPOINT\n"
    "        serve the realm stored in DIR (default: $XDG_DATA_HOME/realmfs/<mountpoint>)\n"
    "        at MOUNTPOINT; -f stays in the foreground, -d traces FUSE requests,\n"
    "        -o passes a FUSE mount option (allow_other, ...)\n"
    "  mount --server URL --app APP_ID LOGIN [--ca-file F] [options above] MOUNTPOINT\n"
    "        a synced mount (docs/sync.md): URL is ws://HOST:PORT or wss://HOST:PORT;\n"
    "        LOGIN is --user EMAIL --password-file F, --api-key KEY, --api-key-file F,\n"
    "        $REALMFS_API_KEY, or --anonymous\n"
    "  unmount [--timeout SECONDS] MOUNTPOINT\n"
    "        unmount and wait for the daemon to finish\n"
    "  status [--json] MOUNTPOINT\n"
    "        show what the mount holds and how its sync is doing\n"
    "  wait [--timeout SECONDS] MOUNTPOINT\n"
    "        wait until the server has every local change and every subscription\n"
    "        is complete (default timeout 60 s)\n"
    "  query [-0] MOUNTPOINT COLLECTION PREDICATE\n"
    "        print the paths of the objects matching a Realm Query Language predicate\n"
    "\n"
    "  --help, --version\n";

static int usage_error(const char *message)
{
    fprintf(stderr, "realmfs: %s\n\n%s", message, usage_text);
    return 2;
}

/* The first line of a file holding a secret (malloc'd, without its line
 * end), or NULL with a message printed. */
static char *read_secret_file(const char *path, const char *what)
{
    FILE *file = fopen(path, "r");
    if (!file) {
        fprintf(stderr, "realmfs: cannot read the %s file %s: %s\n", what, path, strerror(errno));
        return NULL;
    }
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length = getline(&line, &capacity, file);
    fclose(file);
    while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
        line[--length] = '\0';
    if (length <= 0) {
        if (line)
            explicit_bzero(line, capacity);
        free(line);
        fprintf(stderr, "realmfs: the %s file %s is empty\n", what, path);
        return NULL;
    }
    return line;
}

static void free_secret(char *secret)
{
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

/* How a synced mount logs in, as given on the command line. */
typedef struct login_options {
    const char *email;
    const char *password_file;
    const char *api_key;
    const char *api_key_file;
    bool anonymous;
} login_options;

/*
 * The Authorization header value (malloc'd, a secret: free_secret) and the
 * user shown in status (written to user), or NULL with a message printed.
 * Exactly one way to log in must be given; $REALMFS_API_KEY counts only
 * when none is.
 */
static char *login_authorization(const login_options *login, char *user, size_t user_size)
{
    int given = (login->email != NULL) + (login->api_key != NULL) +
                (login->api_key_file != NULL) + login->anonymous;
    if (given > 1) {
        usage_error("give one of --user, --api-key, --api-key-file and --anonymous");
        return NULL;
    }
    if (login->password_file && !login->email) {
        usage_error("--password-file goes with --user");
        return NULL;
    }
    const char *environment_key = getenv("REALMFS_API_KEY");
    if (given == 0 && !(environment_key && *environment_key)) {
        usage_error("a synced mount needs a login: --user EMAIL --password-file F, --api-key, "
                    "--api-key-file, $REALMFS_API_KEY or --anonymous");
        return NULL;
    }
    char *header = NULL;
    if (login->anonymous) {
        snprintf(user, user_size, "anonymous");
        header = strdup("Anonymous");
    } else if (login->email) {
        if (!login->password_file) {
            usage_error("--user needs --password-file (a password is never given on the "
                        "command line)");
            return NULL;
        }
        char *password = read_secret_file(login->password_file, "password");
        if (!password)
            return NULL;
        int error = sync_client_basic_authorization(login->email, password, &header);
        free_secret(password);
        if (error) {
            fprintf(stderr, "realmfs: cannot log in as %s: %s\n", login->email,
                    error == -EINVAL ? "an email holding ':' cannot log in" : strerror(-error));
            return NULL;
        }
        snprintf(user, user_size, "%s", login->email);
    } else {
        char *key = login->api_key_file ? read_secret_file(login->api_key_file, "API key")
                                        : strdup(login->api_key ? login->api_key
                                                                : environment_key);
        if (!key)
            return NULL;
        /* the key's first part is its id, which may be shown */
        snprintf(user, user_size, "API key %.*s", (int)strcspn(key, "."), key);
        if (asprintf(&header, "Bearer %s", key) < 0)
            header = NULL;
        free_secret(key);
    }
    if (!header)
        fprintf(stderr, "realmfs: out of memory\n");
    return header;
}

enum {
    MOUNT_OPTION_SERVER = 256,
    MOUNT_OPTION_APP,
    MOUNT_OPTION_USER,
    MOUNT_OPTION_PASSWORD_FILE,
    MOUNT_OPTION_API_KEY,
    MOUNT_OPTION_API_KEY_FILE,
    MOUNT_OPTION_ANONYMOUS,
    MOUNT_OPTION_CA_FILE,
};

static int command_mount(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"data", required_argument, NULL, 'D'},
        {"map-size", required_argument, NULL, 'M'},
        {"foreground", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {"server", required_argument, NULL, MOUNT_OPTION_SERVER},
        {"app", required_argument, NULL, MOUNT_OPTION_APP},
        {"user", required_argument, NULL, MOUNT_OPTION_USER},
        {"password-file", required_argument, NULL, MOUNT_OPTION_PASSWORD_FILE},
        {"api-key", required_argument, NULL, MOUNT_OPTION_API_KEY},
        {"api-key-file", required_argument, NULL, MOUNT_OPTION_API_KEY_FILE},
        {"anonymous", no_argument, NULL, MOUNT_OPTION_ANONYMOUS},
        {"ca-file", required_argument, NULL, MOUNT_OPTION_CA_FILE},
        {0},
    };
    mount_options options = {0};
    login_options login = {0};
    const char *fuse_options[64];
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "+fdo:h", long_options, NULL)) != -1) {
        switch (option) {
        case 'D':
            options.data_directory = optarg;
            break;
        case 'M':
            options.map_size = strtoull(optarg, NULL, 10);
            break;
        case 'f':
            options.foreground = true;
            break;
        case 'd':
            options.debug = true;
            break;
        case 'o':
            if (options.fuse_option_count == sizeof fuse_options / sizeof *fuse_options)
                return usage_error("too many -o options");
            fuse_options[options.fuse_option_count++] = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case MOUNT_OPTION_SERVER:
            options.server_url = optarg;
            break;
        case MOUNT_OPTION_APP:
            options.app_id = optarg;
            break;
        case MOUNT_OPTION_USER:
            login.email = optarg;
            break;
        case MOUNT_OPTION_PASSWORD_FILE:
            login.password_file = optarg;
            break;
        case MOUNT_OPTION_API_KEY:
            login.api_key = optarg;
            break;
        case MOUNT_OPTION_API_KEY_FILE:
            login.api_key_file = optarg;
            break;
        case MOUNT_OPTION_ANONYMOUS:
            login.anonymous = true;
            break;
        case MOUNT_OPTION_CA_FILE:
            options.ca_file = optarg;
            break;
        default:
            return usage_error("invalid mount option");
        }
    }
    if (optind != argc - 1)
        return usage_error("mount needs exactly one MOUNTPOINT");
    options.mountpoint = argv[optind];
    options.fuse_options = fuse_options;
    bool login_given = login.email || login.password_file || login.api_key ||
                       login.api_key_file || login.anonymous;
    if (!options.server_url) {
        if (options.app_id || options.ca_file || login_given)
            return usage_error("--app, --ca-file and the login options need --server");
        return mount_run(&options);
    }
    if (!options.app_id)
        return usage_error("--server needs --app APP_ID");
    char user[300];
    char *authorization = login_authorization(&login, user, sizeof user);
    if (!authorization)
        return 2;
    options.authorization = authorization;
    options.user = user;
    int status = mount_run(&options);
    free_secret(authorization);
    return status;
}

/* The mount's status document, or NULL with a message printed. */
static json_t *read_mount_status(const char *mountpoint)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.realmfs/status", mountpoint);
    json_error_t error;
    json_t *status = json_load_file(path, 0, &error);
    if (!status)
        fprintf(stderr, "realmfs: %s is not a realmfs mount (cannot read %s)\n", mountpoint, path);
    return status;
}

static int run_fusermount(const char *mountpoint)
{
    pid_t child = fork();
    if (child < 0)
        return -errno;
    if (child == 0) {
        execlp("fusermount3", "fusermount3", "-u", mountpoint, (char *)NULL);
        perror("realmfs: fusermount3");
        _exit(127);
    }
    int status;
    if (waitpid(child, &status, 0) < 0)
        return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Whether pid is a live process: an exited daemon whose parent has not
 * reaped it (a container's init may never do so) is a zombie, and done. */
static bool process_is_running(pid_t pid)
{
    if (kill(pid, 0) != 0)
        return false;
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *stat_file = fopen(path, "r");
    if (!stat_file)
        return errno != ENOENT;
    bool running = true;
    if (fgets(line, sizeof line, stat_file)) {
        /* the state follows the command name, which may itself hold ')' */
        const char *name_end = strrchr(line, ')');
        running = !(name_end && name_end[1] == ' ' && (name_end[2] == 'Z' || name_end[2] == 'X'));
    }
    fclose(stat_file);
    return running;
}

/* The arguments of unmount and wait: [--timeout SECONDS] MOUNTPOINT.  0, or
 * the exit status of a usage error (message printed). */
static int parse_timeout_arguments(int argc, char **argv, const char *command,
                                   double *timeout_seconds, const char **mountpoint)
{
    static const struct option long_options[] = {
        {"timeout", required_argument, NULL, 't'},
        {0},
    };
    char message[128];
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
        char *end = NULL;
        if (option == 't')
            *timeout_seconds = strtod(optarg, &end);
        if (option != 't' || end == optarg || *end || *timeout_seconds < 0) {
            snprintf(message, sizeof message, "invalid %s option (--timeout SECONDS)", command);
            return usage_error(message);
        }
    }
    if (optind != argc - 1) {
        snprintf(message, sizeof message, "%s needs exactly one MOUNTPOINT", command);
        return usage_error(message);
    }
    *mountpoint = argv[optind];
    return 0;
}

/* After a synced mount's daemon exited: say what its store still has to
 * upload (it had a bounded time to do so while unmounting). */
static void report_unsynced_changes(const char *data)
{
    store *closed_store;
    store_options settings = {.read_only = true, .synced = true};
    if (store_open(data, &settings, &closed_store) != 0)
        return;
    store_sync_progress progress;
    if (store_get_sync_progress(closed_store, &progress) == 0 && progress.outbox_changesets)
        fprintf(stderr, "realmfs: %llu local change%s could not reach the server; the next "
                "mount of %s uploads %s\n", (unsigned long long)progress.outbox_changesets,
                progress.outbox_changesets == 1 ? "" : "s", data,
                progress.outbox_changesets == 1 ? "it" : "them");
    store_close(closed_store);
}

static int command_unmount(int argc, char **argv)
{
    double timeout_seconds = 30;
    const char *mountpoint;
    int usage = parse_timeout_arguments(argc, argv, "unmount", &timeout_seconds, &mountpoint);
    if (usage)
        return usage;
    json_t *status = read_mount_status(mountpoint);
    if (!status)
        return 1;
    pid_t pid = (pid_t)json_integer_value(json_object_get(status, "pid"));
    const char *data_text = json_string_value(json_object_get(status, "data"));
    /* only a synced mount can have changes left to upload */
    char *data = json_object_get(status, "sync") && data_text ? strdup(data_text) : NULL;
    json_decref(status);
    if (run_fusermount(mountpoint) != 0) {
        fprintf(stderr, "realmfs: could not unmount %s\n", mountpoint);
        free(data);
        return 1;
    }
    /* The store is closed only when the daemon exits: wait for that, so a
     * remount right after this command finds the data directory free. */
    struct timespec pause = {.tv_nsec = 20 * 1000 * 1000};
    for (double waited = 0; pid > 0 && process_is_running(pid); waited += 0.02) {
        if (waited >= timeout_seconds) {
            fprintf(stderr, "realmfs: unmounted, but daemon %d is still running\n", (int)pid);
            free(data);
            return 1;
        }
        nanosleep(&pause, NULL);
    }
    if (data)
        report_unsynced_changes(data);
    free(data);
    return 0;
}

static void format_bytes(uint64_t bytes, char *out, size_t size)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = (double)bytes;
    size_t unit = 0;
    while (value >= 1024 && unit + 1 < sizeof units / sizeof *units) {
        value /= 1024;
        unit++;
    }
    snprintf(out, size, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
}

/* A member of a status object: "" or 0 when absent, so that a status from
 * an older daemon prints without crashing. */
static const char *text_member(const json_t *object, const char *key)
{
    const char *text = json_string_value(json_object_get(object, key));
    return text ? text : "";
}

static long long number_member(const json_t *object, const char *key)
{
    return (long long)json_integer_value(json_object_get(object, key));
}

#define PROGRESS_BAR_WIDTH 30

static void print_sync_status(const json_t *sync)
{
    const char *last_error = text_member(sync, "last_error");
    printf("sync:        %s, %s (app %s) as %s\n", text_member(sync, "state"),
           text_member(sync, "server"), text_member(sync, "app"), text_member(sync, "user"));
    if (*last_error)
        printf("             last error: %s\n", last_error);
    long long pending = number_member(sync, "pending_uploads");
    printf("             file %lld, server version %lld, %lld upload%s pending\n",
           number_member(sync, "file_identity"), number_member(sync, "last_server_version"),
           pending, pending == 1 ? "" : "s");
    long long read_only = number_member(sync, "read_only_objects");
    long long rejected = number_member(sync, "rejected_writes");
    printf("             %lld read-only object%s, %lld write%s refused by the server%s\n",
           read_only, read_only == 1 ? "" : "s", rejected, rejected == 1 ? "" : "s",
           rejected ? " (see .realmfs/errors in the mount)" : "");
    const char *set_state = text_member(sync, "query_state");
    printf("subscriptions: version %lld, %s", number_member(sync, "subscriptions_version"),
           set_state);
    if (strcmp(set_state, "bootstrapping") == 0) {
        double progress = json_number_value(json_object_get(sync, "bootstrap_progress"));
        int filled = (int)(progress * PROGRESS_BAR_WIDTH + 0.5);
        filled = filled < 0 ? 0 : filled > PROGRESS_BAR_WIDTH ? PROGRESS_BAR_WIDTH : filled;
        printf(" [%.*s%*s] %3.0f%%", filled, "##############################",
               PROGRESS_BAR_WIDTH - filled, "", progress * 100);
    } else if (strcmp(set_state, "error") == 0) {
        printf(": %s (the previous set stays in effect)", text_member(sync, "query_error"));
    }
    putchar('\n');
    size_t index;
    json_t *subscription;
    json_array_foreach(json_object_get(sync, "subscriptions"), index, subscription)
        printf("  %s/%s: %s\n", text_member(subscription, "collection"),
               text_member(subscription, "name"), text_member(subscription, "query"));
}

static int command_status(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"json", no_argument, NULL, 'j'},
        {0},
    };
    bool as_json = false;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
        if (option != 'j')
            return usage_error("invalid status option");
        as_json = true;
    }
    if (optind != argc - 1)
        return usage_error("status needs exactly one MOUNTPOINT");
    json_t *status = read_mount_status(argv[optind]);
    if (!status)
        return 1;
    if (as_json) {
        json_dumpf(status, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(status);
        return 0;
    }
    json_t *store = json_object_get(status, "store");
    char size_text[32];
    format_bytes((uint64_t)json_integer_value(json_object_get(store, "file_bytes")), size_text,
                 sizeof size_text);
    json_t *sync = json_object_get(status, "sync");
    bool synced = strcmp(text_member(status, "mode"), "synced") == 0;
    printf("mount:       %s (%s)\n", text_member(status, "mountpoint"),
           synced ? "synced" : "local, no server");
    printf("data:        %s\n", json_string_value(json_object_get(status, "data")));
    printf("daemon:      pid %lld, realmfs %s, mounted %s\n",
           (long long)json_integer_value(json_object_get(status, "pid")),
           json_string_value(json_object_get(status, "version")),
           json_string_value(json_object_get(status, "mounted_at")));
    long long objects = (long long)json_integer_value(json_object_get(status, "objects"));
    printf("store:       %s, %lld object%s\n", size_text, objects, objects == 1 ? "" : "s");
    size_t index;
    json_t *collection;
    json_array_foreach(json_object_get(status, "collections"), index, collection) {
        long long count = (long long)json_integer_value(json_object_get(collection, "objects"));
        printf("%-12s %s: %lld object%s%s\n", index == 0 ? "collections:" : "",
               json_string_value(json_object_get(collection, "name")), count,
               count == 1 ? "" : "s",
               json_is_true(json_object_get(collection, "schema")) ? ", with schema" : "");
    }
    long long errors = (long long)json_integer_value(json_object_get(status, "errors"));
    printf("errors:      %lld%s\n", errors,
           errors ? " (see .realmfs/errors in the mount)" : "");
    if (synced)
        print_sync_status(sync);
    json_decref(status);
    return 0;
}

/* `realmfs wait` polls the status this often: a read of it costs the
 * daemon O(collections) (the counts are stored), so waiting is cheap and
 * returns within 10 ms of the end. */
#define WAIT_POLL_NS (10 * 1000 * 1000)

/* Ask the daemon for a mark (.realmfs/mark); the request number to wait
 * for is then the status's marks.requested. */
static int request_mark(const char *mountpoint)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.realmfs/mark", mountpoint);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || close(fd) != 0) {
        fprintf(stderr, "realmfs: cannot request a mark through %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

typedef enum wait_outcome { WAIT_DONE, WAIT_FAILED, WAIT_PENDING } wait_outcome;

/* Whether a synced mount has caught up, given the mark to wait for; when
 * not, *reason says what it still waits for or why it never will. */
static wait_outcome sync_caught_up(const json_t *sync, uint64_t mark, char *reason,
                                   size_t reason_size)
{
    const char *state = text_member(sync, "state");
    const char *last_error = text_member(sync, "last_error");
    if (strcmp(state, "error") == 0 || (strcmp(state, "disabled") == 0 && *last_error)) {
        snprintf(reason, reason_size, "sync stopped: %s", last_error);
        return WAIT_FAILED;
    }
    if (strcmp(text_member(sync, "query_state"), "error") == 0) {
        snprintf(reason, reason_size, "the server refused the subscriptions: %s",
                 text_member(sync, "query_error"));
        return WAIT_FAILED;
    }
    long long pending = number_member(sync, "pending_uploads");
    const json_t *marks = json_object_get(sync, "marks");
    bool mark_answered = (uint64_t)number_member(marks, "answered") >= mark;
    bool complete = strcmp(text_member(sync, "query_state"), "complete") == 0;
    if (pending == 0 && complete && mark_answered)
        return WAIT_DONE;
    int used = snprintf(reason, reason_size, "%s", state);
    if (*last_error && used >= 0 && (size_t)used < reason_size)
        used += snprintf(reason + used, reason_size - (size_t)used, " (%s)", last_error);
    if (pending && used >= 0 && (size_t)used < reason_size)
        used += snprintf(reason + used, reason_size - (size_t)used,
                         ", %lld change%s not acknowledged", pending, pending == 1 ? "" : "s");
    if (!complete && used >= 0 && (size_t)used < reason_size)
        used += snprintf(reason + used, reason_size - (size_t)used, ", subscriptions %s",
                         text_member(sync, "query_state"));
    if (!mark_answered && used >= 0 && (size_t)used < reason_size)
        snprintf(reason + used, reason_size - (size_t)used,
                 ", the server has not confirmed the download yet");
    return WAIT_PENDING;
}

static int command_wait(int argc, char **argv)
{
    double timeout_seconds = 60;
    const char *mountpoint;
    int usage = parse_timeout_arguments(argc, argv, "wait", &timeout_seconds, &mountpoint);
    if (usage)
        return usage;
    json_t *status = read_mount_status(mountpoint);
    if (!status)
        return 1;
    bool synced = strcmp(text_member(status, "mode"), "synced") == 0;
    json_decref(status);
    if (!synced) {
        fprintf(stderr, "realmfs: %s has no server: nothing to wait for\n", mountpoint);
        return 0;
    }
    if (request_mark(mountpoint) != 0)
        return 1;
    uint64_t mark = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (!(status = read_mount_status(mountpoint)))
            return 1;
        const json_t *sync = json_object_get(status, "sync");
        if (mark == 0)
            mark = (uint64_t)number_member(json_object_get(sync, "marks"), "requested");
        char reason[1024];
        wait_outcome outcome = sync_caught_up(sync, mark, reason, sizeof reason);
        json_decref(status);
        if (outcome == WAIT_DONE)
            return 0;
        if (outcome == WAIT_FAILED) {
            fprintf(stderr, "realmfs: %s\n", reason);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        double waited = (double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
        if (waited >= timeout_seconds) {
            fprintf(stderr, "realmfs: timed out after %g s: %s\n", timeout_seconds, reason);
            return 1;
        }
        struct timespec pause = {.tv_nsec = WAIT_POLL_NS};
        nanosleep(&pause, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("no command given");
    const char *command = argv[1];
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
        strcmp(command, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(command, "--version") == 0) {
        printf("realmfs %s\n", REALMFS_VERSION);
        return 0;
    }
    if (strcmp(command, "mount") == 0)
        return command_mount(argc - 1, argv + 1);
    if (strcmp(command, "unmount") == 0 || strcmp(command, "umount") == 0)
        return command_unmount(argc - 1, argv + 1);
    if (strcmp(command, "status") == 0)
        return command_status(argc - 1, argv + 1);
    if (strcmp(command, "wait") == 0)
        return command_wait(argc - 1, argv + 1);
    if (strcmp(command, "query") == 0)
        return query_command_run(argc - 1, argv + 1);
    return usage_error("unknown command");
}
