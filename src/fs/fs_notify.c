/*
 * fs_notify.c — the thread that tells the kernel to drop cached entries,
 * attributes and pages.
 *
 * libfuse's rule is that a notification must never be sent from inside a
 * request the kernel is waiting on for a related inode, nor while holding a
 * lock such a request needs: the kernel would wait for us and we for it.
 * So handlers and the sync thread only queue a notification here;
 * this thread, which serves no request and holds no lock while notifying,
 * delivers it.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "realmfs/object_name.h"

typedef struct notification {
    fuse_ino_t ino;        /* inode to invalidate (attributes and pages) */
    fuse_ino_t parent;     /* or: directory whose entry name to invalidate */
    char *name;
    struct notification *next;
} notification;

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_changed = PTHREAD_COND_INITIALIZER;
static notification *queue_head, *queue_tail;
static bool stopping;
static bool running;
static pthread_t notify_thread;
static struct fuse_session *notify_session;

static void deliver(const notification *item)
{
    /* -ENOENT only means the kernel no longer caches it: nothing to drop. */
    if (item->name)
        fuse_lowlevel_notify_inval_entry(notify_session, item->parent, item->name,
                                         strlen(item->name));
    else
        fuse_lowlevel_notify_inval_inode(notify_session, item->ino, 0, 0);
}

static void *notify_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&queue_lock);
    for (;;) {
        while (!queue_head && !stopping)
            pthread_cond_wait(&queue_changed, &queue_lock);
        if (!queue_head && stopping)
            break;
        notification *item = queue_head;
        queue_head = item->next;
        if (!queue_head)
            queue_tail = NULL;
        pthread_mutex_unlock(&queue_lock);
        deliver(item);
        free(item->name);
        free(item);
        pthread_mutex_lock(&queue_lock);
    }
    pthread_mutex_unlock(&queue_lock);
    return NULL;
}

int fs_notify_start(struct fuse_session *session)
{
    notify_session = session;
    stopping = false;
    int error = pthread_create(&notify_thread, NULL, notify_main, NULL);
    running = error == 0;
    return -error;
}

void fs_notify_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&queue_lock);
    stopping = true;
    pthread_cond_signal(&queue_changed);
    pthread_mutex_unlock(&queue_lock);
    pthread_join(notify_thread, NULL);
    running = false;
}

static void enqueue(fuse_ino_t ino, fuse_ino_t parent, const char *name)
{
    notification *item = calloc(1, sizeof *item);
    if (!item)
        return; /* the kernel's cache then expires on its own timeout */
    item->ino = ino;
    item->parent = parent;
    if (name && !(item->name = strdup(name))) {
        free(item);
        return;
    }
    pthread_mutex_lock(&queue_lock);
    if (queue_tail)
        queue_tail->next = item;
    else
        queue_head = item;
    queue_tail = item;
    pthread_cond_signal(&queue_changed);
    pthread_mutex_unlock(&queue_lock);
}

void fs_notify_inode(fuse_ino_t ino)
{
    enqueue(ino, 0, NULL);
}

void fs_notify_entry(fuse_ino_t parent, const char *name)
{
    enqueue(0, parent, name);
}

void fs_notify_object_changed(const char *collection, const json_t *id, bool listing_changed)
{
    fuse_ino_t directory = fs_nodes_find_ino(FUSE_ROOT_ID, collection);
    if (directory == 0) {
        /* The kernel holds at most a negative entry for the collection, and
         * the root's listing, where a new collection must show. */
        fs_notify_entry(FUSE_ROOT_ID, collection);
        if (listing_changed)
            fs_notify_inode(FUSE_ROOT_ID);
        return;
    }
    char name[OBJECT_NAME_MAX + 1];
    if (object_name_from_id(id, name) != 0)
        return;
    fuse_ino_t object = fs_nodes_find_ino(directory, name);
    if (object != 0)
        fs_notify_inode(object);
    fs_notify_entry(directory, name);
    if (listing_changed)
        fs_notify_inode(directory);
}

void fs_notify_schema_changed(const char *collection)
{
    fuse_ino_t control = fs_nodes_find_ino(FUSE_ROOT_ID, FS_CONTROL_DIR);
    fuse_ino_t directory = control ? fs_nodes_find_ino(control, "schema") : 0;
    if (directory == 0)
        return; /* never looked up: the kernel caches nothing under it */
    char name[PATH_MAX];
    snprintf(name, sizeof name, "%s.json", collection);
    fuse_ino_t schema = fs_nodes_find_ino(directory, name);
    if (schema != 0)
        fs_notify_inode(schema);
    fs_notify_entry(directory, name);
}
