#!/usr/bin/env bash
# Basic file-system semantics of a mount: objects, names, validation,
# handles, directories, schemas, control files and the command line.
# shellcheck disable=SC2012  # ls's output is what several cases check
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

M=$(mount_realm basics) || bail_out "cannot mount a realm"

# new_collection NAME: creates collection NAME (each case uses its own).
new_collection() {
  mkdir "$M/$1"
}

# ---- command line ------------------------------------------------------

version_is_printed() {
  local version
  version=$("$REALMFS" --version)
  assert_match 'realmfs [0-9]*.[0-9]*.[0-9]*' "$version" "version line"
  assert_equal "${version#realmfs }" "$(jq -r .version "$M/.realmfs/status")" "version in status"
}

help_lists_commands() {
  local help command
  help=$("$REALMFS" --help)
  assert_equal "usage: realmfs <command> [options]" "${help%%$'\n'*}" "first line of the help"
  for command in mount unmount status query; do
    grep -Eq "^  $command " <<<"$help" || { echo "help does not describe $command"; return 1; }
  done
  local status=0 stderr
  stderr=$("$REALMFS" frobnicate 2>&1 >/dev/null) || status=$?
  assert_equal 2 "$status" "exit status of an unknown command"
  assert_equal "realmfs: unknown command" "${stderr%%$'\n'*}" "first line of its message"
}

commands_on_a_non_mount_fail() {
  local command status message
  for command in status unmount; do
    status=0
    message=$("$REALMFS" "$command" "$TEST_ROOT" 2>&1) || status=$?
    assert_equal 1 "$status" "exit status of $command"
    assert_equal "realmfs: $TEST_ROOT is not a realmfs mount (cannot read $TEST_ROOT/.realmfs/status)" \
      "$message" "message of $command"
  done
  status=0
  "$REALMFS" mount >/dev/null 2>&1 || status=$?
  assert_equal 2 "$status" "exit status of mount without a mountpoint"
}

mount_on_missing_directory_fails() {
  local status=0 message
  message=$("$REALMFS" mount --data "$TEST_ROOT/missing.data" "$TEST_ROOT/no/such/dir" 2>&1) || status=$?
  assert_equal 1 "$status" "exit status"
  assert_equal "realmfs: mountpoint $TEST_ROOT/no/such/dir is not a directory" "$message" "message"
}

same_data_mounted_twice_is_refused() {
  local second=$TEST_ROOT/second status=0 message
  mkdir -p "$second"
  message=$("$REALMFS" mount --data "$TEST_ROOT/basics.data" "$second" 2>&1) || status=$?
  assert_equal 1 "$status" "exit status"
  assert_equal "realmfs: data directory $TEST_ROOT/basics.data is already served by another realmfs mount" \
    "$message" "message"
  if test_mounts | grep -qx "$second"; then
    echo "$second was mounted anyway"
    return 1
  fi
}

# ---- objects -------------------------------------------------------------

object_without_id_is_stored_canonically() {
  new_collection Task
  echo '{"title": "Buy milk",   "done":false,"tags":["a", "b"],"owner":{"name":"Ann","age":7},"none":{},"list":[]}' \
    >"$M/Task/a1.json"
  assert_bytes "$M/Task/a1.json" '{
  "_id": "a1",
  "title": "Buy milk",
  "done": false,
  "tags": [
    "a",
    "b"
  ],
  "owner": {
    "name": "Ann",
    "age": 7
  },
  "none": {},
  "list": []
}
'
  assert_equal "Buy milk" "$(jq -r .title "$M/Task/a1.json")" "jq -r .title"
  assert_equal '{"_id":"a1","title":"Buy milk"}' "$(jq -c '{_id, title}' "$M/Task/a1.json")" "jq -c"
}

id_given_later_is_moved_first() {
  new_collection Order
  assert_equal ok "$(put "$M/Order/o1.json" '{"n": 1, "_id": "o1", "é": "ü"}')"
  assert_object "$M/Order/o1.json" '{"_id": "o1", "n": 1, "é": "ü"}'
}

sizes_are_exact_byte_lengths() {
  new_collection Sized
  echo '{"text":"héllo wörld","n":12345}' >"$M/Sized/s1.json"
  local bytes
  bytes=$(wc -c <"$M/Sized/s1.json")
  assert_equal "$(canonical '{"_id":"s1","text":"héllo wörld","n":12345}' | wc -c)" "$bytes" "byte length"
  assert_equal "$bytes" "$(stat -c %s "$M/Sized/s1.json")" "stat size"
  assert_equal "$bytes" "$(ls -l "$M/Sized" | awk '$NF == "s1.json" {print $5}')" "ls -l size"
}

# Larger than any single FUSE read or write: drafts and reads span many.
large_object_round_trips() {
  new_collection Big
  local source=$TEST_ROOT/big.json
  python3 -c 'import json, sys
items = [{"n": i, "text": "x" * (i % 50)} for i in range(40000)]
json.dump({"items": items}, open(sys.argv[1], "w"))' "$source"
  cp "$source" "$M/Big/b1.json"
  assert_bytes "$M/Big/b1.json" "$(jq --indent 2 '{_id: "b1"} + .' "$source")"$'\n'
  assert_equal "$(wc -c <"$M/Big/b1.json")" "$(stat -c %s "$M/Big/b1.json")" "size"
}

inode_is_stable() {
  new_collection Stable
  echo '{"v":1}' >"$M/Stable/i1.json"
  local first
  first=$(stat -c %i "$M/Stable/i1.json")
  assert_equal "$first" "$(stat -c %i "$M/Stable/i1.json")" "inode on a second stat"
  assert_equal "$first" "$(ls -i "$M/Stable" | awk '{print $1}')" "inode listed by ls -i"
  ls -l "$M/Stable" >/dev/null
  assert_equal "$first" "$(stat -c %i "$M/Stable/i1.json")" "inode after ls"
  echo '{"v":2}' >"$M/Stable/i1.json"
  assert_equal "$first" "$(stat -c %i "$M/Stable/i1.json")" "inode after an update"
}

mtime_changes_on_update() {
  new_collection Times
  echo '{"v":1}' >"$M/Times/t1.json"
  local before after
  before=$(stat -c %.9Y "$M/Times/t1.json")
  sleep 0.05
  echo '{"v":2}' >"$M/Times/t1.json"
  after=$(stat -c %.9Y "$M/Times/t1.json")
  python3 -c 'import sys, time
before, after = map(float, sys.argv[1:])
assert before < after <= time.time() + 1, (before, after)' "$before" "$after"
}

# Each name, and the _id its object gets (as jq -c prints it).
ids_map_to_names() {
  new_collection Ids
  local name id
  while read -r name id; do
    assert_equal ok "$(put "$M/Ids/$name.json" '{"v": 1}')" "writing $name.json"
    assert_equal "$id" "$(jq -c ._id "$M/Ids/$name.json")" "_id of $name.json"
    is_listed "$M/Ids" "$name.json" || { echo "ls does not show $name.json"; return 1; }
  done <<'EOF'
6650f0c2e4b0a1b2c3d4e5f6 {"$oid":"6650f0c2e4b0a1b2c3d4e5f6"}
42 42
-7 -7
%342 "42"
%2Fslash "/slash"
a%2Fb%2Fc "a/b/c"
%2Ehidden ".hidden"
100%25 "100%"
plain "plain"
EOF
  # the content's _id decides too: a string "42" belongs in %342.json
  assert_equal ok "$(put "$M/Ids/%2Fx.json" '{"_id": "/x"}')"
  rejects "$M/Ids/42.json" close '_id does not match the file name: this _id belongs in %342.json' \
    put "$M/Ids/42.json" '{"_id": "42"}'
}

long_ids_use_hashed_names() {
  new_collection Long
  local id other name
  id=L$(printf 'x%.0s' {1..299})
  other=L$(printf 'y%.0s' {1..299})
  name=$(hashed_name "$id")
  # a new hashed name does not say its _id: the content must
  rejects "$M/Long/$name" close 'this file name is the hash of a long _id: the content must give the _id' \
    put "$M/Long/$name" '{"v": 1}'
  assert_equal ok "$(put "$M/Long/$name" "{\"_id\": \"$id\", \"v\": 1}")"
  assert_equal "$name" "$(ls "$M/Long")" "listing"
  assert_equal "$id" "$(jq -r ._id "$M/Long/$name")" "_id"
  assert_equal ok "$(put "$M/Long/$name" '{"v": 2}')" "an update without _id"
  assert_equal "$id 2" "$(jq -r '"\(._id) \(.v)"' "$M/Long/$name")" "_id and v after the update"
  rejects "$M/Long/$name" close "_id does not match the file name: this _id belongs in $(hashed_name "$other")" \
    put "$M/Long/$name" "{\"_id\": \"$other\"}"
}

invalid_json_is_rejected() {
  new_collection Bad
  echo '{"x":1}' >"$M/Bad/b1.json"
  local text=$'{\n  "x": 2,\n  "y": \n}\n'
  rejects "$M/Bad/b1.json" close 'line 4, column 1: *' put "$M/Bad/b1.json" "$text"
  assert_object "$M/Bad/b1.json" '{"_id": "b1", "x": 1}'
  assert_equal "$text." "$(tail -n 1 "$M/.realmfs/errors" | jq -j .content; echo .)" "rejected content in the record"
  rejects "$M/Bad/b1.json" close 'the top level must be a JSON object' put "$M/Bad/b1.json" '[1]'
  rejects "$M/Bad/b1.json" close 'line 1, column *: duplicate object key*' \
    put "$M/Bad/b1.json" '{"a": 1, "a": 2}'
}

id_mismatch_is_rejected() {
  new_collection Mismatch
  echo '{"x":1}' >"$M/Mismatch/m1.json"
  rejects "$M/Mismatch/m1.json" close '_id does not match the file name: this _id belongs in m2.json' \
    put "$M/Mismatch/m1.json" '{"_id": "m2", "x": 2}'
  rejects "$M/Mismatch/m1.json" close '_id must be a string, an integer or an ObjectId, not *' \
    put "$M/Mismatch/m1.json" '{"_id": true}'
}

empty_file_is_pending_until_written() {
  new_collection Pending
  local errors
  errors=$(error_count "$M")
  touch "$M/Pending/p1.json"
  assert_equal 0 "$(stat -c %s "$M/Pending/p1.json")" "size of the new file"
  assert_equal p1.json "$(ls "$M/Pending")" "listing"
  assert_equal "" "$(cat "$M/Pending/p1.json")" "content"
  assert_equal 0 "$(jq '.collections[] | select(.name == "Pending") | .objects' "$M/.realmfs/status")" \
    "stored objects"
  assert_equal "$errors" "$(error_count "$M")" "error records"
  echo '{"v":1}' >"$M/Pending/p1.json"
  assert_object "$M/Pending/p1.json" '{"_id": "p1", "v": 1}'
  assert_equal 1 "$(jq '.collections[] | select(.name == "Pending") | .objects' "$M/.realmfs/status")" \
    "stored objects"
}

emptying_an_object_keeps_it() {
  new_collection Emptied
  echo '{"v":1}' >"$M/Emptied/e1.json"
  # close() cannot tell a shell's `>` (which closes before writing) from a
  # real emptying: it succeeds, and the release records the rejection
  rejects "$M/Emptied/e1.json" truncate 'an empty file is not an object' \
    py 'os.truncate(A[0], 0)' "$M/Emptied/e1.json"
  local count
  count=$(error_count "$M")
  assert_equal ok "$(py 'os.close(os.open(A[0], os.O_WRONLY | os.O_TRUNC))' "$M/Emptied/e1.json")"
  assert_object "$M/Emptied/e1.json" '{"_id": "e1", "v": 1}'
  # the record is written on release, which follows close() asynchronously
  wait_until 5 error_count_is "$M" $((count + 1))
  assert_match "Emptied/e1.json|close|EINVAL|the file was emptied and closed without new content*" \
    "$(last_error "$M")" "error record"
}

exclusive_create_of_existing_fails() {
  new_collection Excl
  echo '{"v":1}' >"$M/Excl/x1.json"
  touch "$M/Excl/x2.json"
  local name
  for name in x1 x2; do
    assert_equal EEXIST "$(py 'os.open(A[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL)' "$M/Excl/$name.json")" \
      "O_EXCL on $name.json"
  done
  assert_equal ok "$(py 'os.close(os.open(A[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL))' "$M/Excl/x3.json")"
  assert_object "$M/Excl/x1.json" '{"_id": "x1", "v": 1}'
}

append() {  # append FILE TEXT: one O_APPEND write; prints ok or the errno name
  py 'fd = os.open(A[0], os.O_WRONLY | os.O_APPEND)
os.write(fd, A[1].encode())
os.close(fd)' "$@"
}

appends_behave_as_on_disk() {
  new_collection Append
  echo '{"v":1}' >"$M/Append/a1.json"
  rejects "$M/Append/a1.json" close 'line *, column *: *' append "$M/Append/a1.json" '"w": 2}'
  touch "$M/Append/a2.json"
  assert_equal ok "$(append "$M/Append/a2.json" '{"w": 2}')" "appending to a pending file"
  assert_object "$M/Append/a2.json" '{"_id": "a2", "w": 2}'
  printf '{"w": 3}' >>"$M/Append/a3.json"
  assert_object "$M/Append/a3.json" '{"_id": "a3", "w": 3}'
}

writes_at_offsets() {
  new_collection Offsets
  echo '{"name":"aaaa","n":3}' >"$M/Offsets/o1.json"
  # replace "aaaa" by "bbbb" in place, then the 3 by a 7
  assert_equal ok "$(py 'fd = os.open(A[0], os.O_RDWR)
text = os.read(fd, 4096)
os.pwrite(fd, b"bbbb", text.index(b"aaaa"))
os.pwrite(fd, b"7", text.index(b"3"))
assert os.pread(fd, 4096, 0) == text.replace(b"aaaa", b"bbbb").replace(b"3", b"7")
os.close(fd)' "$M/Offsets/o1.json")"
  assert_object "$M/Offsets/o1.json" '{"_id": "o1", "name": "bbbb", "n": 7}'
  # a write past the end leaves a hole of NULs: not JSON
  rejects "$M/Offsets/o1.json" close '*' \
    py 'fd = os.open(A[0], os.O_WRONLY); os.pwrite(fd, b"}", 100); os.close(fd)' "$M/Offsets/o1.json"
}

ftruncate_then_rewrite() {
  new_collection Trunc
  echo '{"long":"xxxxxxxxxxxxxxxxxxxxxxxx"}' >"$M/Trunc/t1.json"
  assert_equal ok "$(py 'fd = os.open(A[0], os.O_RDWR)
os.ftruncate(fd, 0)
os.write(fd, b"{\"s\": 1}")
assert os.fstat(fd).st_size == 8
os.close(fd)' "$M/Trunc/t1.json")"
  assert_object "$M/Trunc/t1.json" '{"_id": "t1", "s": 1}'
  # cutting the closing brace off is invalid
  rejects "$M/Trunc/t1.json" close 'line *, column *: *' \
    py 'fd = os.open(A[0], os.O_RDWR); os.ftruncate(fd, os.fstat(fd).st_size - 2); os.close(fd)' \
    "$M/Trunc/t1.json"
}

concurrent_handles_keep_own_drafts() {
  new_collection Drafts
  echo '{"v":0}' >"$M/Drafts/d1.json"
  assert_equal ok "$(py 'def rewrite(fd, text):
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)
one, two = os.open(A[0], os.O_RDWR), os.open(A[0], os.O_RDWR)
rewrite(one, b"{\"v\": 1}")
rewrite(two, b"{\"v\": 22}")
assert os.pread(one, 100, 0) == b"{\"v\": 1}", os.pread(one, 100, 0)
assert os.pread(two, 100, 0) == b"{\"v\": 22}", os.pread(two, 100, 0)
os.close(one)
assert os.pread(two, 100, 0) == b"{\"v\": 22}", os.pread(two, 100, 0)
os.close(two)' "$M/Drafts/d1.json")"
  assert_object "$M/Drafts/d1.json" '{"_id": "d1", "v": 22}'
}

read_handles_never_validate() {
  new_collection Readers
  echo '{"v":1}' >"$M/Readers/r1.json"
  local count
  count=$(error_count "$M")
  assert_equal ok "$(py 'for flags in (os.O_RDONLY, os.O_RDWR):
    fd = os.open(A[0], flags)
    os.read(fd, 4096)
    os.fsync(fd)
    os.close(fd)' "$M/Readers/r1.json")"
  assert_equal "$count" "$(error_count "$M")" "error records"
  assert_object "$M/Readers/r1.json" '{"_id": "r1", "v": 1}'
}

# Other handles read the stored version while a writer's draft is open:
# a draft that is shorter (or invalid) must not cut their reads short.
readers_see_stored_version_beside_draft() {
  new_collection Beside
  echo '{"v":1, "text": "a text longer than the draft"}' >"$M/Beside/b1.json"
  local stored
  stored=$(cat "$M/Beside/b1.json"; echo .)
  assert_equal ok "$(py 'fd = os.open(A[0], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{broken")
with open(A[0]) as reader:
    seen = reader.read()
os.ftruncate(fd, 0)
os.pwrite(fd, b"{\"v\": 2}", 0)
os.close(fd)
assert seen == A[1], repr(seen)' "$M/Beside/b1.json" "${stored%.}")"
  assert_object "$M/Beside/b1.json" '{"_id": "b1", "v": 2}'
}

scratch_names_are_plain_files() {
  new_collection Scratch
  local name count
  count=$(error_count "$M")
  for name in .s1.json.swp s1.json~ 4913 '#s1.json#' sedAb12Cd notes.txt %41.json %2f.json .s1.json; do
    assert_equal ok "$(put "$M/Scratch/$name" 'not { json')" "writing $name"
    assert_bytes "$M/Scratch/$name" 'not { json'
    is_listed "$M/Scratch" "$name"
  done
  ln -s 'user@host.42' "$M/Scratch/.#s1.json"
  assert_equal 'user@host.42' "$(readlink "$M/Scratch/.#s1.json")" "emacs' lock symlink"
  assert_equal "$count" "$(error_count "$M")" "error records"
  assert_equal 0 "$(jq '.collections[] | select(.name == "Scratch") | .objects' "$M/.realmfs/status")"
}

scratch_renames_commit_and_remove() {
  new_collection Swap
  local object=$M/Swap/w1.json scratch=$M/Swap/.w1.json.tmp
  echo '{"v": 1}' >"$scratch"
  mv "$scratch" "$object"
  assert_object "$object" '{"_id": "w1", "v": 1}'
  assert_no_file "$scratch"
  printf '{"v": ' >"$scratch"
  rejects "$object" rename 'line 1, column *' py 'os.rename(A[0], A[1])' "$scratch" "$object"
  assert_bytes "$scratch" '{"v": '
  mv "$object" "$object~"
  assert_no_file "$object"
  assert_object "$object~" '{"_id": "w1", "v": 1}'
  assert_equal 0 "$(jq '.collections[] | select(.name == "Swap") | .objects' "$M/.realmfs/status")"
}

unlink_removes_object() {
  new_collection Gone
  echo '{"v":1}' >"$M/Gone/g1.json"
  echo '{"v":2}' >"$M/Gone/g2.json"
  rm "$M/Gone/g1.json"
  assert_no_file "$M/Gone/g1.json"
  assert_equal g2.json "$(ls "$M/Gone")" "listing"
  assert_equal ENOENT "$(py 'os.unlink(A[0])' "$M/Gone/g1.json")" "second unlink"
  assert_equal 1 "$(jq '.collections[] | select(.name == "Gone") | .objects' "$M/.realmfs/status")"
}

collections_are_directories() {
  assert_equal ok "$(py 'os.mkdir(A[0])' "$M/Dir")"
  assert_equal EEXIST "$(py 'os.mkdir(A[0])' "$M/Dir")" "mkdir of an existing collection"
  assert_equal EPERM "$(py 'os.mkdir(A[0])' "$M/Dir/sub")" "mkdir inside a collection"
  local file
  for file in d1.json .d1.json.swp; do  # an object, a scratch file
    echo '{"v":1}' >"$M/Dir/$file"
    assert_equal ENOTEMPTY "$(py 'os.rmdir(A[0])' "$M/Dir")" "rmdir with $file"
    rm "$M/Dir/$file"
  done
  touch "$M/Dir/pending.json"
  assert_equal ENOTEMPTY "$(py 'os.rmdir(A[0])' "$M/Dir")" "rmdir with a pending object"
  rm "$M/Dir/pending.json"
  assert_equal ok "$(py 'os.rmdir(A[0])' "$M/Dir")"
  assert_no_file "$M/Dir"
  if is_listed "$M" Dir; then echo "Dir is still listed"; return 1; fi
  assert_equal EINVAL "$(py 'os.mkdir(A[0])' "$M/bad\$name")" "a name MongoDB refuses"
}

top_level_files_are_refused() {
  local name
  for name in loose.json notes.txt; do
    assert_equal EPERM "$(py 'os.open(A[0], os.O_WRONLY | os.O_CREAT)' "$M/$name")" "creating $name"
    assert_no_file "$M/$name"
  done
  assert_equal EPERM "$(py 'os.symlink("x", A[0])' "$M/link")" "a symlink at the top"
}

# ---- schemas -------------------------------------------------------------

ITEM_SCHEMA='{"title": "Item", "bsonType": "object", "required": ["_id", "name"],
  "properties": {"_id": {"bsonType": "string"}, "name": {"bsonType": "string"},
                 "price": {"bsonType": "double"}, "qty": {"bsonType": "int"}}}'

invalid_schema_is_rejected() {
  new_collection Bogus
  local schema=$M/.realmfs/schema/Bogus.json
  echo '{"bsonType": "object"}' >"$schema"
  rejects "$schema" close '*objct*' put "$schema" '{"bsonType": "objct"}'
  rejects "$schema" close 'line 1, column *: *' put "$schema" '{"bsonType": '
  assert_object "$schema" '{"bsonType": "object"}'
}

schema_governs_objects() {
  new_collection Item
  local schema=$M/.realmfs/schema/Item.json
  assert_equal ok "$(put "$schema" "$ITEM_SCHEMA")"
  assert_object "$schema" "$ITEM_SCHEMA"
  is_listed "$M/.realmfs/schema" Item.json
  assert_equal true "$(jq '.collections[] | select(.name == "Item") | .schema' "$M/.realmfs/status")"
  assert_equal ok "$(put "$M/Item/pen.json" '{"name": "pen", "qty": 2}')"
  assert_object "$M/Item/pen.json" '{"_id": "pen", "name": "pen", "qty": 2}'
  rejects "$M/Item/pen.json" close 'name: expected string*' put "$M/Item/pen.json" '{"name": 5}'
  rejects "$M/Item/pen.json" close 'colour: field not in schema' \
    put "$M/Item/pen.json" '{"name": "pen", "colour": "red"}'
  rejects "$M/Item/pen.json" close 'name: required field is missing' put "$M/Item/pen.json" '{"qty": 1}'
  assert_equal ok "$(put "$M/Item/pen.json" '{"name": "pen", "price": 5}')" "an int where a double goes"
  assert_bytes "$M/Item/pen.json" $'{\n  "_id": "pen",\n  "name": "pen",\n  "price": 5.0\n}\n'
}

# ---- control files and metadata ---------------------------------------

status_file_describes_mount() {
  new_collection Stat
  echo '{"v":1}' >"$M/Stat/s1.json"
  echo '{"v":2}' >"$M/Stat/s2.json"
  local status=$M/.realmfs/status
  assert_equal local "$(jq -r .mode "$status")" mode
  assert_equal "$M" "$(jq -r .mountpoint "$status")" mountpoint
  assert_equal "$TEST_ROOT/basics.data" "$(jq -r .data "$status")" data
  assert_equal '{"name":"Stat","objects":2,"schema":false}' \
    "$(jq -c '.collections[] | select(.name == "Stat")' "$status")" "Stat entry"
  assert_equal "$(jq '[.collections[].objects] | add' "$status")" "$(jq .objects "$status")" "total objects"
  jq -e '.store.file_bytes > 0 and .store.used_bytes > 0' "$status" >/dev/null
  kill -0 "$(daemon_pid "$M")"
  assert_equal EACCES "$(py 'os.open(A[0], os.O_WRONLY)' "$status")" "writing the status file"
}

status_command_prints_summary() {
  new_collection Summary
  echo '{"v":1}' >"$M/Summary/s1.json"
  local text
  text=$("$REALMFS" status "$M")
  grep -qxF "mount:       $M (local, no server)" <<<"$text"
  grep -qxF "data:        $TEST_ROOT/basics.data" <<<"$text"
  grep -qE "^daemon:      pid $(daemon_pid "$M"), realmfs [0-9.]+, mounted " <<<"$text"
  grep -qE '^ *Summary: 1 object$' <<<"$text" || { echo "no Summary line in:"; echo "$text"; return 1; }
  assert_equal "$(jq -c 'del(.errors, .store)' "$M/.realmfs/status")" \
    "$("$REALMFS" status --json "$M" | jq -c 'del(.errors, .store)')" "status --json"
}

xattrs_are_not_supported() {
  new_collection Xattr
  echo '{"v":1}' >"$M/Xattr/x1.json"
  local call
  for call in 'os.setxattr(A[0], "user.a", b"1")' 'os.getxattr(A[0], "user.a")'; do
    assert_equal ENOTSUP "$(py "$call" "$M/Xattr/x1.json")" "$call"
  done
}

metadata_changes_succeed() {
  new_collection Meta
  echo '{"v":1}' >"$M/Meta/m1.json"
  chmod 600 "$M/Meta/m1.json"
  chown "$(id -u):$(id -g)" "$M/Meta/m1.json"
  touch -d '2020-01-02 03:04:05 UTC' "$M/Meta/m1.json"
  assert_equal 1577934245 "$(stat -c %Y "$M/Meta/m1.json")" "mtime after touch -d"
  assert_object "$M/Meta/m1.json" '{"_id": "m1", "v": 1}'
}

many_objects_are_listed_once() {
  new_collection Many
  python3 -c 'import os, sys
for i in range(3000):
    with open(f"{sys.argv[1]}/n{i:04}.json", "w") as f:
        f.write("{\"i\": %d}" % i)' "$M/Many"
  assert_equal 3000 "$(ls "$M/Many" | wc -l)" "ls | wc -l"
  diff <(ls "$M/Many") <(seq -f 'n%04g.json' 0 2999)
  local first
  first=$(ls -f "$M/Many")
  assert_equal 3002 "$(wc -l <<<"$first")" "ls -f entries (with . and ..)"
  assert_equal "$first" "$(ls -f "$M/Many")" "ls -f order on a second listing"
  assert_equal 3000 "$(find "$M/Many" -type f | sort -u | wc -l)" "find"
}

find_newer_finds_updates() {
  new_collection Newer
  local object reference=$TEST_ROOT/reference
  for object in f1 f2 f3; do echo '{"v":1}' >"$M/Newer/$object.json"; done
  sleep 0.05
  touch "$reference"
  sleep 0.05
  echo '{"v":2}' >"$M/Newer/f2.json"
  assert_equal "$M/Newer/f2.json" "$(find "$M/Newer" -newer "$reference" -type f)" "find -newer"
}

# ---- renames ---------------------------------------------------------------

rename_changes_id() {
  new_collection Moves
  echo '{"v":1}' >"$M/Moves/r1.json"
  local inode
  inode=$(stat -c %i "$M/Moves/r1.json")
  mv "$M/Moves/r1.json" "$M/Moves/r2.json"
  assert_no_file "$M/Moves/r1.json"
  assert_object "$M/Moves/r2.json" '{"_id": "r2", "v": 1}'
  assert_equal "$inode" "$(stat -c %i "$M/Moves/r2.json")" "inode after the rename"
  mv "$M/Moves/r2.json" "$M/Moves/17.json"
  assert_object "$M/Moves/17.json" '{"_id": 17, "v": 1}'
  echo '{"v":2}' >"$M/Moves/r3.json"
  mv "$M/Moves/17.json" "$M/Moves/r3.json"  # replaces r3
  assert_object "$M/Moves/r3.json" '{"_id": "r3", "v": 1}'
  assert_equal r3.json "$(ls "$M/Moves")" "listing"
  assert_equal 1 "$(jq '.collections[] | select(.name == "Moves") | .objects' "$M/.realmfs/status")"
}

# The kernel keeps collection listings (cache_readdir): each change must
# show in the next listing of the same directory.
listings_follow_every_change() {
  new_collection Listed
  local listing
  listing() { ls -a "$M/Listed" | tr '\n' ' '; }
  assert_equal ". .. " "$(listing)" "empty"
  echo '{"v":1}' >"$M/Listed/a.json"
  assert_equal ". .. a.json " "$(listing)" "after a create"
  touch "$M/Listed/p.json"
  assert_equal ". .. a.json p.json " "$(listing)" "with a pending file"
  mv "$M/Listed/a.json" "$M/Listed/b.json"
  assert_equal ". .. b.json p.json " "$(listing)" "after a rename"
  echo '{"v":2}' >"$M/Listed/.b.json.swp"
  assert_equal ". .. .b.json.swp b.json p.json " "$(listing)" "with a scratch file"
  mv "$M/Listed/.b.json.swp" "$M/Listed/c.json"
  assert_equal ". .. b.json c.json p.json " "$(listing)" "after a scratch file became an object"
  rm "$M/Listed/b.json" "$M/Listed/p.json"
  assert_equal ". .. c.json " "$(listing)" "after deletes"
  assert_object "$M/Listed/c.json" '{"_id": "c", "v": 2}'
}

rename_across_collections() {
  new_collection From
  new_collection To
  echo '{"v":1}' >"$M/From/x1.json"
  assert_equal EXDEV "$(py 'os.rename(A[0], A[1])' "$M/From/x1.json" "$M/To/x1.json")" "rename(2)"
  mv "$M/From/x1.json" "$M/To/"
  assert_no_file "$M/From/x1.json"
  assert_object "$M/To/x1.json" '{"_id": "x1", "v": 1}'
}

ok "--version prints the version" version_is_printed
ok "--help lists the commands; unknown command exits 2" help_lists_commands
ok "status and unmount of a directory that is not a mount fail" commands_on_a_non_mount_fail
ok "mount on a missing directory fails with a message" mount_on_missing_directory_fails
ok "mounting a served data directory again is refused" same_data_mounted_twice_is_refused
ok "object written without _id is stored canonically, _id first" object_without_id_is_stored_canonically
ok "an _id given later in the content is moved first" id_given_later_is_moved_first
ok "sizes are exact byte lengths (stat, wc -c, ls -l)" sizes_are_exact_byte_lengths
ok "a 2 MB object round-trips" large_object_round_trips
ok "inode is stable across stat, ls and updates" inode_is_stable
ok "mtime changes on update" mtime_changes_on_update
ok "ObjectId, int and escaped string ids map to names" ids_map_to_names
ok "long string ids use hashed names" long_ids_use_hashed_names
ok "invalid JSON fails close() with EINVAL and is logged with line/column" invalid_json_is_rejected
ok "an _id that does not match the name is rejected" id_mismatch_is_rejected
ok "a new empty file is pending until written" empty_file_is_pending_until_written
ok "emptying an object keeps the previous version" emptying_an_object_keeps_it
ok "O_EXCL on an existing or pending object fails with EEXIST" exclusive_create_of_existing_fails
ok "appends: fragment to an object rejected, to a pending file works" appends_behave_as_on_disk
ok "writes at offsets edit the draft in place" writes_at_offsets
ok "ftruncate then rewrite; truncated JSON rejected" ftruncate_then_rewrite
ok "two write handles keep their own drafts" concurrent_handles_keep_own_drafts
ok "read handles never validate" read_handles_never_validate
ok "readers see the stored version beside another handle's draft" readers_see_stored_version_beside_draft
ok "editor and tool scratch names are plain files, never validated" scratch_names_are_plain_files
ok "renames: scratch onto object commits (invalid: EINVAL), object to scratch removes" \
  scratch_renames_commit_and_remove
ok "unlink removes an object" unlink_removes_object
ok "mkdir/rmdir of collections, ENOTEMPTY, EEXIST, EPERM" collections_are_directories
ok "files at the top level are refused with EPERM" top_level_files_are_refused
ok "an invalid schema is rejected" invalid_schema_is_rejected
ok "a schema types objects: wrong type, extra field, missing field, int to double" schema_governs_objects
ok ".realmfs/status describes the mount" status_file_describes_mount
ok "realmfs status prints a summary" status_command_prints_summary
ok "xattrs fail with ENOTSUP" xattrs_are_not_supported
ok "chmod, chown and touch -d succeed" metadata_changes_succeed
ok "3,000 objects are listed exactly once, in a stable order" many_objects_are_listed_once
ok "find -newer finds the updated object" find_newer_finds_updates
ok "rename within a collection changes the _id" rename_changes_id
ok "rename across collections is EXDEV; mv copies" rename_across_collections
ok "a collection's listing follows every change" listings_follow_every_change
finish
