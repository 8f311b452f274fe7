"""Sync end to end: several clients with overlapping subscriptions,
concurrent conflicting writes, reconnect and re-upload, catch-up after an
absence, a refused query, and kill -9 right after an acknowledgement.
Every client's mirror (built only from the downloads it received) must
equal what `realmfs-server export` says the server holds for its view.
Run with /usr/bin/python3; env REALMFS_SERVER, REALMFS_EXPORTS."""

import json
import sys
import time

from sync_client import (Client, Server, bearer, check, check_equal, copy_app, delete,
                         new_object, object_id, open_item_rules, run_tests, set_field,
                         set_sync_config)

COLLECTION = "Item"
server = None
key = None
request = 0


def open_app_outside_development_mode(directory):
    """Everyone writes every Item, and queries may read only the fields the
    app makes queryable (Development Mode would make any field so)."""
    open_item_rules(directory)
    set_sync_config(directory, development_mode_enabled=False)


def shared_server():
    global server, key
    if server is None:
        server = Server(copy_app("sync-todo", enabled=("api-key",),
                                 edit=open_app_outside_development_mode))
        key = server.add_api_key("sync")
    return server


def item(owner, summary, done=False):
    return {"owner_id": owner, "summary": summary, "isComplete": done}


def owners_query(*owners):
    return {COLLECTION: [{"name": "owners", "query": "owner_id IN {%s}" % ", ".join(
        json.dumps(owner) for owner in owners)}]}


def next_request():
    global request
    request += 1
    return request


async def new_client(owners):
    """A connected client with a new file bound in session 1, subscribed to
    the items of owners, its bootstrap received."""
    client = await Client.connect(shared_server(), bearer(key))
    await client.bind(1)
    answer = await client.query(1, 1, owners_query(*owners))
    check_equal(answer["type"], "download", "answer to the query")
    client.owners = owners
    return client


async def reconnect(client, acknowledged=None):
    """A new connection for client's file and mirror, bound with its
    progress (and acknowledged as its last acknowledgement, by default the
    last it received)."""
    back = await Client.connect(server, bearer(key))
    back.mirror, back.owners = client.mirror, client.owners
    if acknowledged is None:
        acknowledged = client.acknowledged.get(1, 0)
    await back.bind(1, client.file_identity[1], client.server_version[1], acknowledged)
    return back


async def check_mirrors(*clients):
    """After a mark on each, every mirror equals the server's documents of
    its view."""
    exported = server.export(COLLECTION)
    for client in clients:
        await client.sync(1, next_request())
        expected = {key: document for key, document in exported.items()
                    if document.get("owner_id") in client.owners}
        check_equal(client.documents(COLLECTION), expected,
                    "mirror of a client subscribed to %s" % (client.owners,))


async def overlapping_subscriptions():
    alice = await new_client(("alice",))
    bob = await new_client(("bob",))
    both = await new_client(("alice", "bob"))
    await alice.upload(1, [alice.changeset(1, new_object(COLLECTION, object_id(101),
                                                         item("alice", "alice's")))])
    await bob.upload(1, [bob.changeset(1, new_object(COLLECTION, object_id(102),
                                                     item("bob", "bob's")))])
    await check_mirrors(alice, bob, both)
    check_equal(len(both.documents(COLLECTION)) >= 2, True, "the wider view sees both")
    # An object leaves alice's view and enters bob's.
    await alice.upload(1, [alice.changeset(1, [set_field(COLLECTION, object_id(101),
                                                         "owner_id", "bob")])])
    await check_mirrors(alice, bob, both)
    check(object_id(101)["$oid"] not in json.dumps(alice.documents(COLLECTION)),
          "the object left alice's view")
    for client in (alice, bob, both):
        await client.close()


async def concurrent_conflicting_writes():
    first = await new_client(("shared",))
    second = await new_client(("shared",))
    base = int(time.time() * 1000)
    identifier = object_id(201)
    await first.upload(1, [first.changeset(1, new_object(COLLECTION, identifier,
                                                         item("shared", "original")), base)])
    await check_mirrors(first, second)

    # The same field: the later timestamp wins, whatever arrives first.
    late = first.changeset(1, [set_field(COLLECTION, identifier, "summary", "later")], base + 200)
    early = second.changeset(1, [set_field(COLLECTION, identifier, "summary", "earlier")],
                             base + 100)
    await first.upload(1, [late], wait=False)
    await second.upload(1, [early], wait=False)
    await check_mirrors(first, second)
    check_equal(first.mirror[(COLLECTION, json.dumps(identifier))]["summary"], "later",
                "the later write")

    # Different fields: both survive.
    await first.upload(1, [first.changeset(1, [set_field(COLLECTION, identifier, "summary",
                                                         "both")], base + 300)], wait=False)
    await second.upload(1, [second.changeset(1, [set_field(COLLECTION, identifier,
                                                           "isComplete", True)], base + 300)],
                        wait=False)
    await check_mirrors(first, second)
    document = first.mirror[(COLLECTION, json.dumps(identifier))]
    check_equal((document["summary"], document["isComplete"]), ("both", True), "both fields")

    # A delete wins over a concurrent update, even a later one.
    await first.upload(1, [first.changeset(1, [delete(COLLECTION, identifier)], base + 400)],
                       wait=False)
    await second.upload(1, [second.changeset(1, [set_field(COLLECTION, identifier, "summary",
                                                           "too late")], base + 500)],
                        wait=False)
    await check_mirrors(first, second)
    check((COLLECTION, json.dumps(identifier)) not in first.mirror, "the object is deleted")
    await first.close()
    await second.close()


async def reconnect_and_reupload_is_skipped():
    client = await new_client(("carol",))
    changesets = [client.changeset(1, new_object(COLLECTION, object_id(301 + n),
                                                 item("carol", "item %d" % n)))
                  for n in range(2)]
    await client.upload(1, changesets)
    await client.close()
    before = server.metrics()

    again = await reconnect(client, acknowledged=0)
    await again.upload(1, changesets)
    check_equal(again.acknowledged[1], 2, "acknowledged client version")
    after = server.metrics()
    check_equal(after["realmfs_server_version"], before["realmfs_server_version"],
                "server version after a re-upload")
    check_equal(after["realmfs_changesets_skipped_total"],
                before["realmfs_changesets_skipped_total"] + 2, "skipped changesets")
    await check_mirrors(again)
    await again.close()


async def bind_with_old_progress_catches_up():
    away = await new_client(("dave",))
    writer = await new_client(("dave",))
    for n in range(3):
        await writer.upload(1, [writer.changeset(1, new_object(COLLECTION, object_id(401 + n),
                                                               item("dave", "v1")))])
    await check_mirrors(away, writer)
    progress = away.server_version[1]
    await away.close()

    await writer.upload(1, [
        writer.changeset(1, [set_field(COLLECTION, object_id(401), "summary", "v2")]),
        writer.changeset(1, [delete(COLLECTION, object_id(402))]),
        writer.changeset(1, [set_field(COLLECTION, object_id(403), "owner_id", "erin")]),
        writer.changeset(1, new_object(COLLECTION, object_id(404), item("dave", "new"))),
    ])
    back = await reconnect(away)
    await check_mirrors(back, writer)
    check(back.server_version[1] > progress, "progress moved")
    await back.close()
    await writer.close()


async def query_on_a_non_queryable_field_keeps_the_old_set():
    reader = await new_client(("frank",))
    answer = await reader.query(1, 2, {COLLECTION: [{"name": "bad",
                                                     "query": "summary == \"x\""}]})
    check_equal((answer["type"], answer["code"], answer["query_version"]),
                ("query_error", 203, 2), "answer to the bad query")
    check("summary" in answer["message"], answer["message"])
    writer = await new_client(("frank",))
    await writer.upload(1, [writer.changeset(1, new_object(COLLECTION, object_id(501),
                                                           item("frank", "still seen")))])
    await check_mirrors(reader, writer)
    check((COLLECTION, json.dumps(object_id(501))) in reader.mirror,
          "the old subscription still applies")
    await reader.close()
    await writer.close()


async def kill_9_after_an_acknowledgement_loses_nothing():
    client = await new_client(("grace",))
    await client.upload(1, [client.changeset(1, new_object(COLLECTION, object_id(601),
                                                           item("grace", "durable")))])
    server.kill()
    server.restart()
    exported = server.export(COLLECTION)
    check_equal(exported[json.dumps(object_id(601))]["summary"], "durable",
                "the acknowledged object after kill -9")
    back = await reconnect(client)
    await check_mirrors(back)
    await back.close()


if __name__ == "__main__":
    sys.exit(run_tests([
        overlapping_subscriptions,
        concurrent_conflicting_writes,
        reconnect_and_reupload_is_skipped,
        bind_with_old_progress_catches_up,
        query_on_a_non_queryable_field_keeps_the_old_set,
        kill_9_after_an_acknowledgement_loses_nothing,
    ]))
