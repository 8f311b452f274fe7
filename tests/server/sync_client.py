"""Protocol-level test client for realmfs-server end-to-end tests.

A small library, not a test: it starts real servers (REALMFS_SERVER, the
binary) on free loopback ports with temporary data directories and apps
copied from REALMFS_EXPORTS, creates users and API keys through the
command line, and speaks the wire protocol of docs/protocol.md over real
WebSocket connections (python3-websockets 10.4; run with /usr/bin/python3).

Client.mirror is what a client keeps: per (collection, id) the server's
document, built only by applying the downloads received; tests compare
mirrors with `realmfs-server export`.  Client.read_only holds the keys of
the objects the downloads' access entries say the client may not write.
Client.logins keeps the login messages (session tokens) received, which
receive() passes over.

run_tests() runs test functions (plain or async) and reports TAP.
"""

import asyncio
import base64
import inspect
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import websockets

SERVER = os.environ.get("REALMFS_SERVER", "realmfs-server")
EXPORTS = os.environ.get("REALMFS_EXPORTS", "")
SUBPROTOCOL = "realmfs.sync.v1"
PROTOCOL_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
APPS = ["add-collaborators", "edge-server", "read-and-write-own-data",
        "restricted-feed", "sync-todo", "tiered"]
PROVIDERS = ("anon-user", "local-userpass", "api-key")
RECEIVE_TIMEOUT = 10.0

_temporary_root = tempfile.mkdtemp(prefix="realmfs-server-test-")


def temporary_directory(prefix):
    return tempfile.mkdtemp(prefix=prefix, dir=_temporary_root)


# ---- TAP ---------------------------------------------------------------


def run_tests(tests):
    """Run each test (a function, maybe async, taking no argument) and
    print TAP; returns the exit status."""
    print("1..%d" % len(tests), flush=True)
    failures = 0
    for number, test in enumerate(tests, 1):
        try:
            result = test()
            if inspect.iscoroutine(result):
                asyncio.run(asyncio.wait_for(result, 300))
            print("ok %d - %s" % (number, test.__name__), flush=True)
        except Exception:  # every failure is reported, then the next test runs
            failures += 1
            print("not ok %d - %s" % (number, test.__name__), flush=True)
            for line in traceback.format_exc().splitlines():
                print("# " + line, flush=True)
    for report in Server.stop_all():
        failures += 1
        print("# " + report.replace("\n", "\n# "), flush=True)
    shutil.rmtree(_temporary_root, ignore_errors=True)
    return 1 if failures else 0


def check(condition, message="check failed"):
    if not condition:
        raise AssertionError(message)


def check_equal(actual, expected, what="value"):
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what, expected, actual))


# ---- Apps and the command line -------------------------------------------


def copy_app(name="sync-todo", enabled=PROVIDERS, edit=None):
    """A copy of an exported app whose auth providers in enabled are on and
    the others off; edit(directory) may change more."""
    directory = os.path.join(temporary_directory("app-"), name)
    shutil.copytree(os.path.join(EXPORTS, name), directory)
    providers = {}
    for provider in PROVIDERS:
        providers[provider] = {"name": provider, "type": provider,
                               "disabled": provider not in enabled}
    with open(os.path.join(directory, "auth", "providers.json"), "w") as out:
        json.dump(providers, out)
    if edit:
        edit(directory)
    return directory


EVERYONE_ROLE = {"name": "everyone", "apply_when": {},
                 "document_filters": {"read": True, "write": True},
                 "read": True, "write": True, "insert": True, "delete": True}


def write_item_roles(directory, *roles):
    """Give sync-todo's collection Item (in an app copy) these roles."""
    path = os.path.join(directory, "data_sources", "mongodb-atlas", "todo", "Item", "rules.json")
    with open(path, "w") as out:
        json.dump({"collection": "Item", "database": "todo", "roles": list(roles)}, out)


def open_item_rules(directory):
    """An edit for copy_app("sync-todo"): everyone reads and writes every
    Item, for tests about syncing rather than permissions."""
    write_item_roles(directory, EVERYONE_ROLE)


def set_sync_config(directory, **settings):
    """Set members of sync/config.json in an app copy."""
    path = os.path.join(directory, "sync", "config.json")
    with open(path) as file:
        config = json.load(file)
    config.update(settings)
    with open(path, "w") as file:
        json.dump(config, file)


def app_id_of(app_directory):
    for name in ("root_config.json", "realm_config.json"):
        path = os.path.join(app_directory, name)
        if os.path.exists(path):
            with open(path) as config:
                settings = json.load(config)
            return settings.get("app_id") or settings["name"]
    raise AssertionError("no app file in " + app_directory)


def run_cli(*arguments, input_text=None, expect=0):
    """Run realmfs-server with arguments; returns the CompletedProcess and
    checks its exit status unless expect is None."""
    process = subprocess.run([SERVER, *arguments], input=input_text, capture_output=True,
                             text=True, timeout=60)
    if expect is not None and process.returncode != expect:
        raise AssertionError("realmfs-server %s: exit %d, expected %d\n%s" % (
            " ".join(arguments), process.returncode, expect, process.stderr))
    return process


# ---- The server ----------------------------------------------------------


class Server:
    """A realmfs-server serve process on a free loopback port."""

    running = []
    sanitizer_reports = []

    def __init__(self, app=None, data=None, tls=None, log_level="info"):
        self.app = app or copy_app()
        self.data = data or temporary_directory("data-")
        self.tls = tls  # (certificate file, key file) or None
        self.log_level = log_level
        self.log_path = os.path.join(temporary_directory("log-"), "server.log")
        self.process = None
        self.port = None
        self.start()

    def start(self):
        arguments = [SERVER, "serve", "--app", self.app, "--data", self.data,
                     "--listen", "127.0.0.1:0", "--log-level", self.log_level]
        if self.tls:
            arguments += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self.log = open(self.log_path, "a")
        log_start = self.log.tell()  # a restart appends to the log of the last run
        self.process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self.log)
        Server.running.append(self)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for line in self.log_text()[log_start:].splitlines():
                if " info listening on " in line:
                    address = line.split("://", 1)[1].split("/", 1)[0]
                    self.port = int(address.rsplit(":", 1)[1])
            if self.port:
                return
            if self.process.poll() is not None:
                raise AssertionError("the server exited with %d:\n%s" % (
                    self.process.returncode, self.log_text()))
            time.sleep(0.05)
        raise AssertionError("the server did not start:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path) as log:
            return log.read()

    @property
    def websocket_url(self):
        scheme = "wss" if self.tls else "ws"
        return "%s://127.0.0.1:%d/api/client/v2.0/app/%s/realm-sync" % (
            scheme, self.port, app_id_of(self.app))

    def http_get(self, path):
        """(status, content type, body text) of GET path."""
        scheme = "https" if self.tls else "http"
        context = tls_client_context(self.tls[0]) if self.tls else None
        try:
            with urllib.request.urlopen("%s://127.0.0.1:%d%s" % (scheme, self.port, path),
                                        timeout=10, context=context) as response:
                return (response.status, response.headers["Content-Type"],
                        response.read().decode())
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read().decode()

    def metrics(self):
        """The samples of GET /metrics, checking that each has HELP and TYPE."""
        status, content_type, body = self.http_get("/metrics")
        check_equal(status, 200, "GET /metrics status")
        check(content_type.startswith("text/plain; version=0.0.4"), content_type)
        samples, described = {}, set()
        for line in body.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                described.add((line[2:6], line.split()[2]))
                if line.startswith("# TYPE "):
                    check(line.split()[3] in ("counter", "gauge"), line)
                continue
            name, value = line.split()
            check(("HELP", name) in described and ("TYPE", name) in described,
                  "%s has no HELP or TYPE" % name)
            samples[name] = float(value)
        return samples

    def signal(self, number):
        self.process.send_signal(number)

    def wait(self, timeout=10):
        try:
            return self.process.wait(timeout)
        finally:
            self.log.close()
            if self in Server.running:
                Server.running.remove(self)
            report = self.sanitizer_report()
            if report:
                Server.sanitizer_reports.append(report)

    def sanitizer_report(self):
        """What AddressSanitizer or UBSan said in the log, if anything."""
        log = self.log_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: "):
            if marker in log:
                return "sanitizer report from the server:\n" + log[max(0, log.index(marker) - 200):]
        return None

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        self.signal(signal.SIGKILL)
        self.wait()

    def restart(self):
        if self.process.poll() is None:
            self.stop()
        self.port = None
        self.start()

    @classmethod
    def stop_all(cls):
        """Stop every server still running; returns the sanitizer reports
        of every server this process ran."""
        for server in list(cls.running):
            if server.stop() != 0:
                cls.sanitizer_reports.append("a server exited with %d on SIGTERM"
                                             % server.process.returncode)
        return cls.sanitizer_reports

    # The command line, on this server's data directory.

    def add_user(self, email, password):
        with tempfile.NamedTemporaryFile("w", dir=_temporary_root, delete=False) as file:
            file.write(password + "\n")
        return run_cli("user", "add", "--data", self.data, email,
                       "--password-file", file.name).stdout.strip()

    def add_api_key(self, name="key", user=None):
        arguments = ["apikey", "add", "--data", self.data, name]
        if user:
            arguments += ["--user", user]
        return run_cli(*arguments).stdout.strip()

    def export(self, collection):
        """{id key: document} of `realmfs-server export`."""
        output = run_cli("export", "--app", self.app, "--data", self.data,
                         collection).stdout
        documents = {}
        for line in output.splitlines():
            if line.strip():
                document = json.loads(line)
                documents[id_key(document["_id"])] = document
        return documents


def tls_client_context(certificate_file):
    context = ssl.create_default_context(cafile=certificate_file)
    context.check_hostname = False
    return context


def make_certificate():
    """A self-signed certificate for 127.0.0.1: (certificate file, key file)."""
    directory = temporary_directory("tls-")
    certificate = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", certificate, "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return certificate, key


# ---- Authorization headers -------------------------------------------------


def basic(email, password):
    return "Basic " + base64.b64encode(("%s:%s" % (email, password)).encode()).decode()


def bearer(key):
    return "Bearer " + key


# ---- Changesets ------------------------------------------------------------


def id_key(identifier):
    return json.dumps(identifier, sort_keys=True)


def object_id(number):
    return {"$oid": "%024x" % number}


def create(collection, identifier):
    return {"op": "create", "collection": collection, "id": identifier}


def delete(collection, identifier):
    return {"op": "delete", "collection": collection, "id": identifier}


def set_field(collection, identifier, path, value):
    return {"op": "set", "collection": collection, "id": identifier, "path": path,
            "value": value}


def unset_field(collection, identifier, path):
    return {"op": "unset", "collection": collection, "id": identifier, "path": path}


def new_object(collection, identifier, document):
    """create + a set per field."""
    return [create(collection, identifier)] + [
        set_field(collection, identifier, field, value) for field, value in document.items()]


def apply_instruction(mirror, instruction, read_only=None):
    """Apply one download instruction to a mirror {(collection, id key):
    document}; an object that leaves it leaves read_only (a set of keys)
    too."""
    key = (instruction["collection"], id_key(instruction["id"]))
    op = instruction["op"]
    if op == "create":
        mirror.setdefault(key, {"_id": instruction["id"]})
    elif op == "delete":
        mirror.pop(key, None)
        if read_only is not None:
            read_only.discard(key)
    elif key in mirror:
        *parents, last = instruction["path"].split(".")
        document = mirror[key]
        for name in parents:
            if not isinstance(document.get(name), dict):
                document[name] = {}
            document = document[name]
        if op == "set":
            document[last] = instruction["value"]
        else:
            document.pop(last, None)


# ---- The client ----------------------------------------------------------------


class Client:
    """One WebSocket connection speaking the sync protocol."""

    def __init__(self, connection):
        self.connection = connection
        self.mirror = {}
        self.read_only = set()
        self.logins = []
        self.received = []
        self.server_version = {}
        self.acknowledged = {}
        self.file_identity = {}
        self.client_version = {}
        self.clock = int(time.time() * 1000)

    @classmethod
    async def connect(cls, server, authorization, subprotocols=(SUBPROTOCOL,), path=None):
        url = server.websocket_url if path is None else server.websocket_url.split(
            "/api/")[0] + path
        headers = {"Authorization": authorization} if authorization is not None else {}
        context = tls_client_context(server.tls[0]) if server.tls else None
        connection = await websockets.connect(
            url, subprotocols=list(subprotocols) or None, extra_headers=headers,
            max_size=None, ssl=context, ping_interval=None, open_timeout=20)
        return cls(connection)

    async def close(self):
        await self.connection.close()

    async def send(self, frame):
        """A dict goes as JSON text, str as text, bytes as a binary frame."""
        if isinstance(frame, dict):
            frame = json.dumps(frame)
        await self.connection.send(frame)

    async def send_unfinished(self, fragments):
        """The fragments of a text message whose final fragment never comes,
        so that nothing is sent after them."""
        opcode = websockets.frames.Opcode.TEXT
        for fragment in fragments:
            await self.connection.write_frame(False, opcode, fragment.encode())
            opcode = websockets.frames.Opcode.CONT

    async def receive(self, timeout=RECEIVE_TIMEOUT):
        """The next message but login, parsed; downloads are applied to the
        mirror, login messages kept in logins."""
        while True:
            text = await asyncio.wait_for(self.connection.recv(), timeout)
            check(isinstance(text, str), "the server sent a binary frame")
            message = json.loads(text)
            if message["type"] != "login":
                break
            self.logins.append(message)
        self.received.append(message)
        if message["type"] == "download":
            for changeset in message["changesets"]:
                for instruction in changeset["instructions"]:
                    apply_instruction(self.mirror, instruction, self.read_only)
            for entry in message.get("access", []):
                key = (entry["collection"], id_key(entry["id"]))
                if entry["writable"]:
                    self.read_only.discard(key)
                else:
                    self.read_only.add(key)
            self.server_version[message["session"]] = message["server_version"]
            self.acknowledged[message["session"]] = message["last_integrated_client_version"]
        return message

    async def receive_until(self, predicate, timeout=RECEIVE_TIMEOUT):
        """Receive until a message satisfies predicate; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.receive(max(0.01, deadline - time.monotonic()))
            if predicate(message):
                return message

    async def expect_closed(self, code, timeout=RECEIVE_TIMEOUT):
        """Receive until the server closes; checks the close code; returns
        the messages received before."""
        messages = []
        try:
            while True:
                messages.append(await self.receive(timeout))
        except websockets.exceptions.ConnectionClosed as closed:
            check_equal(closed.rcvd.code if closed.rcvd else None, code, "close code")
        return messages

    async def ping(self):
        stamp = int(time.time() * 1000)
        await self.send({"type": "ping", "timestamp": stamp})
        pong = await self.receive_until(lambda m: m["type"] == "pong")
        check_equal(pong["timestamp"], stamp, "pong timestamp")

    async def bind(self, session, file_identity=0, last_server_version=0,
                   last_integrated_client_version=0):
        """Bind; a new file (identity 0) waits for its ident."""
        await self.send({"type": "bind", "session": session, "file_identity": file_identity,
                         "last_server_version": last_server_version,
                         "last_integrated_client_version": last_integrated_client_version})
        if file_identity == 0:
            ident = await self.receive_until(lambda m: m["type"] in ("ident", "error"))
            check_equal(ident["type"], "ident", "answer to bind")
            file_identity = ident["file_identity"]
        self.file_identity[session] = file_identity
        self.client_version.setdefault(session, last_integrated_client_version)
        self.server_version.setdefault(session, last_server_version)
        return file_identity

    async def query(self, session, query_version, subscriptions):
        """Send a query and wait for its whole bootstrap (or query_error);
        returns the last message."""
        await self.send({"type": "query", "session": session, "query_version": query_version,
                         "subscriptions": subscriptions})
        return await self.receive_until(
            lambda m: (m["type"] == "download" and m["query_version"] == query_version
                       and m["last_in_batch"]) or m["type"] in ("query_error", "error"))

    def changeset(self, session, instructions, timestamp=None):
        """The session's next changeset."""
        self.client_version[session] += 1
        if timestamp is None:
            self.clock = max(self.clock + 1, int(time.time() * 1000))
            timestamp = self.clock
        return {"origin": self.file_identity[session],
                "client_version": self.client_version[session],
                "timestamp": timestamp, "instructions": instructions}

    async def upload(self, session, changesets, wait=True):
        """Upload; with wait, receive until the acknowledgement of the last."""
        await self.send({"type": "upload", "session": session,
                         "last_integrated_server_version": self.server_version.get(session, 0),
                         "changesets": changesets})
        if wait and changesets:
            last = changesets[-1]["client_version"]
            await self.receive_until(
                lambda m: m["type"] == "download" and m["session"] == session
                and m["last_integrated_client_version"] >= last)

    async def sync(self, session, request):
        """mark: receive (applying) everything the server had when it arrived."""
        await self.send({"type": "mark", "session": session, "request": request})
        await self.receive_until(lambda m: m["type"] == "mark" and m["request"] == request)

    def documents(self, collection):
        """{id key: document} of the mirror, for comparing with Server.export."""
        return {key: document for (name, key), document in self.mirror.items()
                if name == collection}


async def connect_refused(server, authorization, subprotocols=(SUBPROTOCOL,), path=None):
    """The HTTP status with which the server refuses an upgrade."""
    try:
        client = await Client.connect(server, authorization, subprotocols, path)
    except websockets.exceptions.InvalidStatusCode as refused:
        return refused.status_code
    await client.close()
    raise AssertionError("the upgrade was accepted")


if __name__ == "__main__":
    sys.exit("sync_client.py is a library for the test_server_*.py files")
