/*
 * fault_proxy.c — a TCP proxy that loses connections on command, for tests
 * of what survives a flaky network (tests/integration/test_convergence.sh).
 *
 *   fault_proxy --target HOST:PORT [--listen HOST:PORT]
 *
 * Listens on --listen (default 127.0.0.1:0: any free port), prints
 * "listening on HOST:PORT" on standard output when ready for commands, and
 * forwards every accepted connection to --target, bytes unchanged in both
 * directions (a half-close is passed on as a half-close). HOST is an IPv4
 * address. The target is connected with a blocking connect(), which is
 * immediate on loopback, the only place this proxy is meant for; when the
 * target refuses, the client's connection is reset.
 *
 * Commands are signals, so a shell script gives them with kill:
 *
 *   SIGHUP   cut: reset every connection (both ends get ECONNRESET, and what
 *            the proxy read but did not pass on yet is lost); new
 *            connections are forwarded
 *   SIGUSR1  down: cut, then reset every new connection as soon as it is
 *            accepted (the client sees it reset at once), until SIGUSR2
 *   SIGUSR2  up: forward new connections again
 *   SIGTERM, SIGINT  reset every connection and exit 0
 *
 * Signals arrive through a signalfd in the poll loop, so a command is
 * carried out between two transfers, never in the middle of one; two equal
 * signals sent before the proxy reads them count as one. Each command and
 * each connection writes one line on standard error. Exit status: 0 after
 * SIGTERM or SIGINT, 1 on a failure (with a message), 2 on a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_BUFFER_SIZE 65536

/* Bytes read from one socket and not yet written to the other. */
typedef struct proxy_direction {
    int from;
    int to;
    size_t start; /* first byte not yet written */
    size_t end;   /* one past the last byte read */
    bool end_of_input; /* `from` sent its FIN */
    bool shut_down;    /* the FIN was passed on to `to` */
    char buffer[PROXY_BUFFER_SIZE];
} proxy_direction;

/* One forwarded connection: client to target, and target to client. */
typedef struct proxy_connection {
    proxy_direction upstream;
    proxy_direction downstream;
} proxy_connection;

typedef struct proxy {
    int listener;
    int signals;
    bool down;
    proxy_connection **connections;
    size_t connection_count;
    size_t connection_capacity;
    struct sockaddr_in target;
} proxy;

static void usage_error(const char *message)
{
    fprintf(stderr, "fault_proxy: %s\nusage: fault_proxy --target HOST:PORT [--listen HOST:PORT]\n",
            message);
    exit(2);
}

static void fail(const char *what)
{
    fprintf(stderr, "fault_proxy: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Parses "A.B.C.D:PORT" into address; false when it is not one. */
static bool parse_address(const char *text, struct sockaddr_in *address)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= INET_ADDRSTRLEN)
        return false;
    char host[INET_ADDRSTRLEN];
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *port_end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &port_end, 10);
    if (colon[1] == '\0' || *port_end != '\0' || errno != 0 || port > 65535)
        return false;
    memset(address, 0, sizeof *address);
    address->sin_family = AF_INET;
    address->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &address->sin_addr) == 1;
}

/* Closes fd so that its peer gets a reset rather than an orderly end. */
static void reset_socket(int fd)
{
    struct linger abort_on_close = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close) != 0)
        fprintf(stderr, "fault_proxy: cannot make a reset of fd %d: %s\n", fd, strerror(errno));
    close(fd);
}

static void remove_connection(proxy *proxy, size_t index, bool reset)
{
    proxy_connection *connection = proxy->connections[index];
    int client = connection->upstream.from;
    int target = connection->upstream.to;
    if (reset) {
        reset_socket(client);
        reset_socket(target);
    } else {
        close(client);
        close(target);
    }
    free(connection);
    proxy->connections[index] = proxy->connections[--proxy->connection_count];
}

static void cut_all(proxy *proxy, const char *why)
{
    size_t count = proxy->connection_count;
    while (proxy->connection_count > 0)
        remove_connection(proxy, proxy->connection_count - 1, true);
    fprintf(stderr, "fault_proxy: %s: reset %zu connections\n", why, count);
}

static void add_connection(proxy *proxy, int client, int target)
{
    if (proxy->connection_count == proxy->connection_capacity) {
        size_t capacity = proxy->connection_capacity ? 2 * proxy->connection_capacity : 8;
        proxy_connection **grown = realloc(proxy->connections, capacity * sizeof *grown);
        if (!grown)
            fail("cannot grow the connection table");
        proxy->connections = grown;
        proxy->connection_capacity = capacity;
    }
    proxy_connection *connection = calloc(1, sizeof *connection);
    if (!connection)
        fail("cannot allocate a connection");
    connection->upstream.from = client;
    connection->upstream.to = target;
    connection->downstream.from = target;
    connection->downstream.to = client;
    proxy->connections[proxy->connection_count++] = connection;
}

/* Accepts one connection and forwards it, or resets it while down or when
 * the target refuses. */
static void accept_connection(proxy *proxy)
{
    int client = accept4(proxy->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            fail("accept");
        return;
    }
    if (proxy->down) {
        reset_socket(client);
        fprintf(stderr, "fault_proxy: down: reset a new connection\n");
        return;
    }
    int target = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (target < 0)
        fail("socket");
    if (connect(target, (const struct sockaddr *)&proxy->target, sizeof proxy->target) != 0) {
        fprintf(stderr, "fault_proxy: cannot connect to the target: %s\n", strerror(errno));
        close(target);
        reset_socket(client);
        return;
    }
    int flags = fcntl(target, F_GETFL);
    if (flags < 0 || fcntl(target, F_SETFL, flags | O_NONBLOCK) != 0)
        fail("cannot make the target socket non-blocking");
    add_connection(proxy, client, target);
    fprintf(stderr, "fault_proxy: forwarding a connection (%zu open)\n", proxy->connection_count);
}

/* The poll events `fd` needs for the transfers of `connection`. */
static short wanted_events(const proxy_connection *connection, int fd)
{
    short events = 0;
    const proxy_direction *directions[] = {&connection->upstream, &connection->downstream};
    for (size_t i = 0; i < 2; i++) {
        const proxy_direction *direction = directions[i];
        if (direction->from == fd && !direction->end_of_input && direction->end < PROXY_BUFFER_SIZE)
            events |= POLLIN;
        if (direction->to == fd && direction->start < direction->end)
            events |= POLLOUT;
    }
    return events;
}

/* Moves what it can from `from` to `to` without blocking; false when the
 * connection broke. */
static bool transfer(proxy_direction *direction)
{
    if (!direction->end_of_input && direction->end < PROXY_BUFFER_SIZE) {
        ssize_t n = recv(direction->from, direction->buffer + direction->end,
                         PROXY_BUFFER_SIZE - direction->end, 0);
        if (n > 0)
            direction->end += (size_t)n;
        else if (n == 0)
            direction->end_of_input = true;
        else if (errno != EAGAIN && errno != EINTR)
            return false;
    }
    if (direction->start < direction->end) {
        ssize_t n = send(direction->to, direction->buffer + direction->start,
                         direction->end - direction->start, MSG_NOSIGNAL);
        if (n > 0)
            direction->start += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (direction->start == direction->end)
            direction->start = direction->end = 0;
    }
    if (direction->end_of_input && direction->start == direction->end && !direction->shut_down) {
        if (shutdown(direction->to, SHUT_WR) != 0)
            return false;
        direction->shut_down = true;
    }
    return true;
}

/* Carries out the commands waiting in the signalfd; false after SIGTERM or
 * SIGINT. */
static bool run_commands(proxy *proxy)
{
    struct signalfd_siginfo signal_info;
    ssize_t n;
    while ((n = read(proxy->signals, &signal_info, sizeof signal_info)) == sizeof signal_info) {
        switch (signal_info.ssi_signo) {
        case SIGHUP:
            cut_all(proxy, "cut");
            break;
        case SIGUSR1:
            proxy->down = true;
            cut_all(proxy, "down");
            break;
        case SIGUSR2:
            proxy->down = false;
            fprintf(stderr, "fault_proxy: up\n");
            break;
        default:
            cut_all(proxy, "exit");
            return false;
        }
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        fail("cannot read the signalfd");
    return true;
}

/* Polls the listener, the signalfd and both sockets of every connection
 * until a command says to exit. */
static void serve(proxy *proxy)
{
    struct pollfd *polled = NULL;
    size_t polled_capacity = 0;
    for (;;) {
        size_t count = 2 + 2 * proxy->connection_count;
        if (count > polled_capacity) {
            polled_capacity = 2 * count;
            free(polled);
            polled = malloc(polled_capacity * sizeof *polled);
            if (!polled)
                fail("cannot allocate the poll set");
        }
        polled[0] = (struct pollfd){.fd = proxy->listener, .events = POLLIN};
        polled[1] = (struct pollfd){.fd = proxy->signals, .events = POLLIN};
        for (size_t i = 0; i < proxy->connection_count; i++) {
            const proxy_connection *connection = proxy->connections[i];
            int client = connection->upstream.from, target = connection->upstream.to;
            polled[2 + 2 * i] = (struct pollfd){.fd = client, .events = wanted_events(connection, client)};
            polled[3 + 2 * i] = (struct pollfd){.fd = target, .events = wanted_events(connection, target)};
        }
        if (poll(polled, count, -1) < 0) {
            if (errno == EINTR)
                continue;
            fail("poll");
        }
        /* Connections first, from the last: removing one moves the last
         * into its slot, which this loop has already visited. */
        for (size_t i = proxy->connection_count; i-- > 0;) {
            short events = polled[2 + 2 * i].revents | polled[3 + 2 * i].revents;
            if (!events)
                continue;
            /* An error on either end (a reset, mostly) ends both: the
             * peer's connection is gone, so is the other one. */
            proxy_connection *connection = proxy->connections[i];
            bool open = !(events & (POLLERR | POLLNVAL)) && transfer(&connection->upstream) &&
                        transfer(&connection->downstream);
            bool finished = connection->upstream.shut_down && connection->downstream.shut_down;
            if (!open || finished) {
                remove_connection(proxy, i, !open);
                fprintf(stderr, "fault_proxy: a connection %s (%zu open)\n",
                        open ? "ended" : "broke", proxy->connection_count);
            }
        }
        if (polled[1].revents && !run_commands(proxy))
            break;
        if (polled[0].revents)
            accept_connection(proxy);
    }
    free(polled);
}

int main(int argc, char **argv)
{
    proxy proxy = {0};
    struct sockaddr_in listen_address = {.sin_family = AF_INET,
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool have_target = false;
    for (int i = 1; i < argc; i++) {
        if (i + 1 == argc)
            usage_error("an option without its value");
        if (strcmp(argv[i], "--target") == 0) {
            if (!parse_address(argv[++i], &proxy.target))
                usage_error("--target: not an IPv4 HOST:PORT");
            have_target = true;
        } else if (strcmp(argv[i], "--listen") == 0) {
            if (!parse_address(argv[++i], &listen_address))
                usage_error("--listen: not an IPv4 HOST:PORT");
        } else {
            usage_error("unknown option");
        }
    }
    if (!have_target)
        usage_error("--target is required");

    sigset_t commands;
    sigemptyset(&commands);
    int command_signals[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof command_signals / sizeof command_signals[0]; i++)
        sigaddset(&commands, command_signals[i]);
    if (sigprocmask(SIG_BLOCK, &commands, NULL) != 0)
        fail("sigprocmask");
    proxy.signals = signalfd(-1, &commands, SFD_NONBLOCK | SFD_CLOEXEC);
    if (proxy.signals < 0)
        fail("signalfd");

    proxy.listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (proxy.listener < 0)
        fail("socket");
    int reuse = 1;
    if (setsockopt(proxy.listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) != 0)
        fail("setsockopt SO_REUSEADDR");
    if (bind(proxy.listener, (const struct sockaddr *)&listen_address, sizeof listen_address) != 0)
        fail("bind");
    if (listen(proxy.listener, 64) != 0)
        fail("listen");
    socklen_t length = sizeof listen_address;
    if (getsockname(proxy.listener, (struct sockaddr *)&listen_address, &length) != 0)
        fail("getsockname");
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &listen_address.sin_addr, host, sizeof host);
    printf("listening on %s:%u\n", host, (unsigned)ntohs(listen_address.sin_port));
    if (fflush(stdout) != 0)
        fail("cannot write to standard output");

    serve(&proxy);
    free(proxy.connections);
    close(proxy.listener);
    close(proxy.signals);
    return 0;
}
