/*
 * Unit tests for App Services rule expressions (filter.h), including every
 * role of the exported apps under $REALMFS_EXPORTS.
 *
 * Expressions and documents are written with single quotes for
 * readability; quoted() turns them into JSON.
 */
#include "realmfs/filter.h"

#include "realmfs/ejson.h"

#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* text with every ' turned into ", in a buffer the caller frees. */
static char *quoted(const char *text)
{
    char *copy = strdup(text);
    ck_assert_ptr_nonnull(copy);
    for (char *c = copy; *c != '\0'; c++)
        if (*c == '\'')
            *c = '"';
    return copy;
}

/* The expression as a rules file holds it: plain JSON. */
static json_t *expression_json(const char *text)
{
    char *json_text = quoted(text);
    json_error_t error;
    json_t *expression = json_loads(json_text, JSON_DECODE_ANY, &error);
    ck_assert_msg(expression != NULL, "bad test JSON %s: %s", json_text, error.text);
    free(json_text);
    return expression;
}

/* A stored document: normalized Extended JSON. */
static json_t *document_json(const char *text)
{
    char *json_text = quoted(text);
    ejson_error error = {0};
    json_t *document = ejson_parse(json_text, strlen(json_text), &error);
    ck_assert_msg(document != NULL, "bad test document %s: %s", json_text, error.message);
    free(json_text);
    return document;
}

static filter *parse_ok(const char *text)
{
    json_t *expression = expression_json(text);
    char message[256] = "";
    filter *parsed = filter_parse(expression, "test", message, sizeof message);
    ck_assert_msg(parsed != NULL, "%s was refused: %s", text, message);
    json_decref(expression);
    return parsed;
}

static void expect_refused(const char *text, const char *expected_message)
{
    json_t *expression = expression_json(text);
    char message[256] = "";
    filter *parsed =
        filter_parse(expression, "rules.json: roles[0].apply_when", message, sizeof message);
    ck_assert_msg(parsed == NULL, "%s should be refused", text);
    ck_assert_msg(strcmp(message, expected_message) == 0, "%s\n gave   %s\n wanted %s", text,
                  message, expected_message);
    json_decref(expression);
}

/* Whether document (NULL for none) satisfies expression for user. */
static bool matches_for(const char *expression, const char *document, const filter_user *user)
{
    filter *parsed = parse_ok(expression);
    json_t *stored = document != NULL ? document_json(document) : NULL;
    bool result = filter_matches(parsed, stored, user);
    json_decref(stored);
    filter_free(parsed);
    return result;
}

static bool matches(const char *expression, const char *document)
{
    return matches_for(expression, document, NULL);
}

static const char *shown(const char *document)
{
    return document != NULL ? document : "no document";
}

#define expect_match(expression, document)                                                         \
    ck_assert_msg(matches(expression, document), "%s should match %s", expression, shown(document))
#define expect_no_match(expression, document)                                                      \
    ck_assert_msg(!matches(expression, document), "%s should not match %s", expression,            \
                  shown(document))

/* A user whose data and custom_data are given as JSON text (or NULL). */
typedef struct test_user {
    filter_user user;
    json_t *data;
    json_t *custom_data;
} test_user;

static test_user *test_user_new(const char *id, const char *type, const char *data,
                                const char *custom_data)
{
    test_user *user = calloc(1, sizeof *user);
    ck_assert_ptr_nonnull(user);
    user->data = data != NULL ? document_json(data) : NULL;
    user->custom_data = custom_data != NULL ? document_json(custom_data) : NULL;
    user->user = (filter_user){id, type, user->data, user->custom_data};
    return user;
}

static void test_user_free(test_user *user)
{
    json_decref(user->data);
    json_decref(user->custom_data);
    free(user);
}

/* ------------------------------------------------------------------------ */
/* Operators                                                                */

START_TEST(test_equality)
{
    expect_match("{'name': 'milk'}", "{'name': 'milk'}");
    expect_no_match("{'name': 'milk'}", "{'name': 'Milk'}");
    expect_match("{'count': 1}", "{'count': 1.0}");
    expect_match("{'count': {'$eq': 2}}", "{'count': 2}");
    expect_no_match("{'count': '2'}", "{'count': 2}");
    expect_match("{'count': 2, 'name': 'a'}", "{'count': 2, 'name': 'a'}");
    expect_no_match("{'count': 2, 'name': 'a'}", "{'count': 2, 'name': 'b'}");
    expect_match("{'place': {'city': 'Oslo', 'zip': 1}}", "{'place': {'zip': 1, 'city': 'Oslo'}}");
    expect_no_match("{'place': {'city': 'Oslo'}}", "{'place': {'zip': 1, 'city': 'Oslo'}}");
}
END_TEST

START_TEST(test_not_equal)
{
    expect_match("{'count': {'$ne': 1}}", "{'count': 2}");
    expect_no_match("{'count': {'$ne': 1}}", "{'count': 1}");
    expect_match("{'count': {'$ne': 1}}", "{'other': 1}");
    expect_match("{'count': {'$ne': 1}}", "{'count': '1'}");
    expect_no_match("{'tags': {'$ne': 'a'}}", "{'tags': ['b', 'a']}");
    expect_no_match("{'count': {'$ne': null}}", "{'other': 1}");
}
END_TEST

START_TEST(test_ordering)
{
    expect_match("{'n': {'$gt': 1}}", "{'n': 2}");
    expect_no_match("{'n': {'$gt': 2}}", "{'n': 2}");
    expect_match("{'n': {'$gte': 2}}", "{'n': 2.0}");
    expect_match("{'n': {'$lt': 2.5}}", "{'n': 2}");
    expect_no_match("{'n': {'$lt': 2}}", "{'n': 2}");
    expect_match("{'n': {'$lte': 2}}", "{'n': 2}");
    expect_match("{'n': {'$gt': 1, '$lt': 3}}", "{'n': 2}");
    expect_no_match("{'n': {'$gt': 1, '$lt': 3}}", "{'n': 3}");
    expect_match("{'s': {'$gt': 'apple'}}", "{'s': 'banana'}");
    expect_no_match("{'n': {'$gt': 1}}", "{'n': 'banana'}");
    expect_no_match("{'n': {'$lt': 'z'}}", "{'n': 1}");
    expect_no_match("{'n': {'$gt': 1}}", "{'other': 5}");
    expect_match("{'n': {'$gt': 5}}", "{'n': [1, 9]}");
    expect_no_match("{'n': {'$gt': 5}}", "{'n': [1, 2]}");
}
END_TEST

START_TEST(test_in_and_not_in)
{
    expect_match("{'s': {'$in': ['a', 'b']}}", "{'s': 'b'}");
    expect_no_match("{'s': {'$in': ['a', 'b']}}", "{'s': 'c'}");
    expect_no_match("{'s': {'$in': []}}", "{'s': 'c'}");
    expect_match("{'s': {'$in': ['x', null]}}", "{'other': 1}");
    expect_match("{'tags': {'$in': ['a', 'z']}}", "{'tags': ['y', 'z']}");
    expect_match("{'s': {'$nin': ['a', 'b']}}", "{'s': 'c'}");
    expect_no_match("{'s': {'$nin': ['a', 'b']}}", "{'s': 'a'}");
    expect_match("{'s': {'$nin': ['a']}}", "{'other': 1}");
    expect_no_match("{'tags': {'$nin': ['a']}}", "{'tags': ['b', 'a']}");
    expect_match("{'s': {'$nin': []}}", "{'s': 'c'}");
}
END_TEST

START_TEST(test_exists)
{
    expect_match("{'f': {'$exists': true}}", "{'f': null}");
    expect_no_match("{'f': {'$exists': true}}", "{'g': 1}");
    expect_match("{'f': {'$exists': false}}", "{'g': 1}");
    expect_no_match("{'f': {'$exists': false}}", "{'f': 0}");
    expect_match("{'f': {'$exists': 1}}", "{'f': 0}");
    expect_match("{'f': {'$exists': 0}}", "{'g': 0}");
    expect_match("{'f': {'$exists': '%%true'}}", "{'f': 0}");
}
END_TEST

START_TEST(test_logical_operators)
{
    expect_match("{'$and': [{'a': 1}, {'b': 2}]}", "{'a': 1, 'b': 2}");
    expect_no_match("{'$and': [{'a': 1}, {'b': 2}]}", "{'a': 1, 'b': 3}");
    expect_match("{'$or': [{'a': 1}, {'b': 2}]}", "{'a': 0, 'b': 2}");
    expect_no_match("{'$or': [{'a': 1}, {'b': 2}]}", "{'a': 0, 'b': 0}");
    expect_match("{'$nor': [{'a': 1}, {'b': 2}]}", "{'a': 0, 'b': 0}");
    expect_no_match("{'$nor': [{'a': 1}, {'b': 2}]}", "{'a': 1, 'b': 0}");
    expect_match("{'$or': [{'a': 1}, {'$and': [{'b': 2}, {'c': 3}]}]}", "{'b': 2, 'c': 3}");
    expect_match("{'$or': [{}]}", "{'a': 1}");
}
END_TEST

START_TEST(test_not)
{
    expect_match("{'n': {'$not': {'$gt': 5}}}", "{'n': 3}");
    expect_no_match("{'n': {'$not': {'$gt': 5}}}", "{'n': 6}");
    expect_match("{'n': {'$not': {'$gt': 5}}}", "{'other': 6}");
    expect_match("{'n': {'$not': {'$gt': 5}}}", "{'n': 'text'}");
    expect_match("{'n': {'$not': {'$gt': 1, '$lt': 3}}}", "{'n': 3}");
    expect_no_match("{'n': {'$not': {'$gt': 1, '$lt': 3}}}", "{'n': 2}");
    expect_match("{'n': {'$not': {'$not': {'$eq': 2}}}}", "{'n': 2}");
}
END_TEST

START_TEST(test_all)
{
    expect_match("{'tags': {'$all': ['a', 'b']}}", "{'tags': ['b', 'c', 'a']}");
    expect_no_match("{'tags': {'$all': ['a', 'b']}}", "{'tags': ['b', 'c']}");
    expect_match("{'tags': {'$all': ['a']}}", "{'tags': 'a'}");
    expect_no_match("{'tags': {'$all': []}}", "{'tags': ['a']}");
    expect_no_match("{'tags': {'$all': ['a']}}", "{'other': ['a']}");
}
END_TEST

START_TEST(test_constant_expressions)
{
    expect_match("true", "{'a': 1}");
    expect_no_match("false", "{'a': 1}");
    expect_match("{}", "{'a': 1}");
    expect_match("{}", NULL);
    expect_match("true", NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Missing fields, null, arrays and paths                                   */

START_TEST(test_null_and_missing)
{
    expect_match("{'f': null}", "{'g': 1}");
    expect_match("{'f': null}", "{'f': null}");
    expect_no_match("{'f': null}", "{'f': 0}");
    expect_no_match("{'f': null}", "{'f': []}");
    expect_match("{'f': null}", "{'f': [1, null]}");
    expect_match("{'f': {'$gte': null}}", "{'g': 1}");
    expect_no_match("{'f': {'$gt': null}}", "{'g': 1}");
    expect_no_match("{'f': 1}", "{'g': 1}");
    expect_no_match("{'f': 1}", NULL);
    expect_match("{'f': null}", NULL);
}
END_TEST

START_TEST(test_arrays)
{
    expect_match("{'tags': 'a'}", "{'tags': ['b', 'a']}");
    expect_no_match("{'tags': 'c'}", "{'tags': ['b', 'a']}");
    expect_match("{'tags': ['b', 'a']}", "{'tags': ['b', 'a']}");
    expect_no_match("{'tags': ['a', 'b']}", "{'tags': ['b', 'a']}");
    expect_match("{'grid': [1, 2]}", "{'grid': [[1, 2], [3]]}");
    expect_no_match("{'grid': 1}", "{'grid': [[1, 2], [3]]}");
    expect_no_match("{'tags': []}", "{'tags': ['a']}");
    expect_match("{'tags': []}", "{'tags': []}");
}
END_TEST

START_TEST(test_dotted_paths)
{
    expect_match("{'place.city': 'Oslo'}", "{'place': {'city': 'Oslo'}}");
    expect_no_match("{'place.city': 'Oslo'}", "{'place': {'city': 'Bergen'}}");
    expect_match("{'a.b.c': {'$gt': 1}}", "{'a': {'b': {'c': 2}}}");
    expect_no_match("{'place.city': 'Oslo'}", "{'place': 'Oslo'}");
    expect_match("{'place.city': null}", "{'place': 'Oslo'}");
    expect_match("{'place.city': {'$exists': false}}", "{'place': {'zip': 1}}");
    expect_match("{'stops.city': 'Oslo'}", "{'stops': [{'city': 'Bergen'}, {'city': 'Oslo'}]}");
    expect_no_match("{'stops.city': 'Rome'}", "{'stops': [{'city': 'Bergen'}, {'city': 'Oslo'}]}");
    expect_match("{'stops.city': null}", "{'stops': [{'city': 'Bergen'}, {'zip': 1}]}");
    expect_no_match("{'stops.city': {'$ne': 'Oslo'}}", "{'stops': [{'city': 'Oslo'}, {'zip': 1}]}");
    expect_match("{'stops.tags': 'x'}", "{'stops': [{'tags': ['y', 'x']}]}");
    expect_match("{'a.b': {'$exists': false}}", "{'a': [1, 2]}");
    expect_match("{'a.b': null}", "{'a': [1, 2]}");
    expect_match("{'a.b': null}", "{'a': []}");
    expect_no_match("{'a.b': null}", "{'a': [{'b': 1}]}");
}
END_TEST

START_TEST(test_extended_json_literals)
{
    const char *item = "{'_id': {'$oid': '65a1b2c3d4e5f60718293a4b'}, 'due': {'$date': "
                       "'2024-05-01T12:00:00Z'}, 'n': 5}";
    expect_match("{'_id': {'$oid': '65a1b2c3d4e5f60718293a4b'}}", item);
    expect_match("{'_id': {'$oid': '65A1B2C3D4E5F60718293A4B'}}", item);
    expect_no_match("{'_id': {'$oid': '65a1b2c3d4e5f60718293a4c'}}", item);
    expect_no_match("{'_id': '65a1b2c3d4e5f60718293a4b'}", item);
    expect_match("{'due': {'$gt': {'$date': '2024-01-01T00:00:00Z'}}}", item);
    expect_no_match("{'due': {'$lt': {'$date': {'$numberLong': '0'}}}}", item);
    expect_match("{'n': {'$numberLong': '5'}}", item);
    expect_match("{'n': {'$in': [{'$numberDouble': '5.0'}]}}", item);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Expansions                                                               */

START_TEST(test_user_expansions)
{
    test_user *user = test_user_new("u1", "normal", "{'email': 'a@b.c', 'name': {'first': 'Ann'}}",
                                    "{'team': 'red', 'level': 3, 'profile': {'org': {'id': 7}}}");
    const filter_user *ann = &user->user;
    ck_assert(matches_for("{'owner_id': '%%user.id'}", "{'owner_id': 'u1'}", ann));
    ck_assert(!matches_for("{'owner_id': '%%user.id'}", "{'owner_id': 'u2'}", ann));
    ck_assert(matches_for("{'kind': '%%user.type'}", "{'kind': 'normal'}", ann));
    ck_assert(matches_for("{'mail': '%%user.data.email'}", "{'mail': 'a@b.c'}", ann));
    ck_assert(matches_for("{'first': '%%user.data.name.first'}", "{'first': 'Ann'}", ann));
    ck_assert(matches_for("{'team': '%%user.custom_data.team'}", "{'team': 'red'}", ann));
    ck_assert(!matches_for("{'team': '%%user.custom_data.team'}", "{'team': 'blue'}", ann));
    ck_assert(matches_for("{'org': '%%user.custom_data.profile.org.id'}", "{'org': 7}", ann));
    ck_assert(matches_for("{'level': {'$lte': '%%user.custom_data.level'}}", "{'level': 2}", ann));
    ck_assert(matches_for("{'profile': '%%user.custom_data.profile'}",
                          "{'profile': {'org': {'id': 7}}}", ann));
    ck_assert(matches_for("{'done': '%%true'}", "{'done': true}", ann));
    ck_assert(matches_for("{'done': '%%false'}", "{'done': false}", ann));
    ck_assert(!matches_for("{'done': '%%true'}", "{'done': 'true'}", ann));
    ck_assert(matches_for("{'pair': ['%%user.id', 'x']}", "{'pair': ['u1', 'x']}", ann));
    ck_assert(matches_for("{'who': {'id': '%%user.id'}}", "{'who': {'id': 'u1'}}", ann));
    test_user_free(user);
}
END_TEST

START_TEST(test_expansions_as_keys)
{
    test_user *admin = test_user_new("u1", "server", NULL, "{'isTeamAdmin': true, 'n': 4}");
    test_user *member = test_user_new("u2", "normal", NULL, "{'isTeamAdmin': false}");
    test_user *plain = test_user_new("u3", "normal", NULL, NULL);
    const char *is_admin = "{'%%user.custom_data.isTeamAdmin': true}";
    ck_assert(matches_for(is_admin, NULL, &admin->user));
    ck_assert(!matches_for(is_admin, NULL, &member->user));
    ck_assert(!matches_for(is_admin, NULL, &plain->user));
    ck_assert(!matches_for(is_admin, NULL, NULL));
    ck_assert(matches_for("{'%%user.custom_data.isTeamAdmin': '%%true'}", NULL, &admin->user));
    ck_assert(matches_for("{'%%user.type': 'server'}", NULL, &admin->user));
    ck_assert(!matches_for("{'%%user.type': 'server'}", NULL, &member->user));
    ck_assert(matches_for("{'%%user.custom_data.n': {'$gt': 3}}", NULL, &admin->user));
    ck_assert(matches_for("{'%%user.custom_data.isTeamAdmin': {'$ne': true}}", NULL, &plain->user));
    ck_assert(
        matches_for("{'%%user.custom_data.isTeamAdmin': {'$exists': false}}", NULL, &plain->user));
    ck_assert(
        matches_for("{'%%user.id': 'u1', 'owner': '%%user.id'}", "{'owner': 'u1'}", &admin->user));
    ck_assert(!matches_for("{'%%user.id': 'u1', 'owner': '%%user.id'}", "{'owner': 'u2'}",
                           &member->user));
    test_user_free(admin);
    test_user_free(member);
    test_user_free(plain);
}
END_TEST

/* A missing expansion equals nothing, not even a missing field: a user
 * without a team must not read every document that has none. */
START_TEST(test_missing_expansions)
{
    test_user *user = test_user_new(NULL, NULL, NULL, "{'n': 1, 'list': 'x'}");
    const filter_user *nobody = &user->user;
    ck_assert(!matches_for("{'team': '%%user.custom_data.team'}", "{'other': 1}", nobody));
    ck_assert(!matches_for("{'team': '%%user.custom_data.team'}", "{'team': null}", nobody));
    ck_assert(!matches_for("{'owner_id': '%%user.id'}", "{'other': 1}", nobody));
    ck_assert(!matches_for("{'owner_id': '%%user.id'}", "{'other': 1}", NULL));
    ck_assert(!matches_for("{'kind': '%%user.type'}", "{'other': 1}", nobody));
    ck_assert(!matches_for("{'mail': '%%user.data.email'}", "{'other': 1}", nobody));
    ck_assert(!matches_for("{'n': {'$gte': '%%user.custom_data.m'}}", "{'n': 1}", nobody));
    ck_assert(matches_for("{'team': {'$ne': '%%user.custom_data.team'}}", "{'team': 'a'}", nobody));
    ck_assert(!matches_for("{'s': {'$in': '%%user.custom_data.missing'}}", "{'s': 'x'}", nobody));
    ck_assert(matches_for("{'s': {'$nin': '%%user.custom_data.missing'}}", "{'s': 'x'}", nobody));
    ck_assert(!matches_for("{'s': {'$all': '%%user.custom_data.missing'}}", "{'s': 'x'}", nobody));
    ck_assert(matches_for("{'s': {'$in': '%%user.custom_data.list'}}", "{'s': 'x'}", nobody));
    ck_assert(matches_for("{'s': {'$in': ['%%user.id', 'y']}}", "{'s': 'y'}", nobody));
    ck_assert(!matches_for("{'s': {'$in': ['%%user.id']}}", "{'other': 1}", nobody));
    ck_assert(matches_for("{'pair': ['%%user.id', 'x']}", "{'pair': ['x']}", nobody));
    test_user_free(user);
}
END_TEST

START_TEST(test_object_id_conversions)
{
    const char *hex = "65a1b2c3d4e5f60718293a4b";
    test_user *user =
        test_user_new(hex, "normal", NULL, "{'favorite': {'$oid': '65a1b2c3d4e5f60718293a4c'}}");
    const filter_user *owner = &user->user;
    const char *item = "{'_id': {'$oid': '65a1b2c3d4e5f60718293a4b'}, 'ref': "
                       "'65a1b2c3d4e5f60718293a4c'}";
    ck_assert(matches_for("{'_id': {'%stringToOid': '%%user.id'}}", item, owner));
    ck_assert(!matches_for("{'_id': '%%user.id'}", item, owner));
    ck_assert(matches_for("{'ref': {'%oidToString': '%%user.custom_data.favorite'}}", item, owner));
    ck_assert(
        matches_for("{'_id': {'$eq': {'%stringToOid': '65a1b2c3d4e5f60718293a4b'}}}", item, owner));
    ck_assert(matches_for("{'_id': {'$in': [{'%stringToOid': '%%user.id'}]}}", item, owner));
    ck_assert(matches_for(
        "{'_id': {'%stringToOid': {'%oidToString': {'%stringToOid': '%%user.id'}}}}", item, owner));
    ck_assert(matches_for("{'ref': {'%oidToString': {'$oid': '65a1b2c3d4e5f60718293a4c'}}}", item,
                          owner));
    ck_assert(!matches_for("{'_id': {'%stringToOid': '%%user.type'}}", item, owner));
    ck_assert(!matches_for("{'_id': {'%stringToOid': '%%user.id'}}", item, NULL));
    ck_assert(!matches_for("{'ref': {'%oidToString': '%%user.id'}}", item, owner));
    test_user_free(user);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Refusals and messages                                                    */

START_TEST(test_unsupported_expansions)
{
    expect_refused("{'owner': '%%root.owner'}",
                   "rules.json: roles[0].apply_when.owner: unsupported expansion %%root.owner");
    expect_refused(
        "{'%%prev.owner': 'x'}",
        "rules.json: roles[0].apply_when.%%prev.owner: unsupported expansion %%prev.owner");
    expect_refused("{'ip': '%%request.remoteIPAddress'}",
                   "rules.json: roles[0].apply_when.ip: unsupported expansion "
                   "%%request.remoteIPAddress");
    expect_refused("{'a': '%%user'}",
                   "rules.json: roles[0].apply_when.a: unsupported expansion %%user");
    expect_refused("{'a': '%%user.identities'}",
                   "rules.json: roles[0].apply_when.a: unsupported expansion %%user.identities");
    expect_refused("{'a': '%%user.database'}",
                   "rules.json: roles[0].apply_when.a: unsupported expansion %%user.database");
    expect_refused("{'a': '%%values.x'}",
                   "rules.json: roles[0].apply_when.a: unsupported expansion %%values.x");
    expect_refused("{'a': '%%user.data.'}", "rules.json: roles[0].apply_when.a: field path \"\" "
                                            "has an empty field name");
    expect_refused(
        "{'a': '%%user.custom_data.x..y'}",
        "rules.json: roles[0].apply_when.a: field path \"x..y\" has an empty field name");
    expect_refused("{'a': {'%function': {'name': 'f'}}}",
                   "rules.json: roles[0].apply_when.a: unsupported operator %function");
    expect_refused("{'%function': {'name': 'f'}}",
                   "rules.json: roles[0].apply_when.%function: unsupported operator %function");
    expect_refused("{'a': {'%and': [{'$gt': 0}]}}",
                   "rules.json: roles[0].apply_when.a: unsupported operator %and");
}
END_TEST

START_TEST(test_unsupported_operators)
{
    expect_refused("{'$where': 'this.a == 1'}",
                   "rules.json: roles[0].apply_when.$where: unsupported operator $where");
    expect_refused("{'$expr': {'$eq': ['$a', 1]}}",
                   "rules.json: roles[0].apply_when.$expr: unsupported operator $expr");
    expect_refused("{'a': {'$eq': 1, '$regex': 'x'}}",
                   "rules.json: roles[0].apply_when.a.$regex: unsupported operator $regex");
    expect_refused("{'a': {'$regex': '^x'}}",
                   "rules.json: roles[0].apply_when.a: unsupported operator $regex (as a value: "
                   "unsupported Extended JSON type $regex)");
    expect_refused("{'a': {'$in': [1], '$elemMatch': {'b': 1}}}",
                   "rules.json: roles[0].apply_when.a.$elemMatch: unsupported operator $elemMatch");
    expect_refused("{'a': {'$gt': 1, 'b': 1}}",
                   "rules.json: roles[0].apply_when.a.b: unsupported operator b");
    expect_refused("{'$not': {'a': 1}}", "rules.json: roles[0].apply_when.$not: operator $not "
                                         "applies to a field, not to a document");
    expect_refused("{'a': {'$not': 1}}",
                   "rules.json: roles[0].apply_when.a.$not: $not needs a document of operators");
    expect_refused("{'a': {'$not': {'b': 1}}}",
                   "rules.json: roles[0].apply_when.a.$not: $not needs a document of operators");
    expect_refused("{'a': {'$oid': 'xyz'}}", "rules.json: roles[0].apply_when.a: unsupported "
                                             "operator $oid (as a value: $oid must be 24 "
                                             "hexadecimal digits)");
}
END_TEST

START_TEST(test_malformed_expressions)
{
    expect_refused(
        "'%%true'",
        "rules.json: roles[0].apply_when: an expression must be true, false or a document");
    expect_refused(
        "[]", "rules.json: roles[0].apply_when: an expression must be true, false or a document");
    expect_refused("{'$or': []}",
                   "rules.json: roles[0].apply_when.$or: $or needs a non-empty array of documents");
    expect_refused(
        "{'$and': {'a': 1}}",
        "rules.json: roles[0].apply_when.$and: $and needs a non-empty array of documents");
    expect_refused("{'$nor': [{'a': 1}, true]}", "rules.json: roles[0].apply_when.$nor[1]: $nor "
                                                 "needs a non-empty array of documents");
    expect_refused("{'a': {'$in': 'x'}}",
                   "rules.json: roles[0].apply_when.a.$in: $in needs an array");
    expect_refused("{'a': {'$all': {'b': 1}}}",
                   "rules.json: roles[0].apply_when.a.$all: $all needs an array");
    expect_refused("{'a': {'$exists': 'yes'}}",
                   "rules.json: roles[0].apply_when.a.$exists: $exists needs true or false");
    expect_refused(
        "{'a..b': 1}",
        "rules.json: roles[0].apply_when.a..b: field path \"a..b\" has an empty field name");
    expect_refused("{'': 1}", "rules.json: roles[0].apply_when.: field path \"\" has an empty "
                              "field name");
    expect_refused("{'a.$': 1}", "rules.json: roles[0].apply_when.a.$: field path \"a.$\" has a "
                                 "name starting with '$'");
    expect_refused("{'a': {'b': 1, '$c': 2}}", "rules.json: roles[0].apply_when.a.$c: field names "
                                               "inside a value may not start with '$'");
    expect_refused("{'a': {'b': {'c': 1, '%%user.id': 1}}}",
                   "rules.json: roles[0].apply_when.a.b.%%user.id: field names inside a value may "
                   "not start with '%'");
    expect_refused("{'a': {'b': {'%%user.id': 1}}}",
                   "rules.json: roles[0].apply_when.a.b: unsupported operator %%user.id");
    expect_refused("{'a': {'%stringToOid': 'xyz'}}",
                   "rules.json: roles[0].apply_when.a.%stringToOid: %stringToOid needs a string of "
                   "24 hexadecimal digits");
    expect_refused(
        "{'a': {'%oidToString': 'xyz'}}",
        "rules.json: roles[0].apply_when.a.%oidToString: %oidToString needs an ObjectId");
    expect_refused("{'a': {'%stringToOid': '%%user.id', 'b': 1}}",
                   "rules.json: roles[0].apply_when.a: %stringToOid must be the only key of its "
                   "document");
}
END_TEST

START_TEST(test_message_names_key_path)
{
    expect_refused(
        "{'$or': [{'a': 1}, {'b': {'$in': [1, '%%root.x']}}]}",
        "rules.json: roles[0].apply_when.$or[1].b.$in[1]: unsupported expansion %%root.x");
    json_t *expression = expression_json("{'owner': '%%root'}");
    char message[256];
    ck_assert_ptr_null(filter_parse(expression, NULL, message, sizeof message));
    ck_assert_str_eq(message, "owner: unsupported expansion %%root");
    char small[12];
    ck_assert_ptr_null(filter_parse(expression, "rules.json", small, sizeof small));
    ck_assert_str_eq(small, "rules.json.");
    ck_assert_ptr_null(filter_parse(expression, "rules.json", NULL, 0));
    json_decref(expression);
}
END_TEST

/* Nesting is capped so a hostile rules file cannot exhaust the stack. */
START_TEST(test_depth_limit)
{
    char text[4096] = "";
    size_t length = 0;
    for (int level = 0; level < 60; level++)
        length += (size_t)snprintf(text + length, sizeof text - length, "{'$or': [");
    length += (size_t)snprintf(text + length, sizeof text - length, "{'a': 1}");
    for (int level = 0; level < 60; level++)
        length += (size_t)snprintf(text + length, sizeof text - length, "]}");
    json_t *expression = expression_json(text);
    char message[2048] = "";
    ck_assert_ptr_null(filter_parse(expression, NULL, message, sizeof message));
    ck_assert_msg(strstr(message, ": nested deeper than 100 levels") != NULL, "%s", message);
    json_decref(expression);

    filter *shallow = parse_ok("{'$or': [{'$or': [{'$or': [{'a': {'$not': {'$eq': 1}}}]}]}]}");
    json_t *document = document_json("{'a': 2}");
    ck_assert(filter_matches(shallow, document, NULL));
    json_decref(document);
    filter_free(shallow);
}
END_TEST

START_TEST(test_keys_with_nul_are_refused)
{
    json_t *expression = json_object();
    ck_assert_int_eq(json_object_setn_new(expression, "a\0b", 3, json_integer(1)), 0);
    char message[256] = "";
    ck_assert_ptr_null(filter_parse(expression, NULL, message, sizeof message));
    ck_assert_str_eq(message, "a: key with a NUL byte");
    json_decref(expression);
}
END_TEST

/* The filter copies what it needs: the expression may go away. */
START_TEST(test_filter_outlives_expression)
{
    json_t *expression = expression_json("{'a': {'$in': ['x', {'b': 'y'}]}, 'c': {'$oid': "
                                         "'65a1b2c3d4e5f60718293a4b'}}");
    char message[256] = "";
    filter *parsed = filter_parse(expression, NULL, message, sizeof message);
    ck_assert_msg(parsed != NULL, "%s", message);
    json_decref(expression);
    json_t *document =
        document_json("{'a': {'b': 'y'}, 'c': {'$oid': '65a1b2c3d4e5f60718293a4b'}}");
    ck_assert(filter_matches(parsed, document, NULL));
    json_decref(document);
    filter_free(parsed);
    filter_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Fields read                                                              */

typedef struct collected_paths {
    char text[256];
    int calls;
    int stop_after;
} collected_paths;

static int collect_path(const char *path, void *context)
{
    collected_paths *collected = context;
    size_t used = strlen(collected->text);
    snprintf(collected->text + used, sizeof collected->text - used, "%s%s", used > 0 ? " " : "",
             path);
    collected->calls++;
    return collected->calls == collected->stop_after ? 42 : 0;
}

START_TEST(test_visit_fields)
{
    filter *parsed = parse_ok("{'%%user.type': 'server', 'owner_id': '%%user.id', '$or': [{'team': "
                              "{'$in': ['a']}}, {'owner_id': 'x', 'place.city': {'$not': {'$eq': "
                              "'x'}}}, {'team': 'b'}]}");
    collected_paths all = {"", 0, 0};
    ck_assert_int_eq(filter_visit_fields(parsed, collect_path, &all), 0);
    ck_assert_str_eq(all.text, "owner_id team place.city");
    collected_paths first_two = {"", 0, 2};
    ck_assert_int_eq(filter_visit_fields(parsed, collect_path, &first_two), 42);
    ck_assert_str_eq(first_two.text, "owner_id team");
    filter_free(parsed);

    filter *constant = parse_ok("true");
    collected_paths none = {"", 0, 0};
    ck_assert_int_eq(filter_visit_fields(constant, collect_path, &none), 0);
    ck_assert_int_eq(none.calls, 0);
    filter_free(constant);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The exported apps                                                        */

static const char *exports_directory(void)
{
    const char *directory = getenv("REALMFS_EXPORTS");
    ck_assert_msg(directory != NULL, "REALMFS_EXPORTS is not set");
    return directory;
}

static json_t *load_rules_file(const char *path)
{
    json_error_t error;
    json_t *rules = json_load_file(path, 0, &error);
    ck_assert_msg(rules != NULL, "%s:%d: %s", path, error.line, error.text);
    ck_assert_msg(json_is_array(json_object_get(rules, "roles")), "%s has no roles", path);
    return rules;
}

/* Parse one expression of a role, when the role has it, and count it. */
static void expect_expression_loads(const json_t *expression, const char *source, size_t role_index,
                                    const char *key, int *parsed_count)
{
    if (expression == NULL)
        return;
    char source_name[PATH_MAX + 64];
    snprintf(source_name, sizeof source_name, "%s: roles[%zu].%s", source, role_index, key);
    char message[512] = "";
    filter *parsed = filter_parse(expression, source_name, message, sizeof message);
    ck_assert_msg(parsed != NULL, "%s", message);
    filter_free(parsed);
    (*parsed_count)++;
}

static void expect_rules_file_loads(const char *path, const char *source, int *parsed_count)
{
    json_t *rules = load_rules_file(path);
    size_t index;
    const json_t *role;
    json_array_foreach(json_object_get(rules, "roles"), index, role)
    {
        const json_t *document_filters = json_object_get(role, "document_filters");
        expect_expression_loads(json_object_get(role, "apply_when"), source, index, "apply_when",
                                parsed_count);
        expect_expression_loads(json_object_get(document_filters, "read"), source, index,
                                "document_filters.read", parsed_count);
        expect_expression_loads(json_object_get(document_filters, "write"), source, index,
                                "document_filters.write", parsed_count);
    }
    json_decref(rules);
}

/* Every rules.json and default_rule.json below directory; source is the
 * path relative to the exports directory, for messages. */
static void walk_rules(const char *directory, const char *source, int *file_count,
                       int *parsed_count)
{
    DIR *listing = opendir(directory);
    if (listing == NULL)
        return;
    struct dirent *entry;
    while ((entry = readdir(listing)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char path[PATH_MAX], child_source[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", directory, entry->d_name);
        snprintf(child_source, sizeof child_source, "%s/%s", source, entry->d_name);
        struct stat status;
        ck_assert_int_eq(stat(path, &status), 0);
        if (S_ISDIR(status.st_mode))
            walk_rules(path, child_source, file_count, parsed_count);
        else if (strcmp(entry->d_name, "rules.json") == 0 ||
                 strcmp(entry->d_name, "default_rule.json") == 0) {
            expect_rules_file_loads(path, child_source, parsed_count);
            (*file_count)++;
        }
    }
    closedir(listing);
}

START_TEST(test_every_exported_rule_loads)
{
    const char *exports = exports_directory();
    DIR *apps = opendir(exports);
    ck_assert_msg(apps != NULL, "cannot open %s", exports);
    int app_count = 0, file_count = 0, parsed_count = 0;
    struct dirent *entry;
    while ((entry = readdir(apps)) != NULL) {
        char data_sources[PATH_MAX], source[PATH_MAX];
        snprintf(data_sources, sizeof data_sources, "%s/%s/data_sources/mongodb-atlas", exports,
                 entry->d_name);
        snprintf(source, sizeof source, "%s/data_sources/mongodb-atlas", entry->d_name);
        struct stat status;
        if (entry->d_name[0] == '.' || stat(data_sources, &status) != 0)
            continue;
        app_count++;
        walk_rules(data_sources, source, &file_count, &parsed_count);
    }
    closedir(apps);
    ck_assert_int_ge(app_count, 6);
    ck_assert_int_ge(file_count, 8);
    ck_assert_int_ge(parsed_count, 3 * 10);
}
END_TEST

/* The three expressions of one role of an exported rules file. */
typedef struct role_filters {
    filter *apply_when;
    filter *read;
    filter *write;
} role_filters;

static filter *parse_role_expression(const json_t *expression, const char *what)
{
    char message[512] = "";
    ck_assert_msg(expression != NULL, "%s is missing", what);
    filter *parsed = filter_parse(expression, what, message, sizeof message);
    ck_assert_msg(parsed != NULL, "%s", message);
    return parsed;
}

static role_filters load_role(const char *app, const char *rules_file, const char *role_name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/data_sources/mongodb-atlas/%s", exports_directory(), app,
             rules_file);
    json_t *rules = load_rules_file(path);
    size_t index;
    const json_t *role;
    json_array_foreach(json_object_get(rules, "roles"), index, role)
    {
        if (!json_is_string(json_object_get(role, "name")) ||
            strcmp(json_string_value(json_object_get(role, "name")), role_name) != 0)
            continue;
        const json_t *document_filters = json_object_get(role, "document_filters");
        role_filters filters = {
            parse_role_expression(json_object_get(role, "apply_when"), "apply_when"),
            parse_role_expression(json_object_get(document_filters, "read"), "read"),
            parse_role_expression(json_object_get(document_filters, "write"), "write"),
        };
        json_decref(rules);
        return filters;
    }
    ck_abort_msg("%s has no role %s", path, role_name);
    return (role_filters){NULL, NULL, NULL};
}

static void role_filters_free(role_filters *filters)
{
    filter_free(filters->apply_when);
    filter_free(filters->read);
    filter_free(filters->write);
}

static bool filter_matches_text(const filter *parsed, const char *document, const test_user *user)
{
    json_t *stored = document_json(document);
    bool result = filter_matches(parsed, stored, user != NULL ? &user->user : NULL);
    json_decref(stored);
    return result;
}

static bool role_applies(const role_filters *role, const test_user *user)
{
    return filter_matches(role->apply_when, NULL, user != NULL ? &user->user : NULL);
}

static bool role_reads(const role_filters *role, const test_user *user, const char *document)
{
    return filter_matches_text(role->read, document, user);
}

static bool role_writes(const role_filters *role, const test_user *user, const char *document)
{
    return filter_matches_text(role->write, document, user);
}

static const char *const item_of_u1 =
    "{'_id': {'$oid': '65a1b2c3d4e5f60718293a4b'}, 'owner_id': 'u1', 'summary': 'a', "
    "'isComplete': false}";
static const char *const item_of_u2 =
    "{'_id': {'$oid': '65a1b2c3d4e5f60718293a4c'}, 'owner_id': 'u2', 'summary': 'b', "
    "'isComplete': true}";

/* write-own-items, in both sync-todo and edge-server. */
static void expect_write_own_items(const char *app)
{
    role_filters role = load_role(app, "todo/Item/rules.json", "write-own-items");
    test_user *u1 = test_user_new("u1", "normal", NULL, NULL);
    ck_assert(role_applies(&role, u1));
    ck_assert(role_applies(&role, NULL));
    ck_assert(role_reads(&role, u1, item_of_u1));
    ck_assert(role_reads(&role, u1, item_of_u2));
    ck_assert(role_writes(&role, u1, item_of_u1));
    ck_assert(!role_writes(&role, u1, item_of_u2));
    ck_assert(!role_writes(&role, NULL, item_of_u1));
    test_user_free(u1);
    role_filters_free(&role);
}

/* read-not-write, the default rule of sync-todo and edge-server. */
static void expect_read_not_write(const char *app)
{
    role_filters role = load_role(app, "default_rule.json", "read-not-write");
    test_user *u1 = test_user_new("u1", "normal", NULL, NULL);
    ck_assert(role_applies(&role, u1));
    ck_assert(role_reads(&role, u1, item_of_u2));
    ck_assert(!role_writes(&role, u1, item_of_u1));
    test_user_free(u1);
    role_filters_free(&role);
}

START_TEST(test_sync_todo_roles)
{
    expect_write_own_items("sync-todo");
    expect_read_not_write("sync-todo");
}
END_TEST

START_TEST(test_edge_server_roles)
{
    role_filters edge =
        load_role("edge-server", "todo/Item/rules.json", "edgeServerReadAllWriteOwn");
    test_user *edge_user = test_user_new("e1", "edge", NULL, NULL);
    test_user *normal_user = test_user_new("u1", "normal", NULL, NULL);
    test_user *server_user = test_user_new("s1", "server", NULL, NULL);
    test_user *untyped_user = test_user_new("x1", NULL, NULL, NULL);
    ck_assert(role_applies(&edge, edge_user));
    ck_assert(!role_applies(&edge, normal_user));
    ck_assert(!role_applies(&edge, server_user));
    ck_assert(!role_applies(&edge, untyped_user));
    ck_assert(role_reads(&edge, edge_user, item_of_u2));
    ck_assert(role_writes(&edge, edge_user, item_of_u2));
    test_user_free(edge_user);
    test_user_free(normal_user);
    test_user_free(server_user);
    test_user_free(untyped_user);
    role_filters_free(&edge);
    expect_write_own_items("edge-server");
    expect_read_not_write("edge-server");
}
END_TEST

static const char *const red_item_of_u1 =
    "{'_id': {'$oid': '65a1b2c3d4e5f60718293a4b'}, 'owner_id': 'u1', 'name': 'a', 'team': 'red'}";
static const char *const red_item_of_u2 =
    "{'_id': {'$oid': '65a1b2c3d4e5f60718293a4c'}, 'owner_id': 'u2', 'name': 'b', 'team': 'red'}";
static const char *const blue_item_of_u1 =
    "{'_id': {'$oid': '65a1b2c3d4e5f60718293a4d'}, 'owner_id': 'u1', 'name': 'c', 'team': 'blue'}";

START_TEST(test_tiered_admin_role)
{
    role_filters admin = load_role("tiered", "default_rule.json", "admin");
    test_user *red_admin = test_user_new("u1", "normal", NULL,
                                         "{'_id': 'u1', 'team': 'red', "
                                         "'isTeamAdmin': true}");
    test_user *red_member = test_user_new("u2", "normal", NULL,
                                          "{'_id': 'u2', 'team': 'red', "
                                          "'isTeamAdmin': false}");
    test_user *string_admin = test_user_new("u3", "normal", NULL, "{'isTeamAdmin': 'true'}");
    test_user *no_custom_data = test_user_new("u4", "normal", NULL, NULL);
    ck_assert(role_applies(&admin, red_admin));
    ck_assert(!role_applies(&admin, red_member));
    ck_assert(!role_applies(&admin, string_admin));
    ck_assert(!role_applies(&admin, no_custom_data));
    ck_assert(role_reads(&admin, red_admin, red_item_of_u2));
    ck_assert(!role_reads(&admin, red_admin, blue_item_of_u1));
    ck_assert(role_writes(&admin, red_admin, red_item_of_u2));
    ck_assert(!role_writes(&admin, red_admin, blue_item_of_u1));
    test_user_free(red_admin);
    test_user_free(red_member);
    test_user_free(string_admin);
    test_user_free(no_custom_data);
    role_filters_free(&admin);
}
END_TEST

START_TEST(test_tiered_user_role)
{
    role_filters user = load_role("tiered", "default_rule.json", "user");
    test_user *red_member = test_user_new("u1", "normal", NULL, "{'_id': 'u1', 'team': 'red'}");
    test_user *teamless = test_user_new("u1", "normal", NULL, "{'_id': 'u1'}");
    ck_assert(role_applies(&user, red_member));
    ck_assert(role_reads(&user, red_member, red_item_of_u2));
    ck_assert(!role_reads(&user, red_member, blue_item_of_u1));
    ck_assert(role_writes(&user, red_member, red_item_of_u1));
    ck_assert(role_writes(&user, red_member, blue_item_of_u1));
    ck_assert(!role_writes(&user, red_member, red_item_of_u2));
    ck_assert(!role_reads(&user, teamless, red_item_of_u1));
    ck_assert(!role_reads(&user, teamless, "{'owner_id': 'u1', 'name': 'no team'}"));
    test_user_free(red_member);
    test_user_free(teamless);
    role_filters_free(&user);
}
END_TEST

START_TEST(test_restricted_feed_role)
{
    role_filters feed = load_role("restricted-feed", "default_rule.json", "author-subscriber");
    test_user *reader =
        test_user_new("u1", "normal", NULL, "{'_id': 'u1', 'subscribedTo': ['u2', 'u5']}");
    test_user *unsubscribed = test_user_new("u1", "normal", NULL, "{'_id': 'u1'}");
    const char *post_of_u2 = "{'owner_id': 'u2', 'name': 'p', 'team': 't'}";
    const char *post_of_u3 = "{'owner_id': 'u3', 'name': 'q', 'team': 't'}";
    const char *post_of_u1 = "{'owner_id': 'u1', 'name': 'r', 'team': 't'}";
    ck_assert(role_applies(&feed, reader));
    ck_assert(role_reads(&feed, reader, post_of_u2));
    ck_assert(!role_reads(&feed, reader, post_of_u3));
    ck_assert(!role_reads(&feed, reader, post_of_u1));
    ck_assert(!role_reads(&feed, unsubscribed, post_of_u2));
    ck_assert(role_writes(&feed, reader, post_of_u1));
    ck_assert(!role_writes(&feed, reader, post_of_u2));
    test_user_free(reader);
    test_user_free(unsubscribed);
    role_filters_free(&feed);
}
END_TEST

START_TEST(test_add_collaborators_role)
{
    role_filters collaborator = load_role("add-collaborators", "default_rule.json", "collaborator");
    test_user *u1 = test_user_new("u1", "normal", NULL, NULL);
    const char *own = "{'owner_id': 'u1', 'name': 'a', 'collaborators': []}";
    const char *shared = "{'owner_id': 'u2', 'name': 'b', 'collaborators': ['u3', 'u1']}";
    const char *foreign = "{'owner_id': 'u2', 'name': 'c', 'collaborators': ['u3']}";
    const char *solo = "{'owner_id': 'u2', 'name': 'd'}";
    ck_assert(role_applies(&collaborator, u1));
    ck_assert(role_reads(&collaborator, u1, own));
    ck_assert(role_reads(&collaborator, u1, shared));
    ck_assert(!role_reads(&collaborator, u1, foreign));
    ck_assert(!role_reads(&collaborator, u1, solo));
    ck_assert(role_writes(&collaborator, u1, own));
    ck_assert(role_writes(&collaborator, u1, shared));
    ck_assert(!role_writes(&collaborator, u1, foreign));
    ck_assert(!role_writes(&collaborator, NULL, shared));
    test_user_free(u1);
    role_filters_free(&collaborator);
}
END_TEST

START_TEST(test_read_and_write_own_data_role)
{
    role_filters owner =
        load_role("read-and-write-own-data", "default_rule.json", "owner-read-write");
    test_user *u1 = test_user_new("u1", "normal", NULL, NULL);
    ck_assert(role_applies(&owner, u1));
    ck_assert(role_reads(&owner, u1, item_of_u1));
    ck_assert(!role_reads(&owner, u1, item_of_u2));
    ck_assert(role_writes(&owner, u1, item_of_u1));
    ck_assert(!role_writes(&owner, u1, item_of_u2));
    ck_assert(!role_reads(&owner, NULL, "{'summary': 'no owner'}"));
    test_user_free(u1);
    role_filters_free(&owner);
}
END_TEST

/* What the server's queryable-field check sees for the exported filters. */
START_TEST(test_exported_filter_fields)
{
    role_filters collaborator = load_role("add-collaborators", "default_rule.json", "collaborator");
    collected_paths read_fields = {"", 0, 0};
    ck_assert_int_eq(filter_visit_fields(collaborator.read, collect_path, &read_fields), 0);
    ck_assert_str_eq(read_fields.text, "owner_id collaborators");
    role_filters_free(&collaborator);

    role_filters admin = load_role("tiered", "default_rule.json", "admin");
    collected_paths apply_fields = {"", 0, 0};
    ck_assert_int_eq(filter_visit_fields(admin.apply_when, collect_path, &apply_fields), 0);
    ck_assert_int_eq(apply_fields.calls, 0);
    role_filters_free(&admin);
}
END_TEST

Suite *unit_suite(void)
{
    Suite *suite = suite_create("filter");

    TCase *operators = tcase_create("operators");
    tcase_add_test(operators, test_equality);
    tcase_add_test(operators, test_not_equal);
    tcase_add_test(operators, test_ordering);
    tcase_add_test(operators, test_in_and_not_in);
    tcase_add_test(operators, test_exists);
    tcase_add_test(operators, test_logical_operators);
    tcase_add_test(operators, test_not);
    tcase_add_test(operators, test_all);
    tcase_add_test(operators, test_constant_expressions);
    suite_add_tcase(suite, operators);

    TCase *values = tcase_create("values");
    tcase_add_test(values, test_null_and_missing);
    tcase_add_test(values, test_arrays);
    tcase_add_test(values, test_dotted_paths);
    tcase_add_test(values, test_extended_json_literals);
    suite_add_tcase(suite, values);

    TCase *expansions = tcase_create("expansions");
    tcase_add_test(expansions, test_user_expansions);
    tcase_add_test(expansions, test_expansions_as_keys);
    tcase_add_test(expansions, test_missing_expansions);
    tcase_add_test(expansions, test_object_id_conversions);
    suite_add_tcase(suite, expansions);

    TCase *refusals = tcase_create("refusals");
    tcase_add_test(refusals, test_unsupported_expansions);
    tcase_add_test(refusals, test_unsupported_operators);
    tcase_add_test(refusals, test_malformed_expressions);
    tcase_add_test(refusals, test_message_names_key_path);
    tcase_add_test(refusals, test_depth_limit);
    tcase_add_test(refusals, test_keys_with_nul_are_refused);
    tcase_add_test(refusals, test_filter_outlives_expression);
    suite_add_tcase(suite, refusals);

    TCase *fields = tcase_create("fields");
    tcase_add_test(fields, test_visit_fields);
    suite_add_tcase(suite, fields);

    TCase *exports = tcase_create("exported apps");
    tcase_add_test(exports, test_every_exported_rule_loads);
    tcase_add_test(exports, test_sync_todo_roles);
    tcase_add_test(exports, test_edge_server_roles);
    tcase_add_test(exports, test_tiered_admin_role);
    tcase_add_test(exports, test_tiered_user_role);
    tcase_add_test(exports, test_restricted_feed_role);
    tcase_add_test(exports, test_add_collaborators_role);
    tcase_add_test(exports, test_read_and_write_own_data_role);
    tcase_add_test(exports, test_exported_filter_fields);
    suite_add_tcase(suite, exports);

    return suite;
}
