/*
 * sync_user.h — a connection's user as the roles and rules see it
 * (filter_user in filter.h): what %%user.id, %%user.type, %%user.data and
 * %%user.custom_data expand to.
 *
 *   id           the auth user's id (24 hex digits)
 *   type         "normal", or "server" for the user of a server API key
 *                (auth.h makes no other kind: there are no "edge" users)
 *   data         what the authentication provider knows: {"email": ...}
 *                for local-userpass users, {} for the others
 *   custom_data  the custom user data document (auth/custom_user_data.json):
 *                the document of its collection whose user_id_field holds
 *                the user id, read from the server's store; NULL when the
 *                app has no custom user data or the user has no document
 *
 * The user id is a string; when user_id_field is "_id" the document may
 * also have the id as an ObjectId (as App Services' examples create it),
 * so both are tried, the string first.  For another field the collection
 * is scanned, which costs a read of every document of that collection:
 * name "_id" in custom_user_data.json where the collection is large.
 *
 * A sync_user is immutable and reference-counted: every view built for
 * the connection holds it (sync_view.h), and a change of the custom data
 * makes a new one.
 */
#ifndef REALMFS_SYNC_USER_H
#define REALMFS_SYNC_USER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "realmfs/app_config.h"
#include "realmfs/auth.h"
#include "realmfs/filter.h"
#include "realmfs/sync_store.h"

typedef struct sync_user sync_user;

/*
 * The user context of user, with its custom data read from store as it
 * is now.  0, -ENOMEM, or the store's negative errno with a message
 * ("reading the custom user data of <id> in User: <store's message>").
 */
int sync_user_new(const app_config *app, sync_store *store, const auth_user *user,
                  sync_user **out, char *message, size_t message_size);

/* Another reference; returns user. */
sync_user *sync_user_ref(sync_user *user);
/* Drop a reference (NULL is allowed). */
void sync_user_unref(sync_user *user);

/* The user as filter.h and rules.h take it; lives as long as user. */
const filter_user *sync_user_filter(const sync_user *user);

/* Whether a and b expand the same way: same id, type, data and custom
 * data (the same values, whatever their fields' order). */
bool sync_user_equal(const sync_user *a, const sync_user *b);

/* {"id": ..., "type": ..., "data": {...}, "custom_data": {...} or null},
 * the values normalized: what a file's last served user context is
 * compared by.  A new reference, NULL when out of memory. */
json_t *sync_user_json(const sync_user *user);

/* Whether collection holds the app's custom user data, so that a change
 * to it may change what users may read and write. */
bool sync_user_is_custom_data_collection(const app_config *app, const char *collection);

#endif
