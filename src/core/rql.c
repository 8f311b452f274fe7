/*
 * rql.c — parsing and matching of Realm Query Language subscriptions.
 *
 * The text is read by a hand-written lexer and recursive-descent parser into
 * a small tree.  Literals become normalized values (value.h) at parse time,
 * and field paths are split into components once, so that matching a
 * document only walks the tree and compares values.
 */
#include "realmfs/rql.h"
#include "realmfs/value.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parentheses and NOT nest at most this deep, so that parsing, matching and
 * describing, which all recurse, stay within a small stack. */
#define RQL_MAX_DEPTH 100

/* How much of an offending token an error message quotes. */
#define RQL_QUOTED_TOKEN_MAX 40

/* ======================================================================== */
/* The parsed query                                                          */

typedef enum rql_relation {
    RQL_RELATION_EQUAL,
    RQL_RELATION_NOT_EQUAL,
    RQL_RELATION_LESS,
    RQL_RELATION_LESS_EQUAL,
    RQL_RELATION_GREATER,
    RQL_RELATION_GREATER_EQUAL,
    RQL_RELATION_BEGINS_WITH,
    RQL_RELATION_ENDS_WITH,
    RQL_RELATION_CONTAINS,
    RQL_RELATION_LIKE,
    RQL_RELATION_IN,      /* against a list of values; "x IN field" becomes ANY field == x */
    RQL_RELATION_BETWEEN, /* against {low, high}, both inclusive */
} rql_relation;

typedef struct rql_relation_info {
    const char *name;          /* canonical spelling */
    bool allows_case_modifier; /* may be followed by [c] */
} rql_relation_info;

static const rql_relation_info rql_relations[] = {
    [RQL_RELATION_EQUAL] = {"==", true},
    [RQL_RELATION_NOT_EQUAL] = {"!=", true},
    [RQL_RELATION_LESS] = {"<", false},
    [RQL_RELATION_LESS_EQUAL] = {"<=", false},
    [RQL_RELATION_GREATER] = {">", false},
    [RQL_RELATION_GREATER_EQUAL] = {">=", false},
    [RQL_RELATION_BEGINS_WITH] = {"BEGINSWITH", true},
    [RQL_RELATION_ENDS_WITH] = {"ENDSWITH", true},
    [RQL_RELATION_CONTAINS] = {"CONTAINS", true},
    [RQL_RELATION_LIKE] = {"LIKE", true},
    [RQL_RELATION_IN] = {"IN", false},
    [RQL_RELATION_BETWEEN] = {"BETWEEN", false},
};

/* How the elements of a list operand combine.  IMPLICIT is a comparison
 * written without a quantifier: it means ANY for whichever side turns out to
 * hold an array. */
typedef enum rql_quantifier {
    RQL_QUANTIFIER_IMPLICIT,
    RQL_QUANTIFIER_ANY,
    RQL_QUANTIFIER_ALL,
    RQL_QUANTIFIER_NONE,
} rql_quantifier;

typedef struct rql_path_component {
    const char *name; /* points into rql_path.text; not NUL-terminated */
    size_t length;
} rql_path_component;

typedef struct rql_path {
    char *text;    /* as written, dots included */
    bool is_list;  /* the schema says the field is an array */
    size_t component_count;
    rql_path_component components[];
} rql_path;

/* A string literal of a [c] comparison, case-folded once when the query is
 * parsed, so that matching folds only the document's side. */
typedef struct rql_folded_literal {
    size_t count;
    uint32_t code_points[]; /* each already folded */
} rql_folded_literal;

/* Exactly one of path and literal is set, except for the unused right
 * operand of IN and BETWEEN, which has neither. */
typedef struct rql_operand {
    const rql_path *path;         /* owned by the query, shared between operands */
    json_t *literal;              /* owned */
    rql_folded_literal *folded;   /* owned; set for a string literal of a [c] comparison */
    bool literal_is_date;         /* then literal_date holds its milliseconds */
    int64_t literal_date;
    rql_quantifier quantifier;
} rql_operand;

typedef struct rql_comparison {
    rql_relation relation;
    bool case_insensitive;
    rql_operand left;
    rql_operand right;
    json_t *list; /* IN: the values; BETWEEN: [low, high] */
} rql_comparison;

typedef enum rql_node_kind {
    RQL_NODE_TRUE,
    RQL_NODE_FALSE,
    RQL_NODE_AND,
    RQL_NODE_OR,
    RQL_NODE_NOT,
    RQL_NODE_COMPARISON,
} rql_node_kind;

typedef struct rql_node rql_node;
struct rql_node {
    rql_node_kind kind;
    union {
        struct {
            rql_node **children;
            size_t count;
        } logical;          /* AND, OR */
        rql_node *negated;  /* NOT */
        rql_comparison comparison;
    };
};

struct rql_query {
    rql_node *root;
    rql_path **paths; /* distinct paths, in order of first appearance */
    size_t path_count;
};

static void rql_free_node(rql_node *node)
{
    if (!node)
        return;
    switch (node->kind) {
    case RQL_NODE_AND:
    case RQL_NODE_OR:
        for (size_t index = 0; index < node->logical.count; index++)
            rql_free_node(node->logical.children[index]);
        free(node->logical.children);
        break;
    case RQL_NODE_NOT:
        rql_free_node(node->negated);
        break;
    case RQL_NODE_COMPARISON:
        json_decref(node->comparison.left.literal);
        json_decref(node->comparison.right.literal);
        free(node->comparison.left.folded);
        free(node->comparison.right.folded);
        json_decref(node->comparison.list);
        break;
    case RQL_NODE_TRUE:
    case RQL_NODE_FALSE:
        break;
    }
    free(node);
}

void rql_free(rql_query *query)
{
    if (!query)
        return;
    rql_free_node(query->root);
    for (size_t index = 0; index < query->path_count; index++) {
        free(query->paths[index]->text);
        free(query->paths[index]);
    }
    free(query->paths);
    free(query);
}

/* ======================================================================== */
/* UTF-8 and case folding                                                    */

typedef struct rql_text {
    const char *bytes;
    size_t length;
} rql_text;

static rql_text rql_text_of(const json_t *string)
{
    return (rql_text){json_string_value(string), json_string_length(string)};
}

static rql_text rql_text_tail(rql_text text, size_t offset)
{
    return (rql_text){text.bytes + offset, text.length - offset};
}

/* The code point at *offset, advancing past it.  A byte that does not start
 * well-formed UTF-8 stands for itself, so matching never stalls. */
static uint32_t rql_next_code_point(rql_text text, size_t *offset)
{
    const unsigned char *bytes = (const unsigned char *)text.bytes + *offset;
    size_t length = value_utf8_sequence_length(bytes, text.length - *offset);
    if (length <= 1) {
        (*offset)++;
        return bytes[0];
    }
    uint32_t code_point = bytes[0] & (0x7F >> length);
    for (size_t index = 1; index < length; index++)
        code_point = (code_point << 6) | (bytes[index] & 0x3F);
    *offset += length;
    return code_point;
}

static size_t rql_count_code_points(rql_text text)
{
    size_t count = 0;
    for (size_t offset = 0; offset < text.length; count++)
        rql_next_code_point(text, &offset);
    return count;
}

/* Latin Extended-A pairs each capital with the code point after it, in two
 * runs capitals sit on odd code points, and a few letters have no simple
 * one-to-one lower case at all. */
static uint32_t rql_fold_latin_extended_a(uint32_t code_point)
{
    if (code_point == 0x130 || code_point == 0x131 || code_point == 0x138 || code_point == 0x149)
        return code_point;
    if (code_point == 0x178)
        return 0xFF;
    if (code_point == 0x17F)
        return 's';
    bool capitals_are_odd = (code_point >= 0x139 && code_point <= 0x148) ||
                            (code_point >= 0x179 && code_point <= 0x17E);
    bool is_capital = capitals_are_odd ? (code_point & 1) != 0 : (code_point & 1) == 0;
    return is_capital ? code_point + 1 : code_point;
}

/* Unicode simple case folding (CaseFolding.txt, statuses C and S) for ASCII,
 * Latin-1, Latin Extended-A and the unaccented Greek and Cyrillic capitals.
 * Other code points fold to themselves.  Simple folding maps one code point
 * to one code point, which the [c] operators rely on. */
static uint32_t rql_fold_case(uint32_t code_point)
{
    if (code_point >= 'A' && code_point <= 'Z')
        return code_point + 0x20;
    if (code_point < 0xB5)
        return code_point;
    if (code_point == 0xB5)
        return 0x3BC; /* micro sign to Greek mu */
    if (code_point >= 0xC0 && code_point <= 0xDE && code_point != 0xD7)
        return code_point + 0x20;
    if (code_point >= 0x100 && code_point <= 0x17F)
        return rql_fold_latin_extended_a(code_point);
    if (code_point >= 0x391 && code_point <= 0x3AB && code_point != 0x3A2)
        return code_point + 0x20;
    if (code_point == 0x3C2)
        return 0x3C3; /* final sigma */
    if (code_point >= 0x400 && code_point <= 0x40F)
        return code_point + 0x50;
    if (code_point >= 0x410 && code_point <= 0x42F)
        return code_point + 0x20;
    return code_point;
}

/* The code point at *offset of text, advancing past it; case-folded when
 * fold is set. */
static uint32_t rql_next_char(rql_text text, size_t *offset, bool fold)
{
    uint32_t code_point = rql_next_code_point(text, offset);
    return fold ? rql_fold_case(code_point) : code_point;
}

/*
 * What a string operator looks for in the text (the needle of CONTAINS, the
 * pattern of LIKE, ...), read one code point at a time: from a literal's
 * code points folded at parse time, or from a string of the document,
 * decoded (and folded, for [c]) as it is read.  Copying a needle saves its
 * position.
 */
typedef struct rql_needle {
    const rql_folded_literal *folded; /* when set, text and fold are unused */
    rql_text text;
    bool fold;
    size_t offset; /* index into folded->code_points, or byte offset in text */
} rql_needle;

static bool rql_needle_at_end(const rql_needle *needle)
{
    return needle->folded ? needle->offset == needle->folded->count
                          : needle->offset == needle->text.length;
}

/* The next code point; the needle must not be at its end. */
static uint32_t rql_needle_next(rql_needle *needle)
{
    if (needle->folded)
        return needle->folded->code_points[needle->offset++];
    return rql_next_char(needle->text, &needle->offset, needle->fold);
}

static uint32_t rql_needle_peek(const rql_needle *needle)
{
    rql_needle ahead = *needle;
    return rql_needle_next(&ahead);
}

static size_t rql_needle_count(const rql_needle *needle)
{
    return needle->folded ? needle->folded->count : rql_count_code_points(needle->text);
}

/* Whether text starts with what is left of needle, ignoring case.  On
 * success *consumed is how many bytes of text matched: folding may change
 * byte lengths. */
static bool rql_folded_prefix(rql_text text, rql_needle needle, size_t *consumed)
{
    size_t text_offset = 0;
    while (!rql_needle_at_end(&needle)) {
        if (text_offset == text.length ||
            rql_next_char(text, &text_offset, true) != rql_needle_next(&needle))
            return false;
    }
    *consumed = text_offset;
    return true;
}

/* ======================================================================== */
/* String operators                                                          */

static bool rql_string_equal_ignoring_case(rql_text text, rql_needle other)
{
    size_t consumed;
    return rql_folded_prefix(text, other, &consumed) && consumed == text.length;
}

static bool rql_string_begins_with(rql_text text, rql_needle prefix, bool ignore_case)
{
    size_t consumed;
    if (ignore_case)
        return rql_folded_prefix(text, prefix, &consumed);
    return prefix.text.length <= text.length &&
           memcmp(text.bytes, prefix.text.bytes, prefix.text.length) == 0;
}

/* Folding keeps the number of code points, so the suffix can only start
 * that many code points before the end. */
static bool rql_string_ends_with(rql_text text, rql_needle suffix, bool ignore_case)
{
    if (!ignore_case)
        return suffix.text.length <= text.length &&
               memcmp(text.bytes + text.length - suffix.text.length, suffix.text.bytes,
                      suffix.text.length) == 0;
    size_t text_count = rql_count_code_points(text);
    size_t suffix_count = rql_needle_count(&suffix);
    if (suffix_count > text_count)
        return false;
    size_t offset = 0;
    for (size_t skipped = 0; skipped < text_count - suffix_count; skipped++)
        rql_next_code_point(text, &offset);
    return rql_string_equal_ignoring_case(rql_text_tail(text, offset), suffix);
}

/* A folded comparison starts only where the text's folded character equals
 * the needle's first one, and the text is decoded and folded once on the
 * way: the search costs about one fold per character of text. */
static bool rql_string_contains_ignoring_case(rql_text text, rql_needle needle)
{
    if (rql_needle_at_end(&needle))
        return true;
    uint32_t first = rql_needle_next(&needle);
    size_t offset = 0, consumed;
    while (offset < text.length) {
        if (rql_next_char(text, &offset, true) == first &&
            rql_folded_prefix(rql_text_tail(text, offset), needle, &consumed))
            return true;
    }
    return false;
}

static bool rql_string_contains(rql_text text, rql_needle needle, bool ignore_case)
{
    if (ignore_case)
        return rql_string_contains_ignoring_case(text, needle);
    return needle.text.length == 0 ||
           memmem(text.bytes, text.length, needle.text.bytes, needle.text.length) != NULL;
}

/* Match one pattern element that is not '*' (a character, "\x" standing for
 * x itself, or '?') against one character of text, advancing both only on
 * success.  A [c] pattern reads folded, and so is the text then. */
static bool rql_like_step(rql_text text, size_t *text_offset, rql_needle *pattern,
                          bool ignore_case)
{
    size_t text_next = *text_offset;
    uint32_t text_char = rql_next_char(text, &text_next, ignore_case);
    rql_needle pattern_next = *pattern;
    uint32_t pattern_char = rql_needle_next(&pattern_next);
    if (pattern_char != '?') {
        if (pattern_char == '\\' && !rql_needle_at_end(&pattern_next))
            pattern_char = rql_needle_next(&pattern_next);
        if (text_char != pattern_char)
            return false;
    }
    *text_offset = text_next;
    *pattern = pattern_next;
    return true;
}

static bool rql_like_at_star(const rql_needle *pattern)
{
    return !rql_needle_at_end(pattern) && rql_needle_peek(pattern) == '*';
}

/* Wildcard matching: '*' is any run of characters, '?' exactly one, and a
 * backslash makes the next pattern character literal.  On a mismatch the
 * most recent '*' swallows one more character and matching resumes after
 * it, which is enough for patterns made only of '*' and single characters
 * and keeps the cost at O(text * pattern) without recursion. */
static bool rql_string_like(rql_text text, rql_needle pattern, bool ignore_case)
{
    size_t text_offset = 0;
    bool seen_star = false;
    rql_needle after_star = pattern;
    size_t star_text_offset = 0;
    while (text_offset < text.length) {
        if (rql_like_at_star(&pattern)) {
            seen_star = true;
            rql_needle_next(&pattern);
            after_star = pattern;
            star_text_offset = text_offset;
            continue;
        }
        if (!rql_needle_at_end(&pattern) &&
            rql_like_step(text, &text_offset, &pattern, ignore_case))
            continue;
        if (!seen_star)
            return false;
        rql_next_code_point(text, &star_text_offset);
        text_offset = star_text_offset;
        pattern = after_star;
    }
    while (rql_like_at_star(&pattern))
        rql_needle_next(&pattern);
    return rql_needle_at_end(&pattern);
}

/* ======================================================================== */
/* Matching                                                                  */

/* The needle for value, a string on one side of the comparison: the
 * literal's folded code points when value is the literal folded at parse
 * time. */
static rql_needle rql_needle_of(const rql_comparison *comparison, const json_t *value)
{
    if (value == comparison->right.literal && comparison->right.folded)
        return (rql_needle){.folded = comparison->right.folded};
    if (value == comparison->left.literal && comparison->left.folded)
        return (rql_needle){.folded = comparison->left.folded};
    return (rql_needle){.text = rql_text_of(value), .fold = comparison->case_insensitive};
}

static bool rql_values_identical(const json_t *left, const json_t *right)
{
    int order;
    return value_compare(left, right, &order) && order == 0;
}

static int rql_order_dates(int64_t left, int64_t right)
{
    return left < right ? -1 : left > right;
}

/* value_compare, except that a date literal's milliseconds were read when
 * the query was parsed, so only the document's side is decoded: a date is
 * comparable with dates only. */
static bool rql_compare_values(const rql_comparison *comparison, const json_t *left,
                               const json_t *right, int *order)
{
    int64_t milliseconds;
    if (right == comparison->right.literal && comparison->right.literal_is_date) {
        if (!value_get_date(left, &milliseconds))
            return false;
        *order = rql_order_dates(milliseconds, comparison->right.literal_date);
        return true;
    }
    if (left == comparison->left.literal && comparison->left.literal_is_date) {
        if (!value_get_date(right, &milliseconds))
            return false;
        *order = rql_order_dates(comparison->left.literal_date, milliseconds);
        return true;
    }
    return value_compare(left, right, order);
}

/* Equality ignoring case is symmetric, so a literal folded at parse time
 * serves on either side. */
static bool rql_values_equal(const rql_comparison *comparison, const json_t *left,
                             const json_t *right)
{
    int order;
    if (!comparison->case_insensitive || !json_is_string(left) || !json_is_string(right))
        return rql_compare_values(comparison, left, right, &order) && order == 0;
    if (left == comparison->left.literal && comparison->left.folded)
        return rql_string_equal_ignoring_case(rql_text_of(right),
                                              rql_needle_of(comparison, left));
    return rql_string_equal_ignoring_case(rql_text_of(left), rql_needle_of(comparison, right));
}

static bool rql_values_ordered(const rql_comparison *comparison, const json_t *left,
                               const json_t *right)
{
    int order;
    if (!rql_compare_values(comparison, left, right, &order))
        return false;
    switch (comparison->relation) {
    case RQL_RELATION_LESS:
        return order < 0;
    case RQL_RELATION_LESS_EQUAL:
        return order <= 0;
    case RQL_RELATION_GREATER:
        return order > 0;
    default:
        return order >= 0;
    }
}

static bool rql_strings_match(const rql_comparison *comparison, const json_t *left,
                              const json_t *right)
{
    if (!json_is_string(left) || !json_is_string(right))
        return false;
    rql_text text = rql_text_of(left);
    rql_needle operand = rql_needle_of(comparison, right);
    bool ignore_case = comparison->case_insensitive;
    switch (comparison->relation) {
    case RQL_RELATION_BEGINS_WITH:
        return rql_string_begins_with(text, operand, ignore_case);
    case RQL_RELATION_ENDS_WITH:
        return rql_string_ends_with(text, operand, ignore_case);
    case RQL_RELATION_CONTAINS:
        return rql_string_contains(text, operand, ignore_case);
    default:
        return rql_string_like(text, operand, ignore_case);
    }
}

static bool rql_value_in_list(const json_t *value, const json_t *list)
{
    size_t index;
    json_t *element;
    json_array_foreach(list, index, element) {
        if (rql_values_identical(value, element))
            return true;
    }
    return false;
}

static bool rql_value_between(const json_t *value, const json_t *limits)
{
    int above_low, below_high;
    return value_compare(value, json_array_get(limits, 0), &above_low) && above_low >= 0 &&
           value_compare(value, json_array_get(limits, 1), &below_high) && below_high <= 0;
}

/* The comparison applied to one value on each side, with no list expansion.
 * An array here is a value of the wrong type, so it matches nothing. */
static bool rql_test_values(const rql_comparison *comparison, const json_t *left,
                            const json_t *right)
{
    switch (comparison->relation) {
    case RQL_RELATION_EQUAL:
        return rql_values_equal(comparison, left, right);
    case RQL_RELATION_NOT_EQUAL:
        return !rql_values_equal(comparison, left, right);
    case RQL_RELATION_LESS:
    case RQL_RELATION_LESS_EQUAL:
    case RQL_RELATION_GREATER:
    case RQL_RELATION_GREATER_EQUAL:
        return rql_values_ordered(comparison, left, right);
    case RQL_RELATION_BEGINS_WITH:
    case RQL_RELATION_ENDS_WITH:
    case RQL_RELATION_CONTAINS:
    case RQL_RELATION_LIKE:
        return rql_strings_match(comparison, left, right);
    case RQL_RELATION_IN:
        return rql_value_in_list(left, comparison->list);
    case RQL_RELATION_BETWEEN:
        return rql_value_between(left, comparison->list);
    }
    return false;
}

/* Apply the comparison to each element of one side.  As in Realm, where a
 * list is never null, a missing field or null is an empty list; a scalar is
 * a list of one. */
static bool rql_test_quantified(const rql_comparison *comparison, const json_t *left,
                                const json_t *right, bool left_is_list,
                                rql_quantifier quantifier)
{
    const json_t *list = left_is_list ? left : right;
    bool is_array = json_is_array(list);
    size_t count = is_array ? json_array_size(list) : json_is_null(list) ? 0 : 1;
    for (size_t index = 0; index < count; index++) {
        const json_t *element = is_array ? json_array_get(list, index) : list;
        bool holds = left_is_list ? rql_test_values(comparison, element, right)
                                  : rql_test_values(comparison, left, element);
        if (quantifier == RQL_QUANTIFIER_ALL && !holds)
            return false;
        if (quantifier != RQL_QUANTIFIER_ALL && holds)
            return quantifier == RQL_QUANTIFIER_ANY;
    }
    return quantifier != RQL_QUANTIFIER_ANY;
}

/* The value at a path, or null when a step is missing.  Wrapper objects are
 * never entered: their keys start with '$', which no path component does. */
static const json_t *rql_path_value(const rql_path *path, const json_t *document)
{
    const json_t *value = document;
    for (size_t index = 0; index < path->component_count && value; index++)
        value = json_object_getn(value, path->components[index].name,
                                 path->components[index].length);
    return value ? value : json_null();
}

static const json_t *rql_operand_value(const rql_operand *operand, const json_t *document)
{
    return operand->path ? rql_path_value(operand->path, document) : operand->literal;
}

static bool rql_evaluate_comparison(const rql_comparison *comparison, const json_t *document)
{
    const json_t *left = rql_operand_value(&comparison->left, document);
    const json_t *right = rql_operand_value(&comparison->right, document);
    if (comparison->left.quantifier != RQL_QUANTIFIER_IMPLICIT)
        return rql_test_quantified(comparison, left, right, true, comparison->left.quantifier);
    if (comparison->right.quantifier != RQL_QUANTIFIER_IMPLICIT)
        return rql_test_quantified(comparison, left, right, false, comparison->right.quantifier);
    if (json_is_array(left))
        return rql_test_quantified(comparison, left, right, true, RQL_QUANTIFIER_ANY);
    if (json_is_array(right))
        return rql_test_quantified(comparison, left, right, false, RQL_QUANTIFIER_ANY);
    return rql_test_values(comparison, left, right);
}

static bool rql_evaluate(const rql_node *node, const json_t *document)
{
    switch (node->kind) {
    case RQL_NODE_TRUE:
        return true;
    case RQL_NODE_FALSE:
        return false;
    case RQL_NODE_AND:
        for (size_t index = 0; index < node->logical.count; index++)
            if (!rql_evaluate(node->logical.children[index], document))
                return false;
        return true;
    case RQL_NODE_OR:
        for (size_t index = 0; index < node->logical.count; index++)
            if (rql_evaluate(node->logical.children[index], document))
                return true;
        return false;
    case RQL_NODE_NOT:
        return !rql_evaluate(node->negated, document);
    case RQL_NODE_COMPARISON:
        return rql_evaluate_comparison(&node->comparison, document);
    }
    return false;
}

bool rql_matches(const rql_query *query, const json_t *document)
{
    return rql_evaluate(query->root, document);
}

int rql_visit_fields(const rql_query *query, int (*visit)(const char *path, void *context),
                     void *context)
{
    for (size_t index = 0; index < query->path_count; index++) {
        int result = visit(query->paths[index]->text, context);
        if (result != 0)
            return result;
    }
    return 0;
}

int rql_add_fields(const rql_query *query, ejson_field_set *fields)
{
    for (size_t index = 0; index < query->path_count; index++) {
        int result = ejson_field_set_add_path(fields, query->paths[index]->text);
        if (result != 0)
            return result;
    }
    return 0;
}

/* "field == literal", "literal == field" or "field IN {...}", where the
 * field is one top-level, non-list path compared as written (no [c], no
 * quantifier). */
static bool rql_is_equality_on(const rql_comparison *comparison, const char *field)
{
    if (comparison->case_insensitive)
        return false;
    const rql_operand *field_side = comparison->left.path ? &comparison->left : &comparison->right;
    const rql_operand *other_side = field_side == &comparison->left ? &comparison->right
                                                                    : &comparison->left;
    bool against_literals = comparison->relation == RQL_RELATION_EQUAL
                                ? other_side->literal != NULL
                                : comparison->relation == RQL_RELATION_IN && field_side == &comparison->left;
    const rql_path *path = field_side->path;
    return against_literals && path != NULL && field_side->quantifier == RQL_QUANTIFIER_IMPLICIT &&
           !path->is_list && path->component_count == 1 && strcmp(path->text, field) == 0;
}

static bool rql_node_requires_field_equality(const rql_node *node, const char *field)
{
    switch (node->kind) {
    case RQL_NODE_COMPARISON:
        return rql_is_equality_on(&node->comparison, field);
    case RQL_NODE_AND:
        for (size_t index = 0; index < node->logical.count; index++)
            if (rql_node_requires_field_equality(node->logical.children[index], field))
                return true;
        return false;
    default:
        return false;
    }
}

bool rql_requires_field_equality(const rql_query *query, const char *field)
{
    return rql_node_requires_field_equality(query->root, field);
}

/* ======================================================================== */
/* Lexer                                                                     */

typedef enum rql_token_kind {
    RQL_TOKEN_END,
    RQL_TOKEN_WORD,      /* a keyword or a field path, dots included */
    RQL_TOKEN_VALUE,     /* a literal, already in token.value */
    RQL_TOKEN_PARAMETER, /* $n */
    RQL_TOKEN_MODIFIER,  /* [c], brackets included */
    RQL_TOKEN_LEFT_PAREN,
    RQL_TOKEN_RIGHT_PAREN,
    RQL_TOKEN_LEFT_BRACE,
    RQL_TOKEN_RIGHT_BRACE,
    RQL_TOKEN_COMMA,
    RQL_TOKEN_EQUAL,
    RQL_TOKEN_NOT_EQUAL,
    RQL_TOKEN_LESS,
    RQL_TOKEN_LESS_EQUAL,
    RQL_TOKEN_GREATER,
    RQL_TOKEN_GREATER_EQUAL,
    RQL_TOKEN_BANG,
    RQL_TOKEN_AND_AND,
    RQL_TOKEN_OR_OR,
} rql_token_kind;

typedef struct rql_token {
    rql_token_kind kind;
    size_t position;
    size_t length;
    json_t *value;          /* RQL_TOKEN_VALUE: owned until the parser takes it */
    size_t parameter_index; /* RQL_TOKEN_PARAMETER */
} rql_token;

typedef struct rql_parser {
    const char *text;
    size_t offset; /* where the lexer reads next */
    rql_token token;
    const json_t *arguments;
    const json_t *schema;
    rql_query *query;
    rql_error *error;
    int depth;
    bool failed;
} rql_parser;

__attribute__((format(printf, 3, 4))) static void rql_fail(rql_parser *parser, size_t position,
                                                           const char *format, ...)
{
    if (parser->failed)
        return;
    parser->failed = true;
    parser->error->position = position;
    char *message = parser->error->message;
    int prefix_length = snprintf(message, sizeof parser->error->message, "byte %zu: ", position);
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message + prefix_length, sizeof parser->error->message - (size_t)prefix_length,
              format, arguments);
    va_end(arguments);
}

static void rql_fail_out_of_memory(rql_parser *parser)
{
    rql_fail(parser, parser->token.position, "out of memory");
}

static bool rql_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool rql_is_identifier_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (unsigned char)c >= 0x80;
}

static bool rql_is_identifier_part(char c)
{
    return rql_is_identifier_start(c) || rql_is_digit(c);
}

static int rql_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Whether text is keyword in any letter case; keyword is in upper case. */
static bool rql_equal_ignoring_ascii_case(const char *text, size_t length, const char *keyword)
{
    if (strlen(keyword) != length)
        return false;
    for (size_t index = 0; index < length; index++) {
        char c = text[index];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 0x20);
        if (c != keyword[index])
            return false;
    }
    return true;
}

static bool rql_set_token_value(rql_parser *parser, rql_token *token, size_t end, json_t *value)
{
    token->kind = RQL_TOKEN_VALUE;
    token->length = end - token->position;
    token->value = value;
    parser->offset = end;
    if (!value)
        rql_fail_out_of_memory(parser);
    return value != NULL;
}

/* Advance *offset past the identifier characters there, checking that the
 * non-ASCII ones are well-formed UTF-8. */
static bool rql_skip_identifier(rql_parser *parser, size_t *offset)
{
    const char *text = parser->text;
    while (rql_is_identifier_part(text[*offset])) {
        const unsigned char *bytes = (const unsigned char *)text + *offset;
        size_t length = value_utf8_sequence_length(bytes, strnlen(text + *offset, 4));
        if (length == 0) {
            rql_fail(parser, *offset, "invalid UTF-8 in a field name");
            return false;
        }
        *offset += length;
    }
    return true;
}

/* "@count", "@size", "@links" and the other @-operators are aggregates or
 * link operations, none of which a subscription may use. */
static bool rql_refuse_at_operator(rql_parser *parser, size_t position)
{
    size_t end = position + 1;
    while (rql_is_identifier_part(parser->text[end]) && (unsigned char)parser->text[end] < 0x80)
        end++;
    rql_fail(parser, position, "'%.*s' is not supported in subscriptions (aggregates and "
             "@-operators cannot be synced)", (int)(end - position), parser->text + position);
    return false;
}

/* Advance *offset past a field path: identifiers joined by dots. */
static bool rql_skip_path(rql_parser *parser, size_t *offset)
{
    const char *text = parser->text;
    if (!rql_skip_identifier(parser, offset))
        return false;
    while (text[*offset] == '.') {
        size_t component = *offset + 1;
        if (text[component] == '@')
            return rql_refuse_at_operator(parser, component);
        if (!rql_is_identifier_start(text[component])) {
            rql_fail(parser, component, "expected a field name after '.'");
            return false;
        }
        *offset = component;
        if (!rql_skip_identifier(parser, offset))
            return false;
    }
    return true;
}

/* The literal a keyword stands for: true, false, null, nil, inf, infinity
 * and nan (only the last three may follow a sign).  Returns false when the
 * word is not one of them; *value is NULL when out of memory. */
static bool rql_keyword_value(const char *word, size_t length, int sign, json_t **value)
{
    bool signed_number = sign != 0;
    if (rql_equal_ignoring_ascii_case(word, length, "INF") ||
        rql_equal_ignoring_ascii_case(word, length, "INFINITY")) {
        *value = value_new_double(sign < 0 ? -INFINITY : INFINITY);
        return true;
    }
    if (rql_equal_ignoring_ascii_case(word, length, "NAN")) {
        *value = value_new_double(NAN);
        return true;
    }
    if (signed_number)
        return false;
    if (rql_equal_ignoring_ascii_case(word, length, "TRUE"))
        *value = json_true();
    else if (rql_equal_ignoring_ascii_case(word, length, "FALSE"))
        *value = json_false();
    else if (rql_equal_ignoring_ascii_case(word, length, "NULL") ||
             rql_equal_ignoring_ascii_case(word, length, "NIL"))
        *value = json_null();
    else
        return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */

/* Offset of the quote that closes the string opening at start, or 0. */
static size_t rql_find_closing_quote(const char *text, size_t start)
{
    char quote = text[start];
    for (size_t offset = start + 1; text[offset] != '\0'; offset++) {
        if (text[offset] == quote)
            return offset;
        if (text[offset] == '\\' && text[offset + 1] != '\0')
            offset++;
    }
    return 0;
}

/* The four hex digits after "\u" at offset, or -1. */
static long rql_read_unicode_escape(const char *text, size_t offset)
{
    if (text[offset] != '\\' || text[offset + 1] != 'u')
        return -1;
    long code_unit = 0;
    for (size_t index = 2; index < 6; index++) {
        int digit = rql_hex_value(text[offset + index]);
        if (digit < 0)
            return -1;
        code_unit = code_unit * 16 + digit;
    }
    return code_unit;
}

/* Decode "\uXXXX", or a surrogate pair "\uD83D\uDE00", at *offset into out. */
static bool rql_decode_unicode_escape(rql_parser *parser, size_t *offset, char *out,
                                      size_t *out_length)
{
    long code_unit = rql_read_unicode_escape(parser->text, *offset);
    if (code_unit < 0) {
        rql_fail(parser, *offset, "expected four hex digits after \\u");
        return false;
    }
    uint32_t code_point = (uint32_t)code_unit;
    size_t escape_length = 6;
    if (code_unit >= 0xD800 && code_unit <= 0xDBFF) {
        long low = rql_read_unicode_escape(parser->text, *offset + 6);
        if (low < 0xDC00 || low > 0xDFFF) {
            rql_fail(parser, *offset, "a high surrogate \\u%04lX must be followed by a low one",
                     code_unit);
            return false;
        }
        code_point = 0x10000 + (((uint32_t)code_unit - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
        escape_length = 12;
    } else if (code_unit >= 0xDC00 && code_unit <= 0xDFFF) {
        rql_fail(parser, *offset, "a low surrogate \\u%04lX must follow a high one", code_unit);
        return false;
    }
    *out_length += value_encode_utf8(code_point, out + *out_length);
    *offset += escape_length;
    return true;
}

/* Decode the escape sequence at *offset (which holds a backslash). */
static bool rql_decode_escape(rql_parser *parser, size_t *offset, char *out, size_t *out_length)
{
    static const char escapes[] = "n\nt\tr\rb\bf\f\\\\''\"\"//";
    char letter = parser->text[*offset + 1];
    if (letter == 'u')
        return rql_decode_unicode_escape(parser, offset, out, out_length);
    for (size_t index = 0; escapes[index] != '\0'; index += 2) {
        if (escapes[index] == letter) {
            out[(*out_length)++] = escapes[index + 1];
            *offset += 2;
            return true;
        }
    }
    rql_fail(parser, *offset, "unknown escape '\\%c' in a string (write \\\\ for a backslash)",
             letter);
    return false;
}

/* Decode the body of a string literal from start (after the quote) to end
 * (the closing quote) into out, which holds at least end - start bytes:
 * no escape decodes to more bytes than it is written with. */
static bool rql_decode_string(rql_parser *parser, size_t start, size_t end, char *out,
                              size_t *out_length)
{
    size_t offset = start;
    *out_length = 0;
    while (offset < end) {
        const unsigned char *bytes = (const unsigned char *)parser->text + offset;
        if (bytes[0] == '\\') {
            if (!rql_decode_escape(parser, &offset, out, out_length))
                return false;
            continue;
        }
        size_t length = value_utf8_sequence_length(bytes, end - offset);
        if (length == 0) {
            rql_fail(parser, offset, "invalid UTF-8 in a string");
            return false;
        }
        memcpy(out + *out_length, bytes, length);
        *out_length += length;
        offset += length;
    }
    return true;
}

static bool rql_lex_string(rql_parser *parser, rql_token *token)
{
    size_t end = rql_find_closing_quote(parser->text, token->position);
    if (end == 0) {
        rql_fail(parser, token->position, "unterminated string");
        return false;
    }
    char *decoded = malloc(end - token->position);
    if (!decoded) {
        rql_fail_out_of_memory(parser);
        return false;
    }
    size_t length;
    bool decoded_ok = rql_decode_string(parser, token->position + 1, end, decoded, &length);
    bool ok = decoded_ok && rql_set_token_value(parser, token, end + 1, json_stringn(decoded, length));
    free(decoded);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Numbers and dates                                                         */

/* Read between min_digits and max_digits decimal digits at *offset. */
static bool rql_read_digits(const char *text, size_t *offset, int min_digits, int max_digits,
                            int64_t *number)
{
    int count = 0;
    *number = 0;
    while (count < max_digits && rql_is_digit(text[*offset])) {
        *number = *number * 10 + (text[*offset] - '0');
        (*offset)++;
        count++;
    }
    return count >= min_digits && !rql_is_digit(text[*offset]);
}

static bool rql_expect_char(const char *text, size_t *offset, char expected)
{
    if (text[*offset] != expected)
        return false;
    (*offset)++;
    return true;
}

static bool rql_is_leap_year(int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* Days from 1970-01-01 to the given day of the proleptic Gregorian
 * calendar, for years 1 to 9999. */
static int64_t rql_days_since_epoch(int64_t year, int64_t month, int64_t day)
{
    static const int days_before_month[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t years_before = year - 1;
    int64_t leap_days = years_before / 4 - years_before / 100 + years_before / 400;
    int64_t leap_days_before_1970 = 1969 / 4 - 1969 / 100 + 1969 / 400;
    int64_t day_of_year = days_before_month[month - 1] + day - 1 +
                          (month > 2 && rql_is_leap_year(year) ? 1 : 0);
    return (year - 1970) * 365 + leap_days - leap_days_before_1970 + day_of_year;
}

static int64_t rql_days_in_month(int64_t year, int64_t month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && rql_is_leap_year(year) ? 29 : days[month - 1];
}

typedef struct rql_calendar_time {
    int64_t year, month, day, hour, minute, second, nanoseconds;
} rql_calendar_time;

/* Read "YYYY-MM-DD@HH:MM:SS[:NANOS]" (or with 'T' for '@') at *offset. */
static bool rql_read_calendar_time(const char *text, size_t *offset, rql_calendar_time *time)
{
    time->nanoseconds = 0;
    if (!rql_read_digits(text, offset, 4, 4, &time->year) || !rql_expect_char(text, offset, '-') ||
        !rql_read_digits(text, offset, 1, 2, &time->month) || !rql_expect_char(text, offset, '-') ||
        !rql_read_digits(text, offset, 1, 2, &time->day))
        return false;
    if (!rql_expect_char(text, offset, '@') && !rql_expect_char(text, offset, 'T'))
        return false;
    if (!rql_read_digits(text, offset, 1, 2, &time->hour) || !rql_expect_char(text, offset, ':') ||
        !rql_read_digits(text, offset, 1, 2, &time->minute) ||
        !rql_expect_char(text, offset, ':') || !rql_read_digits(text, offset, 1, 2, &time->second))
        return false;
    if (rql_expect_char(text, offset, ':'))
        return rql_read_digits(text, offset, 1, 9, &time->nanoseconds);
    return true;
}

static const char *rql_calendar_time_problem(const rql_calendar_time *time)
{
    if (time->year < 1)
        return "the year must be 0001 or later";
    if (time->month < 1 || time->month > 12)
        return "the month must be 1 to 12";
    if (time->day < 1 || time->day > rql_days_in_month(time->year, time->month))
        return "the day does not exist in that month";
    if (time->hour > 23 || time->minute > 59 || time->second > 59)
        return "the time of day must be 00:00:00 to 23:59:59";
    return NULL;
}

/* An ISO-like UTC timestamp; the nanoseconds below a millisecond are
 * dropped because stored dates hold milliseconds. */
static bool rql_lex_calendar_timestamp(rql_parser *parser, rql_token *token)
{
    size_t offset = token->position;
    rql_calendar_time time;
    if (!rql_read_calendar_time(parser->text, &offset, &time) ||
        rql_is_identifier_part(parser->text[offset])) {
        rql_fail(parser, token->position, "invalid timestamp: expected YYYY-MM-DD@HH:MM:SS or "
                 "YYYY-MM-DD@HH:MM:SS:NANOSECONDS");
        return false;
    }
    const char *problem = rql_calendar_time_problem(&time);
    if (problem) {
        rql_fail(parser, token->position, "invalid timestamp: %s", problem);
        return false;
    }
    int64_t days = rql_days_since_epoch(time.year, time.month, time.day);
    int64_t seconds = ((days * 24 + time.hour) * 60 + time.minute) * 60 + time.second;
    int64_t milliseconds = seconds * 1000 + time.nanoseconds / 1000000;
    return rql_set_token_value(parser, token, offset, value_new_date(milliseconds));
}

/* Read an optionally negative decimal integer of at most max_digits. */
static bool rql_read_signed(const char *text, size_t *offset, int max_digits, int64_t *number)
{
    bool negative = rql_expect_char(text, offset, '-');
    if (!rql_read_digits(text, offset, 1, max_digits, number))
        return false;
    if (negative)
        *number = -*number;
    return true;
}

/* Milliseconds rounded down (towards the past), as a stored date holds. */
static int64_t rql_nanoseconds_to_milliseconds(int64_t nanoseconds)
{
    int64_t milliseconds = nanoseconds / 1000000;
    return nanoseconds % 1000000 < 0 ? milliseconds - 1 : milliseconds;
}

/* "T<seconds>:<nanoseconds>", either part possibly negative. */
static bool rql_lex_epoch_timestamp(rql_parser *parser, rql_token *token)
{
    size_t offset = token->position + 1;
    int64_t seconds, nanoseconds, milliseconds;
    if (!rql_read_signed(parser->text, &offset, 18, &seconds) ||
        !rql_expect_char(parser->text, &offset, ':') ||
        !rql_read_signed(parser->text, &offset, 9, &nanoseconds) ||
        rql_is_identifier_part(parser->text[offset])) {
        rql_fail(parser, token->position, "invalid timestamp: expected T<seconds>:<nanoseconds> "
                 "with at most 18 and 9 digits");
        return false;
    }
    if (__builtin_mul_overflow(seconds, 1000, &milliseconds) ||
        __builtin_add_overflow(milliseconds, rql_nanoseconds_to_milliseconds(nanoseconds),
                               &milliseconds)) {
        rql_fail(parser, token->position, "timestamp out of range");
        return false;
    }
    return rql_set_token_value(parser, token, offset, value_new_date(milliseconds));
}

/* Whether the 'T' at offset starts "T<digits>:" rather than a field name. */
static bool rql_starts_epoch_timestamp(const char *text, size_t offset)
{
    offset++;
    if (text[offset] == '-')
        offset++;
    if (!rql_is_digit(text[offset]))
        return false;
    while (rql_is_digit(text[offset]))
        offset++;
    return text[offset] == ':';
}

/* Accumulate digits of the given base into *magnitude, refusing values
 * above limit. */
static bool rql_accumulate_digits(const char *text, size_t start, size_t end, int base,
                                  uint64_t limit, uint64_t *magnitude)
{
    *magnitude = 0;
    for (size_t offset = start; offset < end; offset++) {
        uint64_t digit = (uint64_t)rql_hex_value(text[offset]);
        if (*magnitude > (limit - digit) / (uint64_t)base)
            return false;
        *magnitude = *magnitude * (uint64_t)base + digit;
    }
    return true;
}

static bool rql_set_integer_token(rql_parser *parser, rql_token *token, size_t digits_start,
                                  size_t end, int base, bool negative)
{
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t magnitude;
    if (!rql_accumulate_digits(parser->text, digits_start, end, base, limit, &magnitude)) {
        rql_fail(parser, token->position, "integer does not fit in 64 bits (write a float such "
                 "as 1e30 for a larger number)");
        return false;
    }
    int64_t number = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return rql_set_token_value(parser, token, end, json_integer((json_int_t)number));
}

static bool rql_set_double_token(rql_parser *parser, rql_token *token, size_t end)
{
    char *parsed_end;
    double number = strtod(parser->text + token->position, &parsed_end);
    if (parsed_end != parser->text + end || isinf(number)) {
        rql_fail(parser, token->position, "number out of range (write inf for infinity)");
        return false;
    }
    return rql_set_token_value(parser, token, end, value_new_double(number));
}

/* Offset just past the fraction and exponent of a decimal number whose
 * integer digits end at offset, or 0 when the exponent has no digits. */
static size_t rql_skip_fraction_and_exponent(const char *text, size_t offset)
{
    if (text[offset] == '.') {
        offset++;
        while (rql_is_digit(text[offset]))
            offset++;
    }
    if (text[offset] != 'e' && text[offset] != 'E')
        return offset;
    offset++;
    if (text[offset] == '+' || text[offset] == '-')
        offset++;
    if (!rql_is_digit(text[offset]))
        return 0;
    while (rql_is_digit(text[offset]))
        offset++;
    return offset;
}

/* After a sign: inf, infinity or nan. */
static bool rql_lex_signed_keyword(rql_parser *parser, rql_token *token, size_t word_start,
                                   int sign)
{
    size_t end = word_start;
    while (rql_is_identifier_part(parser->text[end]))
        end++;
    json_t *value;
    if (!rql_keyword_value(parser->text + word_start, end - word_start, sign, &value)) {
        rql_fail(parser, token->position, "expected a number after '%c'",
                 parser->text[token->position]);
        return false;
    }
    return rql_set_token_value(parser, token, end, value);
}

/* A number: [+-] then 0x<hex>, digits[.digits][e[+-]digits], inf or nan;
 * or a date, which starts like a number. */
static bool rql_lex_number(rql_parser *parser, rql_token *token)
{
    const char *text = parser->text;
    size_t offset = token->position;
    int sign = text[offset] == '-' ? -1 : text[offset] == '+' ? 1 : 0;
    if (sign != 0)
        offset++;
    if (rql_is_identifier_start(text[offset]))
        return rql_lex_signed_keyword(parser, token, offset, sign);
    bool hexadecimal = text[offset] == '0' && (text[offset + 1] == 'x' || text[offset + 1] == 'X');
    size_t digits_start = hexadecimal ? offset + 2 : offset;
    size_t end = digits_start;
    while (hexadecimal ? rql_hex_value(text[end]) >= 0 : rql_is_digit(text[end]))
        end++;
    if (!hexadecimal && sign == 0 && end - digits_start == 4 && text[end] == '-')
        return rql_lex_calendar_timestamp(parser, token);
    size_t integer_end = end;
    if (!hexadecimal)
        end = rql_skip_fraction_and_exponent(text, end);
    if (end == 0 || end == digits_start || rql_is_identifier_part(text[end]) || text[end] == '.') {
        rql_fail(parser, token->position, "malformed number");
        return false;
    }
    if (end != integer_end)
        return rql_set_double_token(parser, token, end);
    return rql_set_integer_token(parser, token, digits_start, end, hexadecimal ? 16 : 10, sign < 0);
}

/* ------------------------------------------------------------------------ */
/* ObjectId, UUID and binary literals                                        */

/* Decode 2 * size hex digits at text into bytes. */
static bool rql_decode_hex(const char *text, uint8_t *bytes, size_t size)
{
    for (size_t index = 0; index < size; index++) {
        int high = rql_hex_value(text[2 * index]);
        int low = high < 0 ? -1 : rql_hex_value(text[2 * index + 1]);
        if (low < 0)
            return false;
        bytes[index] = (uint8_t)(high * 16 + low);
    }
    return true;
}

/* oid(<24 hex digits>), where start is just after the parenthesis. */
static bool rql_lex_object_id(rql_parser *parser, rql_token *token, size_t start)
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE];
    size_t end = start + 2 * VALUE_OBJECT_ID_SIZE;
    if (strnlen(parser->text + start, 2 * VALUE_OBJECT_ID_SIZE) < 2 * VALUE_OBJECT_ID_SIZE ||
        !rql_decode_hex(parser->text + start, bytes, VALUE_OBJECT_ID_SIZE) ||
        parser->text[end] != ')') {
        rql_fail(parser, token->position, "invalid ObjectId: expected oid(<24 hex digits>)");
        return false;
    }
    return rql_set_token_value(parser, token, end + 1, value_new_object_id(bytes));
}

/* uuid(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), start just after '('. */
static bool rql_lex_uuid(rql_parser *parser, rql_token *token, size_t start)
{
    static const size_t group_bytes[] = {4, 2, 2, 2, 6};
    uint8_t bytes[VALUE_UUID_SIZE];
    size_t offset = start, decoded = 0;
    bool valid = true;
    for (size_t group = 0; valid && group < 5; group++) {
        size_t digits = 2 * group_bytes[group];
        valid = strnlen(parser->text + offset, digits) == digits &&
                rql_decode_hex(parser->text + offset, bytes + decoded, group_bytes[group]) &&
                parser->text[offset + digits] == (group < 4 ? '-' : ')');
        offset += digits + 1;
        decoded += group_bytes[group];
    }
    if (!valid) {
        rql_fail(parser, token->position,
                 "invalid UUID: expected uuid(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
        return false;
    }
    return rql_set_token_value(parser, token, offset, value_new_uuid(bytes));
}

/* B64"<base64>", start just after the opening quote. */
static bool rql_lex_binary(rql_parser *parser, rql_token *token, size_t start)
{
    const char *close = strchr(parser->text + start, '"');
    if (!close) {
        rql_fail(parser, token->position, "unterminated B64\"...\" literal");
        return false;
    }
    size_t length = (size_t)(close - (parser->text + start));
    size_t size;
    bool invalid = false;
    /* Realm writes B64"..." padded, so unpadded text is refused here even
     * though value_base64_decode would take it. */
    uint8_t *bytes = length % 4 == 0
                         ? value_base64_decode(parser->text + start, length, &size, &invalid)
                         : NULL;
    if (length % 4 != 0 || invalid) {
        rql_fail(parser, token->position, "invalid base64 in B64\"...\"");
        return false;
    }
    if (!bytes) {
        rql_fail_out_of_memory(parser);
        return false;
    }
    bool ok = rql_set_token_value(parser, token, start + length + 1,
                                  value_new_binary(bytes, size, 0));
    free(bytes);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Words, symbols and the lexer proper                                       */

/* A word: a literal written with letters (true, oid(...), B64"..."), or a
 * keyword or field path, which the parser tells apart. */
static bool rql_lex_word(rql_parser *parser, rql_token *token)
{
    const char *text = parser->text;
    size_t end = token->position;
    if (!rql_skip_path(parser, &end))
        return false;
    const char *word = text + token->position;
    size_t length = end - token->position;
    json_t *value;
    if (text[end] == '(' && rql_equal_ignoring_ascii_case(word, length, "OID"))
        return rql_lex_object_id(parser, token, end + 1);
    if (text[end] == '(' && rql_equal_ignoring_ascii_case(word, length, "UUID"))
        return rql_lex_uuid(parser, token, end + 1);
    if (text[end] == '"' && rql_equal_ignoring_ascii_case(word, length, "B64"))
        return rql_lex_binary(parser, token, end + 1);
    if (rql_keyword_value(word, length, 0, &value))
        return rql_set_token_value(parser, token, end, value);
    token->kind = RQL_TOKEN_WORD;
    token->length = length;
    parser->offset = end;
    return true;
}

static bool rql_lex_parameter(rql_parser *parser, rql_token *token)
{
    size_t offset = token->position + 1;
    int64_t index;
    if (!rql_read_digits(parser->text, &offset, 1, 9, &index)) {
        rql_fail(parser, token->position, "expected a parameter number such as $0 after '$'");
        return false;
    }
    token->kind = RQL_TOKEN_PARAMETER;
    token->parameter_index = (size_t)index;
    token->length = offset - token->position;
    parser->offset = offset;
    return true;
}

/* "[c]" and other bracketed letters; the parser decides which it accepts. */
static bool rql_lex_modifier(rql_parser *parser, rql_token *token)
{
    size_t end = token->position + 1;
    while ((parser->text[end] >= 'a' && parser->text[end] <= 'z') ||
           (parser->text[end] >= 'A' && parser->text[end] <= 'Z'))
        end++;
    if (end == token->position + 1 || parser->text[end] != ']') {
        rql_fail(parser, token->position,
                 "unexpected '[': only the [c] modifier after an operator is supported");
        return false;
    }
    token->kind = RQL_TOKEN_MODIFIER;
    token->length = end + 1 - token->position;
    parser->offset = end + 1;
    return true;
}

typedef struct rql_symbol {
    const char *spelling;
    rql_token_kind kind;
} rql_symbol;

/* Longer spellings first, so "<=" is found before "<". */
static const rql_symbol rql_symbols[] = {
    {"==", RQL_TOKEN_EQUAL},    {"!=", RQL_TOKEN_NOT_EQUAL},    {"<>", RQL_TOKEN_NOT_EQUAL},
    {"<=", RQL_TOKEN_LESS_EQUAL}, {">=", RQL_TOKEN_GREATER_EQUAL}, {"&&", RQL_TOKEN_AND_AND},
    {"||", RQL_TOKEN_OR_OR},    {"=", RQL_TOKEN_EQUAL},         {"<", RQL_TOKEN_LESS},
    {">", RQL_TOKEN_GREATER},   {"!", RQL_TOKEN_BANG},          {"(", RQL_TOKEN_LEFT_PAREN},
    {")", RQL_TOKEN_RIGHT_PAREN}, {"{", RQL_TOKEN_LEFT_BRACE},  {"}", RQL_TOKEN_RIGHT_BRACE},
    {",", RQL_TOKEN_COMMA},
};

static bool rql_lex_symbol(rql_parser *parser, rql_token *token)
{
    const char *here = parser->text + token->position;
    for (size_t index = 0; index < sizeof rql_symbols / sizeof rql_symbols[0]; index++) {
        size_t length = strlen(rql_symbols[index].spelling);
        if (strncmp(here, rql_symbols[index].spelling, length) == 0) {
            token->kind = rql_symbols[index].kind;
            token->length = length;
            parser->offset = token->position + length;
            return true;
        }
    }
    if ((unsigned char)here[0] >= 0x20 && (unsigned char)here[0] < 0x7F)
        rql_fail(parser, token->position, "unexpected character '%c'", here[0]);
    else
        rql_fail(parser, token->position, "unexpected byte 0x%02X", (unsigned char)here[0]);
    return false;
}

static bool rql_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Read the next token into parser->token, releasing the value of the
 * previous one if the parser did not take it. */
static bool rql_advance(rql_parser *parser)
{
    rql_token *token = &parser->token;
    const char *text = parser->text;
    json_decref(token->value);
    while (rql_is_space(text[parser->offset]))
        parser->offset++;
    *token = (rql_token){.kind = RQL_TOKEN_END, .position = parser->offset};
    char c = text[parser->offset];
    char next = c == '\0' ? '\0' : text[parser->offset + 1];
    if (c == '\0')
        return true;
    if (c == '\'' || c == '"')
        return rql_lex_string(parser, token);
    if (c == '$')
        return rql_lex_parameter(parser, token);
    if (c == '@')
        return rql_refuse_at_operator(parser, parser->offset);
    if (c == '[')
        return rql_lex_modifier(parser, token);
    if (rql_is_digit(c) || ((c == '-' || c == '+') && (rql_is_digit(next) ||
                                                       rql_is_identifier_start(next))))
        return rql_lex_number(parser, token);
    if (c == 'T' && rql_starts_epoch_timestamp(text, parser->offset))
        return rql_lex_epoch_timestamp(parser, token);
    if (rql_is_identifier_start(c))
        return rql_lex_word(parser, token);
    return rql_lex_symbol(parser, token);
}

/* ======================================================================== */
/* Parser                                                                    */

static bool rql_token_is_word(const rql_parser *parser, const char *keyword)
{
    return parser->token.kind == RQL_TOKEN_WORD &&
           rql_equal_ignoring_ascii_case(parser->text + parser->token.position,
                                         parser->token.length, keyword);
}

/* Words the grammar gives a meaning where a field could stand, and which
 * therefore cannot name a field. */
static bool rql_token_is_reserved_word(const rql_parser *parser)
{
    static const char *const reserved[] = {"AND", "OR", "NOT", "ANY", "SOME", "ALL", "NONE",
                                           "TRUEPREDICATE", "FALSEPREDICATE"};
    for (size_t index = 0; index < sizeof reserved / sizeof reserved[0]; index++)
        if (rql_token_is_word(parser, reserved[index]))
            return true;
    return false;
}

/* Realm query features that exist but that a subscription may not use. */
static const char *rql_unsupported_feature(const rql_parser *parser)
{
    static const struct {
        const char *word;
        const char *message;
    } unsupported[] = {
        {"SORT", "SORT is not supported in subscriptions"},
        {"DISTINCT", "DISTINCT is not supported in subscriptions"},
        {"LIMIT", "LIMIT is not supported in subscriptions"},
        {"INCLUDE", "INCLUDE is not supported in subscriptions"},
        {"SUBQUERY", "SUBQUERY is not supported in subscriptions"},
        {"TEXT", "full-text search (TEXT) is not supported in subscriptions"},
        {"GEOWITHIN", "geospatial queries (GEOWITHIN) are not supported in subscriptions"},
    };
    for (size_t index = 0; index < sizeof unsupported / sizeof unsupported[0]; index++)
        if (rql_token_is_word(parser, unsupported[index].word))
            return unsupported[index].message;
    return NULL;
}

static void rql_fail_unexpected(rql_parser *parser, const char *expected)
{
    const rql_token *token = &parser->token;
    const char *unsupported = rql_unsupported_feature(parser);
    if (unsupported)
        rql_fail(parser, token->position, "%s", unsupported);
    else if (token->kind == RQL_TOKEN_END)
        rql_fail(parser, token->position, "expected %s, found the end of the query", expected);
    else
        rql_fail(parser, token->position, "expected %s, found '%.*s'", expected,
                 (int)(token->length < RQL_QUOTED_TOKEN_MAX ? token->length : RQL_QUOTED_TOKEN_MAX),
                 parser->text + token->position);
}

/* Take ownership of the current token's literal. */
static json_t *rql_take_value(rql_parser *parser)
{
    json_t *value = parser->token.value;
    parser->token.value = NULL;
    return value;
}

static bool rql_enter_nesting(rql_parser *parser)
{
    if (parser->depth >= RQL_MAX_DEPTH) {
        rql_fail(parser, parser->token.position, "parentheses and NOT nest more than %d deep",
                 RQL_MAX_DEPTH);
        return false;
    }
    parser->depth++;
    return true;
}

static rql_node *rql_new_node(rql_parser *parser, rql_node_kind kind)
{
    rql_node *node = calloc(1, sizeof *node);
    if (!node)
        rql_fail_out_of_memory(parser);
    else
        node->kind = kind;
    return node;
}

/* ------------------------------------------------------------------------ */
/* Paths and the schema                                                      */

/* Whether a field's schema lists type_name in its bsonType (or type). */
static bool rql_schema_has_type(const json_t *field_schema, const char *type_name)
{
    const json_t *type = json_object_get(field_schema, "bsonType");
    if (!type)
        type = json_object_get(field_schema, "type");
    if (json_is_string(type))
        return strcmp(json_string_value(type), type_name) == 0;
    size_t index;
    json_t *element;
    json_array_foreach(type, index, element) {
        if (json_is_string(element) && strcmp(json_string_value(element), type_name) == 0)
            return true;
    }
    return false;
}

/* Check a path against the schema and record whether it names a list.  An
 * object schema without "properties" does not constrain what is below it. */
static bool rql_check_path_in_schema(rql_parser *parser, rql_path *path, size_t position)
{
    const json_t *field_schema = parser->schema;
    for (size_t index = 0; index < path->component_count; index++) {
        const rql_path_component *component = &path->components[index];
        int prefix_length = (int)(component->name + component->length - path->text);
        const json_t *properties = json_object_get(field_schema, "properties");
        if (!json_is_object(properties))
            return true;
        field_schema = json_object_getn(properties, component->name, component->length);
        if (!field_schema) {
            rql_fail(parser, position, "field '%.*s' is not in the schema", prefix_length,
                     path->text);
            return false;
        }
        if (index + 1 < path->component_count && !rql_schema_has_type(field_schema, "object")) {
            rql_fail(parser, position, "'%s' goes through '%.*s', which is not an embedded "
                     "object (link traversal is not supported in subscriptions)", path->text,
                     prefix_length, path->text);
            return false;
        }
    }
    path->is_list = rql_schema_has_type(field_schema, "array");
    return true;
}

static rql_path *rql_new_path(const char *text, size_t length)
{
    size_t component_count = 1;
    for (size_t offset = 0; offset < length; offset++)
        component_count += text[offset] == '.';
    rql_path *path = calloc(1, sizeof *path + component_count * sizeof path->components[0]);
    char *copy = strndup(text, length);
    if (!path || !copy) {
        free(path);
        free(copy);
        return NULL;
    }
    path->text = copy;
    path->component_count = component_count;
    const char *start = copy;
    for (size_t index = 0; index < component_count; index++) {
        const char *dot = strchr(start, '.');
        size_t component_length = dot ? (size_t)(dot - start) : strlen(start);
        path->components[index] = (rql_path_component){start, component_length};
        start += component_length + 1;
    }
    return path;
}

/* The query's path with this text, created on first use, so that each
 * distinct path is stored and visited once. */
static rql_path *rql_intern_path(rql_parser *parser, const char *text, size_t length)
{
    rql_query *query = parser->query;
    for (size_t index = 0; index < query->path_count; index++) {
        rql_path *path = query->paths[index];
        if (strlen(path->text) == length && memcmp(path->text, text, length) == 0)
            return path;
    }
    rql_path **paths = realloc(query->paths, (query->path_count + 1) * sizeof *paths);
    rql_path *path = paths ? rql_new_path(text, length) : NULL;
    if (paths)
        query->paths = paths;
    if (!path) {
        rql_fail_out_of_memory(parser);
        return NULL;
    }
    query->paths[query->path_count++] = path;
    return path;
}

/* The current word token as a path into operand. */
static bool rql_parse_path(rql_parser *parser, rql_operand *operand)
{
    rql_path *path = rql_intern_path(parser, parser->text + parser->token.position,
                                     parser->token.length);
    if (!path || (parser->schema && !rql_check_path_in_schema(parser, path,
                                                              parser->token.position)))
        return false;
    operand->path = path;
    return rql_advance(parser);
}

/* ------------------------------------------------------------------------ */
/* Operands and lists                                                        */

/* A copy of the argument bound to the current $n token.  Lists are only
 * accepted where allow_list says so. */
static json_t *rql_bind_parameter(rql_parser *parser, bool allow_list)
{
    size_t index = parser->token.parameter_index;
    size_t count = json_array_size(parser->arguments);
    if (index >= count) {
        rql_fail(parser, parser->token.position, "parameter $%zu is not bound (%zu argument%s "
                 "given)", index, count, count == 1 ? "" : "s");
        return NULL;
    }
    const json_t *argument = json_array_get(parser->arguments, index);
    value_type type = value_type_of(argument);
    bool nested = false;
    size_t element_index;
    json_t *element;
    json_array_foreach(argument, element_index, element) {
        value_type element_type = value_type_of(element);
        nested = nested || element_type == VALUE_ARRAY || element_type == VALUE_DOCUMENT;
    }
    if (type == VALUE_DOCUMENT || nested) {
        rql_fail(parser, parser->token.position, "argument $%zu holds an embedded document or a "
                 "nested list, which a query cannot compare", index);
        return NULL;
    }
    if (type == VALUE_ARRAY && !allow_list) {
        rql_fail(parser, parser->token.position, "argument $%zu is a list, which may only follow "
                 "IN or BETWEEN", index);
        return NULL;
    }
    json_t *copy = json_deep_copy(argument);
    if (!copy)
        rql_fail_out_of_memory(parser);
    return copy;
}

/* The value of the current token, a literal or a parameter bound to a
 * single value. */
static json_t *rql_parse_scalar(rql_parser *parser)
{
    json_t *value = parser->token.kind == RQL_TOKEN_VALUE ? rql_take_value(parser)
                                                          : rql_bind_parameter(parser, false);
    if (value && !rql_advance(parser)) {
        json_decref(value);
        return NULL;
    }
    return value;
}

static rql_quantifier rql_quantifier_of(const rql_parser *parser)
{
    if (rql_token_is_word(parser, "ANY") || rql_token_is_word(parser, "SOME"))
        return RQL_QUANTIFIER_ANY;
    if (rql_token_is_word(parser, "ALL"))
        return RQL_QUANTIFIER_ALL;
    if (rql_token_is_word(parser, "NONE"))
        return RQL_QUANTIFIER_NONE;
    return RQL_QUANTIFIER_IMPLICIT;
}

static bool rql_next_char_is(const rql_parser *parser, char expected)
{
    size_t offset = parser->offset;
    while (rql_is_space(parser->text[offset]))
        offset++;
    return parser->text[offset] == expected;
}

/* A field path, a literal or a parameter, the path possibly after ANY, SOME,
 * ALL or NONE. */
static bool rql_parse_operand(rql_parser *parser, rql_operand *operand)
{
    operand->quantifier = rql_quantifier_of(parser);
    if (operand->quantifier != RQL_QUANTIFIER_IMPLICIT) {
        if (!rql_advance(parser))
            return false;
        if (parser->token.kind != RQL_TOKEN_WORD || rql_token_is_reserved_word(parser)) {
            rql_fail_unexpected(parser, "a list field after ANY, SOME, ALL or NONE");
            return false;
        }
        return rql_parse_path(parser, operand);
    }
    if (parser->token.kind == RQL_TOKEN_LEFT_BRACE) {
        rql_fail(parser, parser->token.position, "a list {...} may only follow IN or BETWEEN");
        return false;
    }
    /* SUBQUERY(...) is refused by name rather than read as a field. */
    bool refused_call = rql_unsupported_feature(parser) && rql_next_char_is(parser, '(');
    if (parser->token.kind == RQL_TOKEN_WORD && !rql_token_is_reserved_word(parser) &&
        !refused_call)
        return rql_parse_path(parser, operand);
    if (parser->token.kind == RQL_TOKEN_VALUE || parser->token.kind == RQL_TOKEN_PARAMETER) {
        operand->literal = rql_parse_scalar(parser);
        return operand->literal != NULL;
    }
    rql_fail_unexpected(parser, "a field, a value or a parameter");
    return false;
}

/* A parameter bound to a list. */
static json_t *rql_parse_list_parameter(rql_parser *parser)
{
    json_t *list = rql_bind_parameter(parser, true);
    if (list && !json_is_array(list)) {
        rql_fail(parser, parser->token.position, "argument $%zu is not a list",
                 parser->token.parameter_index);
        json_decref(list);
        return NULL;
    }
    if (list && !rql_advance(parser)) {
        json_decref(list);
        return NULL;
    }
    return list;
}

/* The next element of a {...} list into list, after a comma unless it is
 * the first. */
static bool rql_parse_list_element(rql_parser *parser, json_t *list)
{
    if (json_array_size(list) > 0) {
        if (parser->token.kind != RQL_TOKEN_COMMA) {
            rql_fail_unexpected(parser, "',' or '}'");
            return false;
        }
        if (!rql_advance(parser))
            return false;
    }
    if (parser->token.kind != RQL_TOKEN_VALUE && parser->token.kind != RQL_TOKEN_PARAMETER) {
        rql_fail_unexpected(parser, "a value in the list");
        return false;
    }
    json_t *element = rql_parse_scalar(parser);
    if (element && json_array_append_new(list, element) != 0) {
        rql_fail_out_of_memory(parser);
        return false;
    }
    return element != NULL;
}

/* {value, ...} or a parameter bound to a list. */
static json_t *rql_parse_list(rql_parser *parser)
{
    if (parser->token.kind == RQL_TOKEN_PARAMETER)
        return rql_parse_list_parameter(parser);
    json_t *list = json_array();
    if (!list) {
        rql_fail_out_of_memory(parser);
        return NULL;
    }
    bool ok = rql_advance(parser);
    while (ok && parser->token.kind != RQL_TOKEN_RIGHT_BRACE)
        ok = rql_parse_list_element(parser, list);
    if (!ok || !rql_advance(parser)) {
        json_decref(list);
        return NULL;
    }
    return list;
}

/* ------------------------------------------------------------------------ */
/* Comparisons                                                               */

static bool rql_relation_of_token(const rql_parser *parser, rql_relation *relation)
{
    switch (parser->token.kind) {
    case RQL_TOKEN_EQUAL:
        *relation = RQL_RELATION_EQUAL;
        return true;
    case RQL_TOKEN_NOT_EQUAL:
        *relation = RQL_RELATION_NOT_EQUAL;
        return true;
    case RQL_TOKEN_LESS:
        *relation = RQL_RELATION_LESS;
        return true;
    case RQL_TOKEN_LESS_EQUAL:
        *relation = RQL_RELATION_LESS_EQUAL;
        return true;
    case RQL_TOKEN_GREATER:
        *relation = RQL_RELATION_GREATER;
        return true;
    case RQL_TOKEN_GREATER_EQUAL:
        *relation = RQL_RELATION_GREATER_EQUAL;
        return true;
    default:
        break;
    }
    for (rql_relation word = RQL_RELATION_BEGINS_WITH; word <= RQL_RELATION_BETWEEN; word++) {
        if (rql_token_is_word(parser, rql_relations[word].name)) {
            *relation = word;
            return true;
        }
    }
    return false;
}

/* The operator and its optional [c] modifier. */
static bool rql_parse_relation(rql_parser *parser, rql_comparison *comparison)
{
    if (!rql_relation_of_token(parser, &comparison->relation)) {
        rql_fail_unexpected(parser, "a comparison operator (==, !=, <, <=, >, >=, BEGINSWITH, "
                            "ENDSWITH, CONTAINS, LIKE, IN or BETWEEN)");
        return false;
    }
    if (!rql_advance(parser))
        return false;
    if (parser->token.kind != RQL_TOKEN_MODIFIER)
        return true;
    const rql_relation_info *info = &rql_relations[comparison->relation];
    if (!rql_equal_ignoring_ascii_case(parser->text + parser->token.position, parser->token.length,
                                       "[C]")) {
        rql_fail(parser, parser->token.position, "unsupported modifier '%.*s': only [c] "
                 "(case-insensitive) is supported", (int)parser->token.length,
                 parser->text + parser->token.position);
        return false;
    }
    if (!info->allows_case_modifier) {
        rql_fail(parser, parser->token.position, "[c] cannot follow %s; it applies to ==, !=, "
                 "BEGINSWITH, ENDSWITH, CONTAINS and LIKE", info->name);
        return false;
    }
    comparison->case_insensitive = true;
    return rql_advance(parser);
}

/* "x IN field" is "ANY field == x": the field's elements are searched. */
static bool rql_parse_in_field(rql_parser *parser, rql_comparison *comparison)
{
    size_t position = parser->token.position;
    rql_operand field = {0};
    if (!rql_parse_operand(parser, &field))
        goto fail;
    if (!field.path) {
        rql_fail(parser, position, "IN needs a list {...}, a list parameter or a list field "
                 "after it");
        goto fail;
    }
    if (field.quantifier != RQL_QUANTIFIER_IMPLICIT ||
        comparison->left.quantifier != RQL_QUANTIFIER_IMPLICIT) {
        rql_fail(parser, position, "IN with a field after it already means ANY; ANY, ALL or "
                 "NONE cannot be added on either side");
        goto fail;
    }
    field.quantifier = RQL_QUANTIFIER_ANY;
    comparison->relation = RQL_RELATION_EQUAL;
    comparison->right = comparison->left;
    comparison->left = field;
    return true;
fail:
    json_decref(field.literal);
    return false;
}

static bool rql_parse_right_side(rql_parser *parser, rql_comparison *comparison)
{
    size_t position = parser->token.position;
    bool takes_list = comparison->relation == RQL_RELATION_IN ||
                      comparison->relation == RQL_RELATION_BETWEEN;
    if (comparison->relation == RQL_RELATION_IN && parser->token.kind != RQL_TOKEN_LEFT_BRACE &&
        parser->token.kind != RQL_TOKEN_PARAMETER)
        return rql_parse_in_field(parser, comparison);
    if (!takes_list)
        return rql_parse_operand(parser, &comparison->right);
    if (parser->token.kind != RQL_TOKEN_LEFT_BRACE && parser->token.kind != RQL_TOKEN_PARAMETER) {
        rql_fail_unexpected(parser, "a list {low, high} after BETWEEN");
        return false;
    }
    comparison->list = rql_parse_list(parser);
    if (!comparison->list)
        return false;
    if (comparison->relation == RQL_RELATION_BETWEEN && json_array_size(comparison->list) != 2) {
        rql_fail(parser, position, "BETWEEN needs exactly two values, {low, high}");
        return false;
    }
    return true;
}

/* Rules that need both sides: one quantifier at most, and, when the schema
 * tells, quantifiers only on lists and never a list against a list. */
static bool rql_check_comparison(rql_parser *parser, const rql_comparison *comparison,
                                 size_t position)
{
    const rql_operand *sides[] = {&comparison->left, &comparison->right};
    if (sides[0]->quantifier != RQL_QUANTIFIER_IMPLICIT &&
        sides[1]->quantifier != RQL_QUANTIFIER_IMPLICIT) {
        rql_fail(parser, position, "ANY, ALL and NONE may be used on one side of a comparison "
                 "only (comparing two lists is not supported)");
        return false;
    }
    if (!parser->schema)
        return true;
    if (sides[0]->path && sides[1]->path && sides[0]->path->is_list && sides[1]->path->is_list) {
        rql_fail(parser, position, "comparing two lists ('%s' and '%s') is not supported",
                 sides[0]->path->text, sides[1]->path->text);
        return false;
    }
    for (size_t side = 0; side < 2; side++) {
        const rql_operand *operand = sides[side];
        if (operand->quantifier != RQL_QUANTIFIER_IMPLICIT && !operand->path->is_list) {
            rql_fail(parser, position, "'%s' is not a list, so it cannot be used with ANY, ALL, "
                     "NONE or after IN", operand->path->text);
            return false;
        }
    }
    return true;
}

/* A date literal's milliseconds, read once here rather than at every
 * comparison. */
static void rql_note_date_literal(rql_operand *operand)
{
    operand->literal_is_date =
        operand->literal && value_get_date(operand->literal, &operand->literal_date);
}

/* The string literal of operand case-folded into operand->folded, for a
 * [c] comparison. */
static bool rql_fold_literal(rql_parser *parser, rql_operand *operand)
{
    if (!json_is_string(operand->literal))
        return true;
    rql_text text = rql_text_of(operand->literal);
    size_t count = rql_count_code_points(text);
    operand->folded =
        malloc(sizeof *operand->folded + count * sizeof operand->folded->code_points[0]);
    if (!operand->folded) {
        rql_fail_out_of_memory(parser);
        return false;
    }
    operand->folded->count = count;
    size_t offset = 0;
    for (size_t index = 0; index < count; index++)
        operand->folded->code_points[index] = rql_next_char(text, &offset, true);
    return true;
}

static rql_node *rql_parse_comparison(rql_parser *parser)
{
    size_t position = parser->token.position;
    rql_node *node = rql_new_node(parser, RQL_NODE_COMPARISON);
    if (!node)
        return NULL;
    rql_comparison *comparison = &node->comparison;
    if (!rql_parse_operand(parser, &comparison->left) ||
        !rql_parse_relation(parser, comparison) || !rql_parse_right_side(parser, comparison) ||
        !rql_check_comparison(parser, comparison, position) ||
        (comparison->case_insensitive && (!rql_fold_literal(parser, &comparison->left) ||
                                          !rql_fold_literal(parser, &comparison->right)))) {
        rql_free_node(node);
        return NULL;
    }
    rql_note_date_literal(&comparison->left);
    rql_note_date_literal(&comparison->right);
    return node;
}

/* ------------------------------------------------------------------------ */
/* Logic                                                                     */

static rql_node *rql_parse_chain(rql_parser *parser, rql_node_kind kind);

static rql_node *rql_parse_parenthesized(rql_parser *parser)
{
    if (!rql_enter_nesting(parser) || !rql_advance(parser))
        return NULL;
    rql_node *inner = rql_parse_chain(parser, RQL_NODE_OR);
    parser->depth--;
    if (inner && parser->token.kind != RQL_TOKEN_RIGHT_PAREN)
        rql_fail_unexpected(parser, "AND, OR or ')'");
    if (!inner || parser->failed || !rql_advance(parser)) {
        rql_free_node(inner);
        return NULL;
    }
    return inner;
}

static rql_node *rql_parse_constant(rql_parser *parser, rql_node_kind kind)
{
    rql_node *node = rql_new_node(parser, kind);
    if (node && !rql_advance(parser)) {
        rql_free_node(node);
        return NULL;
    }
    return node;
}

static rql_node *rql_parse_primary(rql_parser *parser)
{
    if (parser->token.kind == RQL_TOKEN_LEFT_PAREN)
        return rql_parse_parenthesized(parser);
    if (rql_token_is_word(parser, "TRUEPREDICATE"))
        return rql_parse_constant(parser, RQL_NODE_TRUE);
    if (rql_token_is_word(parser, "FALSEPREDICATE"))
        return rql_parse_constant(parser, RQL_NODE_FALSE);
    return rql_parse_comparison(parser);
}

static rql_node *rql_parse_unary(rql_parser *parser)
{
    if (parser->token.kind != RQL_TOKEN_BANG && !rql_token_is_word(parser, "NOT"))
        return rql_parse_primary(parser);
    if (!rql_enter_nesting(parser) || !rql_advance(parser))
        return NULL;
    rql_node *negated = rql_parse_unary(parser);
    parser->depth--;
    rql_node *node = negated ? rql_new_node(parser, RQL_NODE_NOT) : NULL;
    if (!node) {
        rql_free_node(negated);
        return NULL;
    }
    node->negated = negated;
    return node;
}

static bool rql_at_connective(const rql_parser *parser, rql_node_kind kind)
{
    if (kind == RQL_NODE_AND)
        return parser->token.kind == RQL_TOKEN_AND_AND || rql_token_is_word(parser, "AND");
    return parser->token.kind == RQL_TOKEN_OR_OR || rql_token_is_word(parser, "OR");
}

static bool rql_add_child(rql_parser *parser, rql_node *node, rql_node *child)
{
    rql_node **children = realloc(node->logical.children,
                                  (node->logical.count + 1) * sizeof *children);
    if (!children) {
        rql_fail_out_of_memory(parser);
        rql_free_node(child);
        return false;
    }
    node->logical.children = children;
    children[node->logical.count++] = child;
    return true;
}

/* One operand of an AND chain (a NOT or primary), or of an OR chain (an
 * AND chain): AND binds tighter than OR. */
static rql_node *rql_parse_connective_operand(rql_parser *parser, rql_node_kind kind)
{
    return kind == RQL_NODE_OR ? rql_parse_chain(parser, RQL_NODE_AND) : rql_parse_unary(parser);
}

/* A chain "a AND b AND c" (or OR), kept as one node with many children. */
static rql_node *rql_parse_chain(rql_parser *parser, rql_node_kind kind)
{
    rql_node *first = rql_parse_connective_operand(parser, kind);
    if (!first || !rql_at_connective(parser, kind))
        return first;
    rql_node *node = rql_new_node(parser, kind);
    if (!node) {
        rql_free_node(first);
        return NULL;
    }
    if (!rql_add_child(parser, node, first)) {
        rql_free_node(node);
        return NULL;
    }
    while (rql_at_connective(parser, kind)) {
        rql_node *child = rql_advance(parser) ? rql_parse_connective_operand(parser, kind) : NULL;
        if (!child || !rql_add_child(parser, node, child)) {
            rql_free_node(node);
            return NULL;
        }
    }
    return node;
}

static rql_node *rql_parse_predicate(rql_parser *parser)
{
    return rql_parse_chain(parser, RQL_NODE_OR);
}

rql_query *rql_parse(const char *text, const json_t *arguments, const json_t *schema,
                     rql_error *error)
{
    rql_parser parser = {.text = text, .arguments = arguments, .schema = schema, .error = error};
    error->position = 0;
    error->message[0] = '\0';
    parser.query = calloc(1, sizeof *parser.query);
    if (!parser.query) {
        rql_fail_out_of_memory(&parser);
        return NULL;
    }
    if (rql_advance(&parser))
        parser.query->root = rql_parse_predicate(&parser);
    if (parser.query->root && parser.token.kind != RQL_TOKEN_END)
        rql_fail_unexpected(&parser, "AND, OR or the end of the query");
    json_decref(parser.token.value);
    if (parser.failed) {
        rql_free(parser.query);
        return NULL;
    }
    return parser.query;
}

/* ======================================================================== */
/* Describing                                                                */

typedef struct rql_buffer {
    char *data;
    size_t length;
    size_t capacity;
    bool out_of_memory;
} rql_buffer;

static void rql_append(rql_buffer *buffer, const char *bytes, size_t length)
{
    if (buffer->out_of_memory)
        return;
    if (buffer->length + length + 1 > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 64;
        while (capacity < buffer->length + length + 1)
            capacity *= 2;
        char *data = realloc(buffer->data, capacity);
        if (!data) {
            buffer->out_of_memory = true;
            return;
        }
        buffer->data = data;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->length, bytes, length);
    buffer->length += length;
    buffer->data[buffer->length] = '\0';
}

static void rql_append_text(rql_buffer *buffer, const char *text)
{
    rql_append(buffer, text, strlen(text));
}

__attribute__((format(printf, 2, 3))) static void rql_append_format(rql_buffer *buffer,
                                                                    const char *format, ...)
{
    char text[64];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(text, sizeof text, format, arguments);
    va_end(arguments);
    rql_append_text(buffer, text);
}

/* The shortest text that reads back as the same double, always with a '.'
 * or an exponent so that it reads back as a double and not an integer. */
static void rql_describe_number(rql_buffer *buffer, const json_t *value)
{
    long double wide;
    double number = value_get_number(value, &wide) ? (double)wide : NAN;
    if (isnan(number)) {
        rql_append_text(buffer, "nan");
        return;
    }
    if (isinf(number)) {
        rql_append_text(buffer, number < 0 ? "-inf" : "inf");
        return;
    }
    char text[40];
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, number);
        if (strtod(text, NULL) == number)
            break;
    }
    rql_append_text(buffer, text);
    if (!strpbrk(text, ".e"))
        rql_append_text(buffer, ".0");
}

static void rql_describe_string(rql_buffer *buffer, const char *text, size_t length)
{
    rql_append_text(buffer, "\"");
    for (size_t index = 0; index < length; index++) {
        unsigned char c = (unsigned char)text[index];
        if (c == '"' || c == '\\')
            rql_append_format(buffer, "\\%c", c);
        else if (c == '\n')
            rql_append_text(buffer, "\\n");
        else if (c == '\t')
            rql_append_text(buffer, "\\t");
        else if (c < 0x20 || c == 0x7F)
            rql_append_format(buffer, "\\u%04x", c);
        else
            rql_append(buffer, text + index, 1);
    }
    rql_append_text(buffer, "\"");
}

/* T<seconds>:<nanoseconds>, both with the sign of the date, as Realm
 * writes timestamps. */
static void rql_describe_date(rql_buffer *buffer, const json_t *value)
{
    int64_t milliseconds = 0;
    value_get_date(value, &milliseconds);
    rql_append_format(buffer, "T%lld:%lld", (long long)(milliseconds / 1000),
                      (long long)(milliseconds % 1000 * 1000000));
}

static const char *rql_wrapped_string(const json_t *value, const char *key)
{
    return json_string_value(json_object_get(value, key));
}

static void rql_describe_value(rql_buffer *buffer, const json_t *value);

static void rql_describe_list(rql_buffer *buffer, const json_t *list)
{
    size_t index;
    json_t *element;
    rql_append_text(buffer, "{");
    json_array_foreach(list, index, element) {
        if (index > 0)
            rql_append_text(buffer, ", ");
        rql_describe_value(buffer, element);
    }
    rql_append_text(buffer, "}");
}

static void rql_describe_value(rql_buffer *buffer, const json_t *value)
{
    switch (value_type_of(value)) {
    case VALUE_NULL:
        rql_append_text(buffer, "null");
        break;
    case VALUE_BOOL:
        rql_append_text(buffer, json_is_true(value) ? "true" : "false");
        break;
    case VALUE_INT:
        rql_append_format(buffer, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
        break;
    case VALUE_DOUBLE:
    case VALUE_DECIMAL:
        rql_describe_number(buffer, value);
        break;
    case VALUE_STRING:
        rql_describe_string(buffer, json_string_value(value), json_string_length(value));
        break;
    case VALUE_OBJECT_ID:
        rql_append_format(buffer, "oid(%s)", rql_wrapped_string(value, "$oid"));
        break;
    case VALUE_DATE:
        rql_describe_date(buffer, value);
        break;
    case VALUE_UUID:
        rql_append_format(buffer, "uuid(%s)", rql_wrapped_string(value, "$uuid"));
        break;
    case VALUE_BINARY:
        rql_append_text(buffer, "B64\"");
        rql_append_text(buffer, rql_wrapped_string(json_object_get(value, "$binary"), "base64"));
        rql_append_text(buffer, "\"");
        break;
    case VALUE_ARRAY:
        rql_describe_list(buffer, value);
        break;
    case VALUE_DOCUMENT: /* never a literal: rql_bind_parameter refuses documents */
        break;
    }
}

static void rql_describe_operand(rql_buffer *buffer, const rql_operand *operand)
{
    static const char *const quantifier_names[] = {
        [RQL_QUANTIFIER_IMPLICIT] = "",
        [RQL_QUANTIFIER_ANY] = "ANY ",
        [RQL_QUANTIFIER_ALL] = "ALL ",
        [RQL_QUANTIFIER_NONE] = "NONE ",
    };
    rql_append_text(buffer, quantifier_names[operand->quantifier]);
    if (operand->path)
        rql_append_text(buffer, operand->path->text);
    else
        rql_describe_value(buffer, operand->literal);
}

static void rql_describe_comparison(rql_buffer *buffer, const rql_comparison *comparison)
{
    rql_describe_operand(buffer, &comparison->left);
    rql_append_text(buffer, " ");
    rql_append_text(buffer, rql_relations[comparison->relation].name);
    if (comparison->case_insensitive)
        rql_append_text(buffer, "[c]");
    rql_append_text(buffer, " ");
    if (comparison->list)
        rql_describe_list(buffer, comparison->list);
    else
        rql_describe_operand(buffer, &comparison->right);
}

static void rql_describe_node(rql_buffer *buffer, const rql_node *node);

/* A child of AND, OR or NOT, in parentheses where the parent binds
 * tighter than the child. */
static void rql_describe_child(rql_buffer *buffer, const rql_node *child, rql_node_kind parent)
{
    bool parenthesize = (child->kind == RQL_NODE_OR && parent != RQL_NODE_OR) ||
                        (child->kind == RQL_NODE_AND && parent == RQL_NODE_NOT);
    rql_append_text(buffer, parenthesize ? "(" : "");
    rql_describe_node(buffer, child);
    rql_append_text(buffer, parenthesize ? ")" : "");
}

static void rql_describe_node(rql_buffer *buffer, const rql_node *node)
{
    switch (node->kind) {
    case RQL_NODE_TRUE:
        rql_append_text(buffer, "TRUEPREDICATE");
        break;
    case RQL_NODE_FALSE:
        rql_append_text(buffer, "FALSEPREDICATE");
        break;
    case RQL_NODE_AND:
    case RQL_NODE_OR:
        for (size_t index = 0; index < node->logical.count; index++) {
            if (index > 0)
                rql_append_text(buffer, node->kind == RQL_NODE_AND ? " AND " : " OR ");
            rql_describe_child(buffer, node->logical.children[index], node->kind);
        }
        break;
    case RQL_NODE_NOT:
        rql_append_text(buffer, "NOT ");
        rql_describe_child(buffer, node->negated, RQL_NODE_NOT);
        break;
    case RQL_NODE_COMPARISON:
        rql_describe_comparison(buffer, &node->comparison);
        break;
    }
}

char *rql_describe(const rql_query *query)
{
    rql_buffer buffer = {0};
    rql_describe_node(&buffer, query->root);
    if (buffer.out_of_memory) {
        free(buffer.data);
        return NULL;
    }
    return buffer.data;
}
