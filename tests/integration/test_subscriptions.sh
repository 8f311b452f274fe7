#!/usr/bin/env bash
# Subscriptions as files (.realmfs/subscriptions/<Collection>/<name>), the
# "sync" member of .realmfs/status, `realmfs status` and `realmfs wait`, on a
# mount synced with a real realmfs-server on loopback (the sync-todo app:
# collection Item, queryable fields _id and owner_id).
# shellcheck disable=SC2012  # the listing itself is under test
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
: "${REALMFS_SERVER:?set REALMFS_SERVER to the realmfs-server binary}"
: "${REALMFS_EXPORTS:?set REALMFS_EXPORTS to the directory of app exports}"

APP=$TEST_ROOT/app
SERVER_DATA=$TEST_ROOT/server.data
SERVER_LOG=$TEST_ROOT/server.log
cp -r "$REALMFS_EXPORTS/sync-todo" "$APP"
without_development_mode "$APP"
APP_ID=$(jq -er .app_id "$APP/realm_config.json")
printf 'secret-password\n' >"$TEST_ROOT/password"
"$REALMFS_SERVER" user add --data "$SERVER_DATA" alice@example.com \
  --password-file "$TEST_ROOT/password" >/dev/null || bail_out "cannot add a user"
# stdout not the test's: a server left behind must not hold meson's pipe
"$REALMFS_SERVER" serve --app "$APP" --data "$SERVER_DATA" --listen 127.0.0.1:0 \
  >/dev/null 2>"$SERVER_LOG" </dev/null &
SERVER_PID=$!
on_cleanup "kill -CONT $SERVER_PID; kill $SERVER_PID"
server_url() {  # fails until the server has said where it listens
  local line
  line=$(grep -o -m 1 'listening on ws://127\.0\.0\.1:[0-9]*' "$SERVER_LOG") || return 1
  echo "${line#listening on }"
}
wait_until 15 server_url >/dev/null || bail_out "the server did not start: $(cat "$SERVER_LOG")"
URL=$(server_url)

mount_synced() {  # mount_synced NAME: a mount of alice's, synced with the server
  mount_realm "$1" --server "$URL" --app "$APP_ID" --user alice@example.com \
    --password-file "$TEST_ROOT/password"
}

M=$(mount_synced subscriptions) || bail_out "cannot mount a synced realm"
S=$M/.realmfs/subscriptions
mkdir "$S/Item" || bail_out "cannot create the Item subscription directory"

# subscription COLLECTION NAME: the query the status shows for it.
subscription() {
  jq -er --arg c "$1" --arg n "$2" \
    '.sync.subscriptions[] | select(.collection == $c and .name == $n) | .query' \
    "$M/.realmfs/status"
}

subscription_count() {
  jq -er '.sync.subscriptions | length' "$M/.realmfs/status"
}

subscriptions_version() {
  jq -er .sync.subscriptions_version "$M/.realmfs/status"
}

case_write_and_read_back() {
  local version
  version=$(subscriptions_version)
  echo 'owner_id == "alice"' >"$S/Item/mine"
  assert_bytes "$S/Item/mine" $'owner_id == "alice"\n'
  is_listed "$S/Item" mine
  assert_equal 'owner_id == "alice"' "$(subscription Item mine)" "stored query"
  # the sync thread may take one more version to send the set again (a
  # connection made after the write asks for it): once the set is complete
  # the version holds
  "$REALMFS" wait --timeout 30 "$M"
  local after
  after=$(subscriptions_version)
  ((after > version)) || { echo "subscriptions version $after, was $version"; return 1; }
  # white space around the predicate is not part of it
  printf '  owner_id == "alice"  \n\n' >"$S/Item/mine"
  assert_bytes "$S/Item/mine" $'owner_id == "alice"\n'
  assert_equal "$after" "$(subscriptions_version)" "version after a same-query write"
}

case_invalid_predicate_fails_close() {
  echo 'owner_id == "bob"' >"$S/Item/bad"
  rejects "$S/Item/bad" close '*byte*' put "$S/Item/bad" 'owner_id == '
  rejects "$S/Item/bad" close '*empty*' put "$S/Item/bad" $'  \n'
  assert_equal 'owner_id == "bob"' "$(subscription Item bad)" "query kept"
  rm "$S/Item/bad"
}

case_empty_file_is_pending() {
  local count
  count=$(subscription_count)
  touch "$S/Item/later"
  is_listed "$S/Item" later
  assert_equal "$count" "$(subscription_count)" "subscriptions after touch"
  echo 'isComplete == false' >"$S/Item/later"
  assert_equal 'isComplete == false' "$(subscription Item later)" "query written later"
  rm "$S/Item/later"
  assert_no_file "$S/Item/later"
  assert_equal "$count" "$(subscription_count)" "subscriptions after rm"
}

case_rename() {
  echo '_id == oid(6650f0c2e4b0a1b2c3d4e5f6)' >"$S/Item/one"
  mv "$S/Item/one" "$S/Item/two"
  assert_no_file "$S/Item/one"
  assert_bytes "$S/Item/two" $'_id == oid(6650f0c2e4b0a1b2c3d4e5f6)\n'
  if subscription Item one >/dev/null 2>&1; then
    echo "the old name is still a subscription"
    return 1
  fi
  assert_equal '_id == oid(6650f0c2e4b0a1b2c3d4e5f6)' "$(subscription Item two)" "renamed query"
  rm "$S/Item/two"
}

case_sed_in_place() {
  echo 'owner_id == "carol"' >"$S/Item/edited"
  sed -i 's/carol/dave/' "$S/Item/edited"
  assert_bytes "$S/Item/edited" $'owner_id == "dave"\n'
  assert_equal 'owner_id == "dave"' "$(subscription Item edited)" "query after sed -i"
  # no scratch or temporary name is left behind as a subscription
  assert_equal "edited" "$(jq -r '.sync.subscriptions[] | select(.collection == "Item") | .name' \
    "$M/.realmfs/status" | grep -vx mine)" "subscription names"
  rm "$S/Item/edited"
}

case_vim() {
  export HOME=$TEST_ROOT/home
  mkdir -p "$HOME"
  echo 'owner_id == "erin"' >"$S/Item/vimmed"
  timeout 30 vim -es -c '%s/erin/frank/' -c wq "$S/Item/vimmed"
  assert_bytes "$S/Item/vimmed" $'owner_id == "frank"\n'
  assert_equal 'owner_id == "frank"' "$(subscription Item vimmed)" "query after vim"
  # vim's swap and backup files were scratch files, and are gone
  assert_equal "mine vimmed" "$(ls -A "$S/Item" | sort | xargs)" "listing after vim"
  rm "$S/Item/vimmed"
}

case_directories() {
  mkdir "$S/Project"
  is_listed "$M" Project
  echo 'owner_id == "alice"' >"$S/Project/all"
  assert_equal EEXIST "$(py 'os.mkdir(A[0])' "$S/Project")" "mkdir of an existing one"
  assert_equal ENOTEMPTY "$(py 'os.rmdir(A[0])' "$S/Project")" "rmdir with a subscription"
  rm "$S/Project/all"
  rmdir "$S/Project"
  assert_no_file "$S/Project"
  assert_no_file "$M/Project"
  # a collection made at the root has its subscription directory at once
  mkdir "$M/Task"
  is_listed "$S" Task
  rmdir "$M/Task"
  assert_no_file "$S/Task"
  assert_equal EPERM "$(py 'open(A[0], "w")' "$S/loose")" "a file outside a collection"
}

case_wait_and_status() {
  "$REALMFS" wait --timeout 30 "$M"
  assert_equal complete "$(jq -er .sync.query_state "$M/.realmfs/status")" "query state"
  assert_equal connected "$(jq -er .sync.state "$M/.realmfs/status")" "connection state"
  assert_equal 0 "$(jq -er .sync.pending_uploads "$M/.realmfs/status")" "pending uploads"
  local text
  text=$("$REALMFS" status "$M")
  assert_match "*sync:*connected*alice@example.com*" "$text" "status text"
  assert_match "*Item/mine: owner_id == \"alice\"*" "$text" "status text"
}

case_query_error_keeps_the_previous_set() {
  "$REALMFS" wait --timeout 30 "$M"
  local accepted
  accepted=$(jq -er .sync.accepted_query_version "$M/.realmfs/status")
  # summary is in the schema, but not a queryable field of the app
  echo 'summary == "x"' >"$S/Item/never"
  local output status=0
  output=$("$REALMFS" wait --timeout 30 "$M" 2>&1) || status=$?
  assert_equal 1 "$status" "exit status of wait"
  assert_match "*refused the subscriptions*summary*" "$output" "message of wait"
  assert_equal error "$(jq -er .sync.query_state "$M/.realmfs/status")" "query state"
  assert_match "*summary*" "$(jq -er .sync.query_error "$M/.realmfs/status")" "query error"
  assert_equal "$accepted" "$(jq -er .sync.accepted_query_version "$M/.realmfs/status")" \
    "accepted version"
  assert_match "*error: *summary*" "$("$REALMFS" status "$M")" "status text"
  rm "$S/Item/never"
  "$REALMFS" wait --timeout 30 "$M"
}

case_wait_times_out() {
  local output status=0 written=0
  kill -STOP "$SERVER_PID"
  # the server resumes whatever happens meanwhile
  echo 'owner_id == "gina"' >"$S/Item/stalled" || written=$?
  output=$("$REALMFS" wait --timeout 1 "$M" 2>&1) || status=$?
  kill -CONT "$SERVER_PID"
  assert_equal 0 "$written" "writing the subscription"
  assert_equal 1 "$status" "exit status of wait"
  assert_match "*timed out after 1 s*" "$output" "message of wait"
  rm "$S/Item/stalled"
  "$REALMFS" wait --timeout 30 "$M"
}

case_local_mount_has_no_subscriptions() {
  local local_mount output
  local_mount=$(mount_realm local)
  assert_no_file "$local_mount/.realmfs/subscriptions"
  assert_equal disabled "$(jq -er .sync.state "$local_mount/.realmfs/status")" "sync state"
  output=$("$REALMFS" wait "$local_mount" 2>&1)
  assert_match "*no server*" "$output" "message of wait"
  unmount_realm "$local_mount"
}

ok "a subscription file reads back its predicate" case_write_and_read_back
ok "an invalid predicate fails close() and keeps the previous one" case_invalid_predicate_fails_close
ok "an empty file is pending, not a subscription" case_empty_file_is_pending
ok "mv renames a subscription" case_rename
ok "sed -i edits a subscription" case_sed_in_place
ok "vim edits a subscription" case_vim
ok "subscription directories follow the collections" case_directories
ok "wait returns once the set is complete; status shows it" case_wait_and_status
ok "a refused query is the set's error; the previous set stays" case_query_error_keeps_the_previous_set
ok "wait times out with the reason" case_wait_times_out
ok "a local mount has no subscriptions and nothing to wait for" case_local_mount_has_no_subscriptions
unmount_realm "$M"
finish
