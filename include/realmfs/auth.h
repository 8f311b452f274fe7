/*
 * auth.h — the users and API keys of realmfs-server, and the credentials
 * a client presents when it opens a session.
 *
 * Three App Services providers are served (app_config.h names them):
 *
 *   anon-user       every anonymous login creates a new user; a client
 *                   stays that user by reconnecting with its session
 *                   token (below).  The record stays (nothing removes
 *                   anonymous users yet)
 *   local-userpass  an email address and a password, added by the operator
 *   api-key         "<key id>.<secret>": the key id is 24 lowercase hex
 *                   digits, the secret 64 lowercase hex digits (32 random
 *                   bytes).  A key belongs to one user: to an existing
 *                   user when it is created for one, otherwise to a new
 *                   user of type "server" made for that key alone (as App
 *                   Services' server API keys).  The whole key is handed
 *                   out once, when it is created; the store keeps only a
 *                   hash of the secret.
 *
 * Session tokens.  After a login with any of the three the server hands
 * the client a session token (auth_create_session): 64 lowercase hex
 * digits, 256 bits from getrandom.  "Bearer <token>" then logs in as the
 * same user without argon2, so reconnecting costs a lookup, and an
 * anonymous client stays the same user.  The store keeps only the
 * token's SHA-256 (OpenSSL's libcrypto), which is enough for 256 random
 * bits: there is nothing to guess and no dictionary to try.  A token
 * names its user, the provider the user logged in with, when it was made
 * and when it expires; it is refused once expired, and whenever its user
 * is disabled (at once: every verification reads the user) or gone.
 * Expired tokens stay stored until auth_purge_expired_sessions.
 *
 * Users have stable ids: the 24 lowercase hex digits of an ObjectId, which
 * is what %%user.id expands to.  Every user is of type "normal" except the
 * users made for server API keys, which are of type "server".
 *
 * Storage.  auth_open(data) keeps everything in its own LMDB environment
 * in <data>/auth/, apart from the object store (store.h), so that users
 * can move to another backend without touching the data and the other way
 * round.  Only auth.c touches it.  The directory is created with mode 0700
 * and its files with 0600.  Secrets (passwords, API key secrets) are never
 * stored: only argon2id hashes in the PHC encoded form
 * ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"), each with its own
 * 16-byte random salt.  The default cost is OWASP's minimum for argon2id:
 * 2 passes over 19 MiB with one lane, which takes tens of milliseconds
 * and 19 MiB per verification in progress.  A hash keeps the cost it was
 * made with, so changing auth_options affects only hashes made later.
 *
 * Verification answers -EACCES for every wrong credential, and costs one
 * hash verification whether or not the email address or key id exists
 * (an unknown one is checked against a dummy hash made at auth_open), so
 * that neither the answer nor its timing tells which users exist.  Only
 * after the secret matched does the message say that the user is disabled
 * or the key revoked.
 *
 * Contract:
 *  - Every function returns 0 (or a documented non-negative value) on
 *    success and a negative errno on failure; auth_last_error() then
 *    holds a message for the calling thread.  Messages never contain a
 *    password, an API key or a secret.
 *  - A successful write is durable on disk when the call returns (a
 *    revoked key stays revoked across a crash).
 *  - Any thread may call any function on one auth; several processes may
 *    open the same directory (the server, and the operator's "user add").
 *  - -EIO means a stored record is damaged or the system failed; -ENOSPC
 *    that the environment (4 GiB) is full.
 *  - Email addresses are trimmed of surrounding whitespace and lowercased
 *    (ASCII letters) before use, so lookups ignore case.  Valid addresses
 *    have at most AUTH_EMAIL_MAX bytes, exactly one '@' with something on
 *    both sides, and no whitespace or control characters.
 *  - Passwords have 1 to AUTH_PASSWORD_MAX bytes.  API key names have 1 to
 *    AUTH_NAME_MAX bytes without control characters, and need not be
 *    unique.
 */
#ifndef REALMFS_AUTH_H
#define REALMFS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realmfs/app_config.h"

/* Sizes with the terminating NUL. */
#define AUTH_ID_SIZE 25       /* 24 hex digits: user ids and key ids */
#define AUTH_API_KEY_SIZE 90  /* "<24 hex digits>.<64 hex digits>" */
#define AUTH_SESSION_TOKEN_SIZE 65 /* 64 hex digits */
/* Sizes without it. */
#define AUTH_EMAIL_MAX 254
#define AUTH_PASSWORD_MAX 1024
#define AUTH_NAME_MAX 255
/* The longest Authorization header value that is parsed at all. */
#define AUTH_HEADER_MAX 4096

typedef struct auth auth;

/* The cost of new hashes.  A zero member takes the default; lower values
 * exist so that tests run fast and must not be used in production. */
typedef struct auth_options {
    uint32_t hash_passes;      /* argon2 t_cost; default 2 */
    uint32_t hash_memory_kib;  /* argon2 m_cost; default 19456 (19 MiB) */
    uint32_t hash_lanes;       /* argon2 parallelism; default 1 */
} auth_options;

/*
 * A user as a caller sees it.  Anonymous users are the "normal" users
 * without an email address.  Clear with auth_user_clear() (also safe on a
 * zeroed struct).
 */
typedef struct auth_user {
    char id[AUTH_ID_SIZE];
    char *email;          /* malloc'd, normalized; NULL without local-userpass */
    char type[8];         /* "normal" or "server" */
    int64_t created_ms;   /* ms since the epoch */
    bool disabled;        /* a disabled user cannot log in */
} auth_user;

/* An API key, without its secret, which cannot be read back.  Clear with
 * auth_api_key_clear(). */
typedef struct auth_api_key {
    char id[AUTH_ID_SIZE];
    char *name;           /* malloc'd */
    char user_id[AUTH_ID_SIZE];
    int64_t created_ms;
    bool disabled;        /* revoked: the key stays listed, never logs in */
} auth_api_key;

/* What a session token stands for (its secret is not stored). */
typedef struct auth_session {
    char user_id[AUTH_ID_SIZE];
    app_auth_provider provider; /* of the login that made it */
    int64_t created_ms;         /* ms since the epoch */
    int64_t expires_ms;         /* refused from then on */
} auth_session;

/*
 * What an Authorization header carries: a session token (session_token
 * not empty; provider is then meaningless) or a login with provider.  The
 * fields it does not use are empty strings.  It holds secrets:
 * auth_credentials_clear() wipes it.
 */
typedef struct auth_credentials {
    app_auth_provider provider;
    char email[AUTH_EMAIL_MAX + 1];        /* as sent; verification normalizes */
    char password[AUTH_PASSWORD_MAX + 1];
    char api_key[AUTH_API_KEY_SIZE];
    char session_token[AUTH_SESSION_TOKEN_SIZE];
} auth_credentials;

/* Message for the last failure in the calling thread ("" if none). */
const char *auth_last_error(void);

/* Open (creating <data_directory>/auth if missing) the users of a data
 * directory, which must exist.  options may be NULL for the defaults;
 * -EINVAL for a cost argon2 refuses.  -ENOTSUP for an auth directory in a
 * format this build cannot read.  *out is NULL on failure. */
int auth_open(const char *data_directory, const auth_options *options, auth **out);
/* Accepts NULL.  Every call using auth must have returned. */
void auth_close(auth *auth);

void auth_user_clear(auth_user *user);
void auth_api_key_clear(auth_api_key *key);

/*
 * Users.  add: -EEXIST when a user has that email (in any case), -EINVAL
 * for an invalid email or password; user_id_out (may be NULL) receives
 * the new id.  set_password: -EINVAL for a user without an email address.
 * disable / enable: idempotent.  find: -ENOENT when there is no such
 * user, -EINVAL for a malformed id or email.
 */
int auth_add_user(auth *auth, const char *email, const char *password,
                  char user_id_out[AUTH_ID_SIZE]);
int auth_set_password(auth *auth, const char *user_id, const char *password);
int auth_disable_user(auth *auth, const char *user_id);
int auth_enable_user(auth *auth, const char *user_id);
int auth_find_user(auth *auth, const char *user_id, auth_user *user);
int auth_find_user_by_email(auth *auth, const char *email, auth_user *user);
/* A new anonymous user, recorded so that its id stays valid. */
int auth_create_anonymous_user(auth *auth, auth_user *user);

/*
 * Visit every user in id order (which is roughly creation order), all in
 * one snapshot.  The auth_user is valid during the visit only.  visit may
 * call the reading functions of auth but not the writing ones; a non-zero
 * return stops the walk and is returned.
 */
int auth_list_users(auth *auth, int (*visit)(const auth_user *user, void *context),
                    void *context);

/*
 * Create an API key named name for the user owner_user_id, or, when that
 * is NULL, for a new "server" user.  key_out receives the whole key; it is
 * never available again, so show it once and wipe it.  key_id_out (may be
 * NULL) receives the key id.  -ENOENT when the owner does not exist.
 */
int auth_add_api_key(auth *auth, const char *name, const char *owner_user_id,
                     char key_out[AUTH_API_KEY_SIZE], char key_id_out[AUTH_ID_SIZE]);
/* For good: a revoked key cannot be restored.  Idempotent; -ENOENT when
 * there is no such key.  The key's user stays. */
int auth_revoke_api_key(auth *auth, const char *key_id);
/* As auth_list_users, for the keys in key id order. */
int auth_list_api_keys(auth *auth, int (*visit)(const auth_api_key *key, void *context),
                       void *context);

/*
 * Logins.  Each returns 0 and fills user, or -EACCES for a wrong, unknown
 * or malformed credential, a disabled user and a revoked key alike (see
 * above); other errors only when the system fails.  On failure user is
 * left cleared.
 */
int auth_verify_password(auth *auth, const char *email, const char *password, auth_user *user);
int auth_verify_api_key(auth *auth, const char *api_key, auth_user *user);
/* The login credentials asks for: one of the two above, or a new
 * anonymous user.  The caller checks that the app enables the provider. */
int auth_authenticate(auth *auth, const auth_credentials *credentials, auth_user *user);

/*
 * Sessions.  create: a new token for user_id, who has just logged in
 * with provider, valid for lifetime_ms (> 0, else -EINVAL); token_out
 * receives it (never available again: hand it out once and wipe it), and
 * session (may be NULL) what it stands for.  -ENOENT when the user does
 * not exist.  verify: 0 and the user and session of a token, or -EACCES
 * for a malformed, unknown, purged or expired token and for a user
 * disabled or gone, each with its reason; other errors only when the
 * system fails; on failure user is left cleared.  purge: removes the
 * expired tokens, and returns how many.
 */
int auth_create_session(auth *auth, const char *user_id, app_auth_provider provider,
                        int64_t lifetime_ms, char token_out[AUTH_SESSION_TOKEN_SIZE],
                        auth_session *session);
int auth_verify_session_token(auth *auth, const char *token, auth_user *user,
                              auth_session *session);
int auth_purge_expired_sessions(auth *auth);

/* The App Services name of a provider ("anon-user", "local-userpass",
 * "api-key"); "unknown" for anything else. */
const char *auth_provider_name(app_auth_provider provider);

/*
 * Parse the value of an HTTP Authorization header, one of (the scheme in
 * any case, separated from its argument by one or more spaces, the whole
 * value possibly surrounded by spaces and tabs):
 *
 *   Bearer <session token>               a session token (64 hex digits)
 *   Bearer <API key>                     api-key
 *   Basic <base64 of email:password>     local-userpass (RFC 7617: the
 *                                        email ends at the first ':'; the
 *                                        standard base64 alphabet, padded)
 *   Anonymous                            anon-user
 *
 * Anything else, a value longer than AUTH_HEADER_MAX bytes, a Bearer
 * argument that is neither a token nor an API key of the documented form, an empty email or password, a NUL in either and
 * ones longer than the limits give -EINVAL with a message that says which
 * rule was broken (and never repeats the value).  On failure credentials
 * is wiped.
 */
int auth_parse_authorization_header(const char *value, auth_credentials *credentials);
/* Wipe the secrets (explicit_bzero); credentials may then be reused. */
void auth_credentials_clear(auth_credentials *credentials);

#endif
