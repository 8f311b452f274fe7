/*
 * query_documents.h — the "Task" documents the query benchmark stores.
 *
 * Document number i (0, 1, 2, ...) depends only on i and a fixed seed, so
 * every run, and both engines in a run, see exactly the same data whatever
 * the number of objects.  Each is a normalized document (value.h) shaped
 * like a Flexible Sync task tracker's object:
 *
 *   _id         ObjectId (seconds grow with i, counter = i, so ids sort in i order)
 *   owner_id    "user-0" .. "user-999", uniform
 *   summary     30 to 60 characters of task text; some mention "report" in
 *               various cases ("Report", "REPORT", "reporting"), a few hold
 *               non-ASCII letters
 *   isComplete  bool, about 35% true
 *   priority    int 0..5, uniform
 *   estimate    double, quarter hours from 0.25 to 40.0
 *   due         date in 2025..2027 (whole minutes, half of them at midnight,
 *               so some fall exactly on 2026-01-01T00:00:00Z); absent from
 *               about 10% of the tasks, as an undated task would be
 *   tags        array of 0..4 distinct strings from a 12-word vocabulary
 *   project     embedded {name: string, archived: bool (about 15% true)}
 *
 * Dates are whole seconds on purpose: the SQLite side of the benchmark
 * compares the Extended JSON date strings, and ISO-8601 text orders like
 * the instants only while every date has the same form (no ".mmm").
 */
#ifndef REALMFS_BENCH_QUERY_DOCUMENTS_H
#define REALMFS_BENCH_QUERY_DOCUMENTS_H

#include <jansson.h>
#include <stdint.h>

/* Document number index, as a new reference; NULL when out of memory.
 * index must be below 2^24 (the ObjectId counter has 3 bytes). */
json_t *query_document_new(uint32_t index);

/* The largest index + 1 that query_document_new accepts. */
#define QUERY_DOCUMENT_MAX_COUNT (UINT32_C(1) << 24)

#endif
