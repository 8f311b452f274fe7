/*
 * query_documents.c — deterministic "Task" documents for the query
 * benchmark.  See query_documents.h for their shape.
 */
#include "query_documents.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "realmfs/value.h"

/* Changing the seed changes every document, and so the match counts that
 * BENCHMARKS.md records. */
#define DOCUMENT_SEED UINT64_C(0x5eed2026112600)

#define COUNT_OF(array) (sizeof(array) / sizeof *(array))

/* ObjectIds as a driver makes them in sequence: 4 bytes of seconds (from
 * 2025-01-01, 20 s apart), 5 fixed "process" bytes, 3 bytes of counter. */
#define OBJECT_ID_FIRST_SECOND UINT32_C(1735689600)
#define OBJECT_ID_SECONDS_APART 20u
static const uint8_t object_id_process[5] = {0x65, 0x2f, 0xa1, 0x0c, 0x3d};

#define OWNER_COUNT 1000u
#define DUE_FIRST_MS INT64_C(1735689600000) /* 2025-01-01T00:00:00Z */
#define DUE_DAYS 1095u                      /* 2025, 2026 and 2027 */
#define MS_PER_MINUTE INT64_C(60000)
#define MS_PER_DAY INT64_C(86400000)

/* Summaries are verb + object + tail; the tail is chosen so that the whole
 * is 30 to 60 bytes.  Objects and tails mention "report" in several cases
 * (what CONTAINS[c] "report" finds) and a few hold non-ASCII letters. */
static const char *const verbs[] = {
    "Write", "Review", "Fix", "Prepare", "Update", "Send", "Draft", "Finish",
    "Check", "Plan", "Test", "Deploy", "Schedule", "Clean up", "Investigate",
};
static const char *const objects[] = {
    "the quarterly report", "expense Report", "login bug", "release notes",
    "onboarding docs", "the weekly REPORT", "invoice for Acme", "database migration",
    "status reports", "reporting dashboard", "customer feedback", "sprint backlog",
    "café menu update", "résumé template", "API rate limits", "the Q3 roadmap",
    "search indexing", "mobile build", "offsite agenda", "billing emails",
};
static const char *const tails[] = {
    "ASAP", "again", "next week", "before Friday", "after the standup",
    "for the board meeting", "with the design team", "by end of month",
    "for the Zürich office", "and file a bug report", "for Q3 review",
    "before the release freeze", "with Ana and Björn", "once legal signs off",
    "if the CI is green", "for the weekly sync", "tomorrow morning",
    "and update the tracker",
};

static const char *const tag_words[] = {
    "urgent", "bug", "feature", "backend", "frontend", "docs",
    "meeting", "finance", "ops", "design", "research", "later",
};
#define MAX_TAGS 4u

static const char *const project_names[] = {
    "Apollo", "Borealis", "Cascade", "Dynamo", "Ember", "Fjord", "Granite", "Helios",
    "Iris", "Juniper", "Kestrel", "Lumen", "Monsoon", "Nimbus", "Orchid", "Pioneer",
    "Quartz", "Redwood", "Sierra", "Tundra", "Umbra", "Vertex", "Willow", "Xenon",
    "Yarrow", "Zephyr", "Atlas", "Beacon", "Comet", "Delta", "Echo", "Falcon",
    "Gemini", "Harbor", "Ignite", "Jetstream", "Keystone", "Lighthouse", "Meridian",
    "Northstar",
};

/* splitmix64: small, fast and good enough to make data look random; seeded
 * per document so that document i never depends on the others. */
typedef struct generator {
    uint64_t state;
} generator;

static uint64_t next_random(generator *g)
{
    g->state += UINT64_C(0x9e3779b97f4a7c15);
    uint64_t z = g->state;
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* A number in [0, bound); the modulo bias is irrelevant for test data. */
static uint32_t below(generator *g, uint32_t bound)
{
    return (uint32_t)(next_random(g) % bound);
}

/* true with the given percent chance */
static bool chance(generator *g, uint32_t percent)
{
    return below(g, 100) < percent;
}

/* Sets key to a new value, taking the reference; false when value is NULL
 * (a constructor ran out of memory) or the set failed. */
static bool set_new(json_t *object, const char *key, json_t *value)
{
    return value != NULL && json_object_set_new(object, key, value) == 0;
}

static json_t *new_object_id(uint32_t index)
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE];
    uint32_t seconds = OBJECT_ID_FIRST_SECOND + index * OBJECT_ID_SECONDS_APART;
    bytes[0] = (uint8_t)(seconds >> 24);
    bytes[1] = (uint8_t)(seconds >> 16);
    bytes[2] = (uint8_t)(seconds >> 8);
    bytes[3] = (uint8_t)seconds;
    memcpy(bytes + 4, object_id_process, sizeof object_id_process);
    bytes[9] = (uint8_t)(index >> 16);
    bytes[10] = (uint8_t)(index >> 8);
    bytes[11] = (uint8_t)index;
    return value_new_object_id(bytes);
}

static json_t *new_summary(generator *g)
{
    const char *verb = verbs[below(g, COUNT_OF(verbs))];
    const char *object = objects[below(g, COUNT_OF(objects))];
    size_t head = strlen(verb) + 1 + strlen(object);
    /* The first tail, from a random start, that brings the length into
     * range.  The lists are such that one always does (the longest verb and
     * object leave room for a short tail, the shortest for a long one); if
     * an edit breaks that, the random tail is kept and the summary is
     * merely outside 30..60. */
    size_t start = below(g, COUNT_OF(tails));
    const char *tail = tails[start];
    for (size_t step = 0; step < COUNT_OF(tails); step++) {
        const char *candidate = tails[(start + step) % COUNT_OF(tails)];
        size_t length = head + 1 + strlen(candidate);
        if (length >= 30 && length <= 60) {
            tail = candidate;
            break;
        }
    }
    char text[128];
    snprintf(text, sizeof text, "%s %s %s", verb, object, tail);
    return json_string(text);
}

static json_t *new_tags(generator *g)
{
    json_t *tags = json_array();
    if (tags == NULL)
        return NULL;
    uint32_t count = below(g, MAX_TAGS + 1);
    /* distinct words: draw from the words not taken yet */
    bool taken[COUNT_OF(tag_words)] = {false};
    for (uint32_t i = 0; i < count; i++) {
        uint32_t pick = below(g, (uint32_t)COUNT_OF(tag_words) - i);
        size_t word = 0;
        for (;; word++) {
            if (taken[word])
                continue;
            if (pick == 0)
                break;
            pick--;
        }
        taken[word] = true;
        if (json_array_append_new(tags, json_string(tag_words[word])) != 0) {
            json_decref(tags);
            return NULL;
        }
    }
    return tags;
}

static json_t *new_project(generator *g)
{
    json_t *project = json_object();
    if (project == NULL)
        return NULL;
    char name[64];
    snprintf(name, sizeof name, "Project %s", project_names[below(g, COUNT_OF(project_names))]);
    if (!set_new(project, "name", json_string(name)) ||
        !set_new(project, "archived", json_boolean(chance(g, 15)))) {
        json_decref(project);
        return NULL;
    }
    return project;
}

static json_t *new_due(generator *g)
{
    int64_t due = DUE_FIRST_MS + (int64_t)below(g, DUE_DAYS) * MS_PER_DAY;
    if (chance(g, 50))   /* the other half is due at midnight */
        due += (int64_t)below(g, 24 * 60) * MS_PER_MINUTE;
    return value_new_date(due);
}

json_t *query_document_new(uint32_t index)
{
    if (index >= QUERY_DOCUMENT_MAX_COUNT)
        return NULL;
    generator g = {.state = DOCUMENT_SEED ^ ((uint64_t)index * UINT64_C(0xd1b54a32d192ed03))};
    json_t *document = json_object();
    if (document == NULL)
        return NULL;
    char owner[32];
    snprintf(owner, sizeof owner, "user-%u", below(&g, OWNER_COUNT));
    /* Quarter hours, so estimates print short ("2.25"), as people enter them. */
    double estimate = (double)(1 + below(&g, 160)) / 4.0;
    bool ok = set_new(document, "_id", new_object_id(index)) &&
              set_new(document, "owner_id", json_string(owner)) &&
              set_new(document, "summary", new_summary(&g)) &&
              set_new(document, "isComplete", json_boolean(chance(&g, 35))) &&
              set_new(document, "priority", json_integer(below(&g, 6))) &&
              set_new(document, "estimate", value_new_double(estimate));
    if (ok && !chance(&g, 10))
        ok = set_new(document, "due", new_due(&g));
    ok = ok && set_new(document, "tags", new_tags(&g)) &&
         set_new(document, "project", new_project(&g));
    if (!ok) {
        json_decref(document);
        return NULL;
    }
    return document;
}
