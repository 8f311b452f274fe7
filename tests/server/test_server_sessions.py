"""realmfs-server session tokens: every login with a credential gets a
login message with a token, "Bearer <token>" reconnects as the same user
without the credential, and refused tokens (garbage, unknown, expired, a
disabled user's, a disabled provider's) get HTTP 401; tokens survive a
restart and are renewed after half their lifetime.  Run with
/usr/bin/python3; env REALMFS_SERVER, REALMFS_EXPORTS."""

import json
import re
import secrets
import sys
import time

from sync_client import (Client, Server, basic, bearer, check, check_equal, connect_refused,
                         copy_app, new_object, object_id, run_cli, set_sync_config)

DAY_MS = 24 * 60 * 60 * 1000
# sync-todo's Item role: everyone reads, only the owner writes.
ITEM = {"summary": "buy milk", "isComplete": False}


def max_offline_days(days):
    """An edit for copy_app: the app's client_max_offline_days, which is
    the lifetime of its session tokens."""
    return lambda directory: set_sync_config(directory, client_max_offline_days=days)


def debug_server(**app_options):
    return Server(copy_app("sync-todo", **app_options), log_level="debug")


def users_connected(server):
    """The user ids of the connections in the server's debug log, in order."""
    return re.findall(r"connection from \S+ as user ([0-9a-f]{24})", server.log_text())


async def log_in(server, authorization):
    """Connect with a credential; returns the login message."""
    client = await Client.connect(server, authorization)
    await client.ping()
    check_equal(len(client.logins), 1, "login messages")
    await client.close()
    return client.logins[0]


async def reconnect(server, token):
    """Connect with a token; returns the login messages received (a
    renewal), after checking the connection works."""
    client = await Client.connect(server, bearer(token))
    await client.ping()
    await client.close()
    return client.logins


def check_login_message(login, user_id, lifetime_ms):
    check_equal(sorted(login), ["expires", "token", "type", "user_id"], "login members")
    check_equal(login["user_id"], user_id, "login.user_id")
    check(re.fullmatch(r"[0-9a-f]{64}", login["token"]), "token form: " + login["token"])
    now = time.time() * 1000
    check(now < login["expires"] <= now + lifetime_ms + 1000,
          "expires %d is not about %d ms from now" % (login["expires"], lifetime_ms))


async def password_login_returns_a_token():
    server = debug_server(enabled=("local-userpass",))
    user_id = server.add_user("alice@example.com", "right password")
    # The login message is the connection's first frame.
    client = await Client.connect(server, basic("alice@example.com", "right password"))
    first = json.loads(await client.connection.recv())
    await client.close()
    check_equal(first["type"], "login", "first frame")
    check_login_message(first, user_id, 30 * DAY_MS)

    login = await log_in(server, basic("alice@example.com", "right password"))
    check(login["token"] != first["token"], "every login gets its own token")
    check_equal(await reconnect(server, login["token"]), [], "login messages on a token")
    check_equal(await reconnect(server, first["token"]), [], "login messages on a token")
    check_equal(users_connected(server), [user_id] * 4, "users of the connections")
    log = server.log_text()
    check(login["token"] not in log and first["token"] not in log, "no token in the log")


async def api_key_login_returns_a_token():
    server = debug_server(enabled=("api-key",))
    key = server.add_api_key("laptop")
    login = await log_in(server, bearer(key))
    await reconnect(server, login["token"])
    check_equal(users_connected(server), [login["user_id"]] * 2, "users of the connections")


async def anonymous_token_keeps_the_user():
    server = debug_server(enabled=("anon-user",))
    login = await log_in(server, "Anonymous")
    user_id = login["user_id"]
    for _ in range(3):
        await reconnect(server, login["token"])
    # A write only the owner may make is accepted on a token connection.
    client = await Client.connect(server, bearer(login["token"]))
    await client.bind(1)
    await client.query(1, 1, {"Item": [{"name": "all", "query": "TRUEPREDICATE"}]})
    item = dict(ITEM, owner_id=user_id)
    await client.upload(1, [client.changeset(1, new_object("Item", object_id(1), item))])
    await client.sync(1, 1)
    await client.close()
    check(not any(m["type"] == "error" for m in client.received), str(client.received))
    check_equal(len(server.export("Item")), 1, "Items on the server")
    check_equal(users_connected(server), [user_id] * 5, "users of the connections")
    # Another anonymous login is another user.
    check(user_id != (await log_in(server, "Anonymous"))["user_id"], "a new anonymous user")


async def refused_tokens_get_401():
    server = debug_server(enabled=("local-userpass",))
    user_id = server.add_user("bob@example.com", "right password")
    login = await log_in(server, basic("bob@example.com", "right password"))
    refused = {
        "not hex": "Bearer " + "g" * 64,
        "too short": "Bearer " + login["token"][:63],
        "upper case": "Bearer " + login["token"].upper(),
        "unknown": "Bearer " + secrets.token_hex(32),
    }
    for case, authorization in refused.items():
        check_equal(await connect_refused(server, authorization), 401, case)
    run_cli("user", "disable", "--data", server.data, user_id)
    check_equal(await connect_refused(server, bearer(login["token"])), 401, "disabled user")
    check("the user is disabled" in server.log_text(), "the reason is logged")
    run_cli("user", "enable", "--data", server.data, user_id)
    await reconnect(server, login["token"])
    check("unknown session token" in server.log_text(), "the reason is logged")


async def tokens_survive_a_restart():
    server = debug_server(enabled=("anon-user", "local-userpass"))
    user_id = server.add_user("carol@example.com", "right password")
    password_login = await log_in(server, basic("carol@example.com", "right password"))
    anonymous_login = await log_in(server, "Anonymous")
    server.restart()
    await reconnect(server, password_login["token"])
    await reconnect(server, anonymous_login["token"])
    check_equal(users_connected(server),
                [user_id, anonymous_login["user_id"], user_id, anonymous_login["user_id"]],
                "users of the connections")


async def tokens_of_a_disabled_provider_are_refused():
    server = debug_server(enabled=("anon-user",))
    login = await log_in(server, "Anonymous")
    server.app = copy_app("sync-todo", enabled=("local-userpass",))
    server.restart()
    check_equal(await connect_refused(server, bearer(login["token"])), 401, "disabled provider")
    check("the anon-user provider is not enabled" in server.log_text(), "the reason is logged")


async def tokens_expire_and_are_renewed():
    lifetime_ms = 3000
    server = debug_server(enabled=("anon-user",),
                          edit=max_offline_days(lifetime_ms / DAY_MS))
    login = await log_in(server, "Anonymous")
    check_login_message(login, login["user_id"], lifetime_ms)
    check_equal(await reconnect(server, login["token"]), [], "a young token is kept")
    # Past half its lifetime a token is renewed; the old one stays valid
    # until it expires.
    time.sleep(max(0, (login["expires"] - lifetime_ms / 2) / 1000 - time.time()) + 0.2)
    renewals = await reconnect(server, login["token"])
    check_equal(len(renewals), 1, "renewals")
    renewed = renewals[0]
    check_login_message(renewed, login["user_id"], lifetime_ms)
    check(renewed["token"] != login["token"] and renewed["expires"] > login["expires"],
          "a new token that lasts longer")
    time.sleep(max(0, login["expires"] / 1000 - time.time()) + 0.2)
    check_equal(await connect_refused(server, bearer(login["token"])), 401, "expired token")
    check("the session token has expired" in server.log_text(), "the reason is logged")
    # The renewed token works; being past half its lifetime by now, it is
    # renewed in turn.
    later = await reconnect(server, renewed["token"])
    check_equal(set(users_connected(server)), {login["user_id"]}, "users of the connections")
    # Expired tokens are purged when the server starts (and every hour).
    last_expiry = max(token["expires"] for token in [renewed] + later)
    time.sleep(max(0, last_expiry / 1000 - time.time()) + 0.2)
    server.restart()
    check("purged %d expired session tokens" % (2 + len(later)) in server.log_text(),
          server.log_text())


if __name__ == "__main__":
    from sync_client import run_tests
    sys.exit(run_tests([
        password_login_returns_a_token,
        api_key_login_returns_a_token,
        anonymous_token_keeps_the_user,
        refused_tokens_get_401,
        tokens_survive_a_restart,
        tokens_of_a_disabled_provider_are_refused,
        tokens_expire_and_are_renewed,
    ]))
