/*
 * fuse_floor.c — the cheapest FUSE file system that can serve the
 * benchmark's create step: the floor under any FUSE file system's creates
 * on this machine (bench/run-fs --floor).
 *
 * It is libfuse's low-level API and nothing else: one flat directory in
 * which every create succeeds, writes are counted and dropped, and nothing
 * is stored.  It is served on one thread (fuse_session_loop), as realmfs
 * is (with its own loop), and it gives the kernel the same long entry timeouts and no
 * default_permissions, so the kernel sends it the same requests for a
 * create as it sends realmfs: LOOKUP (negative), CREATE, WRITE, FLUSH and
 * RELEASE.  What a create costs here is the kernel's and libfuse's share;
 * whatever realmfs or fuse-overlayfs spend above it is their own.
 *
 * usage: fuse_floor MOUNTPOINT   (stays in the foreground; unmount with
 * fusermount3 -u MOUNTPOINT)
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_SECONDS 60.0

/* Sizes of the files created so far, by inode number - 2 (1 is the root). */
static off_t *sizes;
static fuse_ino_t next_ino = 2;
static size_t sizes_capacity;

static void fill_attributes(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_uid = getuid();
    st->st_gid = getgid();
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0644;
        st->st_nlink = 1;
        st->st_size = sizes[ino - 2];
    }
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)parent;
    (void)name;
    /* names are never looked up again within the entry timeout: a name
     * the kernel does not know is a new one */
    struct fuse_entry_param negative = {.ino = 0, .entry_timeout = TIMEOUT_SECONDS};
    fuse_reply_entry(req, &negative);
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    if (ino != FUSE_ROOT_ID && ino >= next_ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct stat st;
    fill_attributes(ino, &st);
    fuse_reply_attr(req, &st, TIMEOUT_SECONDS);
}

static void floor_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                         struct fuse_file_info *fi)
{
    (void)name;
    (void)mode;
    if (parent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if ((size_t)(next_ino - 2) == sizes_capacity) {
        size_t capacity = sizes_capacity ? sizes_capacity * 2 : 65536;
        off_t *grown = realloc(sizes, capacity * sizeof *grown);
        if (!grown) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        sizes = grown;
        sizes_capacity = capacity;
    }
    fuse_ino_t ino = next_ino++;
    sizes[ino - 2] = 0;
    struct fuse_entry_param entry = {.ino = ino, .entry_timeout = TIMEOUT_SECONDS,
                                     .attr_timeout = TIMEOUT_SECONDS};
    fill_attributes(ino, &entry.attr);
    fi->direct_io = 1;
    fuse_reply_create(req, &entry, fi);
}

static void floor_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size,
                        off_t offset, struct fuse_file_info *fi)
{
    (void)data;
    (void)fi;
    if (offset + (off_t)size > sizes[ino - 2])
        sizes[ino - 2] = offset + (off_t)size;
    fuse_reply_write(req, size);
}

static void floor_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void floor_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void floor_forget(fuse_req_t req, fuse_ino_t ino, uint64_t count)
{
    (void)ino;
    (void)count;
    fuse_reply_none(req);
}

static const struct fuse_lowlevel_ops floor_operations = {
    .lookup = floor_lookup,
    .forget = floor_forget,
    .getattr = floor_getattr,
    .create = floor_create,
    .write = floor_write,
    .flush = floor_flush,
    .release = floor_release,
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuse_floor MOUNTPOINT\n");
        return 2;
    }
    char *fuse_argv[] = {argv[0], "-o", "fsname=fuse_floor", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
    struct fuse_session *session =
        fuse_session_new(&args, &floor_operations, sizeof floor_operations, NULL);
    if (!session) {
        fprintf(stderr, "fuse_floor: cannot create the FUSE session\n");
        return 1;
    }
    int status = 1;
    if (fuse_set_signal_handlers(session) != 0) {
        fprintf(stderr, "fuse_floor: cannot install signal handlers\n");
    } else {
        if (fuse_session_mount(session, argv[1]) != 0) {
            fprintf(stderr, "fuse_floor: cannot mount on %s\n", argv[1]);
        } else {
            status = fuse_session_loop(session) == 0 ? 0 : 1;
            fuse_session_unmount(session);
        }
        fuse_remove_signal_handlers(session);
    }
    fuse_session_destroy(session);
    free(sizes);
    return status;
}
