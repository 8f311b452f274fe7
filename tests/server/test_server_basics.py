"""realmfs-server basics: the command line, starting every exported app,
/health and /metrics, users and API keys, refused upgrades, TLS and
SIGTERM.  Run with /usr/bin/python3; env REALMFS_SERVER, REALMFS_EXPORTS."""

import asyncio
import json
import re
import signal
import sys
import time

from sync_client import (APPS, Client, Server, basic, bearer, check, check_equal,
                         connect_refused, copy_app, make_certificate, new_object, object_id,
                         open_item_rules, run_cli, set_sync_config, temporary_directory)

ITEM = {"owner_id": "alice", "summary": "buy milk", "isComplete": False}

# One server for the tests that need no special setup: api-key and
# local-userpass enabled, anon-user disabled.
shared = None


def shared_server():
    global shared
    if shared is None:
        shared = Server(copy_app("sync-todo", enabled=("local-userpass", "api-key"),
                                 edit=open_item_rules))
    return shared


def help_and_version():
    help_text = run_cli("--help").stdout
    check_equal(help_text.splitlines()[0], "usage: realmfs-server <command> [options]",
                "first line of --help")
    for command in ("serve", "user add", "user list", "user disable", "user enable",
                    "apikey add", "apikey list", "apikey revoke", "import", "export"):
        check(re.search(r"^  %s " % command, help_text, re.M), "help lacks " + command)
    version = run_cli("--version").stdout.strip()
    check(re.fullmatch(r"realmfs-server \d+\.\d+\.\d+", version), version)


def usage_errors_exit_2():
    data = temporary_directory("data-")
    cases = [
        ([], "missing command"),
        (["frobnicate"], "unknown command frobnicate"),
        (["serve", "--data", data], "serve needs --app APPDIR"),
        (["serve", "--app", "x", "--data", data, "--listen", "nowhere"], "expected HOST:PORT"),
        (["serve", "--app", "x", "--data", data, "--listen", "127.0.0.1:99999"], "port"),
        (["serve", "--app", "x", "--data", data, "--log-level", "loud"], "--log-level"),
        (["serve", "--app", "x", "--data", data, "--tls-cert", "c"], "go together"),
        (["serve", "--app", "x", "--data", data, "--bogus"], "unknown option --bogus"),
        (["user", "add", "--data", data, "a@example.com"], "--password-file"),
        (["user", "list"], "needs --data DIR"),
        (["user", "list", "--data", data, "extra"], "unexpected argument extra"),
        (["user", "frob", "--data", data], "unknown user action"),
        (["apikey", "add", "--data", data], "missing argument"),
        (["apikey", "list", "--data", data, "--user", "x"], "does not apply"),
    ]
    for arguments, expected in cases:
        process = run_cli(*arguments, expect=2)
        check(expected in process.stderr,
              "%r: %r does not say %r" % (arguments, process.stderr, expected))


def every_exported_app_starts():
    for name in APPS:
        server = Server(copy_app(name))
        status, content_type, body = server.http_get("/health")
        check_equal(status, 200, name + " /health")
        check_equal(json.loads(body)["status"], "ok", name + " health status")
        check_equal(server.stop(), 0, name + " exit status")


def app_with_sync_config(**changes):
    """A copy of sync-todo whose sync/config.json has changes."""
    return copy_app("sync-todo", edit=lambda directory: set_sync_config(directory, **changes))


def serve_fails(app):
    """The stderr of a serve that must exit 1."""
    return run_cli("serve", "--app", app, "--data", temporary_directory("data-"),
                   "--listen", "127.0.0.1:0", expect=1).stderr


def broken_export_is_refused_naming_the_file():
    stderr = serve_fails(app_with_sync_config(type="partition"))
    check("sync/config.json" in stderr and '"type"' in stderr, stderr)


def disabled_sync_is_refused():
    stderr = serve_fails(app_with_sync_config(state="disabled"))
    check("sync is disabled" in stderr, stderr)


def health_answers_json():
    server = shared_server()
    status, content_type, body = server.http_get("/health")
    check_equal(status, 200, "status")
    check_equal(content_type, "application/json", "content type")
    health = json.loads(body)
    check_equal(sorted(health), ["server_version", "status"], "members")
    check(isinstance(health["server_version"], int), body)
    status, _, _ = server.http_get("/nowhere")
    check_equal(status, 404, "GET /nowhere")


async def metrics_move():
    server = shared_server()
    before = server.metrics()
    for name in ("realmfs_connections", "realmfs_sessions", "realmfs_changesets_integrated_total",
                 "realmfs_objects_sent_total", "realmfs_bootstraps_total",
                 "realmfs_bootstrap_seconds_total", "realmfs_protocol_errors_total",
                 "realmfs_history_changesets", "realmfs_server_version",
                 "process_resident_memory_bytes"):
        check(name in before, "no metric " + name)
    check(before["process_resident_memory_bytes"] > 0, "resident memory")
    key = server.add_api_key("metrics")
    client = await Client.connect(server, bearer(key))
    await client.bind(1)
    check_equal(server.metrics()["realmfs_connections"], before["realmfs_connections"] + 1,
                "connections while connected")
    await client.upload(1, [client.changeset(1, new_object("Item", object_id(1), ITEM))])
    after = server.metrics()
    check_equal(after["realmfs_changesets_integrated_total"],
                before["realmfs_changesets_integrated_total"] + 1, "changesets integrated")
    check_equal(after["realmfs_server_version"], before["realmfs_server_version"] + 1,
                "server version")
    await client.send(b"\x00binary")
    await client.expect_closed(1002)
    await asyncio.sleep(0.2)
    last = server.metrics()
    check_equal(last["realmfs_protocol_errors_total"], before["realmfs_protocol_errors_total"] + 1,
                "protocol errors")
    check_equal(last["realmfs_connections"], before["realmfs_connections"], "connections after")


def user_and_apikey_commands():
    server = shared_server()
    data = server.data
    user_id = server.add_user("Carol@Example.com", "secret one")
    check(re.fullmatch(r"[0-9a-f]{24}", user_id), user_id)
    second = run_cli("user", "add", "--data", data, "dave@example.com", "--password-file", "-",
                     input_text="from stdin\n").stdout.strip()
    duplicate = run_cli("user", "add", "--data", data, "carol@example.com", "--password-file",
                        "-", input_text="x\n", expect=1)
    check("carol@example.com" in duplicate.stderr.lower() or "exist" in duplicate.stderr,
          duplicate.stderr)
    users = {line.split("\t")[0]: line.split("\t")
             for line in run_cli("user", "list", "--data", data).stdout.splitlines()}
    check_equal(users[user_id][1:4], ["carol@example.com", "normal", "enabled"], "listed user")
    check(second in users, "stdin user listed")
    run_cli("user", "disable", "--data", data, user_id)
    users = run_cli("user", "list", "--data", data).stdout
    check("%s\tcarol@example.com\tnormal\tdisabled" % user_id in users, users)
    run_cli("user", "enable", "--data", data, user_id)
    run_cli("user", "disable", "--data", data, "0" * 24, expect=1)

    key = server.add_api_key("laptop", user=user_id)
    check(re.fullmatch(r"[0-9a-f]{24}\.[0-9a-f]{64}", key), "key format")
    key_id = key.split(".")[0]
    server_key = server.add_api_key("robot")
    keys = {line.split("\t")[0]: line.split("\t")
            for line in run_cli("apikey", "list", "--data", data).stdout.splitlines()}
    check_equal(keys[key_id][1:4], ["laptop", user_id, "active"], "listed key")
    robot = keys[server_key.split(".")[0]]
    users = run_cli("user", "list", "--data", data).stdout
    check("%s\t-\tserver\tenabled" % robot[2] in users, "the key's server user is listed")
    check(key.split(".")[1] not in run_cli("apikey", "list", "--data", data).stdout,
          "the secret is never listed")
    run_cli("apikey", "revoke", "--data", data, key_id)
    keys = run_cli("apikey", "list", "--data", data).stdout
    check("%s\tlaptop\t%s\trevoked" % (key_id, user_id) in keys, keys)


async def credentials_are_checked_in_the_upgrade():
    server = shared_server()
    user_id = server.add_user("erin@example.com", "right password")
    key = server.add_api_key("erin", user=user_id)
    client = await Client.connect(server, basic("erin@example.com", "right password"))
    await client.ping()
    await client.close()
    client = await Client.connect(server, bearer(key))
    await client.ping()
    await client.close()

    refused = {
        "wrong password": basic("erin@example.com", "wrong password"),
        "unknown user": basic("nobody@example.com", "right password"),
        "no header": None,
        "malformed header": "Digest abc",
        "unknown key": bearer("0" * 24 + "." + "1" * 64),
        "disabled provider": "Anonymous",
    }
    for case, authorization in refused.items():
        check_equal(await connect_refused(server, authorization), 401, case)

    run_cli("user", "disable", "--data", server.data, user_id)
    check_equal(await connect_refused(server, basic("erin@example.com", "right password")), 401,
                "disabled user")
    check_equal(await connect_refused(server, bearer(key)), 401, "disabled user's key")
    run_cli("user", "enable", "--data", server.data, user_id)
    run_cli("apikey", "revoke", "--data", server.data, key.split(".")[0])
    check_equal(await connect_refused(server, bearer(key)), 401, "revoked key")
    log = server.log_text()
    check("refused an upgrade" in log, "refusals are logged")
    check("right password" not in log and key.split(".")[1] not in log, "no secret in the log")


async def wrong_endpoint_or_version_is_refused():
    server = shared_server()
    key = server.add_api_key("paths")
    check_equal(await connect_refused(
        server, bearer(key), path="/api/client/v2.0/app/another-app/realm-sync"), 404,
        "another app id")
    check_equal(await connect_refused(server, bearer(key), path="/elsewhere"), 404,
                "another path")
    check_equal(await connect_refused(server, bearer(key), subprotocols=("realmfs.sync.v0",)),
                400, "unknown version")
    check_equal(await connect_refused(server, bearer(key), subprotocols=()), 400,
                "no version")
    client = await Client.connect(server, bearer(key),
                                  subprotocols=("realmfs.sync.v0", "realmfs.sync.v1"))
    check_equal(client.connection.subprotocol, "realmfs.sync.v1", "chosen version")
    await client.close()


async def anonymous_login_makes_a_new_user_each_time():
    server = Server(copy_app("sync-todo", enabled=("anon-user",), edit=open_item_rules))
    first = await Client.connect(server, "Anonymous")
    second = await Client.connect(server, "Anonymous")
    await first.ping()
    await second.ping()
    await first.close()
    await second.close()
    users = run_cli("user", "list", "--data", server.data).stdout.splitlines()
    check_equal(len(users), 2, "anonymous users recorded")
    check_equal(await connect_refused(server, basic("a@example.com", "x")), 401,
                "disabled local-userpass")
    check_equal(server.stop(), 0, "exit status")


async def tls_with_a_self_signed_certificate():
    server = Server(copy_app("sync-todo", enabled=("api-key",), edit=open_item_rules),
                    tls=make_certificate())
    check(server.websocket_url.startswith("wss://"), server.websocket_url)
    status, _, body = server.http_get("/health")
    check_equal(status, 200, "GET /health over https")
    client = await Client.connect(server, bearer(server.add_api_key("tls")))
    await client.bind(1)
    await client.ping()
    await client.close()
    check_equal(server.stop(), 0, "exit status")


async def sigterm_sends_going_away_and_exits_0():
    server = Server(copy_app("sync-todo", enabled=("api-key",), edit=open_item_rules))
    key = server.add_api_key("term")
    clients = [await Client.connect(server, bearer(key)) for _ in range(3)]
    await clients[0].bind(1)
    await clients[1].ping()
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    for client in clients:
        messages = await client.expect_closed(1001)
        errors = [m for m in messages if m["type"] == "error"]
        check_equal([(m["code"], m["session"], m["action"]) for m in errors],
                    [(106, 0, "reconnect")], "going away")
    check_equal(server.wait(), 0, "exit status")
    check(time.monotonic() - started < 5, "exited within 5 seconds")
    check("shutting down" in server.log_text(), "the shutdown is logged")


if __name__ == "__main__":
    from sync_client import run_tests
    sys.exit(run_tests([
        help_and_version,
        usage_errors_exit_2,
        every_exported_app_starts,
        broken_export_is_refused_naming_the_file,
        disabled_sync_is_refused,
        health_answers_json,
        metrics_move,
        user_and_apikey_commands,
        credentials_are_checked_in_the_upgrade,
        wrong_endpoint_or_version_is_refused,
        anonymous_login_makes_a_new_user_each_time,
        tls_with_a_self_signed_certificate,
        sigterm_sends_going_away_and_exits_0,
    ]))
