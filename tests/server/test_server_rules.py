"""Roles and rules end to end: for each exported app that has rules,
users with and without each role, through real servers and the
protocol-level client.  A forged client that writes what its role forbids
gets compensating writes (before the acknowledgement of that upload, and
again at its next bind if it may have missed them) and changes nothing
others see; no client ever receives an object, or a field,
its role may not read; custom user data changed by `realmfs-server import`
while clients are connected moves objects in and out of their views.
Run with /usr/bin/python3; env REALMFS_SERVER, REALMFS_EXPORTS."""

import json
import os
import sys
import time

from sync_client import (Client, Server, basic, check, check_equal, copy_app, id_key,
                         new_object, object_id, run_cli, run_tests, set_field,
                         temporary_directory, write_item_roles)

PASSWORD = "a long enough secret"
ALL = "TRUEPREDICATE"
request = 0


def next_request():
    global request
    request += 1
    return request


def subscriptions(query=ALL, collection="Item"):
    return {collection: [{"name": "s", "query": query}]}


def key(number, collection="Item"):
    return (collection, id_key(object_id(number)))


async def connect(server, email, query=ALL, collection="Item"):
    """A client of the user email with a new file in session 1, subscribed
    to query, its bootstrap received."""
    client = await Client.connect(server, basic(email, PASSWORD))
    await client.bind(1)
    answer = await client.query(1, 1, subscriptions(query, collection))
    check_equal(answer["type"], "download", "answer to the query")
    return client


def start(app, *names, edit=None):
    """A server of a copy of app (edited by edit) with the local-userpass
    users name@example.com; returns it and {name: user id}."""
    server = Server(copy_app(app, enabled=("local-userpass",), edit=edit))
    return server, {name: server.add_user(name + "@example.com", PASSWORD) for name in names}


async def connect_all(server, names, query=ALL):
    """A client (see connect) of each user name@example.com, in order."""
    return [await connect(server, name + "@example.com", query) for name in names]


async def close_all(*clients):
    for client in clients:
        await client.close()


def import_documents(server, collection, documents):
    """`realmfs-server import` of documents (plain JSON) into collection,
    into the server's data directory while it runs."""
    path = os.path.join(temporary_directory("import-"), "documents.json")
    with open(path, "w") as out:
        for document in documents:
            out.write(json.dumps(document) + "\n")
    run_cli("import", "--app", server.app, "--data", server.data, collection, path)


def compensating_writes(client):
    return [message["compensating_write"] for message in client.received
            if message["type"] == "error" and message["code"] == 205]


def check_errors_before_acknowledgement(client, client_version):
    """Every compensating write of client_version came before the download
    that acknowledged it."""
    acknowledged_at = next(index for index, message in enumerate(client.received)
                           if message["type"] == "download"
                           and message["last_integrated_client_version"] >= client_version)
    for index, message in enumerate(client.received):
        if message["type"] == "error" and \
                message.get("compensating_write", {}).get("client_version") == client_version:
            check(index < acknowledged_at, "a compensating write after its acknowledgement")


async def settle(*clients):
    for client in clients:
        await client.sync(1, next_request())


async def wait_for(client, condition, what, timeout=10):
    """Receive until condition() holds (foreign writes are picked up by
    the server within about a second)."""
    deadline = time.monotonic() + timeout
    while not condition():
        check(time.monotonic() < deadline, "timed out waiting for " + what)
        try:
            await client.receive(0.2)
        except TimeoutError:
            pass


def received_text(client):
    return json.dumps(client.received)


# ---- sync-todo: everyone reads every Item, writes their own ---------------


async def alice_writes_bob_reads(app):
    """A server of app (whose Item role lets everyone read and only the
    owner write) where alice made Item 1, which bob's client received
    read-only: the server, the user ids and the two clients."""
    server, users = start(app, "alice", "bob")
    alice, bob = await connect_all(server, ("alice", "bob"))
    await alice.upload(1, [alice.changeset(1, new_object("Item", object_id(1), {
        "owner_id": users["alice"], "summary": "alice's", "isComplete": False}))])
    await settle(bob)
    check(key(1) in bob.mirror, "bob reads alice's item")
    check(key(1) in bob.read_only, "alice's item is read-only for bob")
    check(key(1) not in alice.read_only, "alice may write her own item")
    return server, users, alice, bob


async def sync_todo_forged_writes_are_compensated():
    server, users, alice, bob = await alice_writes_bob_reads("sync-todo")

    # An update of alice's item, a forged create in her name, a delete.
    forged = [bob.changeset(1, [set_field("Item", object_id(1), "summary", "hacked")]),
              bob.changeset(1, new_object("Item", object_id(2), {
                  "owner_id": users["alice"], "summary": "forged", "isComplete": False})),
              bob.changeset(1, [{"op": "delete", "collection": "Item", "id": object_id(1)}])]
    await bob.upload(1, forged)
    writes = compensating_writes(bob)
    check_equal(len(writes), 3, "compensating writes")
    check_equal(writes[0]["collection"], "Item", "collection")
    check_equal(writes[0]["id"], object_id(1), "id")
    check_equal(writes[0]["server_document"]["summary"], "alice's", "server document")
    check_equal(writes[0]["client_version"], forged[0]["client_version"], "client version")
    check("may not write" in writes[0]["reason"], writes[0]["reason"])
    check_equal(writes[1]["server_document"], None, "no server document for a forged create")
    for changeset in forged:
        check_errors_before_acknowledgement(bob, changeset["client_version"])

    # Alice never sees any of it; the server has what it had.
    await settle(alice)
    check("hacked" not in received_text(alice) and "forged" not in received_text(alice),
          "alice received part of a refused write")
    exported = server.export("Item")
    check_equal(sorted(exported), [id_key(object_id(1))], "the server's items")
    check_equal(exported[id_key(object_id(1))]["summary"], "alice's", "alice's summary")
    check_equal(alice.documents("Item"), exported, "alice's mirror")
    check_equal(bob.documents("Item"), exported, "bob's mirror")
    await close_all(alice, bob)


async def compensating_writes_survive_a_dropped_connection():
    """A client that drops the connection right after uploading a refused
    write, before reading anything, gets the compensating write when it
    binds again, before the catch-up that acknowledges the upload; once
    its progress shows it has seen that acknowledgement, never again."""
    server, users, alice, bob = await alice_writes_bob_reads("sync-todo")
    file_identity = bob.file_identity[1]
    progress = bob.server_version[1]
    forged = bob.changeset(1, [set_field("Item", object_id(1), "summary", "hacked")])
    await bob.upload(1, [forged], wait=False)
    bob.connection.transport.abort()

    again = await Client.connect(server, basic("bob@example.com", PASSWORD))
    await again.bind(1, file_identity, progress, forged["client_version"] - 1)
    await again.receive_until(lambda message: message["type"] == "download" and
                              message["last_integrated_client_version"] >=
                              forged["client_version"])
    writes = compensating_writes(again)
    check_equal(len(writes), 1, "compensating writes sent again")
    check_equal(writes[0]["id"], object_id(1), "id")
    check_equal(writes[0]["client_version"], forged["client_version"], "client version")
    check_equal(writes[0]["server_document"]["summary"], "alice's", "server document")
    check("may not write" in writes[0]["reason"], writes[0]["reason"])
    check_errors_before_acknowledgement(again, forged["client_version"])
    await again.sync(1, next_request())
    progress = again.server_version[1]
    await again.close()

    # The acknowledgement reached the client: the notice is gone for good.
    third = await Client.connect(server, basic("bob@example.com", PASSWORD))
    await third.bind(1, file_identity, progress, forged["client_version"])
    await third.sync(1, next_request())
    check_equal(compensating_writes(third), [], "compensating writes after they were seen")
    check_equal(server.export("Item")[id_key(object_id(1))]["summary"], "alice's",
                "alice's summary")
    await close_all(alice, third)


# ---- read-and-write-own-data: nobody reads another's objects -------------


async def own_data_is_never_sent_to_others():
    server, users = start("read-and-write-own-data", "alice", "bob", "carol")
    alice, bob = await connect_all(server, ("alice", "bob"))
    for number in (1, 2):
        await alice.upload(1, [alice.changeset(1, new_object("Item", object_id(number), {
            "owner_id": users["alice"], "name": "alice %d" % number}))])
    await bob.upload(1, [bob.changeset(1, new_object("Item", object_id(3), {
        "owner_id": users["bob"], "name": "bob's"}))])
    await settle(alice, bob)
    check_equal(sorted(alice.documents("Item")), sorted(id_key(object_id(n)) for n in (1, 2)),
                "alice's items (fan-out)")
    check_equal(sorted(bob.documents("Item")), [id_key(object_id(3))], "bob's items")
    check(users["alice"] not in received_text(bob), "bob received something of alice's")

    # A bootstrap shows only one's own.
    carol = await connect(server, "carol@example.com")
    check_equal(carol.documents("Item"), {}, "carol's bootstrap")
    late_bob = await connect(server, "bob@example.com")
    check_equal(sorted(late_bob.documents("Item")), [id_key(object_id(3))], "bob's bootstrap")

    # Taking an object over is a write outside one's permissions.
    await carol.upload(1, [carol.changeset(1, [set_field("Item", object_id(3), "owner_id",
                                                         users["carol"])])])
    check_equal(len(compensating_writes(carol)), 1, "carol's compensating writes")
    check_equal(compensating_writes(carol)[0]["server_document"], None,
                "carol may not read bob's item")
    check_equal(server.export("Item")[id_key(object_id(3))]["owner_id"], users["bob"],
                "bob's item stays his")
    await close_all(alice, bob, carol, late_bob)


# ---- restricted-feed: read what custom_data.subscribedTo names -----------


async def restricted_feed_follows_custom_user_data():
    server, users = start("restricted-feed", "author", "reader")
    import_documents(server, "User", [{"_id": users["reader"], "subscribedTo": [users["author"]]}])
    author, reader = await connect_all(server, ("author", "reader"))
    for number in (1, 2):
        await author.upload(1, [author.changeset(1, new_object("Item", object_id(number), {
            "owner_id": users["author"], "name": "post %d" % number, "team": "t"}))])
    await settle(reader)
    check_equal(len(reader.documents("Item")), 2, "the reader's feed")
    check(key(1) in reader.read_only, "the author's posts are read-only for the reader")

    # The reader unsubscribes from the author (custom data changed by
    # import while connected): the posts leave its view.
    import_documents(server, "User", [{"_id": users["reader"], "subscribedTo": []}])
    await wait_for(reader, lambda: not reader.documents("Item"), "the posts to leave")
    import_documents(server, "User", [{"_id": users["reader"], "subscribedTo": [users["author"]]}])
    await wait_for(reader, lambda: len(reader.documents("Item")) == 2, "the posts to return")
    await close_all(author, reader)


# ---- tiered: team members read their team's items ------------------------


def tiered_item(number, owner, team):
    return {"_id": object_id(number), "owner_id": owner, "name": "item %d" % number,
            "team": team}


async def tiered_roles_follow_custom_user_data():
    server, users = start("tiered", "member", "admin", "outsider")
    import_documents(server, "User", [
        {"_id": users["member"], "team": "red", "isTeamAdmin": False},
        {"_id": users["admin"], "team": "red", "isTeamAdmin": True}])
    import_documents(server, "Item", [tiered_item(1, users["member"], "red"),
                                      tiered_item(2, users["admin"], "red"),
                                      tiered_item(3, users["admin"], "blue")])
    query = "team IN {'red', 'blue'}"
    member, admin, outsider = await connect_all(server, ("member", "admin", "outsider"), query)
    check_equal(sorted(member.documents("Item")), [id_key(object_id(n)) for n in (1, 2)],
                "the member's view")
    check_equal(outsider.documents("Item"), {}, "a user without a team")
    check(key(2) in member.read_only and key(1) not in member.read_only,
          "a member writes only its own items")
    check(not admin.read_only, "the admin writes every item of its team")

    # The admin edits the member's item; the member may not edit the admin's.
    await admin.upload(1, [admin.changeset(1, [set_field("Item", object_id(1), "name",
                                                         "renamed")])])
    check_equal(compensating_writes(admin), [], "the admin's writes")
    await member.upload(1, [member.changeset(1, [set_field("Item", object_id(2), "name",
                                                           "mine now")])])
    check_equal(len(compensating_writes(member)), 1, "the member's compensating writes")
    await settle(member)
    check_equal(member.mirror[key(1)]["name"], "renamed", "the admin's edit reached the member")

    # The member moves to the blue team: it keeps its own item (write
    # implies read), loses the admin's red one, gains the blue one.
    import_documents(server, "User", [{"_id": users["member"], "team": "blue",
                                       "isTeamAdmin": False}])
    await wait_for(member, lambda: sorted(member.documents("Item")) == sorted(
        id_key(object_id(n)) for n in (1, 3)), "the member's new team")
    check(key(3) in member.read_only and key(1) not in member.read_only,
          "the member still writes only its own")
    await close_all(member, admin, outsider)


# ---- edge-server: %%user.type -----------------------------------------------


async def edge_server_normal_users_write_their_own():
    """The role for users of type "edge" never applies: realmfs-server's
    users are "normal" or "server" (auth.h); the second role does."""
    _, _, alice, bob = await alice_writes_bob_reads("edge-server")
    await bob.upload(1, [bob.changeset(1, [set_field("Item", object_id(1), "isComplete", True)])])
    check("write-own-items" in compensating_writes(bob)[0]["reason"],
          compensating_writes(bob)[0]["reason"])
    await close_all(alice, bob)


# ---- add-collaborators: $all over collaborators ------------------------------


async def collaborators_read_and_write():
    server, users = start("add-collaborators", "owner", "helper", "stranger")
    owner, helper, stranger = await connect_all(server, ("owner", "helper", "stranger"))
    await owner.upload(1, [owner.changeset(1, new_object("Item", object_id(1), {
        "owner_id": users["owner"], "name": "shared", "collaborators": [users["helper"]]}))])
    await settle(helper, stranger)
    check(key(1) in helper.mirror and key(1) not in helper.read_only,
          "a collaborator reads and writes")
    check_equal(stranger.documents("Item"), {}, "a stranger sees nothing")
    await helper.upload(1, [helper.changeset(1, [set_field("Item", object_id(1), "name",
                                                           "helped")])])
    check_equal(compensating_writes(helper), [], "the collaborator's writes")
    await stranger.upload(1, [stranger.changeset(1, [set_field("Item", object_id(1), "name",
                                                               "vandalized")])])
    check_equal(len(compensating_writes(stranger)), 1, "the stranger's compensating writes")
    check_equal(compensating_writes(stranger)[0]["server_document"], None,
                "the stranger may not read the item")
    await settle(owner)
    check_equal(owner.mirror[key(1)]["name"], "helped", "the owner's copy")
    await close_all(owner, helper, stranger)


# ---- Field-level read permission ---------------------------------------------


async def unreadable_fields_never_arrive():
    def limit_fields(directory):
        write_item_roles(directory, {
            "name": "no-summary", "apply_when": {},
            "document_filters": {"read": True, "write": True},
            "read": False, "write": False,
            "fields": {"owner_id": {"read": True, "write": True},
                       "isComplete": {"read": True, "write": True}}})
    server, _ = start("sync-todo", "alice", "bob", edit=limit_fields)
    import_documents(server, "Item", [
        {"_id": object_id(number), "owner_id": "x", "summary": "secret %d" % number,
         "isComplete": False} for number in (1, 2)])
    alice, bob = await connect_all(server, ("alice", "bob"))
    await bob.upload(1, [bob.changeset(1, [set_field("Item", object_id(2), "isComplete", True)])])
    import_documents(server, "Item", [{"_id": object_id(1), "owner_id": "x",
                                       "summary": "secret again", "isComplete": True}])
    await wait_for(alice, lambda: alice.mirror.get(key(1), {}).get("isComplete") is True,
                   "the import")
    await alice.upload(1, [alice.changeset(1, [set_field("Item", object_id(1), "summary",
                                                         "mine")])])
    await settle(alice, bob)
    check(compensating_writes(alice), "writing an unreadable field is refused")
    for client in (alice, bob):
        check("secret" not in received_text(client), "a client received summary")
        check(all("summary" not in document for document in client.documents("Item").values()),
              "summary in a mirror")
        check_equal(len(client.documents("Item")), 2, "the objects arrive without summary")
    await close_all(alice, bob)


# ---- A forged client subscribing where it has no role ------------------------


async def subscriptions_without_a_role_show_nothing():
    def edge_only(directory):
        write_item_roles(directory, {
            "name": "edge", "apply_when": {"%%user.type": "edge"},
            "document_filters": {"read": True, "write": True}, "read": True, "write": True})
    server, users = start("sync-todo", "mallory", edit=edge_only)
    import_documents(server, "Item", [{"_id": object_id(1), "owner_id": users["mallory"],
                                       "summary": "s", "isComplete": False}])
    mallory = await connect(server, "mallory@example.com")
    check_equal(mallory.documents("Item"), {}, "a collection without a role")
    await mallory.upload(1, [mallory.changeset(1, [set_field("Item", object_id(1), "summary",
                                                             "mine")])])
    check("no role" in compensating_writes(mallory)[0]["reason"],
          compensating_writes(mallory)[0]["reason"])
    check_equal(server.export("Item")[id_key(object_id(1))]["summary"], "s", "unchanged")
    await mallory.close()


# ---- Schemas ----------------------------------------------------------------------


async def schemas_follow_the_bind():
    server, _ = start("tiered", "alice")
    client = await Client.connect(server, basic("alice@example.com", PASSWORD))
    await client.bind(1)
    schema = await client.receive_until(lambda message: message["type"] == "schema")
    check_equal(client.received[-2]["type"], "ident", "the message before the schemas")
    check_equal(schema["development_mode"], False, "development mode")
    check_equal(schema["collections"]["Item"]["title"], "Item", "Item's schema")
    await client.close()


if __name__ == "__main__":
    sys.exit(run_tests([
        sync_todo_forged_writes_are_compensated,
        compensating_writes_survive_a_dropped_connection,
        own_data_is_never_sent_to_others,
        restricted_feed_follows_custom_user_data,
        tiered_roles_follow_custom_user_data,
        edge_server_normal_users_write_their_own,
        collaborators_read_and_write,
        unreadable_fields_never_arrive,
        subscriptions_without_a_role_show_nothing,
        schemas_follow_the_bind,
    ]))
