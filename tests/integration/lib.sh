# Shared helpers for the integration tests: each test script sources this,
# mounts realms in a temporary directory with the real binary, and reports
# TAP so meson counts every case.
#
# Environment: REALMFS = path of the realmfs binary (set by meson).

set -u
: "${REALMFS:?set REALMFS to the realmfs binary}"
TEST_ROOT=$(mktemp -d /tmp/realmfs-test.XXXXXX)
tap_count=0
tap_failures=0
mounted=()

cleanup() {
  local mountpoint
  for mountpoint in "${mounted[@]}"; do
    fusermount3 -u "$mountpoint" 2>/dev/null || fusermount3 -uz "$mountpoint" 2>/dev/null
  done
  rm -rf "$TEST_ROOT"
}
trap cleanup EXIT

# mount_realm NAME [extra mount options...]: mounts $TEST_ROOT/NAME with
# data in $TEST_ROOT/NAME.data; prints the mountpoint.
mount_realm() {
  local name=$1; shift
  local mountpoint=$TEST_ROOT/$name
  mkdir -p "$mountpoint"
  "$REALMFS" mount --data "$TEST_ROOT/$name.data" "$@" "$mountpoint" || return 1
  mounted+=("$mountpoint")
  echo "$mountpoint"
}

unmount_realm() {
  "$REALMFS" unmount "$1"
}

# ok DESCRIPTION COMMAND...: one TAP case that passes when COMMAND succeeds.
ok() {
  local description=$1; shift
  tap_count=$((tap_count + 1))
  local output
  if output=$("$@" 2>&1); then
    echo "ok $tap_count - $description"
  else
    tap_failures=$((tap_failures + 1))
    echo "not ok $tap_count - $description"
    printf '%s\n' "$output" | sed 's/^/#   /'
  fi
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

finish() {
  echo "1..$tap_count"
  [[ $tap_failures -eq 0 ]]
}
