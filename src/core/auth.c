/*
 * auth.c — the users, API keys and session tokens of auth.h in an LMDB
 * environment of their own, <data>/auth/, with five named databases:
 *
 *   users     user id (24 hex digits)     -> user record
 *   emails    normalized email address    -> user id (24 hex digits)
 *   api_keys  key id (24 hex digits)      -> API key record
 *   sessions  SHA-256 of a session token  -> session record
 *             (64 hex digits)
 *   meta      "format"                    -> uint64_t format version
 *
 * Records are compact JSON objects, so mdb_dump shows them as they are:
 *
 *   user     {"id", "email"?, "password_hash"?, "type", "created", "disabled"}
 *   API key  {"id", "name", "secret_hash", "user_id", "created", "disabled"}
 *   session  {"user_id", "provider", "created", "expires"}
 *
 * "created" and "expires" are in ms since the epoch; password and secret
 * hashes are argon2id encoded strings; "provider" is an App Services
 * provider name.  sessions came after format 1 without changing it: a
 * build that does not know it leaves it alone.
 * Exactly the users made by local-userpass have "email" and
 * "password_hash", and each of them has its entry in emails.  The secret
 * hashed for an API key is its 64 hex digits as the client sends them.
 */
#include "realmfs/auth.h"
#include "realmfs/value.h"

#include "lmdb_support.h"

#include <argon2.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

enum {
    DATABASE_COUNT = 5,
    ID_LENGTH = AUTH_ID_SIZE - 1,
    SECRET_BYTES = 32,
    SECRET_LENGTH = 2 * SECRET_BYTES,
    SESSION_TOKEN_LENGTH = AUTH_SESSION_TOKEN_SIZE - 1,
    TOKEN_DIGEST_BYTES = 32, /* SHA-256 */
    SALT_BYTES = 16,
    HASH_BYTES = 32,
    DEFAULT_HASH_PASSES = 2,
    DEFAULT_HASH_MEMORY_KIB = 19 * 1024,
    DEFAULT_HASH_LANES = 1,
};

_Static_assert(AUTH_API_KEY_SIZE == ID_LENGTH + 1 + SECRET_LENGTH + 1,
               "AUTH_API_KEY_SIZE is \"<id>.<secret>\" and a NUL");
_Static_assert(SESSION_TOKEN_LENGTH == SECRET_LENGTH, "a session token is a secret's digits");

#define MAP_SIZE ((size_t)4 << 30)
#define FORMAT_VERSION UINT64_C(1)
#define TYPE_NORMAL "normal"
#define TYPE_SERVER "server"
#define HEADER_FORMS \
    "expected \"Bearer <session token>\", \"Bearer <API key>\", " \
    "\"Basic <base64 of email:password>\" or \"Anonymous\""

struct auth {
    MDB_env *environment;
    MDB_dbi users;
    MDB_dbi emails;
    MDB_dbi api_keys;
    MDB_dbi sessions;
    MDB_dbi meta;
    auth_options hash_cost; /* every member set */
    /* Checked instead of the hash of an unknown user or key, so that a
     * failed login costs the same whether or not the user exists. */
    char *dummy_hash;
};

/* One public call: the operation its error messages start with, and the
 * one transaction every step of it runs in. */
typedef struct auth_call {
    lmdb_call lmdb;
    auth *auth;
} auth_call;

enum access { READ, WRITE };

/* A piece of a string that is not NUL-terminated. */
typedef struct text_span {
    const char *start;
    size_t length;
} text_span;

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static _Thread_local lmdb_error_message last_error;

const char *auth_last_error(void)
{
    return last_error.text;
}

/* Messages read "<operation>: <message>"; callers never pass secrets. */
static auth_call new_call(auth *auth, const char *operation)
{
    return (auth_call){
        .lmdb = { .last_error = &last_error, .operation = operation },
        .auth = auth,
    };
}

static int fail_out_of_memory(const auth_call *call)
{
    return lmdb_fail(&call->lmdb, -ENOMEM, "out of memory");
}

/* A hash that cannot be decoded is a damaged record; other refusals come
 * from the cost in auth_options. */
static int fail_argon2(const auth_call *call, int code, const char *argon2_function)
{
    int error;
    switch (code) {
    case ARGON2_MEMORY_ALLOCATION_ERROR:
        error = -ENOMEM;
        break;
    case ARGON2_DECODING_FAIL:
    case ARGON2_DECODING_LENGTH_FAIL:
    case ARGON2_INCORRECT_TYPE:
        error = -EIO;
        break;
    default:
        error = -EINVAL;
    }
    return lmdb_fail(&call->lmdb, error, "%s: %s", argon2_function, argon2_error_message(code));
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

/* finish_transaction() must follow whenever this succeeds. */
static int begin_transaction(auth_call *call, enum access access)
{
    return lmdb_call_begin(&call->lmdb, call->auth->environment, access == WRITE);
}

static int finish_transaction(auth_call *call, int result)
{
    return lmdb_call_finish(&call->lmdb, result);
}

/* ------------------------------------------------------------------ */
/* Ids, secrets and time                                               */

/* Secrets come from the kernel's generator or not at all: unlike ObjectId
 * generation there is no weaker fallback. */
static int fill_random(const auth_call *call, void *buffer, size_t size)
{
    uint8_t *next = buffer;
    while (size > 0) {
        ssize_t got = getrandom(next, size, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int error = errno;
            return lmdb_fail(&call->lmdb, -error, "getrandom: %s", strerror(error));
        }
        next += got;
        size -= (size_t)got;
    }
    return 0;
}

/* out has room for 2 * size digits and a NUL. */
static void hex_encode(const uint8_t *bytes, size_t size, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t index = 0; index < size; index++) {
        out[2 * index] = digits[bytes[index] >> 4];
        out[2 * index + 1] = digits[bytes[index] & 0x0f];
    }
    out[2 * size] = '\0';
}

static bool is_lowercase_hex(const char *text, size_t length)
{
    for (size_t index = 0; index < length; index++) {
        char digit = text[index];
        if (!((digit >= '0' && digit <= '9') || (digit >= 'a' && digit <= 'f')))
            return false;
    }
    return true;
}

static bool is_id(const char *text)
{
    return strnlen(text, AUTH_ID_SIZE) == ID_LENGTH && is_lowercase_hex(text, ID_LENGTH);
}

static void generate_id(char id[AUTH_ID_SIZE])
{
    uint8_t bytes[VALUE_OBJECT_ID_SIZE];
    value_generate_object_id(bytes);
    hex_encode(bytes, sizeof bytes, id);
}

/* "<24 hex digits>.<64 hex digits>"; key need not be NUL-terminated. */
static bool is_api_key(const char *key, size_t length)
{
    return length == AUTH_API_KEY_SIZE - 1 && key[ID_LENGTH] == '.' &&
           is_lowercase_hex(key, ID_LENGTH) &&
           is_lowercase_hex(key + ID_LENGTH + 1, SECRET_LENGTH);
}

static int current_time_ms(const auth_call *call, int64_t *milliseconds)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
        int error = errno;
        return lmdb_fail(&call->lmdb, -error, "clock_gettime: %s", strerror(error));
    }
    *milliseconds = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */

static bool is_space(char character)
{
    return character == ' ' || (character >= '\t' && character <= '\r');
}

static bool is_control(char character)
{
    return (unsigned char)character < 0x20 || character == 0x7f;
}

/*
 * Trims, checks and lowercases an email address into out, so that
 * "Alice@Example.com " and "alice@example.com" are one user.  Non-ASCII
 * bytes are kept as they are (no Unicode case folding).
 */
static bool normalize_email(const char *email, char out[AUTH_EMAIL_MAX + 1])
{
    while (is_space(*email))
        email++;
    size_t length = strlen(email);
    while (length > 0 && is_space(email[length - 1]))
        length--;
    if (length == 0 || length > AUTH_EMAIL_MAX)
        return false;
    size_t at_signs = 0;
    for (size_t index = 0; index < length; index++) {
        char character = email[index];
        if (is_space(character) || is_control(character))
            return false;
        at_signs += character == '@';
        out[index] = character >= 'A' && character <= 'Z' ? (char)(character - 'A' + 'a')
                                                          : character;
    }
    out[length] = '\0';
    const char *at = strchr(out, '@');
    return at_signs == 1 && at != out && at[1] != '\0';
}

static int check_email(const auth_call *call, const char *email, char out[AUTH_EMAIL_MAX + 1])
{
    if (email == NULL || !normalize_email(email, out))
        return lmdb_fail(&call->lmdb, -EINVAL,
                         "not a valid email address: one '@' with text on both sides, "
                         "no whitespace or control characters, at most %d bytes",
                         AUTH_EMAIL_MAX);
    return 0;
}

static bool is_acceptable_password(const char *password)
{
    return password != NULL && password[0] != '\0' &&
           strnlen(password, AUTH_PASSWORD_MAX + 1) <= AUTH_PASSWORD_MAX;
}

static int check_password(const auth_call *call, const char *password)
{
    if (!is_acceptable_password(password))
        return lmdb_fail(&call->lmdb, -EINVAL, "a password has 1 to %d bytes", AUTH_PASSWORD_MAX);
    return 0;
}

static int check_name(const auth_call *call, const char *name)
{
    size_t length = name != NULL ? strnlen(name, AUTH_NAME_MAX + 1) : 0;
    bool valid = length > 0 && length <= AUTH_NAME_MAX;
    for (size_t index = 0; valid && index < length; index++)
        valid = !is_control(name[index]);
    if (!valid)
        return lmdb_fail(&call->lmdb, -EINVAL,
                         "an API key name has 1 to %d bytes and no control characters",
                         AUTH_NAME_MAX);
    return 0;
}

static int check_id(const auth_call *call, const char *id, const char *what)
{
    if (id == NULL || !is_id(id))
        return lmdb_fail(&call->lmdb, -EINVAL, "not a %s id (24 lowercase hex digits)", what);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Hashing                                                             */

/* *encoded is malloc'd: an argon2id encoded string with a fresh salt.
 * Callers hash before they begin a write transaction: a hash takes tens
 * of milliseconds, which other writers would otherwise wait for. */
static int hash_secret(const auth_call *call, const char *secret, size_t size, char **encoded)
{
    const auth_options *cost = &call->auth->hash_cost;
    uint8_t salt[SALT_BYTES];
    int result = fill_random(call, salt, sizeof salt);
    if (result != 0)
        return result;
    size_t encoded_size = argon2_encodedlen(cost->hash_passes, cost->hash_memory_kib,
                                            cost->hash_lanes, SALT_BYTES, HASH_BYTES, Argon2_id);
    char *text = malloc(encoded_size);
    if (text == NULL)
        return fail_out_of_memory(call);
    int code = argon2id_hash_encoded(cost->hash_passes, cost->hash_memory_kib, cost->hash_lanes,
                                     secret, size, salt, sizeof salt, HASH_BYTES, text,
                                     encoded_size);
    if (code != ARGON2_OK) {
        free(text);
        return fail_argon2(call, code, "argon2id_hash_encoded");
    }
    *encoded = text;
    return 0;
}

/*
 * 0 when secret matches encoded, -EACCES when it does not.  With encoded
 * NULL (no such user or key) the dummy hash is checked, at the same cost,
 * and the answer is -EACCES.
 */
static int verify_secret(const auth_call *call, const char *encoded, const char *secret)
{
    const char *checked = encoded != NULL ? encoded : call->auth->dummy_hash;
    int code = argon2id_verify(checked, secret, strlen(secret));
    if (code != ARGON2_OK && code != ARGON2_VERIFY_MISMATCH)
        return fail_argon2(call, code, "argon2id_verify");
    return code == ARGON2_OK && encoded != NULL ? 0 : -EACCES;
}

/* ------------------------------------------------------------------ */
/* Records                                                             */

/* *record is a new reference; -ENOENT names what is missing. */
static int load_record(const auth_call *call, MDB_dbi database, const char *what,
                       const char *id, json_t **record)
{
    MDB_val key = lmdb_text_value(id);
    MDB_val value;
    int code = mdb_get(call->lmdb.transaction, database, &key, &value);
    if (code == MDB_NOTFOUND)
        return lmdb_fail(&call->lmdb, -ENOENT, "no %s %s", what, id);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    return lmdb_parse_json_record(&call->lmdb, &value, record);
}

/* flags: 0 to replace, MDB_NOOVERWRITE to insert. */
static int save_record(const auth_call *call, MDB_dbi database, const char *id,
                       const json_t *record, unsigned int flags)
{
    MDB_val key = lmdb_text_value(id);
    return lmdb_put_json_record(&call->lmdb, database, &key, record, flags);
}

/* Replaces one field of a stored record. */
static int update_record(const auth_call *call, MDB_dbi database, const char *what,
                         const char *id, const char *field, json_t *new_value)
{
    json_t *record;
    int result = load_record(call, database, what, id, &record);
    if (result != 0) {
        json_decref(new_value);
        return result;
    }
    if (json_object_set_new(record, field, new_value) != 0)
        result = fail_out_of_memory(call);
    else
        result = save_record(call, database, id, record, 0);
    json_decref(record);
    return result;
}

/*
 * Visit every record of database in key order.  each gets a record that
 * lives during the call, and the cursor on it, with which it may delete
 * the record in a write transaction (mdb_cursor_del); a non-zero return
 * stops the walk and is returned.
 */
static int for_each_record(const auth_call *call, MDB_dbi database,
                           int (*each)(const auth_call *call, MDB_cursor *cursor, json_t *record,
                                       void *context),
                           void *context)
{
    MDB_cursor *cursor;
    int code = mdb_cursor_open(call->lmdb.transaction, database, &cursor);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_open");
    int result = 0;
    MDB_val key, value;
    while (result == 0 && (code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) == 0) {
        json_t *record;
        result = lmdb_parse_json_record(&call->lmdb, &value, &record);
        if (result == 0)
            result = each(call, cursor, record, context);
        json_decref(record);
    }
    return lmdb_cursor_finish(&call->lmdb, cursor, result, code, "mdb_cursor_get");
}

/* ------------------------------------------------------------------ */
/* Users                                                               */

void auth_user_clear(auth_user *user)
{
    free(user->email);
    memset(user, 0, sizeof *user);
}

static bool is_user_type(const char *type)
{
    return strcmp(type, TYPE_NORMAL) == 0 || strcmp(type, TYPE_SERVER) == 0;
}

/* Fills user (which the caller clears) from a stored record. */
static int user_from_record(const auth_call *call, json_t *record, auth_user *user)
{
    const char *id, *email = NULL, *type;
    json_int_t created;
    int disabled;
    if (json_unpack(record, "{s:s, s?s, s:s, s:I, s:b}", "id", &id, "email", &email,
                    "type", &type, "created", &created, "disabled", &disabled) != 0 ||
        !is_id(id) || !is_user_type(type))
        return lmdb_fail(&call->lmdb, -EIO, "damaged user record");
    if (email != NULL && (user->email = strdup(email)) == NULL)
        return fail_out_of_memory(call);
    memcpy(user->id, id, AUTH_ID_SIZE);
    strcpy(user->type, type);
    user->created_ms = created;
    user->disabled = disabled;
    return 0;
}

/* The email index entry of a local-userpass user; -EEXIST when the
 * address is taken. */
static int insert_email(const auth_call *call, const char *email, const char *user_id)
{
    MDB_val key = lmdb_text_value(email);
    MDB_val value = lmdb_text_value(user_id);
    int code = mdb_put(call->lmdb.transaction, call->auth->emails, &key, &value, MDB_NOOVERWRITE);
    if (code == MDB_KEYEXIST)
        return lmdb_fail(&call->lmdb, -EEXIST, "a user with the email address %s exists", email);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_put");
    return 0;
}

/*
 * Store a new user under a fresh id.  email and password_hash are both
 * given (local-userpass) or both NULL (anonymous and server users).
 * *record (a new reference) is what was stored.
 */
static int insert_user(const auth_call *call, const char *email, const char *password_hash,
                       const char *type, json_t **record)
{
    char id[AUTH_ID_SIZE];
    generate_id(id);
    int64_t created = 0;
    int result = current_time_ms(call, &created);
    if (result != 0)
        return result;
    if (email != NULL && (result = insert_email(call, email, id)) != 0)
        return result;
    *record = json_pack("{s:s, s:s*, s:s*, s:s, s:I, s:b}", "id", id, "email", email,
                        "password_hash", password_hash, "type", type,
                        "created", (json_int_t)created, "disabled", 0);
    if (*record == NULL)
        return fail_out_of_memory(call);
    result = save_record(call, call->auth->users, id, *record, MDB_NOOVERWRITE);
    if (result != 0) {
        json_decref(*record);
        *record = NULL;
    }
    return result;
}

static int load_user_by_id(const auth_call *call, const char *id, json_t **record)
{
    return load_record(call, call->auth->users, "user", id, record);
}

/* The stored user record of a normalized email address. */
static int load_user_by_email(const auth_call *call, const char *email, json_t **record)
{
    MDB_val key = lmdb_text_value(email);
    MDB_val value;
    int code = mdb_get(call->lmdb.transaction, call->auth->emails, &key, &value);
    if (code == MDB_NOTFOUND)
        return lmdb_fail(&call->lmdb, -ENOENT, "no user with the email address %s", email);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_get");
    char id[AUTH_ID_SIZE];
    if (value.mv_size != ID_LENGTH || !is_lowercase_hex(value.mv_data, ID_LENGTH))
        return lmdb_fail(&call->lmdb, -EIO, "damaged email index entry for %s", email);
    memcpy(id, value.mv_data, ID_LENGTH);
    id[ID_LENGTH] = '\0';
    return load_user_by_id(call, id, record);
}

static int add_user(auth_call *call, const char *email, const char *password,
                    char user_id_out[AUTH_ID_SIZE])
{
    char *password_hash;
    int result = hash_secret(call, password, strlen(password), &password_hash);
    if (result != 0)
        return result;
    json_t *record = NULL;
    result = begin_transaction(call, WRITE);
    if (result == 0)
        result = finish_transaction(call, insert_user(call, email, password_hash, TYPE_NORMAL,
                                                      &record));
    if (result == 0 && user_id_out != NULL)
        strcpy(user_id_out, json_string_value(json_object_get(record, "id")));
    json_decref(record);
    free(password_hash);
    return result;
}

int auth_add_user(auth *auth, const char *email, const char *password,
                  char user_id_out[AUTH_ID_SIZE])
{
    auth_call call = new_call(auth, "add user");
    char normalized[AUTH_EMAIL_MAX + 1];
    int result = check_email(&call, email, normalized);
    if (result == 0)
        result = check_password(&call, password);
    if (result == 0)
        result = add_user(&call, normalized, password, user_id_out);
    return result;
}

/* Only local-userpass users log in with a password. */
static int require_email(const auth_call *call, const char *user_id)
{
    json_t *record;
    int result = load_user_by_id(call, user_id, &record);
    if (result != 0)
        return result;
    if (json_object_get(record, "email") == NULL)
        result = lmdb_fail(&call->lmdb, -EINVAL, "user %s has no email address to log in with",
                           user_id);
    json_decref(record);
    return result;
}

static int set_password(auth_call *call, const char *user_id, const char *password)
{
    char *password_hash;
    int result = hash_secret(call, password, strlen(password), &password_hash);
    if (result != 0)
        return result;
    result = begin_transaction(call, WRITE);
    if (result == 0) {
        result = require_email(call, user_id);
        if (result == 0)
            result = update_record(call, call->auth->users, "user", user_id, "password_hash",
                                   json_string(password_hash));
        result = finish_transaction(call, result);
    }
    free(password_hash);
    return result;
}

int auth_set_password(auth *auth, const char *user_id, const char *password)
{
    auth_call call = new_call(auth, "set password");
    int result = check_id(&call, user_id, "user");
    if (result == 0)
        result = check_password(&call, password);
    if (result == 0)
        result = set_password(&call, user_id, password);
    return result;
}

static int set_user_disabled(auth_call *call, const char *user_id, bool disabled)
{
    int result = check_id(call, user_id, "user");
    if (result == 0)
        result = begin_transaction(call, WRITE);
    if (result == 0)
        result = finish_transaction(call, update_record(call, call->auth->users, "user", user_id,
                                                        "disabled", json_boolean(disabled)));
    return result;
}

int auth_disable_user(auth *auth, const char *user_id)
{
    auth_call call = new_call(auth, "disable user");
    return set_user_disabled(&call, user_id, true);
}

int auth_enable_user(auth *auth, const char *user_id)
{
    auth_call call = new_call(auth, "enable user");
    return set_user_disabled(&call, user_id, false);
}

/* Reads the user of one stored record into user, in a read transaction;
 * find_record is load_user_by_id or load_user_by_email. */
static int find_user(auth_call *call, auth_user *user, const char *key,
                     int (*find_record)(const auth_call *call, const char *key, json_t **record))
{
    int result = begin_transaction(call, READ);
    if (result != 0)
        return result;
    json_t *record;
    result = find_record(call, key, &record);
    if (result == 0) {
        result = user_from_record(call, record, user);
        json_decref(record);
    }
    result = finish_transaction(call, result);
    if (result != 0)
        auth_user_clear(user);
    return result;
}

int auth_find_user(auth *auth, const char *user_id, auth_user *user)
{
    auth_call call = new_call(auth, "find user");
    memset(user, 0, sizeof *user);
    int result = check_id(&call, user_id, "user");
    if (result != 0)
        return result;
    return find_user(&call, user, user_id, load_user_by_id);
}

int auth_find_user_by_email(auth *auth, const char *email, auth_user *user)
{
    auth_call call = new_call(auth, "find user");
    memset(user, 0, sizeof *user);
    char normalized[AUTH_EMAIL_MAX + 1];
    int result = check_email(&call, email, normalized);
    if (result != 0)
        return result;
    return find_user(&call, user, normalized, load_user_by_email);
}

int auth_create_anonymous_user(auth *auth, auth_user *user)
{
    auth_call call = new_call(auth, "create anonymous user");
    memset(user, 0, sizeof *user);
    json_t *record = NULL;
    int result = begin_transaction(&call, WRITE);
    if (result == 0)
        result = finish_transaction(&call, insert_user(&call, NULL, NULL, TYPE_NORMAL, &record));
    if (result == 0)
        result = user_from_record(&call, record, user);
    json_decref(record);
    if (result != 0)
        auth_user_clear(user);
    return result;
}

typedef struct user_visit {
    int (*visit)(const auth_user *user, void *context);
    void *context;
} user_visit;

static int visit_user(const auth_call *call, MDB_cursor *cursor, json_t *record, void *context)
{
    (void)cursor;
    const user_visit *user_visit = context;
    auth_user user = { 0 };
    int result = user_from_record(call, record, &user);
    if (result == 0)
        result = user_visit->visit(&user, user_visit->context);
    auth_user_clear(&user);
    return result;
}

int auth_list_users(auth *auth, int (*visit)(const auth_user *user, void *context),
                    void *context)
{
    auth_call call = new_call(auth, "list users");
    user_visit user_visit = { .visit = visit, .context = context };
    int result = begin_transaction(&call, READ);
    if (result != 0)
        return result;
    return finish_transaction(&call, for_each_record(&call, auth->users, visit_user, &user_visit));
}

/* ------------------------------------------------------------------ */
/* API keys                                                            */

void auth_api_key_clear(auth_api_key *key)
{
    free(key->name);
    memset(key, 0, sizeof *key);
}

static int api_key_from_record(const auth_call *call, json_t *record, auth_api_key *key)
{
    const char *id, *name, *user_id;
    json_int_t created;
    int disabled;
    if (json_unpack(record, "{s:s, s:s, s:s, s:I, s:b}", "id", &id, "name", &name,
                    "user_id", &user_id, "created", &created, "disabled", &disabled) != 0 ||
        !is_id(id) || !is_id(user_id))
        return lmdb_fail(&call->lmdb, -EIO, "damaged API key record");
    if ((key->name = strdup(name)) == NULL)
        return fail_out_of_memory(call);
    memcpy(key->id, id, AUTH_ID_SIZE);
    memcpy(key->user_id, user_id, AUTH_ID_SIZE);
    key->created_ms = created;
    key->disabled = disabled;
    return 0;
}

/* The owner's id in owner_id: owner_user_id when it exists, else a new
 * server user's. */
static int prepare_key_owner(const auth_call *call, const char *owner_user_id,
                             char owner_id[AUTH_ID_SIZE])
{
    json_t *record;
    int result = owner_user_id != NULL
                     ? load_user_by_id(call, owner_user_id, &record)
                     : insert_user(call, NULL, NULL, TYPE_SERVER, &record);
    if (result != 0)
        return result;
    strcpy(owner_id, json_string_value(json_object_get(record, "id")));
    json_decref(record);
    return 0;
}

static int insert_api_key(const auth_call *call, const char *name, const char *owner_user_id,
                          const char *secret_hash, char key_id[AUTH_ID_SIZE])
{
    char owner_id[AUTH_ID_SIZE];
    int64_t created = 0;
    int result = prepare_key_owner(call, owner_user_id, owner_id);
    if (result == 0)
        result = current_time_ms(call, &created);
    if (result != 0)
        return result;
    generate_id(key_id);
    json_t *record = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b}", "id", key_id, "name", name,
                               "secret_hash", secret_hash, "user_id", owner_id,
                               "created", (json_int_t)created, "disabled", 0);
    if (record == NULL)
        return fail_out_of_memory(call);
    result = save_record(call, call->auth->api_keys, key_id, record, MDB_NOOVERWRITE);
    json_decref(record);
    return result;
}

static int add_api_key(auth_call *call, const char *name, const char *owner_user_id,
                       char key_out[AUTH_API_KEY_SIZE], char key_id_out[AUTH_ID_SIZE])
{
    uint8_t secret_bytes[SECRET_BYTES];
    char secret[SECRET_LENGTH + 1];
    int result = fill_random(call, secret_bytes, sizeof secret_bytes);
    if (result != 0)
        return result;
    hex_encode(secret_bytes, sizeof secret_bytes, secret);
    explicit_bzero(secret_bytes, sizeof secret_bytes);
    char *secret_hash;
    result = hash_secret(call, secret, SECRET_LENGTH, &secret_hash);
    char key_id[AUTH_ID_SIZE];
    if (result == 0) {
        result = begin_transaction(call, WRITE);
        if (result == 0)
            result = finish_transaction(call, insert_api_key(call, name, owner_user_id,
                                                             secret_hash, key_id));
        free(secret_hash);
    }
    if (result == 0) {
        snprintf(key_out, AUTH_API_KEY_SIZE, "%s.%s", key_id, secret);
        if (key_id_out != NULL)
            memcpy(key_id_out, key_id, AUTH_ID_SIZE);
    }
    explicit_bzero(secret, sizeof secret);
    return result;
}

int auth_add_api_key(auth *auth, const char *name, const char *owner_user_id,
                     char key_out[AUTH_API_KEY_SIZE], char key_id_out[AUTH_ID_SIZE])
{
    auth_call call = new_call(auth, "add API key");
    int result = check_name(&call, name);
    if (result == 0 && owner_user_id != NULL)
        result = check_id(&call, owner_user_id, "user");
    if (result == 0)
        result = add_api_key(&call, name, owner_user_id, key_out, key_id_out);
    return result;
}

int auth_revoke_api_key(auth *auth, const char *key_id)
{
    auth_call call = new_call(auth, "revoke API key");
    int result = check_id(&call, key_id, "API key");
    if (result == 0)
        result = begin_transaction(&call, WRITE);
    if (result == 0)
        result = finish_transaction(&call, update_record(&call, auth->api_keys, "API key", key_id,
                                                         "disabled", json_true()));
    return result;
}

typedef struct api_key_visit {
    int (*visit)(const auth_api_key *key, void *context);
    void *context;
} api_key_visit;

static int visit_api_key(const auth_call *call, MDB_cursor *cursor, json_t *record,
                         void *context)
{
    (void)cursor;
    const api_key_visit *key_visit = context;
    auth_api_key key = { 0 };
    int result = api_key_from_record(call, record, &key);
    if (result == 0)
        result = key_visit->visit(&key, key_visit->context);
    auth_api_key_clear(&key);
    return result;
}

int auth_list_api_keys(auth *auth, int (*visit)(const auth_api_key *key, void *context),
                       void *context)
{
    auth_call call = new_call(auth, "list API keys");
    api_key_visit key_visit = { .visit = visit, .context = context };
    int result = begin_transaction(&call, READ);
    if (result != 0)
        return result;
    return finish_transaction(&call,
                              for_each_record(&call, auth->api_keys, visit_api_key, &key_visit));
}

/* ------------------------------------------------------------------ */
/* Logins                                                              */

/*
 * What a login found, read in one transaction and checked after it ends:
 * no transaction stays open for the tens of milliseconds of a hash.  Both
 * NULL when the user or key does not exist.
 */
typedef struct login_records {
    json_t *user;
    json_t *api_key; /* NULL for password logins */
} login_records;

static void login_records_release(login_records *records)
{
    json_decref(records->user);
    json_decref(records->api_key);
}

/* -ENOENT is not an error here: an unknown user leaves records empty. */
static int read_login_records(auth_call *call, login_records *records,
                              int (*read_records)(const auth_call *call, const char *key,
                                                  login_records *records),
                              const char *key)
{
    int result = begin_transaction(call, READ);
    if (result != 0)
        return result;
    result = finish_transaction(call, read_records(call, key, records));
    if (result == -ENOENT) {
        login_records_release(records);
        *records = (login_records){ NULL, NULL };
        return 0;
    }
    return result;
}

static int read_password_login(const auth_call *call, const char *email, login_records *records)
{
    return load_user_by_email(call, email, &records->user);
}

/* A key's user must exist: keys are never stored without one. */
static int read_api_key_login(const auth_call *call, const char *key_id, login_records *records)
{
    int result = load_record(call, call->auth->api_keys, "API key", key_id, &records->api_key);
    if (result != 0)
        return result;
    const char *user_id = json_string_value(json_object_get(records->api_key, "user_id"));
    if (user_id == NULL)
        return lmdb_fail(&call->lmdb, -EIO, "damaged API key record");
    result = load_user_by_id(call, user_id, &records->user);
    if (result == -ENOENT)
        return lmdb_fail(&call->lmdb, -EIO, "API key %s has no user", key_id);
    return result;
}

/* The user of a matched credential, unless it is disabled. */
static int accept_login(const auth_call *call, json_t *user_record, auth_user *user)
{
    int result = user_from_record(call, user_record, user);
    if (result == 0 && user->disabled)
        result = lmdb_fail(&call->lmdb, -EACCES, "the user is disabled");
    if (result != 0)
        auth_user_clear(user);
    return result;
}

static const char *record_string(const json_t *record, const char *field)
{
    return record != NULL ? json_string_value(json_object_get(record, field)) : NULL;
}

static bool record_disabled(const json_t *record)
{
    return json_is_true(json_object_get(record, "disabled"));
}

/* email is NULL when it is not a valid address, which is then checked
 * as an unknown one would be, at the same cost. */
static int verify_password(auth_call *call, const char *email, const char *password,
                           auth_user *user)
{
    login_records records = { NULL, NULL };
    int result = email != NULL ? read_login_records(call, &records, read_password_login, email)
                               : 0;
    if (result == 0)
        result = verify_secret(call, record_string(records.user, "password_hash"), password);
    if (result == -EACCES)
        result = lmdb_fail(&call->lmdb, -EACCES, "wrong email address or password");
    if (result == 0)
        result = accept_login(call, records.user, user);
    login_records_release(&records);
    return result;
}

int auth_verify_password(auth *auth, const char *email, const char *password, auth_user *user)
{
    auth_call call = new_call(auth, "log in with a password");
    memset(user, 0, sizeof *user);
    if (!is_acceptable_password(password))
        return lmdb_fail(&call.lmdb, -EACCES, "wrong email address or password");
    char normalized[AUTH_EMAIL_MAX + 1];
    bool valid_email = email != NULL && normalize_email(email, normalized);
    return verify_password(&call, valid_email ? normalized : NULL, password, user);
}

static int verify_api_key(auth_call *call, const char *api_key, auth_user *user)
{
    char key_id[AUTH_ID_SIZE];
    memcpy(key_id, api_key, ID_LENGTH);
    key_id[ID_LENGTH] = '\0';
    const char *secret = api_key + ID_LENGTH + 1;
    login_records records = { NULL, NULL };
    int result = read_login_records(call, &records, read_api_key_login, key_id);
    if (result == 0)
        result = verify_secret(call, record_string(records.api_key, "secret_hash"), secret);
    if (result == -EACCES)
        result = lmdb_fail(&call->lmdb, -EACCES, "unknown API key or wrong secret");
    if (result == 0 && record_disabled(records.api_key))
        result = lmdb_fail(&call->lmdb, -EACCES, "the API key is revoked");
    if (result == 0)
        result = accept_login(call, records.user, user);
    login_records_release(&records);
    return result;
}

int auth_verify_api_key(auth *auth, const char *api_key, auth_user *user)
{
    auth_call call = new_call(auth, "log in with an API key");
    memset(user, 0, sizeof *user);
    if (api_key == NULL || !is_api_key(api_key, strnlen(api_key, AUTH_API_KEY_SIZE)))
        return lmdb_fail(&call.lmdb, -EACCES, "not a realmfs API key");
    return verify_api_key(&call, api_key, user);
}

int auth_authenticate(auth *auth, const auth_credentials *credentials, auth_user *user)
{
    switch (credentials->provider) {
    case APP_AUTH_ANONYMOUS:
        return auth_create_anonymous_user(auth, user);
    case APP_AUTH_USER_PASSWORD:
        return auth_verify_password(auth, credentials->email, credentials->password, user);
    case APP_AUTH_API_KEY:
        return auth_verify_api_key(auth, credentials->api_key, user);
    default: {
        auth_call call = new_call(auth, "log in");
        memset(user, 0, sizeof *user);
        return lmdb_fail(&call.lmdb, -EINVAL, "unknown provider %d", (int)credentials->provider);
    }
    }
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

static const char *const provider_names[APP_AUTH_PROVIDER_COUNT] = {
    [APP_AUTH_ANONYMOUS] = "anon-user",
    [APP_AUTH_USER_PASSWORD] = "local-userpass",
    [APP_AUTH_API_KEY] = "api-key",
};

const char *auth_provider_name(app_auth_provider provider)
{
    return (unsigned)provider < APP_AUTH_PROVIDER_COUNT ? provider_names[provider] : "unknown";
}

static bool provider_from_name(const char *name, app_auth_provider *provider)
{
    for (unsigned index = 0; index < APP_AUTH_PROVIDER_COUNT; index++) {
        if (strcmp(name, provider_names[index]) == 0) {
            *provider = (app_auth_provider)index;
            return true;
        }
    }
    return false;
}

static bool is_session_token(const char *token, size_t length)
{
    return length == SESSION_TOKEN_LENGTH && is_lowercase_hex(token, length);
}

/* The key of a token's record: the hex digits of its SHA-256. */
static int session_key(const auth_call *call, const char *token,
                       char key[2 * TOKEN_DIGEST_BYTES + 1])
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    if (EVP_Digest(token, SESSION_TOKEN_LENGTH, digest, &digest_size, EVP_sha256(), NULL) != 1 ||
        digest_size != TOKEN_DIGEST_BYTES)
        return lmdb_fail(&call->lmdb, -EIO, "SHA-256 of the session token failed (libcrypto)");
    hex_encode(digest, TOKEN_DIGEST_BYTES, key);
    return 0;
}

static int session_from_record(const auth_call *call, json_t *record, auth_session *session)
{
    const char *user_id, *provider;
    json_int_t created, expires;
    if (json_unpack(record, "{s:s, s:s, s:I, s:I}", "user_id", &user_id, "provider", &provider,
                    "created", &created, "expires", &expires) != 0 ||
        !is_id(user_id) || !provider_from_name(provider, &session->provider))
        return lmdb_fail(&call->lmdb, -EIO, "damaged session record");
    memcpy(session->user_id, user_id, AUTH_ID_SIZE);
    session->created_ms = created;
    session->expires_ms = expires;
    return 0;
}

/* 0 when the user exists, else -ENOENT naming it. */
static int check_user_exists(const auth_call *call, const char *user_id)
{
    json_t *user = NULL;
    int result = load_user_by_id(call, user_id, &user);
    json_decref(user);
    return result;
}

static int insert_session(const auth_call *call, const char *key, const auth_session *session)
{
    int result = check_user_exists(call, session->user_id);
    if (result != 0)
        return result;
    json_t *record = json_pack("{s:s, s:s, s:I, s:I}", "user_id", session->user_id, "provider",
                               auth_provider_name(session->provider), "created",
                               (json_int_t)session->created_ms, "expires",
                               (json_int_t)session->expires_ms);
    if (record == NULL)
        return fail_out_of_memory(call);
    result = save_record(call, call->auth->sessions, key, record, MDB_NOOVERWRITE);
    json_decref(record);
    return result;
}

static int create_session(auth_call *call, auth_session *session,
                          char token_out[AUTH_SESSION_TOKEN_SIZE])
{
    uint8_t secret_bytes[SECRET_BYTES];
    char token[AUTH_SESSION_TOKEN_SIZE];
    char key[2 * TOKEN_DIGEST_BYTES + 1];
    int result = fill_random(call, secret_bytes, sizeof secret_bytes);
    if (result == 0) {
        hex_encode(secret_bytes, sizeof secret_bytes, token);
        result = session_key(call, token, key);
    }
    if (result == 0)
        result = begin_transaction(call, WRITE);
    if (result == 0)
        result = finish_transaction(call, insert_session(call, key, session));
    if (result == 0)
        memcpy(token_out, token, AUTH_SESSION_TOKEN_SIZE);
    explicit_bzero(secret_bytes, sizeof secret_bytes);
    explicit_bzero(token, sizeof token);
    return result;
}

int auth_create_session(auth *auth, const char *user_id, app_auth_provider provider,
                        int64_t lifetime_ms, char token_out[AUTH_SESSION_TOKEN_SIZE],
                        auth_session *session)
{
    auth_call call = new_call(auth, "create session");
    auth_session created = { .provider = provider };
    int result = check_id(&call, user_id, "user");
    if (result == 0 && ((unsigned)provider >= APP_AUTH_PROVIDER_COUNT || lifetime_ms <= 0))
        result = lmdb_fail(&call.lmdb, -EINVAL, "a session needs a provider and a lifetime");
    if (result == 0)
        result = current_time_ms(&call, &created.created_ms);
    if (result != 0)
        return result;
    memcpy(created.user_id, user_id, AUTH_ID_SIZE);
    created.expires_ms = created.created_ms > INT64_MAX - lifetime_ms
                             ? INT64_MAX
                             : created.created_ms + lifetime_ms;
    result = create_session(&call, &created, token_out);
    if (result == 0 && session != NULL)
        *session = created;
    return result;
}

/* The session and user records of a token, read in one transaction;
 * -EACCES when there is no session, -ENOENT when its user is gone. */
static int read_session(const auth_call *call, const char *key, auth_session *session,
                        json_t **user_record)
{
    json_t *record;
    int result = load_record(call, call->auth->sessions, "session", key, &record);
    if (result == -ENOENT)
        return lmdb_fail(&call->lmdb, -EACCES,
                         "unknown session token (never issued, or expired and purged)");
    if (result != 0)
        return result;
    result = session_from_record(call, record, session);
    json_decref(record);
    if (result == 0)
        result = load_user_by_id(call, session->user_id, user_record);
    return result;
}

/*
 * An unknown token answers sooner than a known one, but a lookup by the
 * token's SHA-256 tells an attacker nothing about which tokens exist:
 * unlike email addresses, tokens cannot be guessed.
 */
static int verify_session_token(auth_call *call, const char *token, auth_user *user,
                                auth_session *session)
{
    char key[2 * TOKEN_DIGEST_BYTES + 1];
    int64_t now = 0;
    json_t *user_record = NULL;
    int result = session_key(call, token, key);
    if (result == 0)
        result = current_time_ms(call, &now);
    if (result == 0)
        result = begin_transaction(call, READ);
    if (result != 0)
        return result;
    result = finish_transaction(call, read_session(call, key, session, &user_record));
    if (result == -ENOENT)
        result = lmdb_fail(&call->lmdb, -EACCES, "the session token's user no longer exists");
    if (result == 0 && now >= session->expires_ms)
        result = lmdb_fail(&call->lmdb, -EACCES, "the session token has expired; log in again");
    if (result == 0)
        result = accept_login(call, user_record, user);
    json_decref(user_record);
    return result;
}

int auth_verify_session_token(auth *auth, const char *token, auth_user *user,
                              auth_session *session)
{
    auth_call call = new_call(auth, "log in with a session token");
    memset(user, 0, sizeof *user);
    memset(session, 0, sizeof *session);
    if (token == NULL || !is_session_token(token, strnlen(token, AUTH_SESSION_TOKEN_SIZE)))
        return lmdb_fail(&call.lmdb, -EACCES, "not a session token");
    return verify_session_token(&call, token, user, session);
}

typedef struct session_purge {
    int64_t now;
    int removed;
} session_purge;

static int delete_if_expired(const auth_call *call, MDB_cursor *cursor, json_t *record,
                             void *context)
{
    session_purge *purge = context;
    auth_session session = {0};
    int result = session_from_record(call, record, &session);
    if (result != 0 || purge->now < session.expires_ms)
        return result;
    int code = mdb_cursor_del(cursor, 0);
    if (code != 0)
        return lmdb_fail_mdb(&call->lmdb, code, "mdb_cursor_del");
    if (purge->removed < INT_MAX)
        purge->removed++;
    return 0;
}

int auth_purge_expired_sessions(auth *auth)
{
    auth_call call = new_call(auth, "purge expired sessions");
    session_purge purge = { 0, 0 };
    int result = current_time_ms(&call, &purge.now);
    if (result == 0)
        result = begin_transaction(&call, WRITE);
    if (result == 0)
        result = finish_transaction(&call, for_each_record(&call, auth->sessions,
                                                           delete_if_expired, &purge));
    return result == 0 ? purge.removed : result;
}

/* ------------------------------------------------------------------ */
/* Authorization header                                                */

void auth_credentials_clear(auth_credentials *credentials)
{
    explicit_bzero(credentials, sizeof *credentials);
}

static bool is_header_space(char character)
{
    return character == ' ' || character == '\t';
}

static text_span trim_header_spaces(const char *value, size_t length)
{
    while (length > 0 && is_header_space(*value)) {
        value++;
        length--;
    }
    while (length > 0 && is_header_space(value[length - 1]))
        length--;
    return (text_span){ value, length };
}

/* The scheme: what comes before the first space.  rest keeps what follows
 * the spaces after it. */
static text_span take_scheme(text_span *rest)
{
    const char *space = memchr(rest->start, ' ', rest->length);
    size_t length = space != NULL ? (size_t)(space - rest->start) : rest->length;
    text_span scheme = { rest->start, length };
    rest->start += length;
    rest->length -= length;
    while (rest->length > 0 && rest->start[0] == ' ') {
        rest->start++;
        rest->length--;
    }
    return scheme;
}

static bool is_scheme(text_span scheme, const char *name)
{
    return scheme.length == strlen(name) && strncasecmp(scheme.start, name, scheme.length) == 0;
}

static int base64_digit(char character)
{
    if (character >= 'A' && character <= 'Z')
        return character - 'A';
    if (character >= 'a' && character <= 'z')
        return character - 'a' + 26;
    if (character >= '0' && character <= '9')
        return character - '0' + 52;
    if (character == '+')
        return 62;
    if (character == '/')
        return 63;
    return -1;
}

/*
 * RFC 4648 base64 with the standard alphabet and padding, as RFC 7617
 * asks for.  out has room for text.length / 4 * 3 bytes.
 */
static bool decode_base64(text_span text, uint8_t *out, size_t *out_length)
{
    *out_length = 0;
    if (text.length % 4 != 0)
        return false;
    for (size_t start = 0; start < text.length; start += 4) {
        const char *group = text.start + start;
        bool last = start + 4 == text.length;
        size_t padding = last && group[3] == '=' ? (group[2] == '=' ? 2 : 1) : 0;
        uint32_t bits = 0;
        for (size_t index = 0; index < 4 - padding; index++) {
            int digit = base64_digit(group[index]);
            if (digit < 0)
                return false;
            bits |= (uint32_t)digit << (18 - 6 * index);
        }
        for (size_t index = 0; index < 3 - padding; index++)
            out[(*out_length)++] = (uint8_t)(bits >> (16 - 8 * index));
    }
    return true;
}

/* "email:password", split at the first ':' as RFC 7617 says. */
static int split_basic_credentials(const auth_call *call, const uint8_t *decoded, size_t length,
                                   auth_credentials *credentials)
{
    const uint8_t *colon = memchr(decoded, ':', length);
    if (colon == NULL)
        return lmdb_fail(&call->lmdb, -EINVAL,
                         "the Basic credentials have no ':' after the email address");
    if (memchr(decoded, '\0', length) != NULL)
        return lmdb_fail(&call->lmdb, -EINVAL, "the Basic credentials contain a NUL byte");
    size_t email_length = (size_t)(colon - decoded);
    size_t password_length = length - email_length - 1;
    if (email_length == 0 || email_length > AUTH_EMAIL_MAX)
        return lmdb_fail(&call->lmdb, -EINVAL, "the email address must have 1 to %d bytes",
                         AUTH_EMAIL_MAX);
    if (password_length == 0 || password_length > AUTH_PASSWORD_MAX)
        return lmdb_fail(&call->lmdb, -EINVAL, "the password must have 1 to %d bytes",
                         AUTH_PASSWORD_MAX);
    memcpy(credentials->email, decoded, email_length);
    memcpy(credentials->password, colon + 1, password_length);
    credentials->provider = APP_AUTH_USER_PASSWORD;
    return 0;
}

static int parse_basic(const auth_call *call, text_span argument, auth_credentials *credentials)
{
    uint8_t decoded[AUTH_HEADER_MAX / 4 * 3];
    size_t length;
    int result = decode_base64(argument, decoded, &length)
                     ? split_basic_credentials(call, decoded, length, credentials)
                     : lmdb_fail(&call->lmdb, -EINVAL,
                                 "the Basic credentials are not padded base64");
    explicit_bzero(decoded, sizeof decoded);
    return result;
}

static int parse_bearer(const auth_call *call, text_span argument, auth_credentials *credentials)
{
    if (is_session_token(argument.start, argument.length)) {
        memcpy(credentials->session_token, argument.start, argument.length);
        return 0;
    }
    if (!is_api_key(argument.start, argument.length))
        return lmdb_fail(&call->lmdb, -EINVAL,
                         "the Bearer token is neither a session token (64 hex digits) nor a "
                         "realmfs API key (<24 hex digits>.<64 hex digits>)");
    memcpy(credentials->api_key, argument.start, argument.length);
    credentials->provider = APP_AUTH_API_KEY;
    return 0;
}

static int parse_header(const auth_call *call, const char *value, auth_credentials *credentials)
{
    size_t length = value != NULL ? strnlen(value, AUTH_HEADER_MAX + 1) : 0;
    if (length > AUTH_HEADER_MAX)
        return lmdb_fail(&call->lmdb, -EINVAL, "the value is longer than %d bytes",
                         AUTH_HEADER_MAX);
    text_span argument = trim_header_spaces(value != NULL ? value : "", length);
    text_span scheme = take_scheme(&argument);
    if (scheme.length == 0)
        return lmdb_fail(&call->lmdb, -EINVAL, "the value is empty; " HEADER_FORMS);
    if (is_scheme(scheme, "Anonymous")) {
        if (argument.length != 0)
            return lmdb_fail(&call->lmdb, -EINVAL, "Anonymous takes no credentials");
        credentials->provider = APP_AUTH_ANONYMOUS;
        return 0;
    }
    bool bearer = is_scheme(scheme, "Bearer");
    if (!bearer && !is_scheme(scheme, "Basic"))
        return lmdb_fail(&call->lmdb, -EINVAL, "unsupported scheme; " HEADER_FORMS);
    if (argument.length == 0)
        return lmdb_fail(&call->lmdb, -EINVAL, "%s needs credentials; " HEADER_FORMS,
                         bearer ? "Bearer" : "Basic");
    return bearer ? parse_bearer(call, argument, credentials)
                  : parse_basic(call, argument, credentials);
}

int auth_parse_authorization_header(const char *value, auth_credentials *credentials)
{
    auth_call call = new_call(NULL, "Authorization header");
    auth_credentials_clear(credentials);
    int result = parse_header(&call, value, credentials);
    if (result != 0)
        auth_credentials_clear(credentials);
    return result;
}

/* ------------------------------------------------------------------ */
/* Opening                                                             */

static uint32_t option_or_default(uint32_t value, uint32_t default_value)
{
    return value != 0 ? value : default_value;
}

/* Also the check of the cost: argon2 refuses what it cannot use. */
static int make_dummy_hash(const auth_call *call)
{
    uint8_t random_bytes[SECRET_BYTES];
    char password[SECRET_LENGTH + 1];
    int result = fill_random(call, random_bytes, sizeof random_bytes);
    if (result != 0)
        return result;
    hex_encode(random_bytes, sizeof random_bytes, password);
    return hash_secret(call, password, SECRET_LENGTH, &call->auth->dummy_hash);
}

static int open_environment(const auth_call *call, const char *directory)
{
    /* Synchronous commits: a revoked key or a changed password must stay
     * so after a power failure.  NOTLS: a visit may read in the thread
     * that holds the listing's read transaction.  Only the owner may read
     * hashes, even of the salted kind. */
    lmdb_environment_options options = {
        .max_databases = DATABASE_COUNT,
        .map_size = MAP_SIZE,
        .flags = MDB_NOTLS,
        .mode = 0600,
    };
    return lmdb_open_environment(&call->lmdb, directory, &options, &call->auth->environment);
}

static int open_database(const auth_call *call, const char *name, MDB_dbi *database)
{
    return lmdb_open_database(&call->lmdb, name, MDB_CREATE, database);
}

static int open_databases(const auth_call *call)
{
    auth *auth = call->auth;
    int result = open_database(call, "users", &auth->users);
    if (result == 0)
        result = open_database(call, "emails", &auth->emails);
    if (result == 0)
        result = open_database(call, "api_keys", &auth->api_keys);
    if (result == 0)
        result = open_database(call, "sessions", &auth->sessions);
    if (result == 0)
        result = open_database(call, "meta", &auth->meta);
    if (result == 0)
        result = lmdb_check_format(&call->lmdb, auth->meta, FORMAT_VERSION, true);
    return result;
}

static int open_auth(auth_call *call, const char *data_directory, const auth_options *options)
{
    auth_options none = { 0 };
    const auth_options *given = options != NULL ? options : &none;
    call->auth->hash_cost = (auth_options){
        .hash_passes = option_or_default(given->hash_passes, DEFAULT_HASH_PASSES),
        .hash_memory_kib = option_or_default(given->hash_memory_kib, DEFAULT_HASH_MEMORY_KIB),
        .hash_lanes = option_or_default(given->hash_lanes, DEFAULT_HASH_LANES),
    };
    if (data_directory == NULL || data_directory[0] == '\0')
        return lmdb_fail(&call->lmdb, -EINVAL, "no data directory given");
    int result = make_dummy_hash(call);
    if (result != 0)
        return result;
    char directory[PATH_MAX];
    int length = snprintf(directory, sizeof directory, "%s/auth", data_directory);
    if (length < 0 || (size_t)length >= sizeof directory)
        return lmdb_fail(&call->lmdb, -ENAMETOOLONG, "the data directory's path is too long");
    result = lmdb_make_directory(&call->lmdb, directory, 0700);
    if (result == 0)
        result = open_environment(call, directory);
    /* LMDB keeps a database handle only when the transaction that opened
     * it commits; then every thread's later transactions may use it. */
    if (result == 0)
        result = begin_transaction(call, WRITE);
    if (result == 0)
        result = finish_transaction(call, open_databases(call));
    return result;
}

int auth_open(const char *data_directory, const auth_options *options, auth **out)
{
    *out = NULL;
    auth *opened = calloc(1, sizeof *opened);
    auth_call call = new_call(opened, "open users");
    if (opened == NULL)
        return fail_out_of_memory(&call);
    int result = open_auth(&call, data_directory, options);
    if (result != 0) {
        auth_close(opened);
        return result;
    }
    *out = opened;
    return 0;
}

void auth_close(auth *auth)
{
    if (auth == NULL)
        return;
    if (auth->environment != NULL)
        mdb_env_close(auth->environment);
    free(auth->dummy_hash);
    free(auth);
}
