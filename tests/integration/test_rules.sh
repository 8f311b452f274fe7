#!/usr/bin/env bash
# Roles and rules as synced mounts show them (docs/sync.md, "Roles and
# rules"): real realmfs-servers of the exported apps on loopback, real
# mounts of different users.  Objects a user may not write are read-only
# files that refuse every change with EACCES; a write the mount cannot
# foresee is refused by the server and reverted on the mount, with what
# the user had in .realmfs/errors, and never reaches anyone else; what a
# user may read follows the rules and the custom user data; the server's
# schemas show read-only outside Development Mode.
#
# Environment: REALMFS, REALMFS_SERVER, REALMFS_EXPORTS.
# shellcheck disable=SC2010,SC2011  # the listings themselves are under test
# shellcheck disable=SC2016  # "$oid" is Extended JSON, not a variable
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
: "${REALMFS_SERVER:?set REALMFS_SERVER to the realmfs-server binary}"
: "${REALMFS_EXPORTS:?set REALMFS_EXPORTS to the App Services exports}"

PASSWORD_FILE=$TEST_ROOT/password
printf 'a long enough secret\n' >"$PASSWORD_FILE"

# copy_app NAME APP: $TEST_ROOT/NAME.app, a copy of the export APP that
# lets users log in with a password.
copy_app() {
  cp -r "$REALMFS_EXPORTS/$2" "$TEST_ROOT/$1.app"
  cat >"$TEST_ROOT/$1.app/auth/providers.json" <<'EOF'
{"local-userpass": {"name": "local-userpass", "type": "local-userpass", "disabled": false}}
EOF
}

# serve NAME [PORT]: a server of $TEST_ROOT/NAME.app, its data in
# $TEST_ROOT/NAME.data, on PORT (default: any free one; a restart names
# the one its mounts know).  Its pid is in $TEST_ROOT/NAME.pid, since
# cases (subshells) restart servers.  The caller adds users (add_user)
# before its first mount.
serve() {
  mkdir -p "$TEST_ROOT/$1.data"
  "$REALMFS_SERVER" serve --app "$TEST_ROOT/$1.app" --data "$TEST_ROOT/$1.data" \
    --listen "127.0.0.1:${2:-0}" >/dev/null 2>"$TEST_ROOT/$1.log" </dev/null &
  echo $! >"$TEST_ROOT/$1.pid"
  # a case that failed between kill -STOP and kill -CONT leaves it stopped
  on_cleanup "kill -CONT \$(cat '$TEST_ROOT/$1.pid') 2>/dev/null; kill \$(cat '$TEST_ROOT/$1.pid') 2>/dev/null"
  wait_until 15 url_of "$1" >/dev/null ||
    bail_out "the $1 server did not start: $(cat "$TEST_ROOT/$1.log")"
}

stop_server() {  # stop_server NAME: server NAME shuts down in order
  local pid
  pid=$(cat "$TEST_ROOT/$1.pid")
  kill "$pid"
  wait_until 10 bash -c "! kill -0 $pid 2>/dev/null"
}

url_of() {  # url_of NAME: where server NAME listens; fails until it does
  local line
  line=$(grep -o -m 1 'listening on ws://127\.0\.0\.1:[0-9]*' "$TEST_ROOT/$1.log") || return 1
  echo "${line#listening on }"
}

add_user() {  # add_user NAME EMAIL: prints the new user's id
  "$REALMFS_SERVER" user add --data "$TEST_ROOT/$1.data" "$2" --password-file "$PASSWORD_FILE"
}

# mount_as SERVER MOUNT EMAIL: a mount of EMAIL's, synced with server SERVER.
mount_as() {
  mount_realm "$2" --server "$(url_of "$1")" --app "$(jq -er .app_id "$TEST_ROOT/$1.app/realm_config.json")" \
    --user "$3" --password-file "$PASSWORD_FILE"
}

# subscribe MOUNT NAME PREDICATE: the mount's subscription NAME on Item.
subscribe() {
  mkdir -p "$1/.realmfs/subscriptions/Item"
  printf '%s\n' "$3" >"$1/.realmfs/subscriptions/Item/$2"
}

# user_with_mount SERVER NAME: the user NAME@example.com of server SERVER,
# and their mount $TEST_ROOT/NAME, subscribed to every Item; prints the
# user's id.
user_with_mount() {
  local id
  id=$(add_user "$1" "$2@example.com") || return 1
  subscribe "$(mount_as "$1" "$2" "$2@example.com")" all TRUEPREDICATE || return 1
  echo "$id"
}

synced() {  # synced MOUNT...: every mount's uploads and downloads are done
  local mount
  for mount in "$@"; do
    "$REALMFS" wait --timeout 30 "$mount"
  done
}

import() {  # import SERVER COLLECTION JSON...: the documents, one a line
  local file=$TEST_ROOT/import.$BASHPID.json
  printf '%s\n' "${@:3}" >"$file"
  "$REALMFS_SERVER" import --app "$TEST_ROOT/$1.app" --data "$TEST_ROOT/$1.data" "$2" "$file" \
    2>/dev/null
}

mode_of() {
  stat -c %a "$1"
}

# refuses_writes FILE: every way of changing FILE fails with EACCES, and
# it keeps its bytes.
refuses_writes() {
  local file=$1 before
  before=$(cat "$file"; echo .)
  assert_equal 444 "$(mode_of "$file")" "mode of $file"
  assert_equal EACCES "$(py 'os.close(os.open(A[0], os.O_WRONLY | os.O_APPEND))' "$file")" \
    "opening $file for appending"
  assert_equal EACCES "$(py 'os.truncate(A[0], 0)' "$file")" "truncating $file"
  assert_equal EACCES "$(py 'os.unlink(A[0])' "$file")" "unlinking $file"
  assert_equal EACCES "$(py 'os.rename(A[0], A[0] + "~")' "$file")" "renaming $file away"
  if [[ -w $file ]]; then
    echo "test -w says $file is writable"
    return 1
  fi
  if sed -i 's/"/"/' "$file" 2>/dev/null; then
    echo "sed -i changed $file"
    return 1
  fi
  if echo more 2>/dev/null >>"$file"; then
    echo "echo >> appended to $file"
    return 1
  fi
  # vim opens it [readonly] (its 'readonly' option is set)
  local answer=$TEST_ROOT/readonly.$BASHPID
  timeout 30 vim -es -c "redir! > $answer" -c 'echo &readonly' -c 'redir END' -c 'q!' "$file"
  assert_equal 1 "$(tr -d '\n' <"$answer")" "vim's 'readonly' option for $file"
  assert_bytes "$file" "${before%.}"
}

# The error log's record of the last compensating write, as
# "KIND|COLLECTION|_ID|FILE".
last_compensating_write() {
  grep '"kind":"compensating_write"' "$1/.realmfs/errors" | tail -n 1 |
    jq -er '[.kind, .collection, ._id["$oid"], .file] | join("|")'
}

# ---- sync-todo: every user reads every Item, writes only their own -------

copy_app todo sync-todo
serve todo
ALICE=$(user_with_mount todo alice) || bail_out "cannot mount as alice"
BOB=$(user_with_mount todo bob) || bail_out "cannot mount as bob"
A=$TEST_ROOT/alice
B=$TEST_ROOT/bob
ALICES=6650f0c2e4b0a1b2c3d4e501
BOBS=6650f0c2e4b0a1b2c3d4e502
FORGED=6650f0c2e4b0a1b2c3d4e503

item() {  # item ID OWNER SUMMARY: an Item as the app's schema wants it
  printf '{"_id": {"$oid": "%s"}, "owner_id": "%s", "summary": "%s", "isComplete": false}' \
    "$1" "$2" "$3"
}

others_objects_are_read_only() {
  item $ALICES "$ALICE" "alice's" >"$A/Item/$ALICES.json"
  synced "$A" "$B"
  assert_equal 644 "$(mode_of "$A/Item/$ALICES.json")" "mode of alice's item on her mount"
  refuses_writes "$B/Item/$ALICES.json"
  # ls -l takes modes from the listing (readdirplus)
  assert_match "-r--r--r--*" "$(ls -l "$B/Item" | grep $ALICES)" "alice's item in bob's listing"
  local unchanged
  unchanged=$(canonical "$(item $ALICES "$ALICE" "alice's")")
  assert_equal "$unchanged" "$(cat "$A/Item/$ALICES.json")" "alice's item on her mount"
  assert_equal 1 "$(jq -er .sync.read_only_objects "$B/.realmfs/status")" "read-only objects"
}

own_objects_are_writable() {
  item $BOBS "$BOB" "bob's" >"$B/Item/$BOBS.json"
  synced "$B"
  assert_equal 644 "$(mode_of "$B/Item/$BOBS.json")" "mode of bob's own item"
  sed -i "s/bob's/bob's, edited/" "$B/Item/$BOBS.json"
  synced "$B" "$A"
  assert_object "$A/Item/$BOBS.json" "$(item $BOBS "$BOB" "bob's, edited")"
  assert_equal 444 "$(mode_of "$A/Item/$BOBS.json")" "mode of bob's item on alice's mount"
}

# Bob gives his item to alice: the mount lets him (it is his), the server
# does not (he could not write the document his change leaves).
forged_owner_is_reverted() {
  local mine
  mine=$(cat "$B/Item/$BOBS.json")
  sed -i "s/$BOB/$ALICE/" "$B/Item/$BOBS.json"
  synced "$B"
  assert_equal "$mine" "$(cat "$B/Item/$BOBS.json")" "bob's item after the revert"
  assert_equal "compensating_write|Item|$BOBS|$B/Item/$BOBS.json" \
    "$(last_compensating_write "$B")" "error record"
  local record
  record=$(grep '"kind":"compensating_write"' "$B/.realmfs/errors" | tail -n 1)
  assert_match "*$ALICE*" "$(jq -er .rejected <<<"$record")" "the rejected content"
  [[ -n $(jq -er .reason <<<"$record") ]]
  synced "$A"
  assert_equal "$mine" "$(cat "$A/Item/$BOBS.json")" "bob's item on alice's mount"
  assert_equal 1 "$(jq -er .sync.rejected_writes "$B/.realmfs/status")" "rejected writes"
  assert_match "*1 write refused by the server*" "$("$REALMFS" status "$B")" "realmfs status"
}

# A new object in alice's name: it leaves bob's mount, and alice never
# sees it.
forged_create_is_reverted() {
  item $FORGED "$ALICE" "in alice's name" >"$B/Item/$FORGED.json"
  synced "$B"
  assert_no_file "$B/Item/$FORGED.json"
  assert_equal "compensating_write|Item|$FORGED|$B/Item/$FORGED.json" \
    "$(last_compensating_write "$B")" "error record"
  assert_match "*in alice's name*" \
    "$(grep '"kind":"compensating_write"' "$B/.realmfs/errors" | tail -n 1 | jq -er .rejected)" \
    "the rejected content"
  synced "$A"
  assert_no_file "$A/Item/$FORGED.json"
  assert_equal 2 "$(jq -er .sync.rejected_writes "$B/.realmfs/status")" "rejected writes"
}

# Development Mode: the server's schemas check local writes, and stay
# writable (a local edit stays local).
dev_mode_schemas_are_writable() {
  local schema=$A/.realmfs/schema/Item.json
  assert_equal 644 "$(mode_of "$schema")" "mode of a Development Mode schema"
  grep -q '"summary"' "$schema"
  rejects "$A/Item/6650f0c2e4b0a1b2c3d4e5ff.json" close '*isComplete*' put \
    "$A/Item/6650f0c2e4b0a1b2c3d4e5ff.json" \
    '{"owner_id": "x", "summary": "s", "isComplete": "not a bool"}'
  rm "$A/Item/6650f0c2e4b0a1b2c3d4e5ff.json"
  jq '.properties.note = {"bsonType": "string"}' "$schema" >"$TEST_ROOT/schema.json"
  cp "$TEST_ROOT/schema.json" "$schema"
  grep -q '"note"' "$schema"
}

ok "another user's object is read-only and refuses every change" others_objects_are_read_only
ok "a user's own object is writable" own_objects_are_writable
ok "giving an object away is reverted, with the rejected content in the error log" \
  forged_owner_is_reverted
ok "creating an object in another user's name is reverted" forged_create_is_reverted
ok "Development Mode schemas check writes and stay writable" dev_mode_schemas_are_writable

# Bob's mount dies after the server integrated his refused write and
# before it read the answer (its socket held the error and the
# acknowledgement).  Mounted again, it is told at once, before the
# catch-up whose acknowledgement would drop the write silently: it
# reverts the item and logs the refusal, once.
refusal_reaches_a_mount_that_missed_it() {
  local mine logged server daemon
  mine=$(cat "$B/Item/$BOBS.json")
  logged=$(grep -c '"kind":"compensating_write"' "$B/.realmfs/errors")
  server=$(cat "$TEST_ROOT/todo.pid")
  daemon=$(daemon_pid "$B")
  kill -STOP "$server"
  sed -i "s/$BOB/$ALICE/" "$B/Item/$BOBS.json"
  sleep 1  # the upload leaves the mount, to wait in the server's socket
  kill -STOP "$daemon"
  kill -CONT "$server"
  sleep 1  # the server integrates it and answers into the stopped mount's socket
  kill -KILL "$daemon"
  fusermount3 -u "$B" 2>/dev/null || fusermount3 -uz "$B"
  mount_as todo bob bob@example.com >/dev/null
  synced "$B"
  assert_equal "$mine" "$(cat "$B/Item/$BOBS.json")" "bob's item after the revert"
  assert_equal $((logged + 1)) "$(grep -c '"kind":"compensating_write"' "$B/.realmfs/errors")" \
    "compensating writes logged"
  assert_equal "compensating_write|Item|$BOBS|$B/Item/$BOBS.json" \
    "$(last_compensating_write "$B")" "error record"
}

ok "a refusal whose answer the mount never read reaches it when it mounts again" \
  refusal_reaches_a_mount_that_missed_it

# The server, restored from a backup behind the mounts and with rules
# that let everyone write every Item, makes bob's mount reset: alice's
# item, read-only until then and unchanged, is writable at once, not
# after the kernel's attribute timeout.
client_reset_makes_read_only_objects_writable() {
  local url port later=6650f0c2e4b0a1b2c3d4e504
  url=$(url_of todo)
  port=${url##*:}
  stop_server todo
  cp -a "$TEST_ROOT/todo.data" "$TEST_ROOT/todo.backup"
  serve todo "$port"
  item $later "$ALICE" "after the backup" >"$A/Item/$later.json"
  synced "$A" "$B"
  stop_server todo
  rm -rf "$TEST_ROOT/todo.data"
  mv "$TEST_ROOT/todo.backup" "$TEST_ROOT/todo.data"
  open_item_rules "$TEST_ROOT/todo.app"
  # the kernel caches the mode for a while from here
  assert_equal 444 "$(mode_of "$B/Item/$ALICES.json")" "mode of alice's item before the reset"
  serve todo "$port"
  wait_until 30 grep -q client_reset_required "$B/.realmfs/errors"
  synced "$B"
  assert_equal 644 "$(mode_of "$B/Item/$ALICES.json")" "mode of alice's item after the reset"
  assert_equal 0 "$(jq -er .sync.read_only_objects "$B/.realmfs/status")" "read-only objects"
  sed -i "s/alice's/alice's, edited by bob/" "$B/Item/$ALICES.json"
  synced "$B" "$A"
  grep -q "edited by bob" "$A/Item/$ALICES.json"
}

ok "a client reset shows read-only objects writable at once" \
  client_reset_makes_read_only_objects_writable

unmount_realm "$A"
unmount_realm "$B"

# ---- read-and-write-own-data: each user reads and writes only their own ---

copy_app own read-and-write-own-data
serve own
CAROL=$(user_with_mount own carol) || bail_out "cannot mount as carol"
DAVE=$(user_with_mount own dave) || bail_out "cannot mount as dave"
C=$TEST_ROOT/carol
D=$TEST_ROOT/dave

each_sees_only_their_own() {
  local carols=6650f0c2e4b0a1b2c3d4e511 daves=6650f0c2e4b0a1b2c3d4e512
  printf '{"owner_id": "%s", "text": "carol'"'"'s"}' "$CAROL" >"$C/Item/$carols.json"
  printf '{"owner_id": "%s", "text": "dave'"'"'s"}' "$DAVE" >"$D/Item/$daves.json"
  synced "$C" "$D" "$C" "$D"
  assert_equal "$carols.json" "$(ls "$C/Item")" "carol's objects"
  assert_equal "$daves.json" "$(ls "$D/Item")" "dave's objects"
  assert_equal 644 "$(mode_of "$C/Item/$carols.json")" "mode of carol's object"
}

ok "each user reads and writes only their own objects" each_sees_only_their_own

unmount_realm "$C"
unmount_realm "$D"

# ---- tiered: a team reads its items; access follows custom user data ------

copy_app tiered tiered
serve tiered
MEMBER=$(add_user tiered member@example.com) || bail_out "cannot add the member"
ADMIN=$(add_user tiered admin@example.com) || bail_out "cannot add the admin"
RED1=6650f0c2e4b0a1b2c3d4e521
RED2=6650f0c2e4b0a1b2c3d4e522
BLUE3=6650f0c2e4b0a1b2c3d4e523
tiered_item() {  # tiered_item ID OWNER TEAM
  printf '{"_id": {"$oid": "%s"}, "owner_id": "%s", "name": "item", "team": "%s"}' "$1" "$2" "$3"
}
import tiered User "{\"_id\": \"$MEMBER\", \"team\": \"red\", \"isTeamAdmin\": false}" ||
  bail_out "cannot import the custom user data"
import tiered Item "$(tiered_item $RED1 "$MEMBER" red)" "$(tiered_item $RED2 "$ADMIN" red)" \
  "$(tiered_item $BLUE3 "$ADMIN" blue)" || bail_out "cannot import the items"
M=$(mount_as tiered member member@example.com) || bail_out "cannot mount as the member"
subscribe "$M" red 'team == "red"'
subscribe "$M" blue 'team == "blue"'

team_members_read_their_team() {
  synced "$M"
  assert_equal "$RED1.json $RED2.json" "$(ls "$M/Item" | xargs)" "the member's items"
  assert_equal 644 "$(mode_of "$M/Item/$RED1.json")" "mode of the member's own item"
  refuses_writes "$M/Item/$RED2.json"
}

# Outside Development Mode the schemas are the server's.
schemas_are_read_only() {
  synced "$M"
  refuses_writes "$M/.realmfs/schema/Item.json"
  assert_equal EACCES "$(put "$M/.realmfs/schema/Note.json" '{"bsonType": "object"}')" \
    "a new schema"
  rejects "$M/Item/$RED1.json" close '*team*' put "$M/Item/$RED1.json" \
    "{\"owner_id\": \"$MEMBER\", \"name\": \"no team\"}"
}

# The member moves to the blue team: the admin's red item leaves the
# mount, the blue one arrives, read-only; the member's own red item stays
# (a user reads what it may write).  Made an admin of the blue team, the
# member writes every blue item, and no longer its red one.
custom_user_data_moves_the_view() {
  import tiered User "{\"_id\": \"$MEMBER\", \"team\": \"blue\", \"isTeamAdmin\": false}"
  wait_until 30 test -e "$M/Item/$BLUE3.json"
  wait_until 30 bash -c "! test -e '$M/Item/$RED2.json'"
  synced "$M"
  assert_equal "$RED1.json $BLUE3.json" "$(ls "$M/Item" | xargs)" "the member's items"
  refuses_writes "$M/Item/$BLUE3.json"
  assert_equal 644 "$(mode_of "$M/Item/$RED1.json")" "mode of the member's own item"
  import tiered User "{\"_id\": \"$MEMBER\", \"team\": \"blue\", \"isTeamAdmin\": true}"
  wait_until 30 bash -c "! test -e '$M/Item/$RED1.json'"
  # the mode changed with the batch that removed the red item: at once,
  # not after the kernel's attribute timeout
  synced "$M"
  assert_equal 644 "$(mode_of "$M/Item/$BLUE3.json")" "mode of a blue item for the admin"
  assert_equal 0 "$(jq -er .sync.read_only_objects "$M/.realmfs/status")" "read-only objects"
}

ok "team members read their team's items and write their own" team_members_read_their_team
ok "schemas outside Development Mode are read-only" schemas_are_read_only
ok "custom user data changing mid-life moves files in and out of the mount" \
  custom_user_data_moves_the_view

unmount_realm "$M"
finish
