/*
 * main.c — the `realmfs-server` command: serve an App Services app export
 * to sync clients, manage its users and API keys, import and export
 * collections.  docs/server.md is the operator's reference.
 *
 * Exit status: 0 done, 1 failed (the message says why), 2 usage error.
 * Secrets never come from the command line, where other users of the
 * machine could read them (/proc/PID/cmdline): passwords come from a file
 * or standard input, and API keys are printed once, on standard output.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "export_app.h"
#include "log.h"
#include "realmfs/app_config.h"
#include "realmfs/auth.h"
#include "realmfs/rules.h"
#include "realmfs/sync_store.h"
#include "server.h"
#include "transfer_command.h"

static const char usage_text[] =
    "usage: realmfs-server <command> [options]\n"
    "\n"
    "  serve --app APPDIR --data DIR [--listen HOST:PORT] [--tls-cert FILE "
    "--tls-key FILE]\n"
    "        [--log-level error|warn|info|debug]\n"
    "        serve the App Services app exported in APPDIR to sync clients, "
    "keeping its\n"
    "        data in DIR (created if missing); HOST:PORT defaults to "
    "127.0.0.1:9090\n"
    "  user add --data DIR EMAIL --password-file FILE\n"
    "        add a local-userpass user with the password in FILE (\"-\": "
    "standard\n"
    "        input; one trailing newline is not part of it); prints the user's "
    "id\n"
    "  user list --data DIR\n"
    "        one user a line: id, email (\"-\" for none), type, state, "
    "creation time\n"
    "  user disable --data DIR ID\n"
    "  user enable --data DIR ID\n"
    "  apikey add --data DIR NAME [--user ID]\n"
    "        create an API key for the user ID, or without --user for a new "
    "user of\n"
    "        type \"server\"; prints the key, which is shown only this once\n"
    "  apikey list --data DIR\n"
    "        one key a line: key id, name, user id, state, creation time\n"
    "  apikey revoke --data DIR KEY_ID\n"
    "  import --app APPDIR --data DIR COLLECTION FILE\n"
    "        load mongoexport JSON lines (\"-\": standard input) into a "
    "collection\n"
    "  export --app APPDIR --data DIR COLLECTION [FILE]\n"
    "        write a collection as JSON lines (default: standard output)\n"
    "  export-app --app APPDIR --data DIR --out OUTDIR\n"
    "        copy the app export to OUTDIR (new or empty) with the schemas and\n"
    "        queryable fields Development Mode learned\n"
    "\n"
    "  --help, --version\n";

static int usage_error(const char *format, const char *argument)
{
    fputs("realmfs-server: ", stderr);
    fprintf(stderr, format, argument);
    fprintf(stderr, "\nTry 'realmfs-server --help'.\n");
    return 2;
}

/* ---- Options ----------------------------------------------------------- */

/* The options; a command accepts a set of them, as a mask of their bits. */
enum {
    OPTION_APP,
    OPTION_DATA,
    OPTION_LISTEN,
    OPTION_TLS_CERT,
    OPTION_TLS_KEY,
    OPTION_LOG_LEVEL,
    OPTION_PASSWORD_FILE,
    OPTION_USER,
    OPTION_OUT,
    OPTION_COUNT
};
#define OPTION_BIT(option) (1u << (option))

typedef struct command_arguments {
    const char *value[OPTION_COUNT]; /* NULL when not given */
    char **positional;
    int positional_count;
    bool help;
} command_arguments;

/*
 * Read the options of the command name (argv[0] is its last word) into
 * *arguments, accepting only those in allowed and between positional_min
 * and positional_max other arguments.  0, or 2 after a usage message.
 */
static int parse_arguments(const char *name, int argc, char **argv, unsigned allowed,
                           int positional_min, int positional_max, command_arguments *arguments)
{
    /* getopt_long returns the option's index + 1, never 'h', '?' or ':'. */
    static const struct option long_options[] = {
        {"app", required_argument, NULL, OPTION_APP + 1},
        {"data", required_argument, NULL, OPTION_DATA + 1},
        {"listen", required_argument, NULL, OPTION_LISTEN + 1},
        {"tls-cert", required_argument, NULL, OPTION_TLS_CERT + 1},
        {"tls-key", required_argument, NULL, OPTION_TLS_KEY + 1},
        {"log-level", required_argument, NULL, OPTION_LOG_LEVEL + 1},
        {"password-file", required_argument, NULL, OPTION_PASSWORD_FILE + 1},
        {"user", required_argument, NULL, OPTION_USER + 1},
        {"out", required_argument, NULL, OPTION_OUT + 1},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    memset(arguments, 0, sizeof *arguments);
    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        if (option == 'h') {
            arguments->help = true;
            return 0;
        }
        if (option == '?')
            return usage_error("unknown option %s", argv[optind - 1]);
        if (option == ':')
            return usage_error("option %s needs a value", argv[optind - 1]);
        if (!(OPTION_BIT(option - 1) & allowed))
            return usage_error("option %s does not apply to this command", argv[optind - 1]);
        arguments->value[option - 1] = optarg;
    }
    arguments->positional = argv + optind;
    arguments->positional_count = argc - optind;
    if (arguments->positional_count < positional_min)
        return usage_error("%s: missing argument", name);
    if (arguments->positional_count > positional_max)
        return usage_error("unexpected argument %s", arguments->positional[positional_max]);
    if ((allowed & OPTION_BIT(OPTION_APP)) && !arguments->value[OPTION_APP])
        return usage_error("%s needs --app APPDIR", name);
    if ((allowed & OPTION_BIT(OPTION_DATA)) && !arguments->value[OPTION_DATA])
        return usage_error("%s needs --data DIR", name);
    return 0;
}

/* Create the data directory (not its parents) when missing.  0 or 1. */
static int make_data_directory(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "realmfs-server: cannot create the data directory %s: %s\n", path,
            strerror(errno));
    return 1;
}

static int open_auth(const char *data_directory, auth **out)
{
    if (auth_open(data_directory, NULL, out) == 0)
        return 0;
    fprintf(stderr, "realmfs-server: cannot open the users in %s: %s\n", data_directory,
            auth_last_error());
    return 1;
}

/*
 * The common start of the user and apikey actions (argv[1] names the
 * action): parse its options (--data and extra_options) and one argument
 * when takes_argument, create the data directory when creates, open the
 * users.  Returns -1 with *auth open, or else the exit status to return at
 * once (0 after --help).
 */
static int begin_auth_action(const char *group, int argc, char **argv, unsigned extra_options,
                             bool takes_argument, bool creates, command_arguments *arguments,
                             auth **auth)
{
    char name[32];
    snprintf(name, sizeof name, "%s %s", group, argv[1]);
    int positional = takes_argument ? 1 : 0;
    int status = parse_arguments(name, argc - 1, argv + 1, OPTION_BIT(OPTION_DATA) | extra_options,
                                 positional, positional, arguments);
    if (status != 0)
        return status;
    if (arguments->help) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (creates && make_data_directory(arguments->value[OPTION_DATA]) != 0)
        return 1;
    return open_auth(arguments->value[OPTION_DATA], auth) == 0 ? -1 : 1;
}

/* "2024-05-01T12:00:00Z" */
static void format_time(int64_t ms, char *buffer, size_t size)
{
    time_t seconds = (time_t)(ms / 1000);
    struct tm fields;
    gmtime_r(&seconds, &fields);
    strftime(buffer, size, "%Y-%m-%dT%H:%M:%SZ", &fields);
}

/* ---- serve ------------------------------------------------------------- */

/* "HOST:PORT", "[IPV6]:PORT" or ":PORT" (every interface).  0 or 2. */
static int parse_listen_address(const char *text, char *host, size_t host_size, int *port)
{
    const char *colon = strrchr(text, ':');
    if (!colon)
        return usage_error("--listen %s: expected HOST:PORT", text);
    const char *host_start = text, *host_end = colon;
    if (*text == '[' && colon > text && colon[-1] == ']') {
        host_start++;
        host_end--;
    }
    if ((size_t)(host_end - host_start) >= host_size)
        return usage_error("--listen %s: host too long", text);
    char *end;
    errno = 0;
    long value = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || value < 0 || value > 65535)
        return usage_error("--listen %s: the port must be a number from 0 to 65535", text);
    memcpy(host, host_start, (size_t)(host_end - host_start));
    host[host_end - host_start] = '\0';
    *port = (int)value;
    return 0;
}

/* The parts of the export that are not run, as one warning line. */
static void warn_about_unrun_parts(const app_config *app)
{
    size_t count = app_config_warning_count(app);
    if (count == 0)
        return;
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);
    if (!out)
        return;
    for (size_t i = 0; i < count; i++)
        fprintf(out, "%s%s", i ? "; " : "", app_config_warning_at(app, i));
    if (fclose(out) == 0)
        server_log(SERVER_LOG_WARN, "%s", text);
    free(text);
}

static int check_readable(const char *option, const char *path)
{
    if (access(path, R_OK) == 0)
        return 0;
    fprintf(stderr, "realmfs-server: %s %s: %s\n", option, path, strerror(errno));
    return 1;
}

static int command_serve(int argc, char **argv)
{
    command_arguments arguments;
    int status = parse_arguments("serve", argc, argv,
                                 OPTION_BIT(OPTION_APP) | OPTION_BIT(OPTION_DATA) |
                                     OPTION_BIT(OPTION_LISTEN) | OPTION_BIT(OPTION_TLS_CERT) |
                                     OPTION_BIT(OPTION_TLS_KEY) | OPTION_BIT(OPTION_LOG_LEVEL),
                                 0, 0, &arguments);
    if (status != 0 || arguments.help) {
        if (arguments.help)
            fputs(usage_text, stdout);
        return status;
    }
    const char *app_directory = arguments.value[OPTION_APP];
    const char *data_directory = arguments.value[OPTION_DATA];
    const char *listen = arguments.value[OPTION_LISTEN];
    const char *tls_cert_file = arguments.value[OPTION_TLS_CERT];
    const char *tls_key_file = arguments.value[OPTION_TLS_KEY];
    const char *log_level = arguments.value[OPTION_LOG_LEVEL];
    server_options options = {0};
    char host[256];
    status = parse_listen_address(listen ? listen : "127.0.0.1:9090", host, sizeof host,
                                  &options.listen_port);
    if (status != 0)
        return status;
    options.listen_host = host;
    if (!tls_cert_file != !tls_key_file)
        return usage_error("%s", "--tls-cert and --tls-key go together");
    server_log_level level = SERVER_LOG_INFO;
    if (log_level && server_log_parse_level(log_level, &level) < 0)
        return usage_error("--log-level %s: expected error, warn, info or debug", log_level);
    server_log_set_level(level);
    if (tls_cert_file &&
        (check_readable("--tls-cert", tls_cert_file) || check_readable("--tls-key", tls_key_file)))
        return 1;
    options.tls_cert_file = tls_cert_file;
    options.tls_key_file = tls_key_file;

    app_config *app = NULL;
    rules *rules = NULL;
    sync_schema *schema = NULL;
    sync_store *store = NULL;
    auth *auth = NULL;
    char message[1024];
    status = 1;
    if (app_config_load(app_directory, &app, message, sizeof message) < 0) {
        server_log(SERVER_LOG_ERROR, "cannot load the app export %s: %s", app_directory, message);
        goto done;
    }
    warn_about_unrun_parts(app);
    if (!app_config_sync(app)->enabled) {
        server_log(SERVER_LOG_ERROR, "sync/config.json: \"state\": sync is disabled in this app; "
                                     "enable it to serve the app");
        goto done;
    }
    if (make_data_directory(data_directory) != 0)
        goto done;
    if (sync_schema_open(app, data_directory, &schema, message, sizeof message) < 0) {
        server_log(SERVER_LOG_ERROR, "cannot open the schemas: %s", message);
        goto done;
    }
    /* After the schemas: fields Development Mode made queryable count for
     * the rules' document filters. */
    if (rules_load(app, &rules, message, sizeof message) < 0) {
        server_log(SERVER_LOG_ERROR, "cannot use the rules of %s: %s", app_directory, message);
        goto done;
    }
    if (sync_store_open(data_directory, 0, &store) < 0) {
        server_log(SERVER_LOG_ERROR, "cannot open the store in %s: %s", data_directory,
                   sync_store_last_error());
        goto done;
    }
    if (auth_open(data_directory, NULL, &auth) < 0) {
        server_log(SERVER_LOG_ERROR, "cannot open the users in %s: %s", data_directory,
                   auth_last_error());
        goto done;
    }
    server_log(SERVER_LOG_INFO, "realmfs-server %s serving app \"%s\" from %s, data in %s",
               REALMFS_VERSION, app_config_name(app), app_directory, data_directory);
    status = server_run(&options, app, rules, schema, store, auth);
done:
    auth_close(auth);
    sync_store_close(store);
    sync_schema_close(schema);
    rules_free(rules);
    app_config_free(app);
    return status;
}

/* ---- user -------------------------------------------------------------- */

/*
 * The password in path ("-": standard input), without one trailing
 * newline (LF or CRLF), into password[AUTH_PASSWORD_MAX + 1].  0 or 1.
 */
static int read_password(const char *path, char *password)
{
    bool from_stdin = strcmp(path, "-") == 0;
    FILE *file = from_stdin ? stdin : fopen(path, "r");
    if (!file) {
        fprintf(stderr, "realmfs-server: --password-file %s: %s\n", path, strerror(errno));
        return 1;
    }
    /* Room for the longest password, CRLF, and one byte to notice more. */
    char buffer[AUTH_PASSWORD_MAX + 3];
    size_t length = fread(buffer, 1, sizeof buffer, file);
    bool failed = ferror(file) != 0;
    if (!from_stdin)
        fclose(file);
    if (failed) {
        fprintf(stderr, "realmfs-server: cannot read --password-file %s\n", path);
        explicit_bzero(buffer, sizeof buffer);
        return 1;
    }
    if (length > 0 && buffer[length - 1] == '\n')
        length--;
    if (length > 0 && buffer[length - 1] == '\r')
        length--;
    int status = 0;
    if (length == 0 || length > AUTH_PASSWORD_MAX || memchr(buffer, '\0', length)) {
        fprintf(stderr,
                "realmfs-server: --password-file %s: the password must have 1 to %d "
                "bytes and no NUL\n",
                path, AUTH_PASSWORD_MAX);
        status = 1;
    } else {
        memcpy(password, buffer, length);
        password[length] = '\0';
    }
    explicit_bzero(buffer, sizeof buffer);
    return status;
}

static int user_add(const command_arguments *arguments, auth *auth)
{
    if (!arguments->value[OPTION_PASSWORD_FILE])
        return usage_error("%s", "user add needs --password-file FILE");
    char password[AUTH_PASSWORD_MAX + 1];
    if (read_password(arguments->value[OPTION_PASSWORD_FILE], password) != 0)
        return 1;
    char user_id[AUTH_ID_SIZE];
    int result = auth_add_user(auth, arguments->positional[0], password, user_id);
    explicit_bzero(password, sizeof password);
    if (result < 0) {
        fprintf(stderr, "realmfs-server: cannot add the user: %s\n", auth_last_error());
        return 1;
    }
    printf("%s\n", user_id);
    return 0;
}

static int print_user(const auth_user *user, void *context)
{
    (void)context;
    char created[32];
    format_time(user->created_ms, created, sizeof created);
    printf("%s\t%s\t%s\t%s\t%s\n", user->id, user->email ? user->email : "-", user->type,
           user->disabled ? "disabled" : "enabled", created);
    return 0;
}

static int command_user(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("%s", "user needs an action: add, list, disable or enable");
    const char *action = argv[1];
    bool add = strcmp(action, "add") == 0, list = strcmp(action, "list") == 0;
    bool disable = strcmp(action, "disable") == 0, enable = strcmp(action, "enable") == 0;
    if (!add && !list && !disable && !enable)
        return usage_error("unknown user action %s", action);
    command_arguments arguments;
    auth *auth;
    int status = begin_auth_action("user", argc, argv, add ? OPTION_BIT(OPTION_PASSWORD_FILE) : 0,
                                   !list, add, &arguments, &auth);
    if (status >= 0)
        return status;
    status = 0;
    if (add) {
        status = user_add(&arguments, auth);
    } else if (list) {
        if (auth_list_users(auth, print_user, NULL) < 0) {
            fprintf(stderr, "realmfs-server: cannot list the users: %s\n", auth_last_error());
            status = 1;
        }
    } else {
        const char *user_id = arguments.positional[0];
        int result = disable ? auth_disable_user(auth, user_id) : auth_enable_user(auth, user_id);
        if (result < 0) {
            fprintf(stderr, "realmfs-server: cannot %s the user %s: %s\n", action, user_id,
                    auth_last_error());
            status = 1;
        }
    }
    auth_close(auth);
    return status;
}

/* ---- apikey ------------------------------------------------------------ */

static int apikey_add(const command_arguments *arguments, auth *auth)
{
    char key[AUTH_API_KEY_SIZE], key_id[AUTH_ID_SIZE];
    if (auth_add_api_key(auth, arguments->positional[0], arguments->value[OPTION_USER], key,
                         key_id) < 0) {
        fprintf(stderr, "realmfs-server: cannot add the API key: %s\n", auth_last_error());
        return 1;
    }
    printf("%s\n", key);
    explicit_bzero(key, sizeof key);
    if (arguments->value[OPTION_USER])
        fprintf(stderr, "API key %s created for user %s; the key is shown only once\n", key_id,
                arguments->value[OPTION_USER]);
    else
        fprintf(stderr,
                "API key %s created for a new server user; the key is shown only "
                "once\n",
                key_id);
    return 0;
}

static int print_api_key(const auth_api_key *key, void *context)
{
    (void)context;
    char created[32];
    format_time(key->created_ms, created, sizeof created);
    printf("%s\t%s\t%s\t%s\t%s\n", key->id, key->name, key->user_id,
           key->disabled ? "revoked" : "active", created);
    return 0;
}

static int command_apikey(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("%s", "apikey needs an action: add, list or revoke");
    const char *action = argv[1];
    bool add = strcmp(action, "add") == 0, list = strcmp(action, "list") == 0;
    bool revoke = strcmp(action, "revoke") == 0;
    if (!add && !list && !revoke)
        return usage_error("unknown apikey action %s", action);
    command_arguments arguments;
    auth *auth;
    int status = begin_auth_action("apikey", argc, argv, add ? OPTION_BIT(OPTION_USER) : 0, !list,
                                   add, &arguments, &auth);
    if (status >= 0)
        return status;
    status = 0;
    if (add) {
        status = apikey_add(&arguments, auth);
    } else if (list) {
        if (auth_list_api_keys(auth, print_api_key, NULL) < 0) {
            fprintf(stderr, "realmfs-server: cannot list the API keys: %s\n", auth_last_error());
            status = 1;
        }
    } else if (auth_revoke_api_key(auth, arguments.positional[0]) < 0) {
        fprintf(stderr, "realmfs-server: cannot revoke the API key %s: %s\n",
                arguments.positional[0], auth_last_error());
        status = 1;
    }
    auth_close(auth);
    return status;
}

/* ---- export-app -------------------------------------------------------- */

static int command_export_app(int argc, char **argv)
{
    command_arguments arguments;
    int status = parse_arguments("export-app", argc, argv,
                                 OPTION_BIT(OPTION_APP) | OPTION_BIT(OPTION_DATA) |
                                     OPTION_BIT(OPTION_OUT),
                                 0, 0, &arguments);
    if (status != 0 || arguments.help) {
        if (arguments.help)
            fputs(usage_text, stdout);
        return status;
    }
    const char *out_directory = arguments.value[OPTION_OUT];
    if (!out_directory)
        return usage_error("%s", "export-app needs --out OUTDIR");
    char message[1024];
    if (export_app_write(arguments.value[OPTION_APP], arguments.value[OPTION_DATA], out_directory,
                         message, sizeof message) < 0) {
        fprintf(stderr, "realmfs-server: export-app: %s\n", message);
        return 1;
    }
    return 0;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("%s", "missing command");
    const char *command = argv[1];
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(command, "--version") == 0) {
        printf("realmfs-server %s\n", REALMFS_VERSION);
        return 0;
    }
    if (strcmp(command, "serve") == 0)
        return command_serve(argc - 1, argv + 1);
    if (strcmp(command, "user") == 0)
        return command_user(argc - 1, argv + 1);
    if (strcmp(command, "apikey") == 0)
        return command_apikey(argc - 1, argv + 1);
    if (strcmp(command, "import") == 0)
        return transfer_command_import(argc - 1, argv + 1);
    if (strcmp(command, "export") == 0)
        return transfer_command_export(argc - 1, argv + 1);
    if (strcmp(command, "export-app") == 0)
        return command_export_app(argc - 1, argv + 1);
    return usage_error("unknown command %s", command);
}
