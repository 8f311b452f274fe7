/*
 * fs_nodes.c — the inode table of a mount.
 *
 * Inode numbers are handed out in order and never reused while mounted, and
 * a node stays in the table for as long as its name exists, so `ls -i`
 * gives the same number for a file however often the kernel forgets it.
 * A node leaves only when it is detached (its name was removed or replaced)
 * and the kernel has forgotten it.
 *
 * Owned by the FUSE thread (see fs.h), which reads the table without
 * locking.  Only the name table is shared: the sync thread resolves names
 * to inode numbers (fs_nodes_find_ino) to invalidate the kernel's caches
 * after a download, so every change of the name table, and of the name and
 * parent of a node in it, happens under name_table_lock.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

static fs_node **nodes_by_ino;   /* index: ino; NULL once freed */
static size_t nodes_capacity;
static fuse_ino_t next_ino = FUSE_ROOT_ID;

static size_t pending_nodes;     /* nodes in the table with pending set */

static fs_node **name_table;     /* chains of attached nodes by (parent, name) */
static size_t name_table_size;
static size_t name_table_count;
static pthread_mutex_t name_table_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t name_hash(fuse_ino_t parent, const char *name)
{
    uint64_t hash = 1469598103934665603ULL ^ parent;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        hash ^= *p;
        hash *= 1099511628211ULL;
    }
    return hash;
}

static fs_node **name_slot(fuse_ino_t parent, const char *name)
{
    return &name_table[name_hash(parent, name) & (name_table_size - 1)];
}

static int grow_name_table(void)
{
    size_t new_size = name_table_size * 2;
    fs_node **new_table = calloc(new_size, sizeof *new_table);
    if (!new_table)
        return -1;
    for (size_t i = 0; i < name_table_size; i++) {
        fs_node *node = name_table[i];
        while (node) {
            fs_node *next = node->name_next;
            fs_node **slot = &new_table[name_hash(node->parent, node->name) & (new_size - 1)];
            node->name_next = *slot;
            *slot = node;
            node = next;
        }
    }
    free(name_table);
    name_table = new_table;
    name_table_size = new_size;
    return 0;
}

/* link_name and unlink_name: the caller holds name_table_lock. */
static void link_name(fs_node *node)
{
    if (name_table_count + 1 > name_table_size)
        grow_name_table(); /* on failure chains only get longer */
    fs_node **slot = name_slot(node->parent, node->name);
    node->name_next = *slot;
    *slot = node;
    name_table_count++;
}

static void unlink_name(fs_node *node)
{
    for (fs_node **slot = name_slot(node->parent, node->name); *slot; slot = &(*slot)->name_next) {
        if (*slot == node) {
            *slot = node->name_next;
            node->name_next = NULL;
            name_table_count--;
            return;
        }
    }
}

static void free_node(fs_node *node)
{
    fs_node_set_pending(node, false);
    nodes_by_ino[node->ino] = NULL;
    json_decref(node->id);
    free(node->name);
    free(node->collection);
    free(node);
}

int fs_nodes_init(void)
{
    nodes_capacity = 1024;
    nodes_by_ino = calloc(nodes_capacity, sizeof *nodes_by_ino);
    name_table_size = 1024;
    name_table = calloc(name_table_size, sizeof *name_table);
    if (!nodes_by_ino || !name_table)
        return -1;
    fs_node *root = fs_node_obtain(0, "", FS_NODE_ROOT, NULL);
    return root && root->ino == FUSE_ROOT_ID ? 0 : -1;
}

void fs_nodes_destroy(void)
{
    for (size_t i = 0; i < nodes_capacity; i++)
        if (nodes_by_ino[i])
            free_node(nodes_by_ino[i]);
    free(nodes_by_ino);
    free(name_table);
    nodes_by_ino = NULL;
    name_table = NULL;
}

fs_node *fs_node_get(fuse_ino_t ino)
{
    return ino < nodes_capacity ? nodes_by_ino[ino] : NULL;
}

fs_node *fs_node_find(fuse_ino_t parent, const char *name)
{
    for (fs_node *node = *name_slot(parent, name); node; node = node->name_next)
        if (node->parent == parent && strcmp(node->name, name) == 0)
            return node;
    return NULL;
}

fuse_ino_t fs_nodes_find_ino(fuse_ino_t parent, const char *name)
{
    pthread_mutex_lock(&name_table_lock);
    const fs_node *node = name_table ? fs_node_find(parent, name) : NULL;
    fuse_ino_t ino = node ? node->ino : 0;
    pthread_mutex_unlock(&name_table_lock);
    return ino;
}

fs_node *fs_node_obtain(fuse_ino_t parent, const char *name, fs_node_kind kind,
                        const char *collection)
{
    fs_node *node = fs_node_find(parent, name);
    if (node) {
        node->kind = kind;
        return node;
    }
    if (next_ino >= nodes_capacity) {
        size_t new_capacity = nodes_capacity * 2;
        fs_node **grown = realloc(nodes_by_ino, new_capacity * sizeof *grown);
        if (!grown)
            return NULL;
        memset(grown + nodes_capacity, 0, (new_capacity - nodes_capacity) * sizeof *grown);
        nodes_by_ino = grown;
        nodes_capacity = new_capacity;
    }
    node = calloc(1, sizeof *node);
    if (!node)
        return NULL;
    node->name = strdup(name);
    node->collection = collection ? strdup(collection) : NULL;
    if (!node->name || (collection && !node->collection)) {
        free(node->name);
        free(node->collection);
        free(node);
        return NULL;
    }
    node->ino = next_ino++;
    node->kind = kind;
    node->parent = parent;
    nodes_by_ino[node->ino] = node;
    pthread_mutex_lock(&name_table_lock);
    link_name(node);
    pthread_mutex_unlock(&name_table_lock);
    return node;
}

void fs_node_detach(fs_node *node)
{
    if (node->parent == 0)
        return;
    pthread_mutex_lock(&name_table_lock);
    unlink_name(node);
    node->parent = 0;
    pthread_mutex_unlock(&name_table_lock);
    fs_node_set_pending(node, false);
    if (node->lookups == 0 && node->ino != FUSE_ROOT_ID)
        free_node(node);
}

void fs_node_move(fs_node *node, fuse_ino_t parent, const char *name)
{
    fs_node *previous = fs_node_find(parent, name);
    if (previous == node)
        return;
    if (previous)
        fs_node_detach(previous);
    char *new_name = strdup(name);
    if (!new_name)
        return;
    pthread_mutex_lock(&name_table_lock);
    if (node->parent != 0)
        unlink_name(node);
    char *old_name = node->name;
    node->name = new_name;
    node->parent = parent;
    link_name(node);
    pthread_mutex_unlock(&name_table_lock);
    free(old_name);
}

void fs_node_forget(fs_node *node, uint64_t count)
{
    node->lookups = count > node->lookups ? 0 : node->lookups - count;
    if (node->lookups == 0 && node->parent == 0 && node->ino != FUSE_ROOT_ID)
        free_node(node);
}

/* Counting pending nodes lets opendir skip the walk over the whole table
 * in the usual case, where no file is being created. */
void fs_node_set_pending(fs_node *node, bool pending)
{
    if (node->pending != pending && node->ino < nodes_capacity && nodes_by_ino[node->ino] == node)
        pending_nodes += pending ? 1 : (size_t)-1;
    node->pending = pending;
}

int fs_nodes_visit_pending(fuse_ino_t collection_ino,
                           int (*visit)(fs_node *node, void *context), void *context)
{
    if (pending_nodes == 0)
        return 0;
    for (fuse_ino_t ino = FUSE_ROOT_ID; ino < next_ino; ino++) {
        fs_node *node = nodes_by_ino[ino];
        if (node && node->pending && node->parent == collection_ino) {
            int stop = visit(node, context);
            if (stop)
                return stop;
        }
    }
    return 0;
}
