/*
 * rules.h — App Services roles and rules, as realmfs-server enforces them
 * for Device Sync: who may read and write which documents and fields.
 *
 * The rules come from an app export (app_config.h): each collection's
 * rules.json ("roles", "filters") and the data source's default_rule.json
 * ("roles").  A role, in App Services' format:
 *
 *   {"name": "owner",
 *    "apply_when": <expression>,              which users the role is for
 *    "document_filters": {"read": <expression>, "write": <expression>},
 *    "read": <bool|expression>, "write": <bool|expression>,
 *    "insert": <bool|expression>, "delete": <bool|expression>,
 *    "search": <bool|expression>,             accepted, not used by sync
 *    "fields": {"<name>": {"read": .., "write": .., "fields": {..}}},
 *    "additional_fields": {"read": .., "write": ..}}
 *
 * Expressions are filter.h expressions.  Device Sync takes only true or
 * false for "read", "write" and the field permissions, so only apply_when,
 * the document filters, "insert" and "delete" are evaluated.  Defaults as
 * App Services: absent "insert" and "delete" are true, absent "read"/
 * "write" and absent field permissions are false, an absent apply_when
 * always applies, and write implies read (a document or field the role may
 * write it may also read).  Permissions only grant: a document-level or
 * field "false" leaves the decision to the field permissions below it.
 * "filters" (query filters) are checked for shape and ignored: App
 * Services never applies them to Device Sync.
 *
 * Evaluation, as App Services does it:
 *   1. Per user and collection, the role is the first one in order whose
 *      apply_when the user satisfies (apply_when sees no document); the
 *      default roles apply only to a collection that has no roles of its
 *      own (no rules.json, or an empty "roles").  No matching role: no
 *      access at all (rules_select_role gives NULL).
 *   2. Per document: the document filters first (a document that fails
 *      the write filter is not writable; one that fails both the read and
 *      the write filter is not readable), then the role's document-level
 *      read/write, then its field permissions ("fields", nested "fields"
 *      for embedded documents and arrays of them, "additional_fields" for
 *      top-level fields "fields" does not name).
 *   3. insert and delete are checked after write: an insert needs write on
 *      every field of the new document and "insert"; a delete needs write
 *      on every field of the stored document and "delete".
 *
 * Sync compatibility is checked when the rules are loaded: a role is
 * refused (the load fails, naming file, role and reason) when it lacks
 * one of the two document filters; when a document filter, "insert" or
 * "delete" reads a field that is not queryable
 * (app_config_field_is_queryable; not checked in Development Mode, where
 * fields become queryable as clients use them); when apply_when reads a
 * document field; when "read", "write" or a field permission is not true
 * or false; when "fields" names _id; when an expression uses what
 * filter_parse refuses; or when it has a key App Services does not
 * define.  src/core/rules.c's top comment gives the reasons.
 *
 * A loaded rules value is immutable; a role pointer lives as long as the
 * rules it came from.
 */
#ifndef REALMFS_RULES_H
#define REALMFS_RULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "realmfs/app_config.h"
#include "realmfs/filter.h"

typedef struct rules rules;
typedef struct rules_role rules_role;

/*
 * Compile the rules of every collection of app, and its default rules.
 * 0 with *out set; -ENOMEM; -EINVAL with message
 * "<file relative to the app directory>: role \"<name>\": <reason>",
 * for instance "data_sources/mongodb-atlas/todo/Item/rules.json: role
 * \"owner\": document_filters.read reads field \"team\", which is not
 * queryable" ("roles[<i>]" or "filters[<i>]" stands for the name when
 * there is none).  An app without any rules loads, and then every
 * collection has no role (no access).  The rules keep pointers into app,
 * which must outlive them.
 */
int rules_load(const app_config *app, rules **out, char *message, size_t message_size);

/* NULL is allowed. */
void rules_free(rules *rules);

/* Whether the collection has roles of its own or default roles apply to
 * it: false means nobody may read or write it. */
bool rules_collection_has_roles(const rules *rules, const char *collection);

/* The role that applies to user for collection, NULL for none. */
const rules_role *rules_select_role(const rules *rules, const char *collection,
                                    const filter_user *user);

/* "name" of the role. */
const char *rules_role_name(const rules_role *role);

/* What a role grants on one document (rules_evaluate_document). */
typedef struct rules_document_access {
    bool readable;          /* a document filter passes and the role grants
                               reading at least one field: _id and the
                               granted fields may be read */
    bool writable;          /* the write filter passes and the role grants
                               writing at least one field */
    bool all_fields_readable;
    bool all_fields_writable;
} rules_document_access;

/*
 * The access role gives user on document (a normalized document as the
 * store holds it).  Never fails; an expression that cannot be evaluated
 * (out of memory) denies.
 */
rules_document_access rules_evaluate_document(const rules_role *role, const json_t *document,
                                              const filter_user *user);

/*
 * Whether the field at path (top-level name first, then names inside
 * embedded documents, also inside arrays of them; depth >= 1) may be
 * read, or written, as a whole, given access from rules_evaluate_document
 * on the same document and user.  A field whose embedded fields are
 * granted only in part is false here; rules_strip_unreadable_fields keeps
 * those parts.  _id is readable, and writable, whenever the document is.
 */
bool rules_field_readable(const rules_role *role, const rules_document_access *access,
                          const json_t *document, const filter_user *user,
                          const char *const *path, size_t depth);
bool rules_field_writable(const rules_role *role, const rules_document_access *access,
                          const json_t *document, const filter_user *user,
                          const char *const *path, size_t depth);

/*
 * Remove from document (in place) every field role does not let user
 * read, recursing into embedded documents where field permissions are
 * nested.  Nothing to do, and no cost beyond the check, when
 * access->all_fields_readable; only _id is left when the document is not
 * readable.  0 or -ENOMEM.
 */
int rules_strip_unreadable_fields(const rules_role *role, const rules_document_access *access,
                                  json_t *document, const filter_user *user);

/* Whether role lets user insert document (write on every field of it,
 * and "insert"). */
bool rules_can_insert(const rules_role *role, const json_t *document, const filter_user *user);

/* Whether role lets user delete the stored document (write on every field
 * of it, and "delete"). */
bool rules_can_delete(const rules_role *role, const json_t *document, const filter_user *user);

#endif
