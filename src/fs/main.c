/*
 * main.c — the `realmfs` command: mount, unmount, status, query.
 *
 * Subcommands other than mount talk to a running mount only through its
 * files (.realmfs/status gives the daemon's pid and data directory), so
 * they work for any user who can read the mount.
 */
#include <errno.h>
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

static const char usage_text[] =
    "usage: realmfs <command> [options]\n"
    "\n"
    "  mount [--data DIR] [-f] [-d] [-o OPTION]... MOUNTPOINT\n"
    "        serve the realm stored in DIR (default: $XDG_DATA_HOME/realmfs/<mountpoint>)\n"
    "        at MOUNTPOINT; -f stays in the foreground, -d traces FUSE requests,\n"
    "        -o passes a FUSE mount option (allow_other, ...)\n"
    "  unmount [--timeout SECONDS] MOUNTPOINT\n"
    "        unmount and wait for the daemon to finish\n"
    "  status [--json] MOUNTPOINT\n"
    "        show what the mount holds\n"
    "  query [-0] MOUNTPOINT COLLECTION PREDICATE\n"
    "        print the paths of the objects matching a Realm Query Language predicate\n"
    "\n"
    "  --help, --version\n";

static int usage_error(const char *message)
{
    fprintf(stderr, "realmfs: %s\n\n%s", message, usage_text);
    return 2;
}

static int command_mount(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"data", required_argument, NULL, 'D'},
        {"map-size", required_argument, NULL, 'M'},
        {"foreground", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    mount_options options = {0};
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
        default:
            return usage_error("invalid mount option");
        }
    }
    if (optind != argc - 1)
        return usage_error("mount needs exactly one MOUNTPOINT");
    options.mountpoint = argv[optind];
    options.fuse_options = fuse_options;
    return mount_run(&options);
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

static int command_unmount(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"timeout", required_argument, NULL, 't'},
        {0},
    };
    double timeout_seconds = 30;
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
        if (option != 't')
            return usage_error("invalid unmount option");
        timeout_seconds = strtod(optarg, NULL);
    }
    if (optind != argc - 1)
        return usage_error("unmount needs exactly one MOUNTPOINT");
    const char *mountpoint = argv[optind];
    json_t *status = read_mount_status(mountpoint);
    if (!status)
        return 1;
    pid_t pid = (pid_t)json_integer_value(json_object_get(status, "pid"));
    json_decref(status);
    if (run_fusermount(mountpoint) != 0) {
        fprintf(stderr, "realmfs: could not unmount %s\n", mountpoint);
        return 1;
    }
    /* The store is closed only when the daemon exits: wait for that, so a
     * remount right after this command finds the data directory free. */
    struct timespec pause = {.tv_nsec = 20 * 1000 * 1000};
    for (double waited = 0; pid > 0 && process_is_running(pid); waited += 0.02) {
        if (waited >= timeout_seconds) {
            fprintf(stderr, "realmfs: unmounted, but daemon %d is still running\n", (int)pid);
            return 1;
        }
        nanosleep(&pause, NULL);
    }
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
    printf("mount:       %s (%s, no server)\n",
           json_string_value(json_object_get(status, "mountpoint")),
           json_string_value(json_object_get(status, "mode")));
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
    json_decref(status);
    return 0;
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
    if (strcmp(command, "query") == 0)
        return query_command_run(argc - 1, argv + 1);
    return usage_error("unknown command");
}
