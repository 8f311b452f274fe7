/*
 * Unit tests of the users, API keys and session tokens of realmfs-server
 * (auth.h).
 *
 * Every test gets a fresh data directory below one temporary base
 * directory, removed after each test case even when a test failed.  Tests
 * hash with argon2's smallest cost so that they run fast; one test checks
 * that the default cost is the documented one.
 */
#include "realmfs/auth.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const auth_options fast_hashing = {
    .hash_passes = 1, .hash_memory_kib = 8, .hash_lanes = 1,
};

static char base_directory[PATH_MAX];
static char data_directory[PATH_MAX];
static auth *test_auth;

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */

static int remove_entry(const char *path, const struct stat *status, int type, struct FTW *walk)
{
    (void)status;
    (void)type;
    (void)walk;
    return remove(path);
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* out has PATH_MAX bytes. */
static void join_path(char *out, const char *parent, const char *child)
{
    int length = snprintf(out, PATH_MAX, "%s/%s", parent, child);
    ck_assert(length > 0 && length < PATH_MAX);
}

static void make_base_directory(void)
{
    snprintf(base_directory, sizeof base_directory, "/tmp/realmfs-test-auth-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base_directory));
}

static void remove_base_directory(void)
{
    remove_tree(base_directory);
}

static void open_test_auth(void)
{
    join_path(data_directory, base_directory, "data-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_directory));
    ck_assert_int_eq(auth_open(data_directory, &fast_hashing, &test_auth), 0);
}

static void close_test_auth(void)
{
    auth_close(test_auth);
    test_auth = NULL;
    remove_tree(data_directory);
}

static void reopen_test_auth(void)
{
    auth_close(test_auth);
    test_auth = NULL;
    ck_assert_int_eq(auth_open(data_directory, &fast_hashing, &test_auth), 0);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void add_user(const char *email, const char *password, char id[AUTH_ID_SIZE])
{
    ck_assert_msg(auth_add_user(test_auth, email, password, id) == 0, "%s", auth_last_error());
}

static void add_api_key(const char *name, const char *owner, char key[AUTH_API_KEY_SIZE],
                        char key_id[AUTH_ID_SIZE])
{
    ck_assert_msg(auth_add_api_key(test_auth, name, owner, key, key_id) == 0, "%s",
                  auth_last_error());
}

static void assert_password_login(const char *email, const char *password, const char *user_id)
{
    auth_user user;
    ck_assert_msg(auth_verify_password(test_auth, email, password, &user) == 0, "%s",
                  auth_last_error());
    ck_assert_str_eq(user.id, user_id);
    auth_user_clear(&user);
}

static void assert_password_refused(const char *email, const char *password)
{
    auth_user user;
    ck_assert_int_eq(auth_verify_password(test_auth, email, password, &user), -EACCES);
    ck_assert_ptr_null(user.email);
    ck_assert_str_eq(user.id, "");
}

static void assert_api_key_refused(const char *key)
{
    auth_user user;
    ck_assert_int_eq(auth_verify_api_key(test_auth, key, &user), -EACCES);
    ck_assert_str_eq(user.id, "");
}

static bool is_id(const char *text)
{
    return strlen(text) == AUTH_ID_SIZE - 1 &&
           strspn(text, "0123456789abcdef") == AUTH_ID_SIZE - 1;
}

/* The bytes of the auth environment's data file. */
static char *read_auth_file(size_t *size)
{
    char auth_directory[PATH_MAX], path[PATH_MAX];
    join_path(auth_directory, data_directory, "auth");
    join_path(path, auth_directory, "data.mdb");
    FILE *file = fopen(path, "rb");
    ck_assert_ptr_nonnull(file);
    ck_assert_int_eq(fseek(file, 0, SEEK_END), 0);
    long length = ftell(file);
    ck_assert_int_gt(length, 0);
    rewind(file);
    char *bytes = malloc((size_t)length);
    ck_assert_ptr_nonnull(bytes);
    ck_assert_uint_eq(fread(bytes, 1, (size_t)length, file), (size_t)length);
    fclose(file);
    *size = (size_t)length;
    return bytes;
}

static size_t count_in_auth_file(const char *needle)
{
    size_t size;
    char *bytes = read_auth_file(&size);
    size_t count = 0;
    size_t needle_length = strlen(needle);
    for (const char *at = bytes; (at = memmem(at, size - (size_t)(at - bytes), needle,
                                              needle_length)) != NULL;
         at += needle_length)
        count++;
    free(bytes);
    return count;
}

/* RFC 4648 base64 with padding; out has room for 4 * ((length + 2) / 3) + 1. */
static void encode_base64(const char *text, size_t length, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *bytes = (const unsigned char *)text;
    size_t written = 0;
    for (size_t start = 0; start < length; start += 3) {
        size_t taken = length - start < 3 ? length - start : 3;
        uint32_t group = (uint32_t)bytes[start] << 16;
        if (taken > 1)
            group |= (uint32_t)bytes[start + 1] << 8;
        if (taken > 2)
            group |= bytes[start + 2];
        for (size_t index = 0; index < 4; index++)
            out[written++] = index <= taken ? alphabet[(group >> (18 - 6 * index)) & 0x3f] : '=';
    }
    out[written] = '\0';
}

/* "Basic " and the base64 of text; a malloc'd string. */
static char *basic_header(const char *text, size_t length)
{
    char *header = malloc(sizeof "Basic " + 4 * ((length + 2) / 3));
    ck_assert_ptr_nonnull(header);
    strcpy(header, "Basic ");
    encode_base64(text, length, header + strlen("Basic "));
    return header;
}

static void assert_header_refused(const char *value)
{
    auth_credentials credentials;
    ck_assert_msg(auth_parse_authorization_header(value, &credentials) == -EINVAL,
                  "accepted \"%.60s\"", value);
    ck_assert(strlen(auth_last_error()) > 0);
    ck_assert_str_eq(credentials.password, "");
    ck_assert_str_eq(credentials.api_key, "");
    ck_assert_str_eq(credentials.session_token, "");
}

static void assert_basic_refused(const char *decoded, size_t length)
{
    char *header = basic_header(decoded, length);
    assert_header_refused(header);
    free(header);
}

/* ------------------------------------------------------------------ */
/* Users                                                               */

START_TEST(test_add_and_find_user)
{
    char id[AUTH_ID_SIZE];
    add_user(" Alice@Example.COM\t", "correct horse", id);
    ck_assert(is_id(id));

    auth_user user;
    ck_assert_int_eq(auth_find_user(test_auth, id, &user), 0);
    ck_assert_str_eq(user.id, id);
    ck_assert_str_eq(user.email, "alice@example.com");
    ck_assert_str_eq(user.type, "normal");
    ck_assert(!user.disabled);
    ck_assert_int_gt(user.created_ms, INT64_C(1700000000000));
    auth_user_clear(&user);

    ck_assert_int_eq(auth_find_user_by_email(test_auth, "ALICE@example.com", &user), 0);
    ck_assert_str_eq(user.id, id);
    auth_user_clear(&user);

    ck_assert_int_eq(auth_find_user_by_email(test_auth, "bob@example.com", &user), -ENOENT);
    ck_assert_int_eq(auth_find_user(test_auth, "0123456789abcdef01234567", &user), -ENOENT);
    ck_assert_int_eq(auth_find_user(test_auth, "not an id", &user), -EINVAL);
    ck_assert_int_eq(auth_find_user(test_auth, "0123456789ABCDEF01234567", &user), -EINVAL);
    ck_assert_int_eq(auth_find_user_by_email(test_auth, "bob", &user), -EINVAL);
}
END_TEST

typedef struct collected_users {
    size_t count;
    size_t stop_after; /* 0: never stop */
    char ids[8][AUTH_ID_SIZE];
    size_t with_email;
} collected_users;

static int collect_user(const auth_user *user, void *context)
{
    collected_users *collected = context;
    ck_assert_uint_lt(collected->count, 8);
    strcpy(collected->ids[collected->count++], user->id);
    collected->with_email += user->email != NULL;
    return collected->count == collected->stop_after ? 42 : 0;
}

START_TEST(test_list_users)
{
    collected_users collected = { 0 };
    ck_assert_int_eq(auth_list_users(test_auth, collect_user, &collected), 0);
    ck_assert_uint_eq(collected.count, 0);

    char ids[3][AUTH_ID_SIZE];
    add_user("a@example.com", "pw-a", ids[0]);
    add_user("b@example.com", "pw-b", ids[1]);
    add_user("c@example.com", "pw-c", ids[2]);
    auth_user anonymous;
    ck_assert_int_eq(auth_create_anonymous_user(test_auth, &anonymous), 0);

    ck_assert_int_eq(auth_list_users(test_auth, collect_user, &collected), 0);
    ck_assert_uint_eq(collected.count, 4);
    ck_assert_uint_eq(collected.with_email, 3);
    for (size_t index = 1; index < collected.count; index++)
        ck_assert_int_lt(strcmp(collected.ids[index - 1], collected.ids[index]), 0);
    for (size_t added = 0; added < 3; added++) {
        bool listed = false;
        for (size_t index = 0; index < collected.count; index++)
            listed |= strcmp(collected.ids[index], ids[added]) == 0;
        ck_assert(listed);
    }
    auth_user_clear(&anonymous);

    collected = (collected_users){ .stop_after = 2 };
    ck_assert_int_eq(auth_list_users(test_auth, collect_user, &collected), 42);
    ck_assert_uint_eq(collected.count, 2);
}
END_TEST

/* A visit may look users up while the listing's snapshot is open. */
static int find_listed_user(const auth_user *listed, void *context)
{
    size_t *found = context;
    auth_user user;
    ck_assert_int_eq(auth_find_user(test_auth, listed->id, &user), 0);
    ck_assert_str_eq(user.id, listed->id);
    auth_user_clear(&user);
    (*found)++;
    return 0;
}

START_TEST(test_visit_may_read)
{
    add_user("a@example.com", "pw-a", NULL);
    add_user("b@example.com", "pw-b", NULL);
    size_t found = 0;
    ck_assert_int_eq(auth_list_users(test_auth, find_listed_user, &found), 0);
    ck_assert_uint_eq(found, 2);
}
END_TEST

START_TEST(test_duplicate_email_ignores_case)
{
    char id[AUTH_ID_SIZE];
    add_user("Alice@Example.com", "first", id);
    ck_assert_int_eq(auth_add_user(test_auth, "  alice@EXAMPLE.com ", "second", NULL), -EEXIST);
    ck_assert_ptr_nonnull(strstr(auth_last_error(), "alice@example.com"));
    ck_assert_ptr_null(strstr(auth_last_error(), "second"));
    assert_password_login("alice@example.com", "first", id);
    assert_password_refused("alice@example.com", "second");
}
END_TEST

START_TEST(test_invalid_emails)
{
    char long_local[AUTH_EMAIL_MAX + 2];
    memset(long_local, 'a', sizeof long_local);
    memcpy(long_local + AUTH_EMAIL_MAX - 11, "@example.com", 13); /* 255 bytes */
    const char *invalid[] = {
        "", "   ", "alice", "alice@example@com", "@example.com", "alice@", "al ice@example.com",
        "alice@exa\tmple.com", "alice\n@example.com", "ali\x01" "ce@example.com", long_local,
    };
    for (size_t index = 0; index < sizeof invalid / sizeof *invalid; index++)
        ck_assert_msg(auth_add_user(test_auth, invalid[index], "pw", NULL) == -EINVAL,
                      "accepted \"%s\"", invalid[index]);
    ck_assert_int_eq(auth_add_user(test_auth, NULL, "pw", NULL), -EINVAL);
    ck_assert_ptr_nonnull(strstr(auth_last_error(), "email"));

    /* 254 bytes, and UTF-8, are fine. */
    add_user(long_local + 1, "pw", NULL);
    add_user("jörg@exämple.de", "pw", NULL);
}
END_TEST

START_TEST(test_invalid_passwords)
{
    char longest[AUTH_PASSWORD_MAX + 2];
    memset(longest, 'p', sizeof longest);
    longest[AUTH_PASSWORD_MAX + 1] = '\0';
    ck_assert_int_eq(auth_add_user(test_auth, "a@example.com", longest, NULL), -EINVAL);
    ck_assert_int_eq(auth_add_user(test_auth, "a@example.com", "", NULL), -EINVAL);
    ck_assert_int_eq(auth_add_user(test_auth, "a@example.com", NULL, NULL), -EINVAL);
    ck_assert_ptr_nonnull(strstr(auth_last_error(), "password"));

    longest[AUTH_PASSWORD_MAX] = '\0';
    char id[AUTH_ID_SIZE];
    add_user("a@example.com", longest, id);
    assert_password_login("a@example.com", longest, id);
}
END_TEST

START_TEST(test_verify_password)
{
    char id[AUTH_ID_SIZE];
    add_user("alice@example.com", "correct horse", id);
    assert_password_login("alice@example.com", "correct horse", id);
    assert_password_login(" ALICE@example.com", "correct horse", id);

    assert_password_refused("alice@example.com", "correct horsE");
    char wrong_password_message[512];
    snprintf(wrong_password_message, sizeof wrong_password_message, "%s", auth_last_error());
    ck_assert_ptr_null(strstr(wrong_password_message, "correct"));

    /* An unknown user reads exactly like a wrong password. */
    assert_password_refused("mallory@example.com", "correct horse");
    ck_assert_str_eq(auth_last_error(), wrong_password_message);
    assert_password_refused("not an email", "correct horse");
    ck_assert_str_eq(auth_last_error(), wrong_password_message);
    assert_password_refused(NULL, "correct horse");
    assert_password_refused("alice@example.com", "");
    assert_password_refused("alice@example.com", NULL);
}
END_TEST

START_TEST(test_set_password)
{
    char id[AUTH_ID_SIZE];
    add_user("alice@example.com", "old password", id);
    ck_assert_int_eq(auth_set_password(test_auth, id, "new password"), 0);
    assert_password_refused("alice@example.com", "old password");
    assert_password_login("alice@example.com", "new password", id);

    ck_assert_int_eq(auth_set_password(test_auth, id, ""), -EINVAL);
    ck_assert_int_eq(auth_set_password(test_auth, "0123456789abcdef01234567", "pw"), -ENOENT);
    ck_assert_int_eq(auth_set_password(test_auth, "nope", "pw"), -EINVAL);

    auth_user anonymous;
    ck_assert_int_eq(auth_create_anonymous_user(test_auth, &anonymous), 0);
    ck_assert_int_eq(auth_set_password(test_auth, anonymous.id, "pw"), -EINVAL);
    auth_user_clear(&anonymous);
}
END_TEST

START_TEST(test_disabled_user_cannot_log_in)
{
    char id[AUTH_ID_SIZE], key[AUTH_API_KEY_SIZE];
    add_user("alice@example.com", "pw", id);
    add_api_key("laptop", id, key, NULL);

    ck_assert_int_eq(auth_disable_user(test_auth, id), 0);
    ck_assert_int_eq(auth_disable_user(test_auth, id), 0);
    assert_password_refused("alice@example.com", "pw");
    ck_assert_ptr_nonnull(strstr(auth_last_error(), "disabled"));
    assert_api_key_refused(key);
    ck_assert_ptr_nonnull(strstr(auth_last_error(), "disabled"));
    /* Only the right password learns that the user is disabled. */
    assert_password_refused("alice@example.com", "wrong");
    ck_assert_ptr_null(strstr(auth_last_error(), "disabled"));

    auth_user user;
    ck_assert_int_eq(auth_find_user(test_auth, id, &user), 0);
    ck_assert(user.disabled);
    auth_user_clear(&user);

    ck_assert_int_eq(auth_enable_user(test_auth, id), 0);
    assert_password_login("alice@example.com", "pw", id);
    ck_assert_int_eq(auth_disable_user(test_auth, "0123456789abcdef01234567"), -ENOENT);
    ck_assert_int_eq(auth_enable_user(test_auth, ""), -EINVAL);
}
END_TEST

START_TEST(test_anonymous_users_are_distinct)
{
    enum { COUNT = 50 };
    char ids[COUNT][AUTH_ID_SIZE];
    for (size_t index = 0; index < COUNT; index++) {
        auth_user user;
        ck_assert_int_eq(auth_create_anonymous_user(test_auth, &user), 0);
        ck_assert(is_id(user.id));
        ck_assert_ptr_null(user.email);
        ck_assert_str_eq(user.type, "normal");
        for (size_t earlier = 0; earlier < index; earlier++)
            ck_assert_str_ne(ids[earlier], user.id);
        strcpy(ids[index], user.id);
        auth_user_clear(&user);
    }
    auth_user found;
    ck_assert_int_eq(auth_find_user(test_auth, ids[COUNT / 2], &found), 0);
    ck_assert_ptr_null(found.email);
    auth_user_clear(&found);
}
END_TEST

/* ------------------------------------------------------------------ */
/* API keys                                                            */

typedef struct collected_keys {
    size_t count;
    auth_api_key keys[4];
} collected_keys;

static int collect_key(const auth_api_key *key, void *context)
{
    collected_keys *collected = context;
    ck_assert_uint_lt(collected->count, 4);
    auth_api_key *copy = &collected->keys[collected->count++];
    *copy = *key;
    copy->name = strdup(key->name);
    ck_assert_ptr_nonnull(copy->name);
    return 0;
}

static void collected_keys_clear(collected_keys *collected)
{
    for (size_t index = 0; index < collected->count; index++)
        auth_api_key_clear(&collected->keys[index]);
    collected->count = 0;
}

START_TEST(test_server_api_key)
{
    char key[AUTH_API_KEY_SIZE], key_id[AUTH_ID_SIZE];
    add_api_key("backend", NULL, key, key_id);
    ck_assert_uint_eq(strlen(key), AUTH_API_KEY_SIZE - 1);
    ck_assert_int_eq(strncmp(key, key_id, AUTH_ID_SIZE - 1), 0);
    ck_assert_int_eq(key[AUTH_ID_SIZE - 1], '.');
    ck_assert_uint_eq(strspn(key + AUTH_ID_SIZE, "0123456789abcdef"), 64);

    auth_user user;
    ck_assert_int_eq(auth_verify_api_key(test_auth, key, &user), 0);
    ck_assert_str_eq(user.type, "server");
    ck_assert_ptr_null(user.email);
    char server_user_id[AUTH_ID_SIZE];
    strcpy(server_user_id, user.id);
    auth_user_clear(&user);

    collected_keys collected = { 0 };
    ck_assert_int_eq(auth_list_api_keys(test_auth, collect_key, &collected), 0);
    ck_assert_uint_eq(collected.count, 1);
    ck_assert_str_eq(collected.keys[0].id, key_id);
    ck_assert_str_eq(collected.keys[0].name, "backend");
    ck_assert_str_eq(collected.keys[0].user_id, server_user_id);
    ck_assert(!collected.keys[0].disabled);
    collected_keys_clear(&collected);

    ck_assert_int_eq(auth_revoke_api_key(test_auth, key_id), 0);
    assert_api_key_refused(key);
    ck_assert_ptr_nonnull(strstr(auth_last_error(), "revoked"));
    ck_assert_int_eq(auth_revoke_api_key(test_auth, key_id), 0);
    ck_assert_int_eq(auth_list_api_keys(test_auth, collect_key, &collected), 0);
    ck_assert_uint_eq(collected.count, 1);
    ck_assert(collected.keys[0].disabled);
    collected_keys_clear(&collected);

    /* The server user stays. */
    ck_assert_int_eq(auth_find_user(test_auth, server_user_id, &user), 0);
    auth_user_clear(&user);
    ck_assert_int_eq(auth_revoke_api_key(test_auth, "0123456789abcdef01234567"), -ENOENT);
    ck_assert_int_eq(auth_revoke_api_key(test_auth, key), -EINVAL);
}
END_TEST

START_TEST(test_user_api_key)
{
    char user_id[AUTH_ID_SIZE], key[AUTH_API_KEY_SIZE];
    add_user("alice@example.com", "pw", user_id);
    add_api_key("laptop", user_id, key, NULL);
    auth_user user;
    ck_assert_int_eq(auth_verify_api_key(test_auth, key, &user), 0);
    ck_assert_str_eq(user.id, user_id);
    ck_assert_str_eq(user.email, "alice@example.com");
    ck_assert_str_eq(user.type, "normal");
    auth_user_clear(&user);

    ck_assert_int_eq(auth_add_api_key(test_auth, "x", "0123456789abcdef01234567", key, NULL),
                     -ENOENT);
    ck_assert_int_eq(auth_add_api_key(test_auth, "x", "alice", key, NULL), -EINVAL);
    ck_assert_int_eq(auth_add_api_key(test_auth, "", NULL, key, NULL), -EINVAL);
    ck_assert_int_eq(auth_add_api_key(test_auth, "tab\there", NULL, key, NULL), -EINVAL);
    char long_name[AUTH_NAME_MAX + 2];
    memset(long_name, 'n', sizeof long_name);
    long_name[AUTH_NAME_MAX + 1] = '\0';
    ck_assert_int_eq(auth_add_api_key(test_auth, long_name, NULL, key, NULL), -EINVAL);
    long_name[AUTH_NAME_MAX] = '\0';
    add_api_key(long_name, NULL, key, NULL);
}
END_TEST

/* Nothing auth hands out after creation holds the secret. */
START_TEST(test_api_key_secret_is_returned_once)
{
    char first[AUTH_API_KEY_SIZE], second[AUTH_API_KEY_SIZE];
    add_api_key("laptop", NULL, first, NULL);
    add_api_key("laptop", NULL, second, NULL);
    ck_assert_str_ne(first, second);
    ck_assert_str_ne(first + AUTH_ID_SIZE, second + AUTH_ID_SIZE);

    collected_keys collected = { 0 };
    ck_assert_int_eq(auth_list_api_keys(test_auth, collect_key, &collected), 0);
    ck_assert_uint_eq(collected.count, 2);
    for (size_t index = 0; index < collected.count; index++) {
        const auth_api_key *key = &collected.keys[index];
        ck_assert_str_eq(key->name, "laptop");
        ck_assert_ptr_null(memmem(key, sizeof *key, first + AUTH_ID_SIZE, 16));
        ck_assert_ptr_null(memmem(key, sizeof *key, second + AUTH_ID_SIZE, 16));
    }
    collected_keys_clear(&collected);
    ck_assert_uint_eq(count_in_auth_file(first + AUTH_ID_SIZE), 0);
    ck_assert_uint_eq(count_in_auth_file(second + AUTH_ID_SIZE), 0);
}
END_TEST

START_TEST(test_wrong_and_malformed_api_keys)
{
    char key[AUTH_API_KEY_SIZE];
    add_api_key("laptop", NULL, key, NULL);

    char wrong_secret[AUTH_API_KEY_SIZE];
    strcpy(wrong_secret, key);
    wrong_secret[AUTH_API_KEY_SIZE - 2] = wrong_secret[AUTH_API_KEY_SIZE - 2] == '0' ? '1' : '0';
    assert_api_key_refused(wrong_secret);
    char wrong_message[512];
    snprintf(wrong_message, sizeof wrong_message, "%s", auth_last_error());
    ck_assert_ptr_null(strstr(wrong_message, wrong_secret + AUTH_ID_SIZE));

    /* An unknown key id reads exactly like a wrong secret. */
    char unknown_id[AUTH_API_KEY_SIZE];
    strcpy(unknown_id, key);
    unknown_id[0] = unknown_id[0] == '0' ? '1' : '0';
    assert_api_key_refused(unknown_id);
    ck_assert_str_eq(auth_last_error(), wrong_message);

    char upper[AUTH_API_KEY_SIZE];
    strcpy(upper, key);
    for (char *digit = upper; *digit != '\0'; digit++)
        if (*digit >= 'a' && *digit <= 'f')
            *digit = (char)(*digit - 'a' + 'A');
    char longer[AUTH_API_KEY_SIZE + 1];
    snprintf(longer, sizeof longer, "%s0", key);
    char id_only[AUTH_ID_SIZE];
    memcpy(id_only, key, AUTH_ID_SIZE - 1);
    id_only[AUTH_ID_SIZE - 1] = '\0';
    const char *malformed[] = { "", "garbage", id_only, upper, longer, key + 1 };
    for (size_t index = 0; index < sizeof malformed / sizeof *malformed; index++)
        assert_api_key_refused(malformed[index]);
    assert_api_key_refused(NULL);

    auth_user user;
    ck_assert_int_eq(auth_verify_api_key(test_auth, key, &user), 0);
    auth_user_clear(&user);
}
END_TEST

/* ------------------------------------------------------------------ */
/* What reaches the disk                                               */

START_TEST(test_only_hashes_reach_the_disk)
{
    const char *password = "plaintext-password-4711";
    char user_id[AUTH_ID_SIZE], key[AUTH_API_KEY_SIZE];
    add_user("alice@example.com", password, user_id);
    add_api_key("laptop", user_id, key, NULL);
    ck_assert_int_eq(auth_set_password(test_auth, user_id, "second-plaintext-0815"), 0);

    /* The scan does find what is stored in the clear. */
    ck_assert_uint_ge(count_in_auth_file("alice@example.com"), 1);
    ck_assert_uint_eq(count_in_auth_file(password), 0);
    ck_assert_uint_eq(count_in_auth_file("second-plaintext-0815"), 0);
    ck_assert_uint_eq(count_in_auth_file(key), 0);
    ck_assert_uint_eq(count_in_auth_file(key + AUTH_ID_SIZE), 0);
    /* The user's current hash and the key's, each with the test cost. */
    ck_assert_uint_ge(count_in_auth_file("\"$argon2id$v=19$m=8,t=1,p=1$"), 2);
}
END_TEST

/* The default cost is OWASP's minimum for argon2id. */
START_TEST(test_default_hash_cost)
{
    auth_close(test_auth);
    ck_assert_int_eq(auth_open(data_directory, NULL, &test_auth), 0);
    char id[AUTH_ID_SIZE];
    add_user("alice@example.com", "pw", id);
    ck_assert_uint_eq(count_in_auth_file("\"$argon2id$v=19$m=19456,t=2,p=1$"), 1);
    assert_password_login("alice@example.com", "pw", id);
}
END_TEST

START_TEST(test_persistence_across_reopen)
{
    char alice[AUTH_ID_SIZE], bob[AUTH_ID_SIZE], key[AUTH_API_KEY_SIZE];
    char revoked[AUTH_API_KEY_SIZE], revoked_id[AUTH_ID_SIZE];
    add_user("alice@example.com", "alice-pw", alice);
    add_user("bob@example.com", "bob-pw", bob);
    ck_assert_int_eq(auth_disable_user(test_auth, bob), 0);
    add_api_key("server", NULL, key, NULL);
    add_api_key("old", alice, revoked, revoked_id);
    ck_assert_int_eq(auth_revoke_api_key(test_auth, revoked_id), 0);
    auth_user anonymous;
    ck_assert_int_eq(auth_create_anonymous_user(test_auth, &anonymous), 0);

    reopen_test_auth();

    assert_password_login("alice@example.com", "alice-pw", alice);
    assert_password_refused("bob@example.com", "bob-pw");
    auth_user user;
    ck_assert_int_eq(auth_verify_api_key(test_auth, key, &user), 0);
    ck_assert_str_eq(user.type, "server");
    auth_user_clear(&user);
    assert_api_key_refused(revoked);
    ck_assert_int_eq(auth_find_user(test_auth, anonymous.id, &user), 0);
    auth_user_clear(&user);
    ck_assert_int_eq(auth_add_user(test_auth, "ALICE@example.com", "x", NULL), -EEXIST);
    auth_user_clear(&anonymous);
}
END_TEST

START_TEST(test_open_errors_and_permissions)
{
    char auth_directory[PATH_MAX], data_file[PATH_MAX];
    join_path(auth_directory, data_directory, "auth");
    join_path(data_file, auth_directory, "data.mdb");
    struct stat status;
    ck_assert_int_eq(stat(auth_directory, &status), 0);
    ck_assert_uint_eq(status.st_mode & 0777, 0700);
    ck_assert_int_eq(stat(data_file, &status), 0);
    ck_assert_uint_eq(status.st_mode & 0077, 0);

    auth *other = NULL;
    char missing[PATH_MAX];
    join_path(missing, data_directory, "missing");
    ck_assert_int_eq(auth_open(missing, &fast_hashing, &other), -ENOENT);
    ck_assert_ptr_null(other);
    ck_assert_ptr_nonnull(strstr(auth_last_error(), missing));
    ck_assert_int_eq(auth_open("", &fast_hashing, &other), -EINVAL);
    auth_options too_little_memory = { .hash_memory_kib = 1 };
    ck_assert_int_eq(auth_open(data_directory, &too_little_memory, &other), -EINVAL);
    ck_assert_ptr_null(other);

    /* A second handle on the same directory sees the first one's users. */
    char id[AUTH_ID_SIZE];
    add_user("alice@example.com", "pw", id);
    ck_assert_int_eq(auth_open(data_directory, &fast_hashing, &other), 0);
    auth_user user;
    ck_assert_int_eq(auth_find_user(other, id, &user), 0);
    auth_user_clear(&user);
    auth_close(other);
    auth_close(NULL);
}
END_TEST

typedef struct login_thread {
    pthread_t thread;
    int index;
    int failures;
} login_thread;

static void *add_and_log_in(void *argument)
{
    login_thread *state = argument;
    for (int round = 0; round < 10; round++) {
        char email[64], id[AUTH_ID_SIZE];
        snprintf(email, sizeof email, "user-%d-%d@example.com", state->index, round);
        auth_user user = { 0 };
        auth_user anonymous = { 0 };
        if (auth_add_user(test_auth, email, "pw", id) != 0 ||
            auth_verify_password(test_auth, email, "pw", &user) != 0 ||
            strcmp(user.id, id) != 0 || auth_create_anonymous_user(test_auth, &anonymous) != 0)
            state->failures++;
        auth_user_clear(&user);
        auth_user_clear(&anonymous);
    }
    return NULL;
}

static int count_user(const auth_user *user, void *context)
{
    (void)user;
    (*(size_t *)context)++;
    return 0;
}

START_TEST(test_threads)
{
    login_thread threads[4];
    for (int index = 0; index < 4; index++) {
        threads[index] = (login_thread){ .index = index };
        ck_assert_int_eq(pthread_create(&threads[index].thread, NULL, add_and_log_in,
                                        &threads[index]), 0);
    }
    for (int index = 0; index < 4; index++) {
        ck_assert_int_eq(pthread_join(threads[index].thread, NULL), 0);
        ck_assert_int_eq(threads[index].failures, 0);
    }
    size_t count = 0;
    ck_assert_int_eq(auth_list_users(test_auth, count_user, &count), 0);
    ck_assert_uint_eq(count, 80);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Authorization header                                                */

START_TEST(test_header_anonymous)
{
    auth_credentials credentials;
    const char *forms[] = { "Anonymous", "anonymous", " \tANONYMOUS \t" };
    for (size_t index = 0; index < sizeof forms / sizeof *forms; index++) {
        ck_assert_int_eq(auth_parse_authorization_header(forms[index], &credentials), 0);
        ck_assert_int_eq(credentials.provider, APP_AUTH_ANONYMOUS);
    }
    assert_header_refused("Anonymous x");
    assert_header_refused("Anonymousx");
}
END_TEST

START_TEST(test_header_bearer)
{
    const char *key = "0123456789abcdef01234567.0123456789abcdef0123456789abcdef"
                      "0123456789abcdef0123456789abcdef";
    char header[256];
    auth_credentials credentials;
    const char *forms[] = { "Bearer %s", "bearer   %s", "\t BEARER %s \t" };
    for (size_t index = 0; index < sizeof forms / sizeof *forms; index++) {
        snprintf(header, sizeof header, forms[index], key);
        ck_assert_int_eq(auth_parse_authorization_header(header, &credentials), 0);
        ck_assert_int_eq(credentials.provider, APP_AUTH_API_KEY);
        ck_assert_str_eq(credentials.api_key, key);
        ck_assert_str_eq(credentials.email, "");
    }
    auth_credentials_clear(&credentials);
    ck_assert_str_eq(credentials.api_key, "");

    snprintf(header, sizeof header, "Bearer %.88s", key);
    assert_header_refused(header);
    ck_assert_ptr_null(strstr(auth_last_error(), "0123456789abcdef0123"));
    snprintf(header, sizeof header, "Bearer %s extra", key);
    assert_header_refused(header);
    snprintf(header, sizeof header, "Bearer\t%s", key);
    assert_header_refused(header);
    assert_header_refused("Bearer");
    assert_header_refused("Bearer ");
    assert_header_refused("Bearer garbage");
}
END_TEST

START_TEST(test_header_basic)
{
    auth_credentials credentials;
    char *header = basic_header("alice@example.com:pass:with:colons", 34);
    ck_assert_int_eq(auth_parse_authorization_header(header, &credentials), 0);
    ck_assert_int_eq(credentials.provider, APP_AUTH_USER_PASSWORD);
    ck_assert_str_eq(credentials.email, "alice@example.com");
    ck_assert_str_eq(credentials.password, "pass:with:colons");
    ck_assert_str_eq(credentials.api_key, "");
    free(header);

    /* Every padding length, and the RFC 7617 example. */
    const char *texts[] = { "a@b:c", "a@b:cd", "a@b:cde" };
    for (size_t index = 0; index < 3; index++) {
        header = basic_header(texts[index], strlen(texts[index]));
        ck_assert_int_eq(auth_parse_authorization_header(header, &credentials), 0);
        ck_assert_str_eq(credentials.password, texts[index] + 4);
        free(header);
    }
    ck_assert_int_eq(auth_parse_authorization_header("basic  QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
                                                     &credentials), 0);
    ck_assert_str_eq(credentials.email, "Aladdin");
    ck_assert_str_eq(credentials.password, "open sesame");
    auth_credentials_clear(&credentials);
}
END_TEST

START_TEST(test_header_basic_refused)
{
    assert_header_refused("Basic");
    assert_header_refused("Basic !!!!");
    assert_header_refused("Basic YWxpY2U6cHc");    /* unpadded */
    assert_header_refused("Basic YWxpY2U6cH=3");   /* '=' inside */
    assert_header_refused("Basic YWxpY2U6c===");
    assert_header_refused("Basic YWxp Y2U6cHc=");
    assert_header_refused("Basic YWxpY2U6cHc=\x01");

    assert_basic_refused("nocolonsecret", 13);
    ck_assert_ptr_null(strstr(auth_last_error(), "nocolonsecret"));
    ck_assert_ptr_null(strstr(auth_last_error(), "bm9jb2xvbnNlY3JldA"));
    assert_basic_refused(":password", 9);
    assert_basic_refused("alice@example.com:", 18);
    assert_basic_refused("alice@example.com:pass\0word", 27);

    char long_text[AUTH_EMAIL_MAX + 1 + AUTH_PASSWORD_MAX + 2];
    memset(long_text, 'e', AUTH_EMAIL_MAX + 1);
    long_text[AUTH_EMAIL_MAX + 1] = ':';
    long_text[AUTH_EMAIL_MAX + 2] = 'p';
    assert_basic_refused(long_text, AUTH_EMAIL_MAX + 3);
    ck_assert_ptr_nonnull(strstr(auth_last_error(), "email"));
    memset(long_text + 1, 'p', sizeof long_text - 1);
    long_text[1] = ':';
    assert_basic_refused(long_text, 2 + AUTH_PASSWORD_MAX + 1);
    ck_assert_ptr_nonnull(strstr(auth_last_error(), "password"));
}
END_TEST

START_TEST(test_header_garbage)
{
    assert_header_refused(NULL);
    assert_header_refused("");
    assert_header_refused(" \t ");
    assert_header_refused("Digest username=\"alice\"");
    assert_header_refused("Token abc");
    assert_header_refused("Basicx YWxpY2U6cHc=");
    assert_header_refused("0123456789abcdef01234567.0123456789abcdef");
    ck_assert_ptr_null(strstr(auth_last_error(), "0123456789abcdef"));

    size_t huge_size = 1 << 20;
    char *huge = malloc(huge_size + 1);
    ck_assert_ptr_nonnull(huge);
    memcpy(huge, "Basic ", 6);
    memset(huge + 6, 'A', huge_size - 6);
    huge[huge_size] = '\0';
    assert_header_refused(huge);
    ck_assert_ptr_nonnull(strstr(auth_last_error(), "longer"));
    free(huge);
}
END_TEST

START_TEST(test_authenticate)
{
    char user_id[AUTH_ID_SIZE], key[AUTH_API_KEY_SIZE], header[128];
    add_user("alice@example.com", "pw", user_id);
    add_api_key("laptop", user_id, key, NULL);
    auth_credentials credentials;
    auth_user user;

    char *basic = basic_header("Alice@Example.com:pw", 20);
    ck_assert_int_eq(auth_parse_authorization_header(basic, &credentials), 0);
    ck_assert_int_eq(auth_authenticate(test_auth, &credentials, &user), 0);
    ck_assert_str_eq(user.id, user_id);
    auth_user_clear(&user);
    free(basic);

    snprintf(header, sizeof header, "Bearer %s", key);
    ck_assert_int_eq(auth_parse_authorization_header(header, &credentials), 0);
    ck_assert_int_eq(auth_authenticate(test_auth, &credentials, &user), 0);
    ck_assert_str_eq(user.id, user_id);
    auth_user_clear(&user);

    ck_assert_int_eq(auth_parse_authorization_header("Anonymous", &credentials), 0);
    ck_assert_int_eq(auth_authenticate(test_auth, &credentials, &user), 0);
    ck_assert_str_ne(user.id, user_id);
    auth_user_clear(&user);

    basic = basic_header("alice@example.com:wrong", 23);
    ck_assert_int_eq(auth_parse_authorization_header(basic, &credentials), 0);
    ck_assert_int_eq(auth_authenticate(test_auth, &credentials, &user), -EACCES);
    free(basic);
    auth_credentials_clear(&credentials);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Session tokens                                                      */

static const int64_t an_hour_ms = 60 * 60 * 1000;

static void create_session(const char *user_id, app_auth_provider provider, int64_t lifetime_ms,
                           char token[AUTH_SESSION_TOKEN_SIZE], auth_session *session)
{
    ck_assert_msg(auth_create_session(test_auth, user_id, provider, lifetime_ms, token,
                                      session) == 0,
                  "%s", auth_last_error());
}

/* The token logs in as user_id; returns what it stands for. */
static auth_session assert_session_login(const char *token, const char *user_id)
{
    auth_user user;
    auth_session session;
    ck_assert_msg(auth_verify_session_token(test_auth, token, &user, &session) == 0, "%s",
                  auth_last_error());
    ck_assert_str_eq(user.id, user_id);
    ck_assert_str_eq(session.user_id, user_id);
    auth_user_clear(&user);
    return session;
}

/* Refused, with a reason that contains reason_part. */
static void assert_session_refused(const char *token, const char *reason_part)
{
    auth_user user;
    auth_session session;
    ck_assert_int_eq(auth_verify_session_token(test_auth, token, &user, &session), -EACCES);
    ck_assert_str_eq(user.id, "");
    ck_assert_msg(strstr(auth_last_error(), reason_part) != NULL, "\"%s\" does not say \"%s\"",
                  auth_last_error(), reason_part);
}

START_TEST(test_session_token_logs_in)
{
    char user_id[AUTH_ID_SIZE], token[AUTH_SESSION_TOKEN_SIZE], other[AUTH_SESSION_TOKEN_SIZE];
    add_user("alice@example.com", "pw", user_id);
    auth_session created;
    create_session(user_id, APP_AUTH_USER_PASSWORD, an_hour_ms, token, &created);
    ck_assert_uint_eq(strlen(token), AUTH_SESSION_TOKEN_SIZE - 1);
    ck_assert_uint_eq(strspn(token, "0123456789abcdef"), AUTH_SESSION_TOKEN_SIZE - 1);
    ck_assert_str_eq(created.user_id, user_id);
    ck_assert_int_eq(created.provider, APP_AUTH_USER_PASSWORD);
    ck_assert_int_eq(created.expires_ms - created.created_ms, an_hour_ms);

    auth_session verified = assert_session_login(token, user_id);
    ck_assert_int_eq(verified.provider, APP_AUTH_USER_PASSWORD);
    ck_assert_int_eq(verified.created_ms, created.created_ms);
    ck_assert_int_eq(verified.expires_ms, created.expires_ms);

    /* Every login gets its own token, and both stay valid. */
    create_session(user_id, APP_AUTH_USER_PASSWORD, an_hour_ms, other, NULL);
    ck_assert_str_ne(token, other);
    assert_session_login(token, user_id);
    assert_session_login(other, user_id);
}
END_TEST

/* A new anonymous user, and a token of its login. */
static void log_in_anonymously(auth_user *anonymous, char token[AUTH_SESSION_TOKEN_SIZE])
{
    ck_assert_int_eq(auth_create_anonymous_user(test_auth, anonymous), 0);
    create_session(anonymous->id, APP_AUTH_ANONYMOUS, an_hour_ms, token, NULL);
}

START_TEST(test_anonymous_session_keeps_the_user)
{
    auth_user anonymous;
    char token[AUTH_SESSION_TOKEN_SIZE];
    log_in_anonymously(&anonymous, token);
    for (int login = 0; login < 3; login++) {
        auth_session session = assert_session_login(token, anonymous.id);
        ck_assert_int_eq(session.provider, APP_AUTH_ANONYMOUS);
    }
    auth_user_clear(&anonymous);
}
END_TEST

START_TEST(test_session_creation_errors)
{
    char user_id[AUTH_ID_SIZE], token[AUTH_SESSION_TOKEN_SIZE];
    add_user("alice@example.com", "pw", user_id);
    ck_assert_int_eq(auth_create_session(test_auth, "0123456789abcdef01234567", APP_AUTH_API_KEY,
                                         an_hour_ms, token, NULL),
                     -ENOENT);
    ck_assert_int_eq(auth_create_session(test_auth, "not an id", APP_AUTH_API_KEY, an_hour_ms,
                                         token, NULL),
                     -EINVAL);
    ck_assert_int_eq(auth_create_session(test_auth, user_id, APP_AUTH_API_KEY, 0, token, NULL),
                     -EINVAL);
    ck_assert_int_eq(auth_create_session(test_auth, user_id, APP_AUTH_PROVIDER_COUNT, an_hour_ms,
                                         token, NULL),
                     -EINVAL);
    /* No lifetime overflows the expiry. */
    auth_session session;
    create_session(user_id, APP_AUTH_API_KEY, INT64_MAX, token, &session);
    ck_assert_int_eq(session.expires_ms, INT64_MAX);
    assert_session_login(token, user_id);
}
END_TEST

START_TEST(test_wrong_and_malformed_session_tokens)
{
    char user_id[AUTH_ID_SIZE], token[AUTH_SESSION_TOKEN_SIZE], key[AUTH_API_KEY_SIZE];
    add_user("alice@example.com", "pw", user_id);
    add_api_key("laptop", user_id, key, NULL);
    create_session(user_id, APP_AUTH_USER_PASSWORD, an_hour_ms, token, NULL);

    assert_session_refused(NULL, "not a session token");
    assert_session_refused("", "not a session token");
    assert_session_refused(key, "not a session token");
    char changed[AUTH_SESSION_TOKEN_SIZE + 1];
    snprintf(changed, sizeof changed, "%.63s", token);
    assert_session_refused(changed, "not a session token");
    snprintf(changed, sizeof changed, "%sa", token);
    assert_session_refused(changed, "not a session token");
    snprintf(changed, sizeof changed, "%s", token);
    changed[0] = changed[0] == 'A' ? 'B' : 'A';
    assert_session_refused(changed, "not a session token");
    /* One digit off is another, unknown token. */
    changed[0] = token[0] == '0' ? '1' : '0';
    assert_session_refused(changed, "unknown session token");
    ck_assert_ptr_null(strstr(auth_last_error(), changed));
    assert_session_login(token, user_id);
}
END_TEST

START_TEST(test_disabled_user_sessions_fail_at_once)
{
    char user_id[AUTH_ID_SIZE], token[AUTH_SESSION_TOKEN_SIZE];
    add_user("alice@example.com", "pw", user_id);
    create_session(user_id, APP_AUTH_USER_PASSWORD, an_hour_ms, token, NULL);
    ck_assert_int_eq(auth_disable_user(test_auth, user_id), 0);
    assert_session_refused(token, "disabled");
    ck_assert_int_eq(auth_enable_user(test_auth, user_id), 0);
    assert_session_login(token, user_id);
}
END_TEST

START_TEST(test_expired_sessions_are_refused_and_purged)
{
    char user_id[AUTH_ID_SIZE], brief[AUTH_SESSION_TOKEN_SIZE], lasting[AUTH_SESSION_TOKEN_SIZE];
    add_user("alice@example.com", "pw", user_id);
    create_session(user_id, APP_AUTH_USER_PASSWORD, 1, brief, NULL);
    create_session(user_id, APP_AUTH_USER_PASSWORD, an_hour_ms, lasting, NULL);
    usleep(20 * 1000);
    assert_session_refused(brief, "expired");
    ck_assert_int_eq(auth_purge_expired_sessions(test_auth), 1);
    assert_session_refused(brief, "unknown session token");
    assert_session_login(lasting, user_id);
    ck_assert_int_eq(auth_purge_expired_sessions(test_auth), 0);
    assert_session_login(lasting, user_id);
}
END_TEST

START_TEST(test_sessions_persist_and_only_digests_are_stored)
{
    auth_user anonymous;
    char token[AUTH_SESSION_TOKEN_SIZE];
    log_in_anonymously(&anonymous, token);
    reopen_test_auth();
    auth_session session = assert_session_login(token, anonymous.id);
    ck_assert_int_eq(session.provider, APP_AUTH_ANONYMOUS);
    ck_assert_uint_eq(count_in_auth_file(token), 0);
    ck_assert_uint_eq(count_in_auth_file("\"provider\":\"anon-user\""), 1);
    auth_user_clear(&anonymous);
}
END_TEST

START_TEST(test_header_session_token)
{
    const char *token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char header[128];
    auth_credentials credentials;
    snprintf(header, sizeof header, " bearer %s\t", token);
    ck_assert_int_eq(auth_parse_authorization_header(header, &credentials), 0);
    ck_assert_str_eq(credentials.session_token, token);
    ck_assert_str_eq(credentials.api_key, "");
    auth_credentials_clear(&credentials);
    ck_assert_str_eq(credentials.session_token, "");

    /* A digit short, one too many, one that is not lowercase. */
    const char *refused_forms[] = { "Bearer %.63s", "Bearer %sa", "Bearer %.63sA" };
    for (size_t index = 0; index < sizeof refused_forms / sizeof *refused_forms; index++) {
        snprintf(header, sizeof header, refused_forms[index], token);
        assert_header_refused(header);
        ck_assert_ptr_nonnull(strstr(auth_last_error(), "session token"));
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Suite                                                               */

static TCase *new_test_case(const char *name)
{
    TCase *test_case = tcase_create(name);
    tcase_add_unchecked_fixture(test_case, make_base_directory, remove_base_directory);
    tcase_add_checked_fixture(test_case, open_test_auth, close_test_auth);
    tcase_set_timeout(test_case, 120);
    return test_case;
}

Suite *unit_suite(void)
{
    Suite *suite = suite_create("auth");

    TCase *users = new_test_case("users");
    tcase_add_test(users, test_add_and_find_user);
    tcase_add_test(users, test_list_users);
    tcase_add_test(users, test_visit_may_read);
    tcase_add_test(users, test_duplicate_email_ignores_case);
    tcase_add_test(users, test_invalid_emails);
    tcase_add_test(users, test_invalid_passwords);
    tcase_add_test(users, test_verify_password);
    tcase_add_test(users, test_set_password);
    tcase_add_test(users, test_disabled_user_cannot_log_in);
    tcase_add_test(users, test_anonymous_users_are_distinct);
    suite_add_tcase(suite, users);

    TCase *api_keys = new_test_case("api_keys");
    tcase_add_test(api_keys, test_server_api_key);
    tcase_add_test(api_keys, test_user_api_key);
    tcase_add_test(api_keys, test_api_key_secret_is_returned_once);
    tcase_add_test(api_keys, test_wrong_and_malformed_api_keys);
    suite_add_tcase(suite, api_keys);

    TCase *storage = new_test_case("storage");
    tcase_add_test(storage, test_only_hashes_reach_the_disk);
    tcase_add_test(storage, test_default_hash_cost);
    tcase_add_test(storage, test_persistence_across_reopen);
    tcase_add_test(storage, test_open_errors_and_permissions);
    tcase_add_test(storage, test_threads);
    suite_add_tcase(suite, storage);

    TCase *headers = new_test_case("authorization_header");
    tcase_add_test(headers, test_header_anonymous);
    tcase_add_test(headers, test_header_bearer);
    tcase_add_test(headers, test_header_basic);
    tcase_add_test(headers, test_header_basic_refused);
    tcase_add_test(headers, test_header_garbage);
    tcase_add_test(headers, test_authenticate);
    tcase_add_test(headers, test_header_session_token);
    suite_add_tcase(suite, headers);

    TCase *sessions = new_test_case("sessions");
    tcase_add_test(sessions, test_session_token_logs_in);
    tcase_add_test(sessions, test_anonymous_session_keeps_the_user);
    tcase_add_test(sessions, test_session_creation_errors);
    tcase_add_test(sessions, test_wrong_and_malformed_session_tokens);
    tcase_add_test(sessions, test_disabled_user_sessions_fail_at_once);
    tcase_add_test(sessions, test_expired_sessions_are_refused_and_purged);
    tcase_add_test(sessions, test_sessions_persist_and_only_digests_are_stored);
    suite_add_tcase(suite, sessions);

    return suite;
}
