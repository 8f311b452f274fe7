/*
 * ejson_fields.c — ejson_parse_fields: Extended JSON read for a few
 * top-level fields only (see ejson.h).
 *
 * ejson_parse builds every field twice over (jansson's tree, then its
 * normalized copy), yet a query reads one or two of them.  This reader
 * walks the text once: it builds the selected fields straight into their
 * normalized form and checks every other value without building it.
 *
 * It must accept exactly the text ejson_parse accepts.  So it checks what
 * jansson checks (syntax, UTF-8, escapes, duplicate keys, integers that
 * fit in 64 bits, reals that stay finite) and what normalizing checks (no
 * '$' at the start of a field name, well-formed wrappers).  Wrappers are
 * decoded by ejson.c itself: the usual one-string form ({"$oid": "..."})
 * through ejson_decode_string_wrapper, which allocates nothing, any other
 * form built as jansson would build it and given to ejson_normalize.
 * Whatever this reader does not check itself (an escaped key, deep
 * nesting, very many keys, long numbers) makes it give up, and ejson_parse
 * reads the whole text instead, so results and error messages are always
 * ejson_parse's.
 */
#include "realmfs/ejson.h"

#include <endian.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ejson_internal.h"
#include "value_internal.h"

/* ------------------------------------------------------------------------ */
/* Field sets                                                                */

typedef struct field_name {
    char *bytes; /* NUL-terminated */
    size_t length;
} field_name;

struct ejson_field_set {
    field_name *names;
    size_t count;
    size_t capacity;
};

ejson_field_set *ejson_field_set_new(void)
{
    return calloc(1, sizeof(ejson_field_set));
}

void ejson_field_set_free(ejson_field_set *fields)
{
    if (!fields)
        return;
    for (size_t i = 0; i < fields->count; i++)
        free(fields->names[i].bytes);
    free(fields->names);
    free(fields);
}

/* Whether two names are the same bytes.  Names of one object mostly differ
 * in length or in their first byte, so memcmp is seldom called. */
static bool same_name(const char *name, size_t length, const char *other, size_t other_length)
{
    return length == other_length &&
           (length == 0 || (name[0] == other[0] && memcmp(name, other, length) == 0));
}

static bool field_set_contains(const ejson_field_set *fields, const char *name, size_t length)
{
    for (size_t i = 0; i < fields->count; i++)
        if (same_name(fields->names[i].bytes, fields->names[i].length, name, length))
            return true;
    return false;
}

int ejson_field_set_add_path(ejson_field_set *fields, const char *path)
{
    size_t length = strcspn(path, ".");
    if (field_set_contains(fields, path, length))
        return 0;
    if (fields->count == fields->capacity) {
        size_t capacity = fields->capacity ? 2 * fields->capacity : 4;
        field_name *grown = realloc(fields->names, capacity * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        fields->names = grown;
        fields->capacity = capacity;
    }
    char *bytes = strndup(path, length);
    if (!bytes)
        return -ENOMEM;
    fields->names[fields->count++] = (field_name){bytes, length};
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The reader                                                                */

enum {
    /* Beyond any of these limits the reader gives up and ejson_parse reads
     * the text: nesting depth; keys of the objects open at once (checked
     * for duplicates); characters in a number or in a wrapper's string. */
    READER_MAX_DEPTH = 64,
    READER_MAX_OPEN_KEYS = 256,
    READER_MAX_TOKEN = 64,
};

typedef enum read_mode {
    READ_CHECK,      /* check the value, build nothing */
    READ_NORMALIZED, /* build it as ejson_parse does */
    READ_RAW,        /* build it as jansson does, for ejson_normalize */
} read_mode;

typedef struct text_span {
    const char *bytes;
    size_t length;
} text_span;

typedef struct reader {
    const char *text;
    size_t length;
    size_t at;
    bool canonical;  /* unselected fields are skipped, not checked */
    unsigned depth;
    size_t open_key_count;
    text_span open_keys[READER_MAX_OPEN_KEYS]; /* innermost object's last */
} reader;

/* Eight bytes as a number whose lowest byte is the first. */
static uint64_t load_word(const char *bytes)
{
    uint64_t word;
    memcpy(&word, bytes, sizeof word);
    return le64toh(word);
}

#define EVERY_BYTE(byte) (UINT64_C(0x0101010101010101) * (byte))

static bool is_json_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static void reader_skip_space(reader *r)
{
    const char *text = r->text;
    size_t at = r->at, length = r->length;
    while (at < length && is_json_space(text[at]))
        at++;
    r->at = at;
}

static bool reader_at(const reader *r, char expected)
{
    return r->at < r->length && r->text[r->at] == expected;
}

static bool reader_take(reader *r, char expected)
{
    if (!reader_at(r, expected))
        return false;
    r->at++;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */

/*
 * Marks (with its top bit) each byte of word that needs a closer look
 * inside a string: a quote, a backslash, a control character or a
 * non-ASCII byte.  It tests eight bytes in a handful of instructions, with
 * the has-zero-byte idiom: a byte below n makes its byte of word - n borrow
 * into its top bit.  The first byte that needs a look is always marked; a
 * borrow may also mark a later byte, never an earlier one, so the lowest
 * marked byte is the first that needs a look.
 */
static uint64_t special_bytes(uint64_t word)
{
    uint64_t quotes = word ^ EVERY_BYTE('"'), backslashes = word ^ EVERY_BYTE('\\');
    uint64_t control = (word - EVERY_BYTE(0x20)) & ~word;
    uint64_t quote = (quotes - EVERY_BYTE(1)) & ~quotes;
    uint64_t backslash = (backslashes - EVERY_BYTE(1)) & ~backslashes;
    return (control | quote | backslash | word) & EVERY_BYTE(0x80);
}

static bool is_special_byte(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20 || c >= 0x80;
}

/* How many bytes from bytes on need no closer look inside a string. */
static inline size_t plain_length(const char *bytes, size_t available)
{
    size_t length = 0;
    for (; available - length >= 8; length += 8) {
        uint64_t special = special_bytes(load_word(bytes + length));
        if (special)
            return length + (size_t)__builtin_ctzll(special) / 8;
    }
    while (length < available && !is_special_byte((unsigned char)bytes[length]))
        length++;
    return length;
}

/* The rest of a string from at, the first byte of it that needs a closer
 * look (see reader_scan_string): returns where its closing quote is, or 0
 * (where no closing quote can be, as the opening one is before it) when
 * jansson would refuse the string. */
static size_t find_string_end(const char *text, size_t at, size_t end, bool *escaped)
{
    for (;;) {
        if (at >= end)
            return 0;
        unsigned char c = (unsigned char)text[at];
        size_t used = 1;
        long code_point;
        if (c == '"')
            return at;
        if (c == '\\') {
            used = value_decode_json_escape(text + at, end - at, &code_point);
            *escaped = true;
        } else if (c < 0x20) {
            used = 0;
        } else if (c >= 0x80) {
            used = value_utf8_sequence_length((const unsigned char *)text + at, end - at);
        }
        if (used == 0)
            return 0;
        at += used + plain_length(text + at + used, end - at - used);
    }
}

/*
 * Moves past the string at the reader (its opening '"'), checking it as
 * jansson reads strings: no control characters, well-formed UTF-8, valid
 * escapes.  *raw is the text between the quotes, and *escaped tells
 * whether it holds an escape.  false when jansson would refuse it.  Most
 * strings are plain ASCII up to their closing quote, which is found here
 * without a call.
 */
static inline bool reader_scan_string(reader *r, text_span *raw, bool *escaped)
{
    const char *text = r->text;
    size_t start = r->at + 1, end = r->length;
    size_t at = start + plain_length(text + start, end - start);
    *escaped = false;
    if (at >= end || text[at] != '"') {
        at = find_string_end(text, at, end, escaped);
        if (at == 0)
            return false;
    }
    *raw = (text_span){text + start, at - start};
    r->at = at + 1;
    return true;
}

/* The json string of raw text that reader_scan_string accepted and that
 * holds escapes.  An escape is never shorter than what it decodes to, so
 * raw.length bytes hold the result. */
static json_t *new_unescaped_string(text_span raw)
{
    char *decoded = malloc(raw.length ? raw.length : 1);
    if (!decoded)
        return NULL;
    size_t length = 0;
    for (size_t at = 0; at < raw.length;) {
        long code_point = 0; /* value_decode_json_escape sets it: the text was checked */
        if (raw.bytes[at] == '\\') {
            at += value_decode_json_escape(raw.bytes + at, raw.length - at, &code_point);
            length += value_encode_utf8((uint32_t)code_point, decoded + length);
        } else {
            decoded[length++] = raw.bytes[at++];
        }
    }
    json_t *string = json_stringn_nocheck(decoded, length);
    free(decoded);
    return string;
}

static bool reader_string(reader *r, read_mode mode, json_t **out)
{
    text_span raw;
    bool escaped;
    if (!reader_scan_string(r, &raw, &escaped))
        return false;
    if (mode == READ_CHECK)
        return true;
    *out = escaped ? new_unescaped_string(raw) : json_stringn_nocheck(raw.bytes, raw.length);
    return *out != NULL;
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                   */

/* A number as jansson reads it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * is an integer without the fraction and the exponent, a real otherwise. */
typedef struct number_token {
    text_span text;
    bool is_integer;
    size_t integer_digits;   /* before the '.' or exponent, leading '0' included */
    long magnitude_bound;    /* the real is below 10 to this power */
} number_token;

static size_t skip_digits(const reader *r, size_t at)
{
    while (at < r->length && r->text[at] >= '0' && r->text[at] <= '9')
        at++;
    return at;
}

/* The exponent's digits from at to end, as a number no larger than a
 * bound far beyond any double's. */
static long bounded_exponent(const char *text, size_t at, size_t end)
{
    long exponent = 0;
    for (; at < end && exponent < 100000; at++)
        exponent = exponent * 10 + (text[at] - '0');
    return exponent;
}

static bool reader_scan_number(reader *r, number_token *number)
{
    size_t start = r->at, at = r->at;
    if (reader_at(r, '-'))
        at++;
    size_t digits_start = at;
    if (at < r->length && r->text[at] == '0')
        at++;
    else if (at < r->length && r->text[at] >= '1' && r->text[at] <= '9')
        at = skip_digits(r, at);
    else
        return false;
    number->integer_digits = at - digits_start;
    long significant = r->text[digits_start] == '0' ? 0 : (long)number->integer_digits;
    number->is_integer = true;
    number->magnitude_bound = significant;
    if (at < r->length && r->text[at] == '.') {
        size_t fraction = at + 1;
        at = skip_digits(r, fraction);
        if (at == fraction)
            return false;
        number->is_integer = false;
    }
    if (at < r->length && (r->text[at] == 'e' || r->text[at] == 'E')) {
        at++;
        bool negative = at < r->length && r->text[at] == '-';
        if (at < r->length && (r->text[at] == '-' || r->text[at] == '+'))
            at++;
        size_t exponent_start = at;
        at = skip_digits(r, exponent_start);
        if (at == exponent_start)
            return false;
        long exponent = bounded_exponent(r->text, exponent_start, at);
        number->magnitude_bound = significant + (negative ? -exponent : exponent);
        number->is_integer = false;
    }
    number->text = (text_span){r->text + start, at - start};
    r->at = at;
    return true;
}

/* The number's text NUL-terminated in buffer (READER_MAX_TOKEN + 1 bytes);
 * false when it is longer. */
static bool copy_token(text_span text, char *buffer)
{
    if (text.length > READER_MAX_TOKEN)
        return false;
    memcpy(buffer, text.bytes, text.length);
    buffer[text.length] = '\0';
    return true;
}

/* The integer as jansson reads it (strtoll); false when it does not fit
 * in 64 bits. */
static bool number_integer_value(const number_token *number, json_int_t *value)
{
    if (number->integer_digits <= 18) {
        const char *digits = number->text.bytes;
        bool negative = digits[0] == '-';
        json_int_t magnitude = 0;
        for (size_t i = negative; i < number->text.length; i++)
            magnitude = magnitude * 10 + (digits[i] - '0');
        *value = negative ? -magnitude : magnitude;
        return true;
    }
    char buffer[READER_MAX_TOKEN + 1];
    if (!copy_token(number->text, buffer))
        return false;
    errno = 0;
    *value = strtoll(buffer, NULL, 10);
    return errno != ERANGE;
}

/* The real as jansson reads it (strtod); false when it overflows.  A
 * locale whose decimal point is not '.' stops strtod early: that is
 * refused too, rather than read differently from jansson. */
static bool number_real_value(const number_token *number, double *value)
{
    char buffer[READER_MAX_TOKEN + 1];
    char *end;
    if (!copy_token(number->text, buffer))
        return false;
    *value = strtod(buffer, &end);
    return end == buffer + number->text.length && !isinf(*value);
}

/* Whether jansson reads the number without overflow, computing its value
 * only when its size does not settle it: any double holds 10^308. */
static bool number_is_valid(const number_token *number)
{
    if (number->is_integer) {
        json_int_t integer;
        return number->integer_digits <= 18 || number_integer_value(number, &integer);
    }
    double real;
    return number->magnitude_bound <= 308 || number_real_value(number, &real);
}

static bool reader_number(reader *r, read_mode mode, json_t **out)
{
    number_token number;
    if (!reader_scan_number(r, &number))
        return false;
    if (mode == READ_CHECK)
        return number_is_valid(&number);
    if (number.is_integer) {
        json_int_t integer;
        if (!number_integer_value(&number, &integer))
            return false;
        *out = json_integer(integer);
    } else {
        double real;
        if (!number_real_value(&number, &real))
            return false;
        *out = mode == READ_RAW ? json_real(real) : value_new_double(real);
    }
    return *out != NULL;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */

static bool reader_value(reader *r, read_mode mode, json_t **out);

static bool reader_literal(reader *r, const char *word, json_t *value, read_mode mode,
                           json_t **out)
{
    size_t length = strlen(word);
    if (r->length - r->at < length || memcmp(r->text + r->at, word, length) != 0)
        return false;
    r->at += length;
    if (mode != READ_CHECK)
        *out = value;
    return true;
}

static bool reader_enter(reader *r)
{
    return ++r->depth <= READER_MAX_DEPTH;
}

static void reader_leave(reader *r)
{
    r->depth--;
}

/* The keys of the object being read: those of reader.open_keys from first
 * on, and a 64-bit summary of their lengths and first bytes, which tells
 * most new keys apart from every earlier one without comparing them. */
typedef struct object_keys {
    size_t first;
    uint64_t summary;
} object_keys;

static uint64_t key_summary_bit(text_span key)
{
    unsigned first_byte = key.length > 0 ? (unsigned char)key.bytes[0] : 0;
    return UINT64_C(1) << ((key.length * 7 + first_byte) % 64);
}

/* Remembers key among the keys of the object being read; false when it is
 * already there (jansson refuses duplicate keys) or when too many keys are
 * open at once. */
static bool reader_add_key(reader *r, object_keys *keys, text_span key)
{
    uint64_t bit = key_summary_bit(key);
    if (keys->summary & bit) {
        for (size_t i = keys->first; i < r->open_key_count; i++)
            if (same_name(r->open_keys[i].bytes, r->open_keys[i].length, key.bytes, key.length))
                return false;
    }
    if (r->open_key_count == READER_MAX_OPEN_KEYS)
        return false;
    keys->summary |= bit;
    r->open_keys[r->open_key_count++] = key;
    return true;
}

/* A key and its ':'.  A key with an escape is left to ejson_parse: telling
 * whether two such keys are equal needs them decoded, and one may hold NUL,
 * which field names may not. */
static bool reader_key(reader *r, object_keys *keys, text_span *key)
{
    bool escaped;
    if (!reader_at(r, '"') || !reader_scan_string(r, key, &escaped) || escaped ||
        !reader_add_key(r, keys, *key))
        return false;
    reader_skip_space(r);
    if (!reader_take(r, ':'))
        return false;
    reader_skip_space(r);
    return true;
}

static bool reader_skip_value(reader *r);

/*
 * The members of the object at the reader (its '{'), each read in mode;
 * with selected, the fields in it are read normalized and the others
 * checked.  Built members go into object (NULL when nothing is built).
 * Field names may start with '$' only in raw mode, where the object is a
 * wrapper.
 */
static bool reader_members(reader *r, read_mode mode, const ejson_field_set *selected,
                           json_t *object)
{
    object_keys keys = {.first = r->open_key_count};
    bool complete = false;
    r->at++;
    reader_skip_space(r);
    if (reader_take(r, '}'))
        return true;
    for (;;) {
        text_span key;
        if (!reader_key(r, &keys, &key) ||
            (mode != READ_RAW && key.length > 0 && key.bytes[0] == '$'))
            break;
        read_mode member_mode = mode;
        if (selected)
            member_mode = field_set_contains(selected, key.bytes, key.length) ? READ_NORMALIZED
                                                                               : READ_CHECK;
        json_t *value = NULL;
        bool read = member_mode == READ_CHECK && r->canonical ? reader_skip_value(r)
                                                               : reader_value(r, member_mode, &value);
        if (!read)
            break;
        if (value && json_object_setn_new_nocheck(object, key.bytes, key.length, value) != 0)
            break;
        reader_skip_space(r);
        if (reader_take(r, '}')) {
            complete = true;
            break;
        }
        if (!reader_take(r, ','))
            break;
        reader_skip_space(r);
    }
    r->open_key_count = keys.first;
    return complete;
}

/* Past the closing quote of the string whose opening quote is at start:
 * the first quote not escaped by an odd run of backslashes. */
static bool skip_string(const char *text, size_t end, size_t *at)
{
    size_t from = *at + 1;
    for (;;) {
        const char *quote = memchr(text + from, '"', end - from);
        if (!quote)
            return false;
        size_t position = (size_t)(quote - text), backslashes = 0;
        while (position - backslashes > from && text[position - 1 - backslashes] == '\\')
            backslashes++;
        from = position + 1;
        if (backslashes % 2 == 0) {
            *at = from;
            return true;
        }
    }
}

/*
 * Past the value at the reader, following only its structure: strings,
 * brackets and the end of a scalar.  For canonical text (realmfs wrote it,
 * after checking it), where checking an unselected field again would only
 * cost time.  false when the text ends first.
 */
static bool reader_skip_value(reader *r)
{
    const char *text = r->text;
    size_t at = r->at, end = r->length;
    unsigned depth = 0;
    do {
        if (at >= end)
            return false;
        char c = text[at];
        if (c == '"') {
            if (!skip_string(text, end, &at))
                return false;
        } else if (c == '{' || c == '[') {
            depth++;
            at++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return false;
            depth--;
            at++;
        } else if (depth == 0) {
            while (at < end && text[at] != ',' && text[at] != '}' && !is_json_space(text[at]))
                at++;
        } else {
            at++;
        }
    } while (depth > 0);
    r->at = at;
    return true;
}

static bool reader_array(reader *r, read_mode mode, json_t **out)
{
    json_t *array = NULL;
    if (mode != READ_CHECK && !(array = json_array()))
        return false;
    r->at++;
    reader_skip_space(r);
    bool complete = reader_take(r, ']');
    while (!complete) {
        json_t *element = NULL;
        if (!reader_value(r, mode, &element) ||
            (element && json_array_append_new(array, element) != 0))
            break;
        reader_skip_space(r);
        complete = reader_take(r, ']');
        if (!complete && !reader_take(r, ','))
            break;
        reader_skip_space(r);
    }
    if (!complete) {
        json_decref(array);
        return false;
    }
    if (mode != READ_CHECK)
        *out = array;
    return true;
}

/* The escape-free string at the reader, at most capacity bytes long. */
static bool reader_short_string(reader *r, text_span *raw, size_t capacity)
{
    bool escaped;
    return reader_at(r, '"') && reader_scan_string(r, raw, &escaped) && !escaped &&
           raw->length <= capacity;
}

/* {"$key": "<string>"}, the form almost every stored wrapper has, decoded
 * by ejson.c without building anything; member receives the string
 * (READER_MAX_TOKEN + 1 bytes).  false for any other form. */
static bool reader_string_wrapper(reader *r, char *member, ejson_scalar *scalar)
{
    text_span key, value;
    r->at++;
    reader_skip_space(r);
    if (!reader_short_string(r, &key, READER_MAX_TOKEN))
        return false;
    reader_skip_space(r);
    if (!reader_take(r, ':'))
        return false;
    reader_skip_space(r);
    if (!reader_short_string(r, &value, READER_MAX_TOKEN))
        return false;
    reader_skip_space(r);
    if (!reader_take(r, '}'))
        return false;
    memcpy(member, value.bytes, value.length);
    member[value.length] = '\0';
    return ejson_decode_string_wrapper(key.bytes, key.length, member, scalar);
}

/* A wrapper of another form, built as jansson would build it and
 * normalized by ejson_normalize, so every wrapper rule stays in ejson.c. */
static json_t *reader_other_wrapper(reader *r)
{
    json_t *raw = json_object();
    if (!raw)
        return NULL;
    json_t *value = reader_members(r, READ_RAW, NULL, raw) ? ejson_normalize(raw, NULL) : NULL;
    json_decref(raw);
    return value;
}

static bool reader_wrapper(reader *r, read_mode mode, json_t **out)
{
    size_t start = r->at;
    char member[READER_MAX_TOKEN + 1];
    ejson_scalar scalar;
    json_t *value;
    if (reader_string_wrapper(r, member, &scalar)) {
        if (mode == READ_CHECK)
            return true;
        value = ejson_scalar_to_json(&scalar);
    } else {
        r->at = start;
        value = reader_other_wrapper(r);
    }
    if (!value)
        return false;
    if (mode == READ_CHECK)
        json_decref(value);
    else
        *out = value;
    return true;
}

/* Whether the object at the reader (its '{') starts with a "$..." key:
 * then it is an Extended JSON wrapper, not an embedded document (the rule
 * ejson.c's normalize_value applies). */
static bool reader_at_wrapper(const reader *r)
{
    size_t at = r->at + 1;
    while (at < r->length && is_json_space(r->text[at]))
        at++;
    return r->length - at >= 2 && r->text[at] == '"' && r->text[at + 1] == '$';
}

static bool reader_object(reader *r, read_mode mode, json_t **out)
{
    if (mode != READ_RAW && reader_at_wrapper(r))
        return reader_wrapper(r, mode, out);
    json_t *object = NULL;
    if (mode != READ_CHECK && !(object = json_object()))
        return false;
    if (!reader_members(r, mode, NULL, object)) {
        json_decref(object);
        return false;
    }
    if (mode != READ_CHECK)
        *out = object;
    return true;
}

/* The value at the reader, moved past: checked, or built into *out (which
 * is left alone on failure and in READ_CHECK mode). */
static bool reader_value(reader *r, read_mode mode, json_t **out)
{
    if (r->at >= r->length)
        return false;
    bool read;
    switch (r->text[r->at]) {
    case '"':
        return reader_string(r, mode, out);
    case '{':
    case '[':
        if (!reader_enter(r))
            return false;
        read = r->text[r->at] == '{' ? reader_object(r, mode, out) : reader_array(r, mode, out);
        reader_leave(r);
        return read;
    case 't':
        return reader_literal(r, "true", json_true(), mode, out);
    case 'f':
        return reader_literal(r, "false", json_false(), mode, out);
    case 'n':
        return reader_literal(r, "null", json_null(), mode, out);
    default:
        return reader_number(r, mode, out);
    }
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

/* The selected fields of the document in text, or NULL when the reader
 * gives up (ejson_parse then decides). */
static json_t *read_selected_fields(const char *text, size_t length,
                                    const ejson_field_set *fields, bool canonical)
{
    /* open_keys is left uninitialized: zeroing its 4 KiB would cost more
     * than reading a whole document */
    reader r;
    r.text = text;
    r.length = length;
    r.at = 0;
    r.canonical = canonical;
    r.depth = 0;
    r.open_key_count = 0;
    json_t *document = json_object();
    if (!document)
        return NULL;
    reader_skip_space(&r);
    bool read = reader_at(&r, '{') && reader_members(&r, READ_NORMALIZED, fields, document);
    reader_skip_space(&r);
    if (!read || r.at != r.length) {
        json_decref(document);
        return NULL;
    }
    return document;
}

static void keep_only_fields(json_t *document, const ejson_field_set *fields)
{
    const char *key;
    size_t key_length;
    json_t *value;
    void *next;
    json_object_keylen_foreach_safe(document, next, key, key_length, value) {
        if (!field_set_contains(fields, key, key_length))
            json_object_deln(document, key, key_length);
    }
}

static json_t *parse_fields(const char *text, size_t length, const ejson_field_set *fields,
                            bool canonical, ejson_error *error)
{
    json_t *document = read_selected_fields(text, length, fields, canonical);
    if (document)
        return document;
    document = ejson_parse_reference(text, length, error);
    if (document)
        keep_only_fields(document, fields);
    return document;
}

json_t *ejson_parse(const char *text, size_t length, ejson_error *error)
{
    json_t *document = read_selected_fields(text, length, NULL, false);
    return document ? document : ejson_parse_reference(text, length, error);
}

json_t *ejson_parse_fields(const char *text, size_t length, const ejson_field_set *fields,
                           ejson_error *error)
{
    return parse_fields(text, length, fields, false, error);
}

json_t *ejson_parse_canonical_fields(const char *text, size_t length,
                                     const ejson_field_set *fields, ejson_error *error)
{
    return parse_fields(text, length, fields, true, error);
}
