#!/usr/bin/env bash
# Synced mounts (docs/sync.md): two mounts of different users against a real
# realmfs-server on loopback.  Changes made through one mount's files must
# appear in the other's, offline changes must wait and go up on reconnect,
# and a refused login must fail before anything is mounted.
#
# Environment: REALMFS, REALMFS_SERVER (the server binary), REALMFS_EXPORTS
# (the App Services exports).
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
: "${REALMFS_SERVER:?set REALMFS_SERVER to the realmfs-server binary}"
: "${REALMFS_EXPORTS:?set REALMFS_EXPORTS to the App Services exports}"

APP=$TEST_ROOT/app
SERVER_DATA=$TEST_ROOT/server.data
SERVER_LOG=$TEST_ROOT/server.log
SERVER_PID_FILE=$TEST_ROOT/server.pid
SERVER_PORT=0
cp -r "$REALMFS_EXPORTS/sync-todo" "$APP"
open_item_rules "$APP"
without_development_mode "$APP"
APP_ID=$(jq -er .app_id "$APP/realm_config.json")
cat >"$APP/auth/providers.json" <<'EOF'
{"local-userpass": {"name": "local-userpass", "type": "local-userpass", "disabled": false},
 "api-key": {"name": "api-key", "type": "api-key", "disabled": false},
 "anon-user": {"name": "anon-user", "type": "anon-user", "disabled": true}}
EOF

# listening_since LINE: the server log, from LINE on, says it listens.
listening_since() {
  tail -n +"$1" "$SERVER_LOG" | grep -q " info listening on "
}

# start_server: runs the server on SERVER_PORT (a free one the first time,
# the same one after a restart, so mounts find it again).  Cases run in
# subshells, so the server's pid is kept in a file.
start_server() {
  local lines
  lines=$(wc -l <"$SERVER_LOG")
  "$REALMFS_SERVER" serve --app "$APP" --data "$SERVER_DATA" \
    --listen "127.0.0.1:$SERVER_PORT" --log-level info >/dev/null 2>>"$SERVER_LOG" </dev/null &
  echo $! >"$SERVER_PID_FILE"
  wait_until 15 listening_since $((lines + 1)) || return 1
  if [[ $SERVER_PORT == 0 ]]; then
    SERVER_PORT=$(grep -m1 -o 'ws://127.0.0.1:[0-9]*' "$SERVER_LOG" | sed 's/.*://')
  fi
}

# stop_server [SIGNAL]: stops the server (TERM: it shuts down in order).
stop_server() {
  local pid
  pid=$(cat "$SERVER_PID_FILE")
  kill -"${1:-TERM}" "$pid"
  wait_until 10 bash -c "! kill -0 $pid 2>/dev/null"
}
on_cleanup 'kill -CONT "$(cat "$SERVER_PID_FILE")" 2>/dev/null; kill "$(cat "$SERVER_PID_FILE")" 2>/dev/null'

server_url() {
  echo "ws://127.0.0.1:$SERVER_PORT"
}

mkdir -p "$SERVER_DATA"
touch "$SERVER_LOG"
printf 'alice-password\n' >"$TEST_ROOT/alice.password"
printf 'wrong-password\n' >"$TEST_ROOT/wrong.password"
"$REALMFS_SERVER" user add --data "$SERVER_DATA" alice@example.com \
  --password-file "$TEST_ROOT/alice.password" >/dev/null || bail_out "cannot add alice"
BOB_ID=$("$REALMFS_SERVER" user add --data "$SERVER_DATA" bob@example.com \
  --password-file "$TEST_ROOT/alice.password") || bail_out "cannot add bob"
"$REALMFS_SERVER" apikey add --data "$SERVER_DATA" bob-key --user "$BOB_ID" \
  >"$TEST_ROOT/bob.key" || bail_out "cannot add an API key"
"$REALMFS_SERVER" user add --data "$SERVER_DATA" carol@example.com \
  --password-file "$TEST_ROOT/alice.password" >/dev/null || bail_out "cannot add carol"
start_server || bail_out "the server did not start: $(cat "$SERVER_LOG")"

# mount_alice NAME / mount_bob NAME: synced mounts as each user.
mount_alice() {
  mount_realm "$1" --server "$(server_url)" --app "$APP_ID" \
    --user alice@example.com --password-file "$TEST_ROOT/alice.password"
}
mount_bob() {
  mount_realm "$1" --server "$(server_url)" --app "$APP_ID" \
    --api-key-file "$TEST_ROOT/bob.key"
}
mount_carol() {
  mount_realm "$1" --server "$(server_url)" --app "$APP_ID" \
    --user carol@example.com --password-file "$TEST_ROOT/alice.password"
}

# paused MOUNT COMMAND...: runs COMMAND while MOUNT's daemon is stopped, so
# that its sync thread sends nothing meanwhile (COMMAND must not touch
# MOUNT's files, which would hang).
paused() {
  local pid status=0
  pid=$(daemon_pid "$1"); shift
  kill -STOP "$pid"
  "$@" || status=$?
  kill -CONT "$pid"
  return "$status"
}

# both_show ID JSON: the object reads as JSON on mounts A and B.
both_show() {
  local expected mount
  expected=$(canonical "$2")
  for mount in "$A" "$B"; do
    wait_until 20 bash -c "[[ \$(cat '$mount/Item/$1.json' 2>/dev/null) == '$expected' ]]" ||
      assert_object "$mount/Item/$1.json" "$2" || return 1
  done
}

# gone_from MOUNT... ID: the object leaves every mount named.
gone_from() {
  local id=${*: -1} mount
  for mount in "${@:1:$#-1}"; do
    wait_until 20 bash -c "! test -e '$mount/Item/$id.json'" || return 1
  done
}

# subscribe MOUNT NAME PREDICATE: the mount's subscription NAME on Item.
subscribe() {
  mkdir -p "$1/.realmfs/subscriptions/Item"
  printf '%s\n' "$3" >"$1/.realmfs/subscriptions/Item/$2"
}

# item ID OWNER SUMMARY DONE: an Item document as the app's schema wants it.
item() {
  printf '{"_id": {"$oid": "%s"}, "owner_id": "%s", "summary": "%s", "isComplete": %s}' \
    "$1" "$2" "$3" "$4"
}

# ---- login ----------------------------------------------------------------

refuses_wrong_password() {
  mkdir -p "$TEST_ROOT/refused"
  local output status=0
  output=$("$REALMFS" mount --data "$TEST_ROOT/refused.data" --server "$(server_url)" \
    --app "$APP_ID" --user alice@example.com --password-file "$TEST_ROOT/wrong.password" \
    "$TEST_ROOT/refused" 2>&1) || status=$?
  assert_equal 1 "$status" "exit status"
  assert_match "*refused the login*401*" "$output" "message"
  ! mountpoint -q "$TEST_ROOT/refused"
}

refuses_unknown_app() {
  mkdir -p "$TEST_ROOT/no-app"
  local output status=0
  output=$("$REALMFS" mount --data "$TEST_ROOT/no-app.data" --server "$(server_url)" \
    --app no-such-app --user alice@example.com --password-file "$TEST_ROOT/alice.password" \
    "$TEST_ROOT/no-app" 2>&1) || status=$?
  assert_equal 1 "$status" "exit status"
  assert_match "*404*" "$output" "message"
  ! mountpoint -q "$TEST_ROOT/no-app"
}

first_mount_needs_the_server() {
  mkdir -p "$TEST_ROOT/no-server"
  local output status=0 port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  output=$("$REALMFS" mount --data "$TEST_ROOT/no-server.data" --server "ws://127.0.0.1:$port" \
    --app "$APP_ID" --anonymous "$TEST_ROOT/no-server" 2>&1) || status=$?
  assert_equal 1 "$status" "exit status"
  assert_match "*cannot reach the server*" "$output" "message"
  ! mountpoint -q "$TEST_ROOT/no-server"
}

needs_a_login() {
  local status=0
  "$REALMFS" mount --server "$(server_url)" --app "$APP_ID" "$TEST_ROOT/x" 2>/dev/null ||
    status=$?
  assert_equal 2 "$status" "exit status"
}

ok "a wrong password fails the mount before anything is mounted" refuses_wrong_password
ok "an unknown app fails the mount" refuses_unknown_app
ok "a first mount without a server fails" first_mount_needs_the_server
ok "a synced mount needs a login" needs_a_login

# ---- two mounts -------------------------------------------------------------

A=$(mount_alice alice) || bail_out "cannot mount as alice"
B=$(mount_bob bob) || bail_out "cannot mount as bob"
subscribe "$A" all TRUEPREDICATE
subscribe "$B" all TRUEPREDICATE
ID1=6650f0c2e4b0a1b2c3d4e501
ID2=6650f0c2e4b0a1b2c3d4e502
ID3=6650f0c2e4b0a1b2c3d4e503

create_appears_on_the_other_mount() {
  item $ID1 alice "buy milk" false >"$A/Item/$ID1.json"
  wait_until 10 test -e "$B/Item/$ID1.json"
  assert_object "$B/Item/$ID1.json" "$(item $ID1 alice "buy milk" false)"
}

sed_edit_appears_on_the_other_mount() {
  sed -i 's/buy milk/buy oat milk/' "$B/Item/$ID1.json"
  wait_until 10 grep -q "buy oat milk" "$A/Item/$ID1.json"
  assert_object "$A/Item/$ID1.json" "$(item $ID1 alice "buy oat milk" false)"
}

# integrated_changesets: the server's count of integrated uploads.
integrated_changesets() {
  python3 -c 'import sys, urllib.request
for line in urllib.request.urlopen(sys.argv[1]).read().decode().splitlines():
    if line.startswith("realmfs_changesets_integrated_total "):
        print(int(float(line.split()[1])))' "http://127.0.0.1:$SERVER_PORT/metrics"
}

# vim with backupcopy=no renames the original away and writes a new file:
# the server must see one update, not a delete and a create.
vim_save_is_one_update() {
  local before
  before=$(integrated_changesets)
  timeout 30 vim -es -c "set backupcopy=no" -c "%s/buy oat milk/buy rice milk/" -c wq \
    "$A/Item/$ID1.json"
  wait_until 10 grep -q "buy rice milk" "$B/Item/$ID1.json"
  assert_object "$B/Item/$ID1.json" "$(item $ID1 alice "buy rice milk" false)"
  local tries=0
  while (($(integrated_changesets) == before && tries++ < 50)); do sleep 0.1; done
  assert_equal $((before + 1)) "$(integrated_changesets)" "changesets the server integrated"
  sed -i 's/buy rice milk/buy oat milk/' "$A/Item/$ID1.json"
  wait_until 10 grep -q "buy oat milk" "$B/Item/$ID1.json"
}

delete_reaches_the_other_mount() {
  item $ID2 bob "walk the dog" false >"$B/Item/$ID2.json"
  wait_until 10 test -e "$A/Item/$ID2.json"
  rm "$A/Item/$ID2.json"
  wait_until 10 bash -c "! test -e '$B/Item/$ID2.json'"
  ! ls "$B/Item" | grep -q $ID2
}

offline_edits_converge() {
  stop_server
  sed -i 's/"buy oat milk"/"buy soy milk"/' "$A/Item/$ID1.json"
  sed -i 's/false/true/' "$B/Item/$ID1.json"
  item $ID3 alice "written offline" false >"$A/Item/$ID3.json"
  start_server
  local expected
  expected=$(canonical "$(item $ID1 alice "buy soy milk" true)")
  wait_until 20 bash -c "[[ \$(cat '$A/Item/$ID1.json') == '$expected' ]]" ||
    assert_object "$A/Item/$ID1.json" "$expected"
  wait_until 20 bash -c "[[ \$(cat '$B/Item/$ID1.json') == '$expected' ]]" ||
    assert_object "$B/Item/$ID1.json" "$expected"
  wait_until 20 test -e "$B/Item/$ID3.json"
  assert_object "$B/Item/$ID3.json" "$(item $ID3 alice "written offline" false)"
}

unmount_keeps_what_could_not_go_up() {
  stop_server
  sed -i 's/written offline/kept for later/' "$A/Item/$ID3.json"
  unmount_realm "$A"
  start_server
  mount_alice alice >/dev/null
  wait_until 20 grep -q "kept for later" "$B/Item/$ID3.json"
}

subscription_change_removes_and_adds_files() {
  local bobs=6650f0c2e4b0a1b2c3d4e504
  item $bobs bob "bob's own" false >"$B/Item/$bobs.json"
  wait_until 10 test -e "$A/Item/$bobs.json"
  subscribe "$A" all 'owner_id == "bob"'
  wait_until 10 bash -c "! test -e '$A/Item/$ID1.json'"
  assert_no_file "$A/Item/$ID3.json"
  test -e "$A/Item/$bobs.json"
  subscribe "$A" all 'owner_id == "alice"'
  wait_until 10 test -e "$A/Item/$ID1.json"
  wait_until 10 bash -c "! test -e '$A/Item/$bobs.json'"
}

# An open descriptor keeps answering fstat once its object is gone, as on
# a disk file: deleted by a download (the other mount's rm) or unlinked
# through the same mount; it has no link left, and its size and bytes are
# what it read.
fstat_works_on_a_deleted_open_object() {
  local downloaded=6650f0c2e4b0a1b2c3d4e50b unlinked=6650f0c2e4b0a1b2c3d4e50c
  item $downloaded alice "deleted by a download" false >"$A/Item/$downloaded.json"
  item $unlinked alice "unlinked while open" false >"$A/Item/$unlinked.json"
  wait_until 10 test -e "$B/Item/$downloaded.json"
  assert_equal ok "$(py 'import time
def check_deleted(descriptor, content):
    status = os.fstat(descriptor)
    assert status.st_nlink == 0, "nlink %d" % status.st_nlink
    assert status.st_size == len(content), "size %d, not %d" % (status.st_size, len(content))
    assert os.pread(descriptor, 4096, 0) == content, "the bytes read after the delete"
for path, delete in ((A[0], lambda: os.unlink(A[1])), (A[2], lambda: os.unlink(A[2]))):
    descriptor = os.open(path, os.O_RDONLY)
    content = os.read(descriptor, 4096)
    assert os.fstat(descriptor).st_nlink == 1
    delete()
    deadline = time.monotonic() + 20
    while os.path.exists(path):
        assert time.monotonic() < deadline, path + " is still there"
        time.sleep(0.05)
    check_deleted(descriptor, content)
    os.close(descriptor)
' "$A/Item/$downloaded.json" "$B/Item/$downloaded.json" "$A/Item/$unlinked.json")" \
    "fstat after the deletes"
}

ok "a new object appears on the other mount" create_appears_on_the_other_mount
ok "fstat on an open descriptor works once its object is deleted" fstat_works_on_a_deleted_open_object
ok "an edit with sed -i appears on the other mount" sed_edit_appears_on_the_other_mount
ok "a vim save (original renamed away) reaches the server as one update" vim_save_is_one_update
ok "a delete reaches the other mount" delete_reaches_the_other_mount
ok "offline edits of different fields on both mounts converge" offline_edits_converge
ok "unmount keeps pending changes for the next mount" unmount_keeps_what_could_not_go_up
ok "a subscription change removes and adds files" subscription_change_removes_and_adds_files

# ---- conflicts, failures, three mounts, client reset ---------------------------

# start_server_and_wait MOUNT: the server is back and MOUNT's uploads are in.
start_server_and_wait() {
  start_server && "$REALMFS" wait --timeout 20 "$1"
}

# The later write of a field wins everywhere, whichever reaches the server
# first: A's earlier write goes up last, while B's has been integrated.
concurrent_edits_of_one_field_converge() {
  local id=6650f0c2e4b0a1b2c3d4e505
  item $id alice "shared" false >"$A/Item/$id.json"
  wait_until 10 test -e "$B/Item/$id.json"
  stop_server
  sed -i 's/"shared"/"from alice"/' "$A/Item/$id.json"
  sleep 0.05
  sed -i 's/"shared"/"from bob"/' "$B/Item/$id.json"
  paused "$A" start_server_and_wait "$B"
  both_show $id "$(item $id alice "from bob" false)"
}

# A delete wins over an edit that did not see it, even a later one that
# reaches the server after the delete.
delete_wins_over_a_concurrent_edit() {
  local id=6650f0c2e4b0a1b2c3d4e506
  item $id alice "to delete" false >"$A/Item/$id.json"
  wait_until 10 test -e "$B/Item/$id.json"
  stop_server
  rm "$A/Item/$id.json"
  sleep 0.05
  sed -i 's/to delete/edited later/' "$B/Item/$id.json"
  start_server
  gone_from "$A" "$B" $id
  "$REALMFS" wait --timeout 20 "$B"
  gone_from "$A" "$B" $id
}

# Many creates go up while the server is killed and restarted: every one
# arrives, once, with its content.
server_killed_mid_upload_loses_nothing() {
  local count=300 listed
  (for ((i = 0; i < count; i++)); do
    item "$(printf '6650f0c2e4b0a1b2c3d5%04x' $i)" alice "bulk $i" false \
      >"$A/Item/$(printf '6650f0c2e4b0a1b2c3d5%04x' $i).json"
  done) &
  local writer=$!
  wait_until 20 bash -c "(( \$(ls '$A/Item' | grep -c '^6650f0c2e4b0a1b2c3d5') >= 100 ))"
  stop_server KILL
  start_server
  wait "$writer"
  "$REALMFS" wait --timeout 60 "$A"
  "$REALMFS" wait --timeout 60 "$B"
  listed=$(ls "$B/Item" | grep -c '^6650f0c2e4b0a1b2c3d5')
  assert_equal $count "$listed" "bulk objects on the other mount"
  assert_object "$B/Item/6650f0c2e4b0a1b2c3d50000.json" \
    "$(item 6650f0c2e4b0a1b2c3d50000 alice "bulk 0" false)"
  assert_object "$B/Item/6650f0c2e4b0a1b2c3d5012b.json" \
    "$(item 6650f0c2e4b0a1b2c3d5012b alice "bulk 299" false)"
  assert_equal 0 "$(jq -er .sync.pending_uploads "$A/.realmfs/status")" "pending uploads"
  for ((i = 0; i < count; i++)); do rm "$A/Item/$(printf '6650f0c2e4b0a1b2c3d5%04x' $i).json"; done
  "$REALMFS" wait --timeout 60 "$A"
}

# A refused set (summary is not queryable) leaves the accepted one in
# effect: its objects stay, and changes to them still arrive.
query_error_keeps_the_old_subscription_in_effect() {
  local id=6650f0c2e4b0a1b2c3d4e507
  subscribe "$A" refused 'summary == "x"'
  wait_until 10 bash -c "[[ \$(jq -r .sync.query_state '$A/.realmfs/status') == error ]]"
  test -e "$A/Item/$ID1.json"
  item $id alice "while refused" false >"$B/Item/$id.json"
  wait_until 10 test -e "$A/Item/$id.json"
  rm "$A/.realmfs/subscriptions/Item/refused"
  "$REALMFS" wait --timeout 20 "$A"
}

# Carol sees her own and alice's items; alice only hers; bob everything.
three_mounts_with_overlapping_subscriptions() {
  local C carols=6650f0c2e4b0a1b2c3d4e508 alices=6650f0c2e4b0a1b2c3d4e509
  C=$(mount_carol carol) || return 1
  subscribe "$C" mine 'owner_id == "carol" OR owner_id == "alice"'
  "$REALMFS" wait --timeout 20 "$C"
  test -e "$C/Item/$ID1.json"
  assert_equal 0 "$(grep -l '"bob"' "$C"/Item/*.json | wc -l)" "bob's items on carol's mount"
  item $carols carol "carol's" false >"$C/Item/$carols.json"
  item $alices alice "from carol" false >"$C/Item/$alices.json"
  wait_until 10 test -e "$B/Item/$carols.json"
  wait_until 10 test -e "$A/Item/$alices.json"
  wait_until 10 test -e "$B/Item/$alices.json"
  sed -i 's/from carol/edited by bob/' "$B/Item/$alices.json"
  wait_until 10 grep -q "edited by bob" "$A/Item/$alices.json"
  wait_until 10 grep -q "edited by bob" "$C/Item/$alices.json"
  "$REALMFS" wait --timeout 20 "$A"
  assert_no_file "$A/Item/$carols.json"
  unmount_realm "$C"
}

# The server restored from a backup is behind its clients: they must reset
# (client_reset_required).  A's edit the server never received survives;
# what the restore lost goes everywhere, and syncing carries on.
restored_backup_resets_the_clients() {
  local late=6650f0c2e4b0a1b2c3d4e50a
  stop_server
  rm -rf "$TEST_ROOT/server.backup"
  cp -a "$SERVER_DATA" "$TEST_ROOT/server.backup"
  start_server
  item $late alice "after the backup" false >"$A/Item/$late.json"
  wait_until 10 test -e "$B/Item/$late.json"
  "$REALMFS" wait --timeout 20 "$A"
  stop_server
  sed -i 's/"summary": "[^"]*"/"summary": "kept through the reset"/' "$A/Item/$ID1.json"
  rm -rf "$SERVER_DATA"
  cp -a "$TEST_ROOT/server.backup" "$SERVER_DATA"
  start_server
  wait_until 30 grep -q "kept through the reset" "$B/Item/$ID1.json"
  gone_from "$A" "$B" $late
  "$REALMFS" wait --timeout 20 "$A"
  "$REALMFS" wait --timeout 20 "$B"
  grep -q "client_reset_required" "$A/.realmfs/errors"
  grep -q "client reset completed: 1 local changes re-applied, 0 could not be" \
    "$A/.realmfs/errors"
  assert_equal connected "$(jq -er .sync.state "$A/.realmfs/status")" "A's connection"
  assert_equal connected "$(jq -er .sync.state "$B/.realmfs/status")" "B's connection"
  sed -i 's/kept through the reset/after the reset/' "$B/Item/$ID1.json"
  wait_until 10 grep -q "after the reset" "$A/Item/$ID1.json"
}

ok "concurrent edits of one field converge on the later one" concurrent_edits_of_one_field_converge
ok "a delete wins over a concurrent edit" delete_wins_over_a_concurrent_edit
ok "a server killed mid-upload loses nothing" server_killed_mid_upload_loses_nothing
ok "a refused query leaves the old subscription in effect" query_error_keeps_the_old_subscription_in_effect
ok "three mounts with overlapping subscriptions" three_mounts_with_overlapping_subscriptions
ok "a server restored from a backup resets the clients, keeping unsynced edits" restored_backup_resets_the_clients

unmount_realm "$A"
unmount_realm "$B"

# ---- session tokens ----------------------------------------------------------

# anonymous_users: the ids of the server's anonymous users, one a line.
anonymous_users() {
  "$REALMFS_SERVER" user list --data "$SERVER_DATA" | awk -F '\t' '$2 == "-" && $3 == "normal" { print $1 }'
}

# An anonymous mount logs in once (one new user) and stays that user across
# a server restart: with only owners allowed to write, its write after the
# restart is accepted.  The mount reconnects with its session token.
anonymous_mount_stays_one_user_across_a_restart() {
  local before M user first=6650f0c2e4b0a1b2c3d4e5a1 second=6650f0c2e4b0a1b2c3d4e5a2
  stop_server
  jq '."anon-user".disabled = false' "$APP/auth/providers.json" >"$TEST_ROOT/providers.json"
  mv "$TEST_ROOT/providers.json" "$APP/auth/providers.json"
  cp "$REALMFS_EXPORTS/sync-todo/data_sources/mongodb-atlas/todo/Item/rules.json" \
    "$APP/data_sources/mongodb-atlas/todo/Item/rules.json"
  start_server
  before=$(anonymous_users)
  M=$(mount_realm anonymous --server "$(server_url)" --app "$APP_ID" --anonymous) || return 1
  user=$(comm -13 <(sort <<<"$before") <(anonymous_users | sort))
  assert_equal 1 "$(wc -l <<<"$user")" "new anonymous users"
  subscribe "$M" mine "owner_id == \"$user\""
  "$REALMFS" wait --timeout 20 "$M"
  item $first "$user" "before the restart" false >"$M/Item/$first.json"
  "$REALMFS" wait --timeout 20 "$M"
  stop_server
  start_server
  item $second "$user" "after the restart" false >"$M/Item/$second.json"
  "$REALMFS" wait --timeout 30 "$M"
  assert_equal connected "$(jq -er .sync.state "$M/.realmfs/status")" "the mount's connection"
  ! grep -qs compensating_write "$M/.realmfs/errors"
  "$REALMFS_SERVER" export --app "$APP" --data "$SERVER_DATA" Item >"$TEST_ROOT/items.jsonl"
  grep -q "after the restart" "$TEST_ROOT/items.jsonl"
  assert_equal "$user" "$(comm -13 <(sort <<<"$before") <(anonymous_users | sort))" \
    "anonymous users after the restart"
  unmount_realm "$M"
}

# forget_later_tokens COMMAND...: runs COMMAND, then restarts the server
# with its users and tokens as they were before: the tokens COMMAND's
# logins got are unknown from then on.
forget_later_tokens() {
  stop_server
  rm -rf "$TEST_ROOT/auth.backup"
  cp -a "$SERVER_DATA/auth" "$TEST_ROOT/auth.backup"
  start_server
  "$@"
  stop_server
  rm -rf "$SERVER_DATA/auth"
  cp -a "$TEST_ROOT/auth.backup" "$SERVER_DATA/auth"
  start_server
}

# sync_state_is MOUNT STATE: the mount's sync.state in its status.
sync_state_is() {
  [[ $(jq -r .sync.state "$1/.realmfs/status") == "$2" ]]
}

# A refused session token: a password mount logs in with its password
# again and syncs on; an anonymous mount cannot be the same user again
# and stops, saying why.
refused_tokens_fall_back_to_the_password_only() {
  local M N
  mount_both() {
    M=$(mount_alice alice-refused-token) && "$REALMFS" wait --timeout 20 "$M" &&
      N=$(mount_realm anonymous-refused-token --server "$(server_url)" --app "$APP_ID" \
        --anonymous) && "$REALMFS" wait --timeout 20 "$N"
  }
  forget_later_tokens mount_both
  wait_until 30 sync_state_is "$N" error
  grep -q "an anonymous mount cannot log in as the same user again" "$N/.realmfs/errors"
  jq -er .sync.last_error "$N/.realmfs/status" | grep -q "refused the session token"
  wait_until 30 grep -q "logging in again with the mount's credentials" "$M/.realmfs/errors"
  wait_until 30 sync_state_is "$M" connected
  "$REALMFS" wait --timeout 20 "$M"
  unmount_realm "$N"
  unmount_realm "$M"
}

ok "an anonymous mount stays one user across a server restart" \
  anonymous_mount_stays_one_user_across_a_restart
ok "a refused session token: the password logs in again, an anonymous mount stops" \
  refused_tokens_fall_back_to_the_password_only

stop_server
finish
