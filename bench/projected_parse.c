/*
 * projected_parse.c — parse only the top-level fields a query reads.  See
 * projected_parse.h for what it trusts and when it falls back.
 */
#include "projected_parse.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/value.h"

/* ------------------------------------------------------------------------ */
/* Projections                                                                */

static int add_top_level_field(const char *path, void *context)
{
    projection *p = context;
    const char *dot = strchr(path, '.');
    size_t length = dot != NULL ? (size_t)(dot - path) : strlen(path);
    for (size_t i = 0; i < p->count; i++)
        if (p->fields[i].length == length && memcmp(p->fields[i].name, path, length) == 0)
            return 0;
    if (p->count == PROJECTION_MAX_FIELDS) {
        p->whole_document = true;
        return 1;   /* stop: no projection */
    }
    char *name = strndup(path, length);
    if (name == NULL)
        return -ENOMEM;
    p->fields[p->count++] = (projection_field){.name = name, .length = length};
    return 0;
}

int projection_from_query(const rql_query *query, projection *out)
{
    *out = (projection){0};
    int result = rql_visit_fields(query, add_top_level_field, out);
    if (result < 0) {
        projection_free(out);
        *out = (projection){0};
        return result;
    }
    return 0;
}

void projection_free(projection *p)
{
    for (size_t i = 0; i < p->count; i++)
        free(p->fields[i].name);
    p->count = 0;
}

static bool is_projected(const projection *p, const char *key, size_t length)
{
    for (size_t i = 0; i < p->count; i++)
        if (p->fields[i].length == length && memcmp(p->fields[i].name, key, length) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* Walking the text                                                           */

typedef struct cursor {
    const char *text;
    size_t length;
    size_t at;
} cursor;

static bool at_end(const cursor *c)
{
    return c->at >= c->length;
}

static char current(const cursor *c)
{
    return c->text[c->at];
}

static void skip_space(cursor *c)
{
    while (!at_end(c)) {
        char ch = current(c);
        if (ch != ' ' && ch != '\n' && ch != '\t' && ch != '\r')
            return;
        c->at++;
    }
}

static bool take(cursor *c, char expected)
{
    if (at_end(c) || current(c) != expected)
        return false;
    c->at++;
    return true;
}

/* At a '"': moves past the closing quote.  *escaped tells whether the
 * string holds a backslash.  false when it is unterminated. */
static bool skip_string(cursor *c, bool *escaped)
{
    /* Most strings hold no backslash: then the next '"' ends the string,
     * and memchr finds it far faster than a loop over the bytes. */
    const char *start = c->text + c->at + 1;
    size_t available = c->length - c->at - 1;
    const char *quote = memchr(start, '"', available);
    if (quote != NULL && memchr(start, '\\', (size_t)(quote - start)) == NULL) {
        *escaped = false;
        c->at = (size_t)(quote - c->text) + 1;
        return true;
    }
    *escaped = true;   /* or unterminated, found below */
    size_t at = c->at + 1;
    while (at < c->length) {
        char ch = c->text[at];
        if (ch == '"') {
            c->at = at + 1;
            return true;
        }
        if (ch == '\\') {
            *escaped = true;
            at++;   /* the escaped character cannot end the string */
        }
        at++;
    }
    return false;
}

/* At a '{' or '[': moves past its matching close.  Only the nesting is
 * followed (strings may hold brackets); the stored text was validated
 * when it was committed. */
static bool skip_container(cursor *c)
{
    size_t depth = 0;
    while (!at_end(c)) {
        char ch = current(c);
        if (ch == '"') {
            bool escaped;
            if (!skip_string(c, &escaped))
                return false;
            continue;
        }
        c->at++;
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                return true;
        }
    }
    return false;
}

/* A number, true, false or null: up to the next delimiter. */
static bool skip_scalar(cursor *c)
{
    size_t start = c->at;
    while (!at_end(c)) {
        char ch = current(c);
        if (ch == ',' || ch == '}' || ch == ']' || ch == ' ' || ch == '\n' || ch == '\t' ||
            ch == '\r')
            break;
        c->at++;
    }
    return c->at > start;
}

static bool skip_value(cursor *c)
{
    if (at_end(c))
        return false;
    char first = current(c);
    if (first == '"') {
        bool escaped;
        return skip_string(c, &escaped);
    }
    if (first == '{' || first == '[')
        return skip_container(c);
    return skip_scalar(c);
}

/* ------------------------------------------------------------------------ */
/* Building the projected values                                              */

/* Deeper nesting falls back to ejson_parse (which has no such limit) rather
 * than recursing without bound on a hostile text. */
#define MAX_DEPTH 64

/* -?(0|[1-9][0-9]*) of at most 18 digits, which jansson reads as exactly
 * this integer and which cannot overflow int64. */
static bool read_small_integer(const char *text, size_t length, json_int_t *out)
{
    size_t at = text[0] == '-' ? 1 : 0;
    size_t digits = length - at;
    if (digits == 0 || digits > 18 || (digits > 1 && text[at] == '0'))
        return false;
    json_int_t value = 0;
    for (; at < length; at++) {
        if (text[at] < '0' || text[at] > '9')
            return false;
        value = value * 10 + (text[at] - '0');
    }
    *out = text[0] == '-' ? -value : value;
    return true;
}

/* At a '"': the string's bytes, when it holds no escape and no control
 * character (so the bytes are its value).  false otherwise. */
static bool read_plain_string(cursor *c, const char **bytes, size_t *length)
{
    const char *start = c->text + c->at + 1;
    bool escaped;
    if (!skip_string(c, &escaped) || escaped)
        return false;
    size_t size = (size_t)(c->text + c->at - 1 - start);
    for (size_t i = 0; i < size; i++)
        if ((unsigned char)start[i] < 0x20)
            return false;
    *bytes = start;
    *length = size;
    return true;
}

static json_t *build_value(cursor *c, bool raw, unsigned depth);

/* A number, true, false or null.  raw: as jansson reads it; otherwise
 * normalized (ejson_normalize turns a real into value_new_double). */
static json_t *build_scalar(cursor *c, bool raw)
{
    const char *text = c->text + c->at;
    if (!skip_scalar(c))
        return NULL;
    size_t length = (size_t)(c->text + c->at - text);
    if (length == 4 && memcmp(text, "true", 4) == 0)
        return json_true();
    if (length == 5 && memcmp(text, "false", 5) == 0)
        return json_false();
    if (length == 4 && memcmp(text, "null", 4) == 0)
        return json_null();
    json_int_t integer;
    if (read_small_integer(text, length, &integer))
        return json_integer(integer);
    /* reals and large integers: jansson's own rules, exactly */
    json_error_t json_error;
    json_t *number = json_loadb(text, length, JSON_DECODE_ANY, &json_error);
    if (number == NULL)
        return NULL;
    if (!json_is_number(number)) {   /* not a scalar of ours after all */
        json_decref(number);
        return NULL;
    }
    if (raw)
        return number;
    ejson_error error;
    json_t *value = ejson_normalize(number, &error);
    json_decref(number);
    return value;
}

static json_t *build_array(cursor *c, bool raw, unsigned depth)
{
    json_t *array = json_array();
    if (array == NULL)
        return NULL;
    c->at++;   /* '[' */
    skip_space(c);
    if (take(c, ']'))
        return array;
    for (;;) {
        json_t *element = build_value(c, raw, depth + 1);
        if (element == NULL || json_array_append_new(array, element) != 0)
            break;
        skip_space(c);
        if (take(c, ']'))
            return array;
        if (!take(c, ','))
            break;
        skip_space(c);
    }
    json_decref(array);
    return NULL;
}

/* Calls member for each "key": value of the object at the cursor (a '{'),
 * with the cursor at the value, which member must consume.  Keys with an
 * escape or a control character make it fail, as does any syntax it does
 * not expect. */
typedef bool member_function(cursor *c, const char *key, size_t key_length, void *context);

static bool walk_members(cursor *c, member_function *member, void *context)
{
    if (!take(c, '{'))
        return false;
    skip_space(c);
    if (take(c, '}'))
        return true;
    for (;;) {
        const char *key;
        size_t key_length;
        if (at_end(c) || current(c) != '"' || !read_plain_string(c, &key, &key_length))
            return false;
        skip_space(c);
        if (!take(c, ':'))
            return false;
        skip_space(c);
        if (!member(c, key, key_length, context))
            return false;
        skip_space(c);
        if (take(c, '}'))
            return true;
        if (!take(c, ','))
            return false;
        skip_space(c);
    }
}

typedef struct object_build {
    json_t *object;
    bool raw;
    unsigned depth;
} object_build;

static bool build_member(cursor *c, const char *key, size_t key_length, void *context)
{
    object_build *build = context;
    /* '$' keys belong in wrappers only (normalize_document refuses them);
     * a duplicate key is refused by ejson_parse */
    if ((!build->raw && key_length > 0 && key[0] == '$') ||
        json_object_getn(build->object, key, key_length) != NULL)
        return false;
    json_t *value = build_value(c, build->raw, build->depth + 1);
    return value != NULL && json_object_setn_new(build->object, key, key_length, value) == 0;
}

/* Whether the object at the cursor (a '{') starts with a "$..." key, which
 * makes it an Extended JSON wrapper ({"$date": ...}) rather than a
 * document: the rule normalize_value applies. */
static bool is_wrapper(const cursor *c)
{
    cursor ahead = *c;
    ahead.at++;
    skip_space(&ahead);
    return ahead.at + 1 < ahead.length && current(&ahead) == '"' &&
           ahead.text[ahead.at + 1] == '$';
}

/* {"$date": "<ISO-8601>"}, the form every stored date of years 1970 to
 * 9999 has, read with ejson.h's own date parser; saves building the
 * wrapper object only to normalize it.  NULL, with the cursor unmoved,
 * for anything else. */
static json_t *read_iso_date(cursor *c)
{
    cursor ahead = *c;
    const char *key, *date;
    size_t key_length, date_length;
    char text[64];
    int64_t milliseconds;
    ahead.at++;   /* '{' */
    skip_space(&ahead);
    if (at_end(&ahead) || current(&ahead) != '"' ||
        !read_plain_string(&ahead, &key, &key_length) || key_length != 5 ||
        memcmp(key, "$date", 5) != 0)
        return NULL;
    skip_space(&ahead);
    if (!take(&ahead, ':'))
        return NULL;
    skip_space(&ahead);
    if (at_end(&ahead) || current(&ahead) != '"' ||
        !read_plain_string(&ahead, &date, &date_length) || date_length >= sizeof text)
        return NULL;
    skip_space(&ahead);
    if (!take(&ahead, '}'))
        return NULL;
    memcpy(text, date, date_length);
    text[date_length] = '\0';
    if (memchr(date, '\0', date_length) != NULL ||
        ejson_parse_iso_date(text, &milliseconds) != 0)
        return NULL;
    json_t *value = value_new_date(milliseconds);
    if (value != NULL)
        *c = ahead;
    return value;
}

static json_t *build_object(cursor *c, bool raw, unsigned depth)
{
    if (!raw && is_wrapper(c)) {
        json_t *date = read_iso_date(c);
        if (date != NULL)
            return date;
        /* Any other wrapper is read as jansson would read it and then
         * normalized by ejson_normalize itself, so every wrapper rule stays
         * in ejson.c. */
        json_t *wrapper = build_object(c, true, depth);
        if (wrapper == NULL)
            return NULL;
        ejson_error error;
        json_t *value = ejson_normalize(wrapper, &error);
        json_decref(wrapper);
        return value;
    }
    object_build build = {.object = json_object(), .raw = raw, .depth = depth};
    if (build.object == NULL)
        return NULL;
    if (!walk_members(c, build_member, &build)) {
        json_decref(build.object);
        return NULL;
    }
    return build.object;
}

/* The value at the cursor, consumed: raw as jansson would read it, or
 * normalized as ejson_parse would make it.  NULL when anything is not as
 * expected (the caller falls back to ejson_parse). */
static json_t *build_value(cursor *c, bool raw, unsigned depth)
{
    if (depth > MAX_DEPTH || at_end(c))
        return NULL;
    switch (current(c)) {
    case '"': {
        const char *bytes;
        size_t length;
        if (!read_plain_string(c, &bytes, &length))
            return NULL;
        return json_stringn(bytes, length);   /* NULL for invalid UTF-8 */
    }
    case '[':
        return build_array(c, raw, depth);
    case '{':
        return build_object(c, raw, depth);
    default:
        return build_scalar(c, raw);
    }
}

/* ------------------------------------------------------------------------ */
/* The top level                                                              */

typedef struct top_level {
    const projection *projection;
    json_t *document;
} top_level;

/* A projected field is built; any other is skipped over, unbuilt. */
static bool project_member(cursor *c, const char *key, size_t key_length, void *context)
{
    top_level *top = context;
    if (!is_projected(top->projection, key, key_length))
        return skip_value(c);
    object_build build = {.object = top->document, .raw = false, .depth = 0};
    return build_member(c, key, key_length, &build);
}

json_t *projected_parse(const char *text, size_t length, const projection *p,
                        ejson_error *error)
{
    if (p->whole_document)
        return ejson_parse(text, length, error);
    top_level top = {.projection = p, .document = json_object()};
    cursor c = {.text = text, .length = length};
    if (top.document != NULL) {
        skip_space(&c);
        bool walked = walk_members(&c, project_member, &top);
        skip_space(&c);
        if (walked && at_end(&c))
            return top.document;
    }
    json_decref(top.document);
    return ejson_parse(text, length, error);
}
