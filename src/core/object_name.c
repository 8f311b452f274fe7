/*
 * object_name.c — file names of objects and the _ids they stand for.  The
 * naming scheme is described in object_name.h.
 */
#include "realmfs/object_name.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/value.h"

#define OBJECT_NAME_SUFFIX ".json"
#define OBJECT_NAME_SUFFIX_LENGTH (sizeof OBJECT_NAME_SUFFIX - 1)

/* The longest escaped string that is a name of its own, so that with its
 * suffix it fills OBJECT_NAME_MAX at most. */
#define OBJECT_NAME_PLAIN_STEM_MAX (OBJECT_NAME_MAX - OBJECT_NAME_SUFFIX_LENGTH)

/* How much of a long string's escaped form its hashed name keeps. */
#define OBJECT_NAME_HASHED_PREFIX_MAX 200

#define OBJECT_NAME_HASH_MARK "%~"
#define OBJECT_NAME_HASH_MARK_LENGTH (sizeof OBJECT_NAME_HASH_MARK - 1)
#define OBJECT_NAME_HASH_DIGITS 16

#define OBJECT_NAME_OBJECT_ID_DIGITS (2 * VALUE_OBJECT_ID_SIZE)

/* "%XX" */
#define OBJECT_NAME_ESCAPE_LENGTH 3
static const char object_name_escape_digits[] = "0123456789ABCDEF";

/* FNV-1a, 64-bit: offset basis 0xcbf29ce484222325, prime 0x100000001b3. */
uint64_t object_name_hash(const char *bytes, size_t length)
{
    uint64_t hash = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < length; i++) {
        hash ^= (unsigned char)bytes[i];
        hash *= UINT64_C(0x100000001b3);
    }
    return hash;
}

/* The value of a hex digit written with letters from ten ('a' or 'A')
 * onwards, or -1: escapes use uppercase, ObjectIds and hashes lowercase,
 * and each must use only its own case so that a name has one meaning. */
static int object_name_hex_value(char digit, char ten)
{
    if (digit >= '0' && digit <= '9')
        return digit - '0';
    if (digit >= ten && digit < ten + 6)
        return digit - ten + 10;
    return -1;
}

static bool object_name_is_lowercase_hex(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        if (object_name_hex_value(text[i], 'a') < 0)
            return false;
    }
    return true;
}

static bool object_name_is_object_id_text(const char *text, size_t length)
{
    return length == OBJECT_NAME_OBJECT_ID_DIGITS && object_name_is_lowercase_hex(text, length);
}

/*
 * Parses text that is an int64 written the one way the encoder writes it:
 * an optional '-', then digits with no leading zero ("0" itself, but not
 * "-0" or "007"), within range.  Anything else reads as a string.
 */
static bool object_name_parse_int(const char *text, size_t length, json_int_t *number)
{
    bool negative = length > 0 && text[0] == '-';
    const char *digits = text + negative;
    size_t digit_count = length - negative;
    if (digit_count == 0 || (digits[0] == '0' && (digit_count > 1 || negative)))
        return false;
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t magnitude = 0;
    for (size_t i = 0; i < digit_count; i++) {
        if (digits[i] < '0' || digits[i] > '9')
            return false;
        unsigned digit = (unsigned)(digits[i] - '0');
        if (magnitude > (limit - digit) / 10)
            return false;
        magnitude = magnitude * 10 + digit;
    }
    /* Written so that INT64_MIN never overflows on the way. */
    *number = negative ? -(json_int_t)(magnitude - 1) - 1 : (json_int_t)magnitude;
    return true;
}

/* The length of the well-formed UTF-8 sequence that starts text, or 0
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t object_name_utf8_sequence_length(const unsigned char *text, size_t available)
{
    unsigned char lead = text[0];
    size_t length;
    uint32_t code_point, smallest;
    if (lead < 0x80)
        return 1;
    if ((lead & 0xE0) == 0xC0) {
        length = 2;
        code_point = lead & 0x1F;
        smallest = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
        length = 3;
        code_point = lead & 0x0F;
        smallest = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
        length = 4;
        code_point = lead & 0x07;
        smallest = 0x10000;
    } else {
        return 0;
    }
    if (available < length)
        return 0;
    for (size_t i = 1; i < length; i++) {
        if ((text[i] & 0xC0) != 0x80)
            return 0;
        code_point = code_point << 6 | (text[i] & 0x3F);
    }
    if (code_point < smallest || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF))
        return 0;
    return length;
}

/* String _ids are JSON strings, so UTF-8; a name that decodes to anything
 * else cannot name an object. */
static bool object_name_is_utf8(const char *text, size_t length)
{
    const unsigned char *bytes = (const unsigned char *)text;
    size_t i = 0;
    while (i < length) {
        size_t sequence_length = object_name_utf8_sequence_length(bytes + i, length - i);
        if (sequence_length == 0)
            return false;
        i += sequence_length;
    }
    return true;
}

static bool object_name_is_utf8_continuation(char byte)
{
    return ((unsigned char)byte & 0xC0) == 0x80;
}

/* The first byte is escaped when, left as it is, the name would be hidden
 * (a leading '.') or would read as an int or ObjectId _id. */
static bool object_name_first_byte_needs_escape(const char *bytes, size_t length)
{
    json_int_t unused;
    return bytes[0] == '.' || object_name_parse_int(bytes, length, &unused) ||
           object_name_is_object_id_text(bytes, length);
}

static bool object_name_byte_needs_escape(char byte, size_t index, bool escape_first_byte)
{
    return byte == '%' || byte == '/' || byte == '\0' || (index == 0 && escape_first_byte);
}

static size_t object_name_escaped_length(char byte, size_t index, bool escape_first_byte)
{
    return object_name_byte_needs_escape(byte, index, escape_first_byte) ? OBJECT_NAME_ESCAPE_LENGTH
                                                                        : 1;
}

/*
 * Writes the escaped form of a string _id into out (not NUL-terminated),
 * stopping before the first byte whose escape would not fit in capacity;
 * when it stops early, it steps back to the start of the UTF-8 character
 * it was in, so that a cut name never ends with part of a character.
 * Returns how many bytes of the _id it wrote; *written gets the length of
 * the output.
 */
static size_t object_name_escape(const char *bytes, size_t length, char *out, size_t capacity,
                                 size_t *written)
{
    bool escape_first_byte = object_name_first_byte_needs_escape(bytes, length);
    size_t used = 0;
    size_t consumed = 0;
    for (; consumed < length; consumed++) {
        char byte = bytes[consumed];
        size_t byte_length = object_name_escaped_length(byte, consumed, escape_first_byte);
        if (used + byte_length > capacity)
            break;
        if (byte_length == 1) {
            out[used] = byte;
        } else {
            out[used] = '%';
            out[used + 1] = object_name_escape_digits[(unsigned char)byte >> 4];
            out[used + 2] = object_name_escape_digits[(unsigned char)byte & 0x0F];
        }
        used += byte_length;
    }
    while (consumed > 0 && consumed < length && object_name_is_utf8_continuation(bytes[consumed])) {
        consumed--;
        used -= object_name_escaped_length(bytes[consumed], consumed, escape_first_byte);
    }
    *written = used;
    return consumed;
}

/* Reverses %XX escapes (uppercase hex only) into out, which holds length
 * bytes.  False when a '%' does not start such an escape. */
static bool object_name_unescape(const char *escaped, size_t length, char *out, size_t *out_length)
{
    size_t used = 0;
    for (size_t i = 0; i < length; i++) {
        if (escaped[i] != '%') {
            out[used++] = escaped[i];
            continue;
        }
        if (length - i < OBJECT_NAME_ESCAPE_LENGTH)
            return false;
        int high = object_name_hex_value(escaped[i + 1], 'A');
        int low = object_name_hex_value(escaped[i + 2], 'A');
        if (high < 0 || low < 0)
            return false;
        out[used++] = (char)(high << 4 | low);
        i += OBJECT_NAME_ESCAPE_LENGTH - 1;
    }
    *out_length = used;
    return true;
}

/*
 * Decodes escaped text (a whole stem, or a hashed name's prefix) into out,
 * which holds length bytes.  The text must be exactly what the encoder
 * writes for what it decodes to: "%41" for "A", or an unescaped leading
 * '.', would give one _id two names.
 */
static bool object_name_decode_escaped(const char *escaped, size_t length, char *out,
                                       size_t *out_length)
{
    char reencoded[OBJECT_NAME_MAX];
    size_t reencoded_length;
    if (length == 0 || length > sizeof reencoded ||
        !object_name_unescape(escaped, length, out, out_length) ||
        !object_name_is_utf8(out, *out_length))
        return false;
    size_t consumed = object_name_escape(out, *out_length, reencoded, length, &reencoded_length);
    return consumed == *out_length && reencoded_length == length &&
           memcmp(reencoded, escaped, length) == 0;
}

/* The length of a name's stem, the part before ".json"; false when the name
 * has none or could not be a file name. */
static bool object_name_stem_length(const char *name, size_t *stem_length)
{
    size_t length = strnlen(name, OBJECT_NAME_MAX + 1);
    if (length > OBJECT_NAME_MAX || length <= OBJECT_NAME_SUFFIX_LENGTH ||
        memcmp(name + length - OBJECT_NAME_SUFFIX_LENGTH, OBJECT_NAME_SUFFIX,
               OBJECT_NAME_SUFFIX_LENGTH) != 0)
        return false;
    *stem_length = length - OBJECT_NAME_SUFFIX_LENGTH;
    return true;
}

static uint64_t object_name_parse_hash(const char *digits)
{
    uint64_t hash = 0;
    for (size_t i = 0; i < OBJECT_NAME_HASH_DIGITS; i++)
        hash = hash << 4 | (uint64_t)object_name_hex_value(digits[i], 'a');
    return hash;
}

/* Decodes a hashed stem, "<escaped prefix>%~<16 lowercase hex digits>",
 * into its prefix (the buffer holds stem_length bytes) and hash. */
static bool object_name_decode_hashed(const char *stem, size_t stem_length, char *prefix,
                                      size_t *prefix_length, uint64_t *hash)
{
    const size_t tail_length = OBJECT_NAME_HASH_MARK_LENGTH + OBJECT_NAME_HASH_DIGITS;
    if (stem_length <= tail_length)
        return false;
    size_t escaped_prefix_length = stem_length - tail_length;
    const char *mark = stem + escaped_prefix_length;
    const char *digits = mark + OBJECT_NAME_HASH_MARK_LENGTH;
    if (escaped_prefix_length > OBJECT_NAME_HASHED_PREFIX_MAX ||
        memcmp(mark, OBJECT_NAME_HASH_MARK, OBJECT_NAME_HASH_MARK_LENGTH) != 0 ||
        !object_name_is_lowercase_hex(digits, OBJECT_NAME_HASH_DIGITS) ||
        !object_name_decode_escaped(stem, escaped_prefix_length, prefix, prefix_length))
        return false;
    *hash = object_name_parse_hash(digits);
    return true;
}

static json_t *object_name_new_object_id(const char *digits)
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE];
    for (size_t i = 0; i < VALUE_OBJECT_ID_SIZE; i++) {
        int high = object_name_hex_value(digits[2 * i], 'a');
        int low = object_name_hex_value(digits[2 * i + 1], 'a');
        bytes[i] = (uint8_t)(high << 4 | low);
    }
    return value_new_object_id(bytes);
}

/* The forms are tried in an order that needs no look-ahead: an int or an
 * ObjectId stem holds no '%', and a plain string stem never holds "%~". */
object_name_kind object_name_classify(const char *name, json_t **id)
{
    size_t stem_length;
    json_int_t number;
    char decoded[OBJECT_NAME_MAX];
    size_t decoded_length;
    uint64_t hash;
    if (id != NULL)
        *id = NULL;
    if (!object_name_stem_length(name, &stem_length))
        return OBJECT_NAME_SCRATCH;
    if (object_name_parse_int(name, stem_length, &number)) {
        if (id != NULL)
            *id = json_integer(number);
        return OBJECT_NAME_ID;
    }
    if (object_name_is_object_id_text(name, stem_length)) {
        if (id != NULL)
            *id = object_name_new_object_id(name);
        return OBJECT_NAME_ID;
    }
    if (object_name_decode_hashed(name, stem_length, decoded, &decoded_length, &hash))
        return OBJECT_NAME_HASHED;
    if (!object_name_decode_escaped(name, stem_length, decoded, &decoded_length))
        return OBJECT_NAME_SCRATCH;
    if (id != NULL)
        *id = json_stringn(decoded, decoded_length);
    return OBJECT_NAME_ID;
}

static int object_name_from_object_id(const json_t *id, char name[OBJECT_NAME_MAX + 1])
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE];
    if (!value_get_object_id(id, bytes))
        return -EINVAL;
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < VALUE_OBJECT_ID_SIZE; i++) {
        name[2 * i] = digits[bytes[i] >> 4];
        name[2 * i + 1] = digits[bytes[i] & 0xf];
    }
    memcpy(name + OBJECT_NAME_OBJECT_ID_DIGITS, OBJECT_NAME_SUFFIX, OBJECT_NAME_SUFFIX_LENGTH + 1);
    return 0;
}

/* The escaped string, or when that is too long its cut prefix, the hash
 * mark and the hash of the whole string. */
static int object_name_from_string(const char *bytes, size_t length, char name[OBJECT_NAME_MAX + 1])
{
    if (length == 0 || !object_name_is_utf8(bytes, length))
        return -EINVAL;
    size_t written;
    if (object_name_escape(bytes, length, name, OBJECT_NAME_PLAIN_STEM_MAX, &written) < length) {
        object_name_escape(bytes, length, name, OBJECT_NAME_HASHED_PREFIX_MAX, &written);
        int tail_length = snprintf(name + written, OBJECT_NAME_MAX + 1 - written,
                                   "%s%016" PRIx64, OBJECT_NAME_HASH_MARK,
                                   object_name_hash(bytes, length));
        written += (size_t)tail_length;
    }
    memcpy(name + written, OBJECT_NAME_SUFFIX, OBJECT_NAME_SUFFIX_LENGTH + 1);
    return 0;
}

int object_name_from_id(const json_t *id, char name[OBJECT_NAME_MAX + 1])
{
    switch (value_type_of(id)) {
    case VALUE_INT:
        snprintf(name, OBJECT_NAME_MAX + 1, "%" JSON_INTEGER_FORMAT OBJECT_NAME_SUFFIX,
                 json_integer_value(id));
        return 0;
    case VALUE_OBJECT_ID:
        return object_name_from_object_id(id, name);
    case VALUE_STRING:
        return object_name_from_string(json_string_value(id), json_string_length(id), name);
    default:
        return -EINVAL;
    }
}

int object_name_hashed_parts(const char *name, char **prefix, size_t *prefix_length,
                             uint64_t *hash)
{
    size_t stem_length;
    char decoded[OBJECT_NAME_MAX];
    size_t decoded_length;
    if (!object_name_stem_length(name, &stem_length) ||
        !object_name_decode_hashed(name, stem_length, decoded, &decoded_length, hash))
        return -EINVAL;
    *prefix = malloc(decoded_length + 1);
    if (*prefix == NULL)
        return -ENOMEM;
    memcpy(*prefix, decoded, decoded_length);
    (*prefix)[decoded_length] = '\0';
    *prefix_length = decoded_length;
    return 0;
}
