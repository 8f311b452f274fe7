/*
 * bench_objects.h — the objects the file-system benchmark writes.
 *
 * Object number i (0, 1, 2, ...) always has the same _id, file name and
 * content, so every mount in a run holds byte-identical files and a later
 * pass can find any object again without listing the directory.
 *
 * The content is what realmfs itself would store for it: its canonical
 * pretty Extended JSON (two-space indent, _id first, trailing newline; see
 * include/realmfs/ejson.h).  Writing the canonical form means realmfs keeps
 * exactly the bytes written, so the three mounts compared hold the same
 * files and `cmp` can prove it.
 */
#ifndef REALMFS_BENCH_OBJECTS_H
#define REALMFS_BENCH_OBJECTS_H

#include <stddef.h>
#include <stdint.h>

/* "<24 hex digits>.json" plus its NUL */
#define BENCH_OBJECT_NAME_SIZE 32
/* generous: a generated object is about 300 bytes */
#define BENCH_OBJECT_CONTENT_MAX 1024

/* Which version of an object to write: the one created, or the one an
 * update replaces it with (other field values, about the same size). */
typedef enum bench_revision {
    BENCH_REVISION_CREATED,
    BENCH_REVISION_UPDATED,
} bench_revision;

/* The file name of object number index ("<ObjectId>.json"); index must be
 * below 2^24 so that the ObjectId counter bytes keep names unique. */
void bench_object_name(uint32_t index, char name[BENCH_OBJECT_NAME_SIZE]);

/* Write the canonical content of object index into out (which holds
 * BENCH_OBJECT_CONTENT_MAX bytes, no NUL is added) and return its length. */
size_t bench_object_content(uint32_t index, bench_revision revision,
                            char out[BENCH_OBJECT_CONTENT_MAX]);

#endif
