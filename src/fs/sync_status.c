/*
 * sync_status.c — the mutex-protected state a synced mount's sync thread
 * shares with the FUSE thread (sync_status.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "sync_status.h"

struct sync_status {
    pthread_mutex_t lock;
    sync_status_snapshot current;
    void (*wake)(void *context);
    void *wake_context;
};

static int64_t now_ms(void)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
}

int sync_status_new(const char *server_url, const char *app_id, const char *user,
                    sync_status **out)
{
    sync_status *status = calloc(1, sizeof *status);
    if (!status)
        return -ENOMEM;
    int error = pthread_mutex_init(&status->lock, NULL);
    if (error) {
        free(status);
        return -error;
    }
    status->current.state = SYNC_STATE_DISABLED;
    snprintf(status->current.server_url, sizeof status->current.server_url, "%s", server_url);
    snprintf(status->current.app_id, sizeof status->current.app_id, "%s", app_id);
    snprintf(status->current.user, sizeof status->current.user, "%s", user);
    *out = status;
    return 0;
}

void sync_status_free(sync_status *status)
{
    if (!status)
        return;
    pthread_mutex_destroy(&status->lock);
    free(status);
}

void sync_status_get(sync_status *status, sync_status_snapshot *snapshot)
{
    pthread_mutex_lock(&status->lock);
    *snapshot = status->current;
    pthread_mutex_unlock(&status->lock);
}

const char *sync_status_state_name(sync_connection_state state)
{
    switch (state) {
    case SYNC_STATE_DISABLED:
        return "disabled";
    case SYNC_STATE_CONNECTING:
        return "connecting";
    case SYNC_STATE_CONNECTED:
        return "connected";
    case SYNC_STATE_OFFLINE:
        return "offline";
    case SYNC_STATE_ERROR:
        return "error";
    }
    return "unknown";
}

/* The waker runs under the lock, so that once sync_status_set_waker(NULL)
 * has returned no call into the sync thread's transport is still under way.
 * It must therefore not block (sync_transport_wake only writes to a pipe). */
static void wake_sync_thread(sync_status *status)
{
    pthread_mutex_lock(&status->lock);
    void (*wake)(void *) = status->wake;
    void *context = status->wake_context;
    if (wake)
        wake(context);
    pthread_mutex_unlock(&status->lock);
}

uint64_t sync_status_request_mark(sync_status *status)
{
    pthread_mutex_lock(&status->lock);
    uint64_t request = ++status->current.mark_requested;
    pthread_mutex_unlock(&status->lock);
    wake_sync_thread(status);
    return request;
}

void sync_status_wake(sync_status *status)
{
    wake_sync_thread(status);
}

void sync_status_set_waker(sync_status *status, void (*wake)(void *context), void *context)
{
    pthread_mutex_lock(&status->lock);
    status->wake = wake;
    status->wake_context = context;
    pthread_mutex_unlock(&status->lock);
}

void sync_status_set_state(sync_status *status, sync_connection_state state, const char *error,
                           int64_t retry_at_ms)
{
    pthread_mutex_lock(&status->lock);
    sync_status_snapshot *current = &status->current;
    if (state == SYNC_STATE_CONNECTED && current->state != SYNC_STATE_CONNECTED) {
        current->connected_at_ms = now_ms();
        current->last_error[0] = '\0';
    } else if (state != SYNC_STATE_CONNECTED) {
        current->connected_at_ms = 0;
    }
    if (error)
        snprintf(current->last_error, sizeof current->last_error, "%s", error);
    current->state = state;
    current->retry_at_ms = retry_at_ms;
    pthread_mutex_unlock(&status->lock);
}

void sync_status_set_bootstrap(sync_status *status, uint64_t query_version, double progress)
{
    pthread_mutex_lock(&status->lock);
    status->current.sent_query_version = query_version;
    status->current.bootstrap_progress = progress;
    pthread_mutex_unlock(&status->lock);
}

void sync_status_set_mark_answered(sync_status *status, uint64_t request)
{
    pthread_mutex_lock(&status->lock);
    if (request > status->current.mark_answered)
        status->current.mark_answered = request;
    pthread_mutex_unlock(&status->lock);
}
