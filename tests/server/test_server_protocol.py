"""Hostile input: each kind of malformed frame closes only the connection
that sent it, with the code docs/protocol.md gives, while a bystander
connection keeps working.  Run with /usr/bin/python3; env REALMFS_SERVER,
REALMFS_EXPORTS."""

import sys

from sync_client import (PROTOCOL_MAX_MESSAGE_BYTES, Client, Server, bearer, check_equal,
                         copy_app, create, object_id, open_item_rules, run_tests)

server = None
key = None
bystander = None


async def setup():
    global server, key, bystander
    if server is None:
        server = Server(copy_app("sync-todo", enabled=("api-key",), edit=open_item_rules))
        key = server.add_api_key("protocol")
    bystander = await Client.connect(server, bearer(key))
    await bystander.bind(1)


async def refused(frame, code, close_code, bind=False, unfinished=False):
    """Send frame on a new connection (unfinished: a list of fragments of a
    message that never ends): it gets error code (session 0) and close
    close_code; the bystander still gets its pongs."""
    await setup()
    victim = await Client.connect(server, bearer(key))
    if bind:
        await victim.bind(1)
    if unfinished:
        await victim.send_unfinished(frame)
    else:
        await victim.send(frame)
    messages = await victim.expect_closed(close_code)
    errors = [(m["code"], m["session"]) for m in messages if m["type"] == "error"]
    check_equal(errors, [(code, 0)], "errors before the close")
    await bystander.ping()
    await bystander.close()


async def invalid_json():
    await refused('{"type": "ping", "timestamp": 1', 100, 1002)


async def binary_frame():
    await refused(b'{"type": "ping", "timestamp": 1}', 100, 1002)


async def unknown_message_type():
    await refused({"type": "frobnicate", "session": 1}, 102, 1002)


async def message_only_the_server_sends():
    await refused({"type": "pong", "timestamp": 1}, 103, 1002)


async def frame_over_16_mib():
    await refused("x" * (PROTOCOL_MAX_MESSAGE_BYTES + 1), 101, 1009)


async def fragmented_message_over_16_mib():
    # The limit is passed by the very last byte sent: bytes the server has
    # not read when it closes would make its kernel reset the connection,
    # which can drop the close frame before the client reads it.
    chunk = "y" * (1024 * 1024)
    fragments = [chunk] * (PROTOCOL_MAX_MESSAGE_BYTES // len(chunk)) + ["y"]
    await refused(fragments, 101, 1009, unfinished=True)


async def nesting_too_deep():
    await refused('{"type": "ping", "timestamp": 1, "x": ' + "[" * 200 + "]" * 200 + "}",
                  100, 1002)


async def message_for_an_unbound_session():
    await refused({"type": "mark", "session": 7, "request": 1}, 103, 1002)


async def fragments_are_reassembled():
    await setup()
    client = await Client.connect(server, bearer(key))
    await client.send(iter(['{"type": "ping", ', '"timestamp": ', '42}']))
    pong = await client.receive()
    check_equal((pong["type"], pong["timestamp"]), ("pong", 42), "answer to a fragmented ping")
    await client.close()
    await bystander.close()


async def session_refuses(changeset_for):
    """Upload changeset_for(file identity) on a bound session: error 202 on
    that session, which ends; the connection and the bystander go on."""
    await setup()
    client = await Client.connect(server, bearer(key))
    identity = await client.bind(1)
    await client.send({"type": "upload", "session": 1, "last_integrated_server_version": 0,
                       "changesets": [changeset_for(identity)]})
    error = await client.receive_until(lambda m: m["type"] == "error")
    check_equal((error["code"], error["session"]), (202, 1), "error")
    await client.ping()
    await client.send({"type": "unbind", "session": 1})
    await client.receive_until(lambda m: m["type"] == "unbound")
    await bystander.ping()
    await client.close()
    await bystander.close()


async def bad_changeset_ends_only_the_session():
    await session_refuses(lambda identity: {
        "origin": identity, "client_version": 1, "timestamp": 1,
        "instructions": [{"op": "move", "collection": "Item", "id": object_id(1)}]})


async def changeset_of_another_origin_ends_only_the_session():
    await session_refuses(lambda identity: {
        "origin": identity + 1000, "client_version": 1, "timestamp": 1,
        "instructions": [create("Item", object_id(2))]})


if __name__ == "__main__":
    sys.exit(run_tests([
        invalid_json,
        binary_frame,
        unknown_message_type,
        message_only_the_server_sends,
        frame_over_16_mib,
        fragmented_message_over_16_mib,
        nesting_too_deep,
        message_for_an_unbound_session,
        fragments_are_reassembled,
        bad_changeset_ends_only_the_session,
        changeset_of_another_origin_ends_only_the_session,
    ]))
