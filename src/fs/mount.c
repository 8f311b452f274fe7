/*
 * mount.c — `realmfs mount`: open a realm's store and serve it over FUSE.
 *
 * The daemon forks before it opens anything (LMDB must not be used across
 * a fork) and the parent waits on a pipe until the child has opened the
 * store and mounted, so every start-up error is printed by the command the
 * user ran, with its exit status, before it returns.
 *
 * A synced mount (--server) checks its login in the parent, before the
 * fork, and runs a sync thread (sync_client.h) in the daemon from just
 * after mounting until just before the store closes; the thread connects
 * with the session token the check got, so the mount logs in only once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "mount.h"
#include "sync_client.h"
#include "sync_status.h"

/* How long the login check before mounting waits for the server. */
#define MOUNT_LOGIN_TIMEOUT_MS 10000
/* How long unmounting waits for pending uploads to be acknowledged. */
#define MOUNT_UPLOAD_DRAIN_MS 5000

/* Create every missing directory of path, like mkdir -p. */
static int make_directories(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int error = 0;
    for (char *slash = copy + 1; !error; slash++) {
        bool at_end = *slash == '\0';
        if (*slash != '/' && !at_end)
            continue;
        *slash = '\0';
        if (mkdir(copy, 0755) != 0 && errno != EEXIST)
            error = -errno;
        if (at_end)
            break;
        *slash = '/';
    }
    free(copy);
    return error;
}

static char *default_data_directory(const char *mountpoint)
{
    const char *base = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    char root[PATH_MAX];
    if (base && *base)
        snprintf(root, sizeof root, "%s/realmfs", base);
    else
        snprintf(root, sizeof root, "%s/.local/share/realmfs", home ? home : "/tmp");
    /* one store per mountpoint: its path with '/' made safe for a name */
    char name[PATH_MAX];
    size_t used = 0;
    for (const char *p = mountpoint + 1; *p && used + 1 < sizeof name; p++)
        name[used++] = *p == '/' ? '_' : *p;
    name[used] = '\0';
    char *path;
    return asprintf(&path, "%s/%s", root, used ? name : "root") < 0 ? NULL : path;
}

typedef struct daemon_link {
    int report_fd; /* write end of the pipe to the waiting parent; -1 in the foreground */
} daemon_link;

static void report_failure(daemon_link *link, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void report_failure(daemon_link *link, const char *format, ...)
{
    char message[1024];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message, sizeof message, format, arguments);
    va_end(arguments);
    if (link->report_fd >= 0) {
        if (write(link->report_fd, message, strlen(message)) < 0)
            fprintf(stderr, "realmfs: %s\n", message);
    } else {
        fprintf(stderr, "realmfs: %s\n", message);
    }
}

static void report_success(daemon_link *link)
{
    if (link->report_fd < 0)
        return;
    if (write(link->report_fd, "OK", 2) != 2)
        return;
    close(link->report_fd);
    link->report_fd = -1;
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
        dup2(null_fd, STDOUT_FILENO);
        dup2(null_fd, STDERR_FILENO);
        if (null_fd > STDERR_FILENO)
            close(null_fd);
    }
}

/* Only one daemon may serve a data directory: two would each believe they
 * own the scratch files and the node table's view of the store. */
static int lock_data_directory(const char *directory, int *lock_fd)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/realmfs.lock", directory);
    *lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*lock_fd < 0)
        return -errno;
    if (flock(*lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int error = errno == EWOULDBLOCK ? -EBUSY : -errno;
        close(*lock_fd);
        *lock_fd = -1;
        return error;
    }
    return 0;
}

/* Whether one of the -o arguments (each a comma-separated list) lets users
 * other than the mounting one in. */
static bool opens_to_other_users(const mount_options *options)
{
    for (size_t i = 0; i < options->fuse_option_count; i++) {
        char list[1024];
        snprintf(list, sizeof list, "%s", options->fuse_options[i]);
        char *cursor = list;
        for (char *option; (option = strsep(&cursor, ","));)
            if (strcmp(option, "allow_other") == 0 || strcmp(option, "allow_root") == 0)
                return true;
    }
    return false;
}

/*
 * The kernel checks file modes itself (default_permissions) only when
 * other users may enter the mount.  Otherwise FUSE already refuses every
 * other user, root included, so the check protects nothing, and it costs
 * GETATTR round trips on every create, rename and unlink (BENCHMARKS.md).
 */
static struct fuse_session *create_session(const mount_options *options, fs_context *fs)
{
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    const char *base_options = opens_to_other_users(options)
                                   ? "default_permissions,fsname=realmfs,subtype=realmfs"
                                   : "fsname=realmfs,subtype=realmfs";
    bool ok = fuse_opt_add_arg(&args, "realmfs") == 0 &&
              fuse_opt_add_arg(&args, "-o") == 0 &&
              fuse_opt_add_arg(&args, base_options) == 0;
    for (size_t i = 0; ok && i < options->fuse_option_count; i++)
        ok = fuse_opt_add_arg(&args, "-o") == 0 &&
             fuse_opt_add_arg(&args, options->fuse_options[i]) == 0;
    if (ok && options->debug)
        ok = fuse_opt_add_arg(&args, "-d") == 0;
    struct fuse_session *session =
        ok ? fuse_session_new(&args, &fs_operations, sizeof fs_operations, fs) : NULL;
    fuse_opt_free_args(&args);
    return session;
}

static int open_scratch_area(fs_context *fs)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/scratch", fs->data_directory);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -errno;
    fs->scratch_directory_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fs->scratch_directory_fd < 0 ? -errno : 0;
}

static void invalidate_downloaded(const store_download_change *changes, size_t count,
                                  void *context)
{
    (void)context;
    for (size_t i = 0; i < count; i++)
        fs_notify_object_changed(changes[i].collection, changes[i].id,
                                 changes[i].existed != changes[i].exists);
}

static void invalidate_schema(const char *collection, void *context)
{
    (void)context;
    fs_notify_schema_changed(collection);
}

static int start_sync(const mount_options *options, const char *session_token, fs_context *fs,
                      sync_client **client, daemon_link *link)
{
    sync_client_options sync_options = {.server_url = options->server_url,
                                        .app_id = options->app_id,
                                        .authorization = options->authorization,
                                        .session_token = session_token,
                                        .ca_file = options->ca_file,
                                        .mountpoint = fs->mountpoint};
    sync_client_listener listener = {.changed = invalidate_downloaded,
                                     .schema_changed = invalidate_schema};
    char message[512];
    int error = sync_client_start(&sync_options, fs->store, fs->errors, fs->sync_status,
                                  &listener, client, message, sizeof message);
    if (error)
        report_failure(link, "cannot start syncing: %s", message);
    return error;
}

/* Give pending uploads a bounded time, then say what is left for the next
 * mount (in the foreground; `realmfs unmount` says it too). */
static void stop_sync(sync_client *client, bool foreground)
{
    uint64_t left = 0;
    sync_client_stop(client, MOUNT_UPLOAD_DRAIN_MS, &left);
    if (left && foreground)
        fprintf(stderr, "realmfs: %llu local change%s wait%s for the server; the next mount "
                "uploads them\n", (unsigned long long)left, left == 1 ? "" : "s",
                left == 1 ? "s" : "");
}

/*
 * fuse_session_loop, plus a timeout while opens for writing are held for
 * page-cache readers (fs_writer_wait_milliseconds): when no request
 * arrives, nothing else would wake this thread to let them go ahead.  With
 * none held it blocks in the read, as fuse_session_loop does.
 */
static int serve_requests(struct fuse_session *session)
{
    struct fuse_buf buffer = {.mem = NULL};
    int result = 0;
    while (!fuse_session_exited(session)) {
        int wait = fs_writer_wait_milliseconds();
        if (wait == 0) { /* checked before reading, or a busy mount would starve them */
            fs_release_overdue_writers();
            continue;
        }
        if (wait > 0) {
            struct pollfd request = {.fd = fuse_session_fd(session), .events = POLLIN};
            int ready = poll(&request, 1, wait);
            if (ready < 0 && errno != EINTR) {
                result = -errno;
                break;
            }
            if (ready <= 0) {
                fs_release_overdue_writers();
                continue;
            }
        }
        result = fuse_session_receive_buf(session, &buffer);
        if (result == -EINTR)
            continue;
        if (result <= 0)
            break;
        fuse_session_process_buf(session, &buffer);
    }
    fs_abandon_waiting_writers();
    free(buffer.mem);
    return result < 0 ? result : 0;
}

/* Everything after the fork (or in the foreground): open, mount, serve.
 * session_token: the login check's ("" or NULL: none). */
static int serve(const mount_options *options, const char *session_token,
                 const char *mountpoint, const char *data, daemon_link *link)
{
    fs_context fs = {.data_directory = (char *)data, .mountpoint = (char *)mountpoint,
                     .scratch_directory_fd = -1, .uid = getuid(), .gid = getgid()};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    fs.mounted_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    int lock_fd = -1;
    int status = 1;
    struct fuse_session *session = NULL;
    sync_client *sync = NULL;
    bool mounted = false, handlers = false;
    char log_path[PATH_MAX];
    snprintf(log_path, sizeof log_path, "%s/errors.jsonl", data);

    int error = make_directories(data);
    if (error) {
        report_failure(link, "cannot create data directory %s: %s", data, strerror(-error));
        goto done;
    }
    error = lock_data_directory(data, &lock_fd);
    if (error) {
        report_failure(link, "data directory %s is %s", data,
                       error == -EBUSY ? "already served by another realmfs mount"
                                       : strerror(-error));
        goto done;
    }
    store_options store_settings = {.map_size = options->map_size,
                                    .synced = options->server_url != NULL};
    error = store_open(data, &store_settings, &fs.store);
    if (error) {
        report_failure(link, "cannot open the store in %s: %s", data, store_last_error());
        goto done;
    }
    error = error_log_open(log_path, &fs.errors);
    if (!error)
        error = open_scratch_area(&fs);
    if (!error)
        error = fs_nodes_init() == 0 ? 0 : -ENOMEM;
    if (!error && options->server_url)
        error = sync_status_new(options->server_url, options->app_id, options->user,
                                &fs.sync_status);
    if (error) {
        report_failure(link, "cannot prepare %s: %s", data, strerror(-error));
        goto done;
    }
    session = create_session(options, &fs);
    if (!session) {
        report_failure(link, "invalid FUSE options");
        goto done;
    }
    fs.session = session;
    handlers = fuse_set_signal_handlers(session) == 0;
    if (fuse_session_mount(session, mountpoint) != 0) {
        report_failure(link, "cannot mount on %s (see the message above; is it already mounted?)",
                       mountpoint);
        goto done;
    }
    mounted = true;
    error = fs_notify_start(session);
    if (error) {
        report_failure(link, "cannot start the notification thread: %s", strerror(-error));
        goto done;
    }
    if (options->server_url && start_sync(options, session_token, &fs, &sync, link) != 0)
        goto done;
    if (options->foreground)
        fprintf(stderr, "realmfs: serving %s at %s\n", data, mountpoint);
    report_success(link);
    status = serve_requests(session) == 0 ? 0 : 1;
done:
    stop_sync(sync, options->foreground);
    fs_notify_stop();
    if (mounted)
        fuse_session_unmount(session);
    if (handlers)
        fuse_remove_signal_handlers(session);
    if (session)
        fuse_session_destroy(session);
    fs_nodes_destroy();
    if (fs.scratch_directory_fd >= 0)
        close(fs.scratch_directory_fd);
    sync_status_free(fs.sync_status);
    error_log_close(fs.errors);
    store_close(fs.store);
    if (lock_fd >= 0)
        close(lock_fd);
    return status;
}

/* Whether the store in data has synced before: it has a file identity.
 * The store is closed again before the fork (LMDB must not cross one). */
static bool store_has_synced(const char *data)
{
    store *existing;
    store_options settings = {.read_only = true, .synced = true};
    if (store_open(data, &settings, &existing) != 0)
        return false;
    store_sync_progress progress;
    bool synced = store_get_sync_progress(existing, &progress) == 0 && progress.file_identity;
    store_close(existing);
    return synced;
}

/*
 * A synced mount needs the server to accept its login.  A server that
 * cannot be reached is no reason to refuse a mount that synced before:
 * it mounts with a warning and its changes wait in the outbox.  A first
 * mount needs the server, or a wrong password would only show later.
 */
static int check_login(const mount_options *options, const char *data,
                       char session_token[AUTH_SESSION_TOKEN_SIZE])
{
    sync_client_options sync_options = {.server_url = options->server_url,
                                        .app_id = options->app_id,
                                        .authorization = options->authorization,
                                        .ca_file = options->ca_file};
    char message[512];
    sync_login_result result =
        sync_client_check_login(&sync_options, MOUNT_LOGIN_TIMEOUT_MS, session_token, message,
                                sizeof message);
    if (result == SYNC_LOGIN_ACCEPTED)
        return 0;
    if (result == SYNC_LOGIN_UNREACHABLE && store_has_synced(data)) {
        fprintf(stderr, "realmfs: warning: %s; mounting offline, changes wait for the server\n",
                message);
        return 0;
    }
    fprintf(stderr, "realmfs: %s\n", message);
    if (result == SYNC_LOGIN_UNREACHABLE)
        fprintf(stderr, "realmfs: a first synced mount needs the server, to check the login\n");
    return 1;
}

/* The parent's side: wait for the child's report and relay it. */
static int wait_for_daemon(int report_fd, pid_t child)
{
    char message[1100];
    size_t used = 0;
    ssize_t n;
    while (used < sizeof message - 1 &&
           (n = read(report_fd, message + used, sizeof message - 1 - used)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        used += (size_t)n;
        if (used == 2 && memcmp(message, "OK", 2) == 0)
            break;
    }
    message[used] = '\0';
    close(report_fd);
    if (strcmp(message, "OK") == 0)
        return 0;
    int status;
    waitpid(child, &status, 0);
    fprintf(stderr, "realmfs: %s\n", used ? message : "the daemon exited during start-up");
    return 1;
}

int mount_run(const mount_options *options)
{
    char mountpoint[PATH_MAX];
    struct stat st;
    if (!realpath(options->mountpoint, mountpoint) || stat(mountpoint, &st) != 0 ||
        !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "realmfs: mountpoint %s is not a directory\n", options->mountpoint);
        return 1;
    }
    char *data = options->data_directory ? strdup(options->data_directory)
                                         : default_data_directory(mountpoint);
    if (!data) {
        fprintf(stderr, "realmfs: out of memory\n");
        return 1;
    }
    if (data[0] != '/') {
        char *relative = data;
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd) || asprintf(&data, "%s/%s", cwd, relative) < 0) {
            fprintf(stderr, "realmfs: cannot resolve the data directory %s\n", relative);
            free(relative);
            return 1;
        }
        free(relative);
    }
    char session_token[AUTH_SESSION_TOKEN_SIZE] = "";
    if (options->server_url && check_login(options, data, session_token) != 0) {
        free(data);
        return 1;
    }
    int status;
    if (options->foreground || options->debug) {
        daemon_link link = {.report_fd = -1};
        status = serve(options, session_token, mountpoint, data, &link);
    } else {
        int pipe_fds[2];
        if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
            perror("realmfs: pipe");
            free(data);
            return 1;
        }
        fflush(NULL);
        pid_t child = fork();
        if (child < 0) {
            perror("realmfs: fork");
            status = 1;
        } else if (child == 0) {
            close(pipe_fds[0]);
            setsid();
            if (chdir("/") != 0)
                _exit(1);
            daemon_link link = {.report_fd = pipe_fds[1]};
            status = serve(options, session_token, mountpoint, data, &link);
            free(data);
            _exit(status);
        } else {
            close(pipe_fds[1]);
            status = wait_for_daemon(pipe_fds[0], child);
        }
    }
    explicit_bzero(session_token, sizeof session_token);
    free(data);
    return status;
}
