/*
 * sync_write_check.c — which parts of an upload a session may make
 * (sync_write_check.h).
 *
 * The objects of an upload are loaded once, as merge states, and carried
 * from changeset to changeset: a changeset's allowed instructions are
 * joined into them, so that the next changeset is judged on what the
 * previous ones left, as integration will see it.  A dropped object's
 * state is put back as it was before that changeset.
 */
#include "sync_write_check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realmfs/ejson.h"
#include "realmfs/rules.h"
#include "realmfs/value.h"
#include "sync_download.h"

/* One object the upload touches. */
typedef struct sync_write_object {
    const char *collection; /* borrowed from the upload */
    const json_t *id;       /* borrowed from the upload */
    object_state *state;    /* as the upload's allowed instructions so far leave it */
} sync_write_object;

typedef struct sync_write_context {
    const app_config *app;
    sync_schema *schema;
    sync_store *store;
    const sync_view *view;
    json_t *positions; /* "<collection>/<id as Extended JSON>" -> index in objects */
    sync_write_object *objects;
    size_t object_count;
    size_t object_capacity;
    sync_write_check *check;
    char *message;
    size_t message_size;
} sync_write_context;

/* What one changeset would do to one object. */
typedef struct sync_write_change {
    const char *collection;
    const json_t *id;
    const json_t *before; /* NULL: the object does not exist */
    const json_t *after;
} sync_write_change;

void sync_write_check_clear(sync_write_check *check)
{
    for (size_t index = 0; check->owned != NULL && index < check->count; index++)
        if (check->owned[index])
            changeset_clear(&check->allowed[index]);
    free(check->allowed);
    free(check->owned);
    for (size_t index = 0; index < check->refusal_count; index++) {
        sync_write_refusal *refusal = &check->refusals[index];
        free(refusal->collection);
        json_decref(refusal->id);
        free(refusal->reason);
        json_decref(refusal->server_document);
    }
    free(check->refusals);
    *check = (sync_write_check){0};
}

static int sync_write_fail(sync_write_context *context, int result, const char *what)
{
    if (result == -ENOMEM)
        snprintf(context->message, context->message_size, "out of memory");
    else
        snprintf(context->message, context->message_size, "%s: %s", what,
                 sync_store_last_error());
    return result;
}

/* Room for one more element in items (count used of *capacity, each of
 * size bytes): items itself, or a larger copy (capacity doubles, so that
 * appending stays linear); NULL when out of memory, items then unchanged. */
static void *sync_write_grow(void *items, size_t *capacity, size_t count, size_t size)
{
    if (count < *capacity)
        return items;
    size_t grown_capacity = *capacity > 0 ? 2 * *capacity : 8;
    void *grown = realloc(items, grown_capacity * size);
    if (grown != NULL)
        *capacity = grown_capacity;
    return grown;
}

/* ---- The upload's objects ----------------------------------------------- */

static int sync_write_add_object(sync_write_context *context,
                                 const changeset_instruction *instruction, size_t *position)
{
    sync_write_object *objects = sync_write_grow(context->objects, &context->object_capacity,
                                                 context->object_count, sizeof *objects);
    if (objects == NULL)
        return -ENOMEM;
    context->objects = objects;
    object_state *state;
    int result = sync_store_get_object_state(context->store, instruction->collection,
                                             instruction->id, &state);
    if (result != 0)
        return result;
    *position = context->object_count++;
    context->objects[*position] =
        (sync_write_object){instruction->collection, instruction->id, state};
    return 0;
}

/* The object an instruction touches, loaded from the store on first use. */
static int sync_write_find_object(sync_write_context *context,
                                  const changeset_instruction *instruction, size_t *position)
{
    char *key = sync_download_object_key(instruction->collection, instruction->id);
    if (key == NULL)
        return -ENOMEM;
    json_t *known = json_object_get(context->positions, key);
    int result = 0;
    if (known != NULL) {
        *position = (size_t)json_integer_value(known);
    } else {
        result = sync_write_add_object(context, instruction, position);
        if (result == 0 && json_object_set_new(context->positions, key,
                                               json_integer((json_int_t)*position)) != 0)
            result = -ENOMEM;
    }
    free(key);
    return result;
}

/* ---- Judging one object ------------------------------------------------- */

/* What becomes of an object's instructions (or a negative errno). */
enum {
    SYNC_WRITE_ALLOW = 0,
    SYNC_WRITE_REFUSE = 1, /* dropped, and the client is told why */
    SYNC_WRITE_DROP = 2,   /* dropped: they change nothing visible */
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int sync_write_refuse(char *reason, size_t reason_size, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(reason, reason_size, format, arguments);
    va_end(arguments);
    return SYNC_WRITE_REFUSE;
}

/* Whether role may write the field at path in document. */
static int sync_write_field_writable(const rules_role *role, const rules_document_access *access,
                                     const json_t *document, const filter_user *user,
                                     const char *path, bool *writable)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return -ENOMEM;
    const char *names[CHANGESET_MAX_DEPTH];
    size_t depth = 0;
    char *rest = NULL;
    for (char *name = strtok_r(copy, ".", &rest); name != NULL && depth < CHANGESET_MAX_DEPTH;
         name = strtok_r(NULL, ".", &rest))
        names[depth++] = name;
    *writable = rules_field_writable(role, access, document, user, names, depth);
    free(copy);
    return 0;
}

/* Whether role may write every field path that differs between before and
 * after: the paths changeset_diff writes, leaf by leaf.  SYNC_WRITE_REFUSE
 * with reason when one may not be written, SYNC_WRITE_ALLOW, -ENOMEM. */
static int sync_write_check_fields(const sync_view *view, const rules_role *role,
                                   const sync_write_change *change, char *reason,
                                   size_t reason_size)
{
    const json_t *document = change->before != NULL ? change->before : change->after;
    const filter_user *user = sync_user_filter(sync_view_user(view));
    rules_document_access access = rules_evaluate_document(role, document, user);
    if (access.all_fields_writable)
        return 0;
    changeset diff = {0};
    char detail[200];
    int result = changeset_diff(change->collection, change->id, change->before, change->after,
                                &diff, detail, sizeof detail);
    if (result == -EINVAL)
        result = sync_write_refuse(reason, reason_size, "%s", detail);
    for (size_t index = 0; result == 0 && index < diff.count; index++) {
        const char *path = diff.instructions[index].path;
        bool writable = true;
        if (path != NULL)
            result = sync_write_field_writable(role, &access, document, user, path, &writable);
        if (result == 0 && !writable)
            result = sync_write_refuse(reason, reason_size,
                                       "role \"%s\" may not write field \"%s\"",
                                       rules_role_name(role), path);
    }
    changeset_clear(&diff);
    return result;
}

/* What the roles say of a change, in the order sync_write_check.h lists:
 * SYNC_WRITE_REFUSE with reason, SYNC_WRITE_ALLOW, -ENOMEM. */
static int sync_write_check_roles(const sync_view *view, const sync_write_change *change,
                                  char *reason, size_t reason_size)
{
    const rules_role *role = sync_view_role(view, change->collection);
    if (role == NULL)
        return sync_write_refuse(reason, reason_size,
                                 "no role of the user applies to collection \"%s\"",
                                 change->collection);
    const filter_user *user = sync_user_filter(sync_view_user(view));
    const char *name = rules_role_name(role);
    if (change->before != NULL && !rules_evaluate_document(role, change->before, user).writable)
        return sync_write_refuse(reason, reason_size, "role \"%s\" may not write this object",
                                 name);
    if (change->after == NULL)
        return rules_can_delete(role, change->before, user)
                   ? 0
                   : sync_write_refuse(reason, reason_size,
                                       "role \"%s\" may not delete this object", name);
    if (!rules_evaluate_document(role, change->after, user).writable)
        return sync_write_refuse(reason, reason_size,
                                 "role \"%s\" could not write the object as the change leaves "
                                 "it (its write filter refuses the result)",
                                 name);
    if (change->before == NULL && !rules_can_insert(role, change->after, user))
        return sync_write_refuse(reason, reason_size, "role \"%s\" may not insert this object",
                                 name);
    return sync_write_check_fields(view, role, change, reason, reason_size);
}

static bool sync_write_same_value(const json_t *a, const json_t *b)
{
    return a == NULL || b == NULL ? a == b : json_equal(a, b);
}

/* SYNC_WRITE_REFUSE with reason, SYNC_WRITE_DROP, SYNC_WRITE_ALLOW (the
 * schema may then have grown: *extended), or a negative errno with
 * context->message. */
static int sync_write_judge(sync_write_context *context, const sync_write_change *change,
                            char *reason, size_t reason_size, bool *extended)
{
    const sync_view *view = context->view;
    *extended = false;
    if (change->before == NULL && change->after == NULL)
        return SYNC_WRITE_DROP;
    if (sync_view_has_permissions(view)) {
        int result = sync_write_check_roles(view, change, reason, reason_size);
        if (result != 0)
            return result == -ENOMEM ? sync_write_fail(context, result, "") : result;
    }
    if (!sync_view_contains(view, change->collection, change->before) &&
        !sync_view_contains(view, change->collection, change->after))
        return sync_write_refuse(reason, reason_size,
                                 "the object is outside the session's view (its subscriptions "
                                 "and what its role may read)");
    const char *indexed = app_config_indexed_queryable_field(context->app);
    if (indexed != NULL && change->before != NULL && change->after != NULL &&
        !sync_write_same_value(value_get_path(change->before, indexed),
                               value_get_path(change->after, indexed)))
        return sync_write_refuse(reason, reason_size,
                                 "field \"%s\" is the indexed queryable field: it cannot change",
                                 indexed);
    if (change->after == NULL)
        return 0;
    int result = sync_schema_admit_document(context->schema, change->collection, change->after,
                                            extended, reason, reason_size);
    if (result == -EINVAL)
        return SYNC_WRITE_REFUSE;
    if (result != 0)
        snprintf(context->message, context->message_size, "%s",
                 result == -ENOMEM ? "out of memory" : reason);
    return result;
}

/* The object as the session may read it, for a compensating write. */
static int sync_write_server_document(const sync_write_context *context, const char *collection,
                                      const json_t *document, json_t **readable)
{
    *readable = NULL;
    if (document == NULL)
        return 0;
    json_t *prepared = NULL;
    int result = sync_view_prepare_document(context->app, collection, document, &prepared);
    sync_view_object object;
    sync_view_examine(context->view, collection, prepared, &object);
    if (result == 0 && object.visible)
        result = sync_view_readable_document(context->view, &object, prepared, readable);
    json_decref(prepared);
    return result;
}

static int sync_write_add_refusal(sync_write_context *context, const sync_write_object *object,
                                  const json_t *before, const char *reason,
                                  uint64_t client_version)
{
    sync_write_check *check = context->check;
    sync_write_refusal *refusals = sync_write_grow(check->refusals, &check->refusal_capacity,
                                                   check->refusal_count, sizeof *refusals);
    if (refusals == NULL)
        return -ENOMEM;
    check->refusals = refusals;
    sync_write_refusal refusal = {
        .collection = strdup(object->collection),
        .id = json_deep_copy(object->id),
        .reason = strdup(reason),
        .client_version = client_version,
    };
    int result = refusal.collection && refusal.id && refusal.reason
                     ? sync_write_server_document(context, object->collection, before,
                                                  &refusal.server_document)
                     : -ENOMEM;
    if (result != 0) {
        free(refusal.collection);
        json_decref(refusal.id);
        free(refusal.reason);
        return result;
    }
    check->refusals[check->refusal_count++] = refusal;
    return 0;
}

/* Join the changeset's instructions on the object at position into its
 * state. */
static int sync_write_apply(sync_write_object *object, const changeset *original,
                            const size_t *positions, size_t position)
{
    for (size_t index = 0; index < original->count; index++) {
        if (positions[index] != position)
            continue;
        const changeset_instruction *instruction = &original->instructions[index];
        changeset_clock clock = changeset_instruction_clock(original, index);
        int result = object_state_join_instruction(object->state, instruction, &clock);
        if (result < 0)
            return result;
    }
    return 0;
}

/* Judge the object at position in one changeset; *dropped says whether
 * its instructions go (refused, or changing nothing), and its state is
 * then put back. */
static int sync_write_judge_object(sync_write_context *context, const changeset *original,
                                   const size_t *positions, size_t position, bool *dropped)
{
    sync_write_object *object = &context->objects[position];
    json_t *saved = object_state_to_json(object->state);
    json_t *before = NULL;
    json_t *after = NULL;
    sync_write_change change = {.collection = object->collection, .id = object->id};
    int result = saved != NULL ? object_state_document(object->state, &before) : -ENOMEM;
    if (result == 0)
        result = sync_write_apply(object, original, positions, position);
    if (result == 0)
        result = object_state_document(object->state, &after);
    char reason[512];
    bool extended = false;
    change.before = before;
    change.after = after;
    if (result == 0)
        result = sync_write_judge(context, &change, reason, sizeof reason, &extended);
    else if (result == -ENOMEM)
        sync_write_fail(context, result, "");
    else
        snprintf(context->message, context->message_size,
                 "an uploaded instruction does not apply to its object in %s",
                 object->collection);
    context->check->schema_extended |= extended;
    *dropped = result == SYNC_WRITE_REFUSE || result == SYNC_WRITE_DROP;
    if (*dropped) {
        bool refused = result == SYNC_WRITE_REFUSE;
        object_state *restored = NULL;
        result = object_state_from_json(saved, &restored, NULL, 0);
        if (result == 0) {
            object_state_free(object->state);
            object->state = restored;
        }
        if (result == 0 && refused)
            result = sync_write_add_refusal(context, object, before, reason,
                                            original->client_version);
        if (result != 0)
            sync_write_fail(context, result, "");
    }
    json_decref(saved);
    json_decref(before);
    json_decref(after);
    return result;
}

/* ---- Changesets --------------------------------------------------------- */

/* A copy of original without the instructions of dropped objects. */
static int sync_write_filter(const sync_write_context *context, const changeset *original,
                             const size_t *positions, const bool *dropped, changeset *allowed)
{
    *allowed = (changeset){.origin = original->origin,
                           .client_version = original->client_version,
                           .timestamp = original->timestamp};
    for (size_t index = 0; index < original->count; index++) {
        if (dropped[positions[index]])
            continue;
        const changeset_instruction *instruction = &original->instructions[index];
        int result = changeset_append(allowed, instruction->operation, instruction->collection,
                                      instruction->id, instruction->path, instruction->value,
                                      context->message, context->message_size);
        if (result != 0) {
            changeset_clear(allowed);
            return result;
        }
    }
    return 0;
}

static int sync_write_check_changeset(sync_write_context *context, const changeset *original,
                                      size_t number)
{
    sync_write_check *check = context->check;
    size_t *positions = calloc(original->count ? original->count : 1, sizeof *positions);
    if (positions == NULL)
        return sync_write_fail(context, -ENOMEM, "");
    int result = 0;
    for (size_t index = 0; result == 0 && index < original->count; index++)
        result = sync_write_find_object(context, &original->instructions[index],
                                        &positions[index]);
    if (result != 0) {
        free(positions);
        return sync_write_fail(context, result, "reading the merge state of an uploaded object");
    }
    bool *judged = calloc(context->object_count ? context->object_count : 1, sizeof *judged);
    bool *dropped = calloc(context->object_count ? context->object_count : 1, sizeof *dropped);
    bool any_dropped = false;
    if (judged == NULL || dropped == NULL)
        result = sync_write_fail(context, -ENOMEM, "");
    for (size_t index = 0; result == 0 && index < original->count; index++) {
        size_t position = positions[index];
        if (judged[position])
            continue;
        judged[position] = true;
        result = sync_write_judge_object(context, original, positions, position,
                                         &dropped[position]);
        any_dropped |= dropped[position];
    }
    if (result == 0 && any_dropped) {
        result = sync_write_filter(context, original, positions, dropped,
                                   &check->allowed[number]);
        check->owned[number] = result == 0;
    } else if (result == 0) {
        check->allowed[number] = *original;
    }
    free(judged);
    free(dropped);
    free(positions);
    return result;
}

int sync_write_check_run(const app_config *app, sync_schema *schema, sync_store *store,
                         const sync_view *view, const changeset *changesets, size_t count,
                         uint64_t integrated_through, sync_write_check *check, char *message,
                         size_t message_size)
{
    *check = (sync_write_check){0};
    sync_write_context context = {
        .app = app, .schema = schema, .store = store, .view = view,
        .positions = json_object(), .check = check,
        .message = message, .message_size = message_size,
    };
    check->allowed = calloc(count ? count : 1, sizeof *check->allowed);
    check->owned = calloc(count ? count : 1, sizeof *check->owned);
    check->count = count;
    int result = context.positions && check->allowed && check->owned
                     ? 0
                     : sync_write_fail(&context, -ENOMEM, "");
    for (size_t index = 0; result == 0 && index < count; index++) {
        if (changesets[index].client_version <= integrated_through)
            check->allowed[index] = changesets[index];
        else
            result = sync_write_check_changeset(&context, &changesets[index], index);
    }
    for (size_t index = 0; index < context.object_count; index++)
        object_state_free(context.objects[index].state);
    free(context.objects);
    json_decref(context.positions);
    if (result != 0)
        sync_write_check_clear(check);
    return result;
}
