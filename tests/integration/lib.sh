# shellcheck shell=bash
# Shared helpers for the integration tests: each test script sources this,
# mounts realms in a temporary directory with the real binary, and reports
# TAP so meson counts every case.
#
# Each case is a function run by `ok` in its own background subshell with
# `set -e`: any failing command or assertion ends the case as failed, and a
# case that runs longer than CASE_TIMEOUT seconds is killed and failed.
#
# Environment: REALMFS = path of the realmfs binary (set by meson).

set -u
: "${REALMFS:?set REALMFS to the realmfs binary}"
CASE_TIMEOUT=${CASE_TIMEOUT:-90}
TEST_ROOT=$(mktemp -d /tmp/realmfs-test.XXXXXX)
tap_count=0
tap_failures=0
cleanup_commands=()

# Every FUSE mount under TEST_ROOT, including those made inside cases
# (subshells), so none outlives the script.
test_mounts() {
  local mountpoint
  while read -r _ mountpoint _; do
    if [[ $mountpoint == "$TEST_ROOT"/* ]]; then
      echo "$mountpoint"
    fi
  done </proc/self/mounts
}

cleanup() {
  local command mountpoint
  for command in "${cleanup_commands[@]}"; do
    eval "$command" || true
  done
  for mountpoint in $(test_mounts); do
    fusermount3 -u "$mountpoint" 2>/dev/null || fusermount3 -uz "$mountpoint" 2>/dev/null
  done
  rm -rf --one-file-system "$TEST_ROOT"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# on_cleanup COMMAND: run COMMAND (a string) when the script exits.
on_cleanup() {
  cleanup_commands+=("$1")
}

bail_out() {
  echo "Bail out! $*"
  exit 1
}

# mount_realm NAME [extra mount options...]: mounts $TEST_ROOT/NAME with
# data in $TEST_ROOT/NAME.data; prints the mountpoint.
mount_realm() {
  local name=$1; shift
  local mountpoint=$TEST_ROOT/$name
  mkdir -p "$mountpoint"
  "$REALMFS" mount --data "$TEST_ROOT/$name.data" "$@" "$mountpoint" || return 1
  echo "$mountpoint"
}

unmount_realm() {
  "$REALMFS" unmount "$1"
}

# The daemon serving a mount, from its status file.
daemon_pid() {
  jq -er .pid "$1/.realmfs/status"
}

# kill_tree PID: kills PID and every process it started (stopping each
# parent first so it cannot start more while its children are killed).
kill_tree() {
  local child
  kill -STOP "$1" 2>/dev/null || return 0
  for child in $(ps -o pid= --ppid "$1"); do
    kill_tree "$child"
  done
  kill -KILL "$1" 2>/dev/null
}

# ok DESCRIPTION COMMAND...: one TAP case that passes when COMMAND succeeds.
ok() {
  local description=$1; shift
  tap_count=$((tap_count + 1))
  local log=$TEST_ROOT/case-$tap_count.log status
  (
    set -e
    shopt -s inherit_errexit
    "$@"
  ) >"$log" 2>&1 </dev/null &
  local case_pid=$!
  (
    sleep "$CASE_TIMEOUT"
    echo "case timed out after $CASE_TIMEOUT s" >>"$log"
    kill_tree "$case_pid"
  ) &
  local watchdog_pid=$!
  wait "$case_pid" 2>/dev/null  # no "Killed" notice from bash
  status=$?
  kill_tree "$watchdog_pid"
  wait "$watchdog_pid" 2>/dev/null
  if [[ $status -eq 0 ]]; then
    echo "ok $tap_count - $description"
  else
    tap_failures=$((tap_failures + 1))
    echo "not ok $tap_count - $description"
    sed 's/^/#   /' "$log"
  fi
  rm -f "$log"
}

# Assertions for use inside test functions: they print what differed.
assert_equal() {  # assert_equal EXPECTED ACTUAL [WHAT]
  if [[ "$1" != "$2" ]]; then
    printf 'expected %s: [%s]\n     got: [%s]\n' "${3:-value}" "$1" "$2"
    return 1
  fi
}

assert_file_equals() {  # assert_file_equals FILE EXPECTED_CONTENT
  local actual
  actual=$(cat "$1") || return 1
  assert_equal "$2" "$actual" "content of $1"
}

assert_match() {  # assert_match GLOB ACTUAL [WHAT]
  # shellcheck disable=SC2053  # GLOB is a pattern
  if [[ $2 != $1 ]]; then
    printf 'expected %s matching: [%s]\n              got: [%s]\n' "${3:-value}" "$1" "$2"
    return 1
  fi
}

# assert_bytes FILE EXPECTED: FILE holds exactly the bytes of EXPECTED
# (unlike assert_file_equals, trailing newlines count).
assert_bytes() {
  local expected=$TEST_ROOT/expected.$BASHPID
  printf '%s' "$2" >"$expected"
  if ! cmp -s "$expected" "$1"; then
    echo "bytes of $1 differ from the expected ones (diff expected actual):"
    diff "$expected" "$1" || true
    rm -f "$expected"
    return 1
  fi
  rm -f "$expected"
}

# canonical JSON: the canonical pretty text of a JSON object whose values
# are strings, integers, booleans, null, arrays and objects, for which
# jq's two-space output is exactly realmfs's canonical form.
canonical() {
  jq --indent 2 . <<<"$1"
}

# assert_object FILE JSON: FILE holds the canonical text of JSON, byte for byte.
assert_object() {
  assert_bytes "$1" "$(canonical "$2")"$'\n'
}

# is_listed DIR NAME: `ls -a DIR` shows NAME.
is_listed() {
  # shellcheck disable=SC2010  # the listing itself is under test
  ls -a "$1" | grep -qxF -- "$2"
}

# assert_no_file PATH
assert_no_file() {
  if [[ -e $1 || -L $1 ]]; then
    echo "$1 exists and should not"
    return 1
  fi
}

# py CODE [ARG...]: runs the Python statements CODE (os, errno and sys
# imported, the arguments in the list A) and prints "ok", or the errno name
# of the OSError it raised: a test sees exactly how close() or fsync() failed.
py() {
  python3 -c 'import errno, os, sys
A = sys.argv[2:]
try:
    exec(sys.argv[1])
except OSError as error:
    print(errno.errorcode.get(error.errno, error.errno))
else:
    print("ok")' "$@"
}

# put FILE CONTENT: writes CONTENT to FILE through one handle (created or
# truncated) and prints "ok" or the errno name of the failing call.
put() {
  py 'fd = os.open(A[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, A[1].encode())
os.close(fd)' "$@"
}

# The last record of a mount's error log, as "PATH|OPERATION|ERROR|REASON".
last_error() {
  tail -n 1 "$1/.realmfs/errors" | jq -er '[.path, .operation, .error, .reason] | join("|")'
}

# Number of records in a mount's error log.
error_count() {
  local count
  count=$(wc -l <"$1/.realmfs/errors")
  echo "$count"
}

error_count_is() {  # error_count_is MOUNT N
  [[ $(error_count "$1") -eq $2 ]]
}

# The mountpoint a path is under (the nearest directory holding .realmfs).
mount_of() {
  local dir
  dir=$(dirname "$1")
  until [[ -d $dir/.realmfs || $dir == / ]]; do
    dir=$(dirname "$dir")
  done
  echo "$dir"
}

# rejects FILE OPERATION REASON WRITER [ARG...]: WRITER (which prints "ok"
# or an errno name, like put) must print EINVAL, leave FILE's bytes as they
# were, and add one record to the error log naming FILE, OPERATION and a
# reason matching the glob REASON.  A FILE that did not exist must be left
# empty (created, and pending since nothing valid was written).
rejects() {
  local file=$1 operation=$2 reason=$3; shift 3
  local mount before=. count result
  mount=$(mount_of "$file")
  if [[ -e $file ]]; then
    before=$(cat "$file"; echo .)  # the dot keeps trailing newlines
  fi
  count=$(error_count "$mount")
  result=$("$@")
  assert_equal EINVAL "$result" "result of $*"
  assert_bytes "$file" "${before%.}"
  assert_equal $((count + 1)) "$(error_count "$mount")" "number of error records"
  assert_match "${file#"$mount"/}|$operation|EINVAL|$reason" "$(last_error "$mount")" "error record"
}

# The file name of a string _id too long to be its own name (object_name.h):
# 200 bytes of it, "%~", and the 64-bit FNV-1a hash of all of it (for
# ASCII ids that need no escapes).
hashed_name() {
  python3 -c 'import sys
id = sys.argv[1].encode()
h = 0xcbf29ce484222325
for byte in id:
    h = ((h ^ byte) * 0x100000001b3) % 2**64
print(f"{id[:200].decode()}%~{h:016x}.json")' "$1"
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s until it
# succeeds (0) or SECONDS pass (1).
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.1
  done
}

# open_item_rules APP: in APP, a copy of the sync-todo export, every user
# reads and writes every Item: for tests about syncing rather than about
# the app's rules (test_rules.sh has those).
open_item_rules() {
  cat >"$1/data_sources/mongodb-atlas/todo/Item/rules.json" <<'EOF'
{"collection": "Item", "database": "todo",
 "roles": [{"name": "everyone", "apply_when": {}, "document_filters": {"read": true, "write": true},
            "read": true, "write": true, "insert": true, "delete": true}]}
EOF
}

# without_development_mode APP: the app copy APP is not in Development
# Mode, so the server refuses a subscription to a field that is not
# queryable instead of making it queryable.
without_development_mode() {
  local config=$1/sync/config.json
  jq '.development_mode_enabled = false' "$config" >"$config.new" && mv "$config.new" "$config"
}

finish() {
  echo "1..$tap_count"
  [[ $tap_failures -eq 0 ]]
}
