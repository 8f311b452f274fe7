/*
 * object_name.h — how an object's _id becomes a file name and back.
 *
 *   int _id            decimal: "42.json", "-7.json"
 *   ObjectId _id       24 lowercase hex digits: "6650f0c2e4b0a1b2c3d4e5f6.json"
 *   string _id         the string itself, with these bytes escaped as %XX
 *                      (two uppercase hex digits): '%', '/', NUL, a leading
 *                      '.', and the first character when the whole string
 *                      would otherwise read as an int or an ObjectId ("42"
 *                      is "%342.json").  A name holding any %XX escape is
 *                      always a string _id.
 *   long string _id    when the escaped form would pass 250 bytes (so the
 *                      name would pass OBJECT_NAME_MAX): the first 200 bytes
 *                      of the escaped form (never splitting an escape or a
 *                      UTF-8 character), then "%~", then 16 lowercase hex
 *                      digits of the 64-bit FNV-1a hash of the whole _id.
 *                      Such a name is resolved through the store.
 *
 * An int is written the one way C prints it ("-0", "007" and "+5" are
 * strings), and a string is escaped the one way described above, so every
 * _id has exactly one name: a name with a needless escape ("%41.json") or
 * lowercase escape hex ("%2f") is not an object name.  The empty string
 * and strings that are not UTF-8 have no name.
 *
 * Every other name in a collection directory ("a1.json~", ".a1.json.swp",
 * "4913", "#a1.json#", "Task.json.tmp") is a scratch name: see
 * object_name_classify.
 */
#ifndef REALMFS_OBJECT_NAME_H
#define REALMFS_OBJECT_NAME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Longest file name object_name_from_id writes, including ".json". */
#define OBJECT_NAME_MAX 255

typedef enum object_name_kind {
    OBJECT_NAME_SCRATCH,  /* not an object name */
    OBJECT_NAME_ID,       /* decodes to an _id */
    OBJECT_NAME_HASHED,   /* a long string _id's hashed name */
} object_name_kind;

/*
 * Classify a file name (without directory).  For OBJECT_NAME_ID, *id (if
 * id is not NULL) receives a new reference to the decoded _id, or NULL when
 * out of memory; for the other kinds it receives NULL.  Names that end in
 * ".json" but are not the encoding of an _id (a bad or needless %XX, a '/',
 * an empty stem, a stem that starts with an unescaped '.', bytes that do
 * not decode to UTF-8) are scratch names.
 *
 * OBJECT_NAME_HASHED says only that the name has the hashed form.  An
 * object found through object_name_hashed_parts is the one named only when
 * object_name_from_id of its _id gives back the same name.
 */
object_name_kind object_name_classify(const char *name, json_t **id);

/* Write the file name of an _id (string, int or ObjectId) into name, which
 * holds OBJECT_NAME_MAX + 1 bytes.  0, or -EINVAL for other _id types, the
 * empty string and strings that are not UTF-8. */
int object_name_from_id(const json_t *id, char name[OBJECT_NAME_MAX + 1]);

/* For a hashed name: the decoded prefix of the string _id (malloc'd and
 * NUL-terminated, length in *prefix_length, may contain NUL) and the hash.
 * 0, -EINVAL when the name is not hashed (*prefix is then untouched), or
 * -ENOMEM. */
int object_name_hashed_parts(const char *name, char **prefix,
                             size_t *prefix_length, uint64_t *hash);

/* The 64-bit FNV-1a hash of bytes, as used in hashed names. */
uint64_t object_name_hash(const char *bytes, size_t length);

#endif
