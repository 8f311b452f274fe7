#!/usr/bin/env bash
# What survives: successful closes and fsyncs survive the daemon being
# killed, failed writes never damage stored objects, and unmounting then
# remounting shows the same tree.  Each case uses its own realm.
# shellcheck source-path=SCRIPTDIR source=lib.sh
# shellcheck disable=SC2016  # $date and $oid are Extended JSON, not shell
source "$(dirname "$0")/lib.sh"

# process_is_gone PID: PID has exited (it may be a zombie nobody reaped yet).
process_is_gone() {
  local state
  state=$(ps -o stat= -p "$1") || return 0
  [[ $state == Z* ]]
}

# crash REALM: kill -9 the daemon of mount REALM, then clear the dead mount.
crash() {
  local mountpoint=$TEST_ROOT/$1 pid
  pid=$(daemon_pid "$mountpoint")
  kill -KILL "$pid"
  wait_until 10 process_is_gone "$pid"
  fusermount3 -u "$mountpoint"
}

# remount REALM: mounts REALM's data again; start-up must be silent.
remount() {
  local output
  output=$(mount_realm "$1" 2>&1)
  assert_equal "$TEST_ROOT/$1" "$output" "output of the mount"
}

# manifest MOUNT: every file of a mount but the generated ones, with a
# checksum, in a stable order.
manifest() {
  (cd "$1" && find . -path ./.realmfs/status -prune -o -path ./.realmfs/errors -prune -o -type f -print0 |
    sort -z | xargs -0 sha256sum)
}

closed_writes_survive_kill() {
  local m
  m=$(mount_realm crash)
  mkdir "$m/Task"
  local i
  for ((i = 0; i < 200; i++)); do
    printf '{"i": %d}' "$i" >"$m/Task/t$i.json"
  done
  assert_equal ok "$(put "$m/Task/last.json" '{"done": true}')"
  local before
  before=$(manifest "$m")
  crash crash
  remount crash
  assert_equal "$before" "$(manifest "$m")" "files after the crash"
  assert_object "$m/Task/last.json" '{"_id": "last", "done": true}'
  assert_equal 201 "$(jq '.objects' "$m/.realmfs/status")" "stored objects"
  unmount_realm "$m"
}

fsynced_draft_survives_kill() {
  local m pid
  m=$(mount_realm fsynced)
  mkdir "$m/Task"
  echo '{"v": 1}' >"$m/Task/f1.json"
  pid=$(daemon_pid "$m")
  # fsync a new version, then kill the daemon while the file is still open
  assert_equal ok "$(py 'fd = os.open(A[0], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{\"v\": 2}")
os.fsync(fd)
os.kill(int(A[1]), 9)' "$m/Task/f1.json" "$pid")"
  wait_until 10 process_is_gone "$pid"
  fusermount3 -u "$m"
  remount fsynced
  assert_object "$m/Task/f1.json" '{"_id": "f1", "v": 2}'
  unmount_realm "$m"
}

failed_writes_leave_store_intact() {
  local m
  m=$(mount_realm failed)
  mkdir "$m/Task"
  echo '{"v": 1}' >"$m/Task/k1.json"
  rejects "$m/Task/k1.json" close 'line 1, column *' put "$m/Task/k1.json" '{"v": 2'
  printf '{"v": ' >"$m/Task/.k1.json.tmp"
  rejects "$m/Task/k1.json" rename 'line 1, column *' py 'os.rename(A[0], A[1])' "$m/Task/.k1.json.tmp" "$m/Task/k1.json"
  local records
  records=$(error_count "$m")
  unmount_realm "$m"
  remount failed
  assert_object "$m/Task/k1.json" '{"_id": "k1", "v": 1}'
  assert_equal "$records" "$(error_count "$m")" "error records kept across the remount"
  assert_equal '{"v": ' "$(cat "$m/Task/.k1.json.tmp")" "the scratch file"
  unmount_realm "$m"
}

remount_shows_everything() {
  local m
  m=$(mount_realm remount)
  mkdir "$m/Task" "$m/Item" "$m/Empty"
  echo '{"title": "x", "tags": ["a"], "when": {"$date": "2024-05-01T12:00:00Z"}}' >"$m/Task/a1.json"
  local name
  for name in 6650f0c2e4b0a1b2c3d4e5f6 42 %342 a%2Fb %2Ehidden; do
    echo '{"v": 1}' >"$m/Task/$name.json"
  done
  echo '{"bsonType": "object", "properties": {"_id": {"bsonType": "string"}, "price": {"bsonType": "double"}}}' \
    >"$m/.realmfs/schema/Item.json"
  echo '{"price": 3}' >"$m/Item/pen.json"
  echo 'swap' >"$m/Task/.a1.json.swp"
  local long_id
  long_id=L$(printf 'z%.0s' {1..300})
  echo "{\"_id\": \"$long_id\"}" >"$m/Task/$(hashed_name "$long_id")"
  local before
  before=$(manifest "$m")
  unmount_realm "$m"
  remount remount
  assert_equal "$before" "$(manifest "$m")" "files after the remount"
  assert_equal "Empty Item Task" "$(find "$m" -mindepth 1 -maxdepth 1 -not -name .realmfs -printf '%f\n' | sort | paste -sd ' ')" \
    "collections"
  assert_bytes "$m/Item/pen.json" $'{\n  "_id": "pen",\n  "price": 3.0\n}\n'
  assert_equal "$long_id" "$(jq -r ._id "$m/Task/$(hashed_name "$long_id")")" "the long _id"
  unmount_realm "$m"
}

unmount_waits_for_daemon() {
  local m pid
  m=$(mount_realm waited)
  mkdir "$m/Task"
  echo '{"v": 1}' >"$m/Task/u1.json"
  pid=$(daemon_pid "$m")
  unmount_realm "$m"
  process_is_gone "$pid" || { echo "daemon $pid still runs after realmfs unmount returned"; return 1; }
  if test_mounts | grep -qx "$m"; then echo "$m is still mounted"; return 1; fi
  # the data directory is free at once
  remount waited
  assert_object "$m/Task/u1.json" '{"_id": "u1", "v": 1}'
  unmount_realm "$m"
}

# A daemon that exits stays a zombie until whoever inherited it reaps it;
# some parents (a container's PID 1, a subreaper) never do.  unmount must
# see that the daemon is done anyway.
unmount_does_not_wait_for_reaping() {
  local mountpoint=$TEST_ROOT/unreaped keeper
  mkdir -p "$mountpoint"
  # a subreaper that inherits the daemon and never waits for it
  python3 -c 'import ctypes, subprocess, sys, time
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
subprocess.run(sys.argv[1:], check=True)
time.sleep(60)' "$REALMFS" mount --data "$TEST_ROOT/unreaped.data" "$mountpoint" &
  keeper=$!
  # shellcheck disable=SC2064  # keeper is known now
  trap "kill $keeper 2>/dev/null" EXIT  # this case's subshell only
  wait_until 10 test -f "$mountpoint/.realmfs/status"
  local status=0
  timeout 20 "$REALMFS" unmount --timeout 5 "$mountpoint" || status=$?
  assert_equal 0 "$status" "exit status of realmfs unmount"
  remount unreaped
  unmount_realm "$mountpoint"
}

fsync_validates_draft() {
  local m
  m=$(mount_realm fsync)
  mkdir "$m/Task"
  echo '{"v": 1}' >"$m/Task/s1.json"
  # a valid draft is committed by fsync, before close
  assert_equal ok "$(py 'fd = os.open(A[0], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{\"v\": 2}")
os.fsync(fd)
stored = open(A[0]).read()
assert stored == "{\n  \"_id\": \"s1\",\n  \"v\": 2\n}\n", stored
os.close(fd)' "$m/Task/s1.json")"
  # an invalid draft fails fsync, and then close, with EINVAL
  local records
  records=$(error_count "$m")
  assert_equal $'fsync: EINVAL\nEINVAL' "$(py 'fd = os.open(A[0], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"{\"v\": }")
try:
    os.fsync(fd)
except OSError as error:
    print("fsync:", errno.errorcode[error.errno])
os.close(fd)' "$m/Task/s1.json")"
  assert_object "$m/Task/s1.json" '{"_id": "s1", "v": 2}'
  assert_equal "Task/s1.json|fsync Task/s1.json|close" \
    "$(tail -n 2 "$m/.realmfs/errors" | jq -r '.path + "|" + .operation' | paste -sd ' ')" "error records"
  assert_equal $((records + 2)) "$(error_count "$m")" "number of error records"
  # dd reports the failed fsync
  local status=0 message
  message=$(printf '{"v": ' | dd of="$m/Task/s1.json" conv=fsync status=none 2>&1) || status=$?
  assert_equal 1 "$status" "dd's exit status"
  assert_match "*fsync failed for*Invalid argument" "$message" "dd's message"
  assert_object "$m/Task/s1.json" '{"_id": "s1", "v": 2}'
  unmount_realm "$m"
}

ok "closed writes survive kill -9 of the daemon" closed_writes_survive_kill
ok "an fsync'd draft survives kill -9 before close" fsynced_draft_survives_kill
ok "failed writes never damage the stored object, across a remount" failed_writes_leave_store_intact
ok "unmount and remount shows every collection, object, schema and scratch file" remount_shows_everything
ok "realmfs unmount returns after the daemon exits" unmount_waits_for_daemon
ok "realmfs unmount does not wait for the daemon's exit to be reaped" unmount_does_not_wait_for_reaping
ok "fsync commits a valid draft and fails with EINVAL on an invalid one" fsync_validates_draft
finish
