#!/usr/bin/env bash
# Load on a mount: concurrent writers and readers, and listing a large
# collection.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

M=$(mount_realm tools) || bail_out "cannot mount a realm"

WORKERS=8
OBJECTS_PER_WORKER=1000
SHARED_OBJECTS=10

# One worker: writes its own objects w<worker>-<i>.json and reads each back;
# every fourth step it overwrites a shared object s<k>.json, and every step
# it reads a shared object that other workers are overwriting.  Every read
# must parse and carry the expected _id; a shared object must be one whole
# version (its "check" and "pad" match its "seq"), never a mix.  Each
# close() must succeed.
# shellcheck disable=SC2016  # Python code
WORKER='import json, os, random, sys
directory, worker, count, shared = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
random.seed(worker)

def write(name, document):
    fd = os.open(f"{directory}/{name}.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps(document).encode())
    finally:
        os.close(fd)

def read(name):
    with open(f"{directory}/{name}.json", "rb") as f:
        text = f.read()
    try:
        document = json.loads(text)
    except ValueError as error:
        sys.exit(f"torn read of {name}: {error}: {text!r}")
    if document.get("_id") != name:
        sys.exit(f"{name} reads as {document!r}")
    return document

for i in range(count):
    name = f"w{worker}-{i}"
    write(name, {"worker": worker, "i": i, "pad": "x" * (i % 37)})
    document = read(name)
    if (document["worker"], document["i"]) != (worker, i):
        sys.exit(f"{name} reads back as {document}")
    if i % 4 == 0:
        seq = worker * 100000 + i
        write(f"s{i // 4 % shared}", {"seq": seq, "pad": "y" * (seq % 53), "check": seq * 7})
    document = read(f"s{random.randrange(shared)}")
    if document["check"] != document["seq"] * 7 or len(document["pad"]) != document["seq"] % 53:
        sys.exit(f"a shared object mixes versions: {document}")'

concurrent_writers_and_readers() {
  mkdir "$M/Conc"
  local worker pids=() failed=0 k
  # the shared objects exist before anyone reads them (a file just created
  # is empty until its writer closes it, as on a disk)
  for ((k = 0; k < SHARED_OBJECTS; k++)); do
    echo '{"seq": 0, "pad": "", "check": 0}' >"$M/Conc/s$k.json"
  done
  for ((worker = 0; worker < WORKERS; worker++)); do
    python3 -c "$WORKER" "$M/Conc" "$worker" "$OBJECTS_PER_WORKER" "$SHARED_OBJECTS" \
      >"$TEST_ROOT/worker$worker.log" 2>&1 &
    pids+=($!)
  done
  for ((worker = 0; worker < WORKERS; worker++)); do
    if ! wait "${pids[worker]}"; then
      failed=1
      echo "worker $worker failed:"
      tail -n 3 "$TEST_ROOT/worker$worker.log"
    fi
  done
  ((failed == 0))
  local expected=$((WORKERS * OBJECTS_PER_WORKER + SHARED_OBJECTS))
  assert_equal "$expected" "$(find "$M/Conc" -name '*.json' | wc -l)" "objects in the collection"
  assert_equal "$expected" "$(jq '.collections[] | select(.name == "Conc") | .objects' "$M/.realmfs/status")" \
    "objects in the status"
  # 999 % 37 == 0: an empty pad
  assert_object "$M/Conc/w3-999.json" '{"_id": "w3-999", "worker": 3, "i": 999, "pad": ""}'
  assert_equal 0 "$(error_count "$M")" "error records"
}

# A reader that reads through the page cache holds up a writer of the same
# object until it closes (at most a second), so its reads are never cut or
# padded to the writer's length; a reader that stays open longer lets the
# writer go ahead (and holds up no later writer) and still reads its own
# version.
# shellcheck disable=SC2016  # Python code
HELD_READER='import json, os, subprocess, sys, time
path, hold = sys.argv[1], sys.argv[2]
with open(path, "w") as f:
    f.write(json.dumps({"v": 1, "pad": "a" * 300}))
with open(path, "rb") as f:
    version1 = f.read()
os.stat(path)  # the kernel now has this version'"'"'s attributes
reader = os.open(path, os.O_RDONLY)
head = os.pread(reader, 10, 0)
writer = subprocess.Popen(["sh", "-c", "printf %s \"$1\" > \"$2\"", "sh", json.dumps({"v": 2}), path])
if hold == "briefly":
    time.sleep(0.3)
    assert writer.poll() is None, "the writer did not wait for the reader"
else:
    assert writer.wait(timeout=30) == 0, "the writer failed"
    # the reader held up that writer in vain: it holds up no other
    started = time.monotonic()
    subprocess.run(["sh", "-c", "printf %s \"$1\" > \"$2\"", "sh", json.dumps({"v": 3}), path], check=True)
    assert time.monotonic() - started < 0.9, "a second writer waited for the same reader"
rest = os.pread(reader, 4096, 10)
assert head + rest == version1, (head + rest, version1)
os.close(reader)
assert writer.wait(timeout=30) == 0, "the writer failed"
with open(path, "rb") as f:
    document = json.load(f)
assert document == {"_id": "held", "v": 2 if hold == "briefly" else 3}, document'

writer_waits_for_page_cache_reader() {
  mkdir -p "$M/Held"
  python3 -c "$HELD_READER" "$M/Held/held.json" briefly
}

reader_held_past_the_wait_reads_its_version() {
  mkdir -p "$M/Held"
  python3 -c "$HELD_READER" "$M/Held/held.json" long
}

# Unlinking each entry as soon as it is listed (the directory stream is
# read in pages meanwhile) must reach every object.
unlink_while_listing() {
  mkdir "$M/Drain"
  python3 -c 'import os, sys
directory = sys.argv[1]
for i in range(3000):
    with open(f"{directory}/d{i:04}.json", "w") as f:
        f.write("{}")
unlinked = 0
with os.scandir(directory) as entries:
    for entry in entries:
        os.unlink(entry.path)
        unlinked += 1
assert unlinked == 3000, unlinked
assert os.listdir(directory) == [], os.listdir(directory)[:5]' "$M/Drain"
  rmdir "$M/Drain"
}

# 20,000 objects, created quickly through the file system, then listed.
large_listing() {
  mkdir "$M/Large"
  python3 -c 'import os, sys
for i in range(20000):
    fd = os.open(f"{sys.argv[1]}/L{i:05}.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"{\"i\": %d}" % i)
    os.close(fd)' "$M/Large"
  local listing
  listing=$(timeout 60 ls -l "$M/Large")
  assert_equal 20000 "$(grep -c '^-rw-r--r--' <<<"$listing")" "files in ls -l"
  assert_equal 20001 "$(wc -l <<<"$listing")" "lines of ls -l (with the total)"
  # each object is {"_id": "L<5 digits>", "i": <i>} in canonical form
  local expected_bytes
  expected_bytes=$(python3 -c 'print(sum(len("{\n  \"_id\": \"L00000\",\n  \"i\": %d\n}\n" % i) for i in range(20000)))')
  assert_equal "$expected_bytes" "$(awk '/^-/ {sum += $5} END {print sum}' <<<"$listing")" "sum of sizes"
  assert_equal "$(seq -f 'L%05g.json' 0 19999)" "$(awk '/^-/ {print $NF}' <<<"$listing")" "names"
}

ok "$WORKERS processes writing and reading $OBJECTS_PER_WORKER objects each never see a torn object" \
  concurrent_writers_and_readers
ok "a writer waits until a reader holding the object closes" writer_waits_for_page_cache_reader
ok "a reader held past that wait still reads its own version" reader_held_past_the_wait_reads_its_version
ok "unlinking entries while listing them reaches every object" unlink_while_listing
ok "ls -l lists 20,000 objects with exact sizes" large_listing
finish
