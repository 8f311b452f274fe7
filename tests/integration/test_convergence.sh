#!/usr/bin/env bash
# shellcheck disable=SC2016  # the $ of Extended JSON keys is literal
# Randomized convergence (docs/sync.md, "Randomized convergence test"):
# several synced mounts of different users, all subscribed to every Item,
# reach a realmfs-server through tests/tools/fault_proxy.c.  One worker per
# mount creates, edits (sed -i, shell redirection, vim -es), renames (a new
# _id) and deletes object files at random while the proxy cuts and refuses
# connections at random.  After healing, every mount must show exactly what
# the server holds, object by object.
#
# Environment: REALMFS, REALMFS_SERVER, REALMFS_FAULT_PROXY (the proxy
# binary), REALMFS_EXPORTS (set by meson), and optionally
#   REALMFS_SEED                 replays a run (the seed is printed first)
#   REALMFS_CONVERGENCE_SECONDS  how long the workers and the faults run (20)
#   REALMFS_CONVERGENCE_MOUNTS   how many mounts (3)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
: "${REALMFS_SERVER:?set REALMFS_SERVER to the realmfs-server binary}"
: "${REALMFS_FAULT_PROXY:?set REALMFS_FAULT_PROXY to the fault_proxy binary}"
: "${REALMFS_EXPORTS:?set REALMFS_EXPORTS to the App Services exports}"

SEED=${REALMFS_SEED:-$(((RANDOM << 15) | RANDOM))}
DURATION=${REALMFS_CONVERGENCE_SECONDS:-20}
MOUNT_COUNT=${REALMFS_CONVERGENCE_MOUNTS:-3}
echo "# seed $SEED, $DURATION s, $MOUNT_COUNT mounts (replay: REALMFS_SEED=$SEED)"

APP=$TEST_ROOT/app
SERVER_DATA=$TEST_ROOT/server.data
SERVER_LOG=$TEST_ROOT/server.log
PROXY_LOG=$TEST_ROOT/proxy.log
cp -r "$REALMFS_EXPORTS/sync-todo" "$APP"
open_item_rules "$APP"
APP_ID=$(jq -er .app_id "$APP/realm_config.json")
cat >"$APP/auth/providers.json" <<'EOF'
{"local-userpass": {"name": "local-userpass", "type": "local-userpass", "disabled": false}}
EOF

# started_and_listening LOG PID: PID runs and LOG says where it listens.
started_and_listening() {
  kill -0 "$2" 2>/dev/null && grep -q "listening on " "$1"
}

# listening_port LOG: the port of LOG's first "listening on HOST:PORT".
listening_port() {
  grep -m1 -o 'listening on [a-z]*:*/*127.0.0.1:[0-9]*' "$1" | sed 's/.*://'
}

mkdir -p "$SERVER_DATA"
printf 'convergence-password\n' >"$TEST_ROOT/password"
for ((m = 0; m < MOUNT_COUNT; m++)); do
  "$REALMFS_SERVER" user add --data "$SERVER_DATA" "user$m@example.com" \
    --password-file "$TEST_ROOT/password" >/dev/null || bail_out "cannot add user$m"
done
: >"$SERVER_LOG"
"$REALMFS_SERVER" serve --app "$APP" --data "$SERVER_DATA" --listen 127.0.0.1:0 \
  --log-level info >/dev/null 2>"$SERVER_LOG" </dev/null &
SERVER_PID=$!
on_cleanup "kill $SERVER_PID"
wait_until 15 started_and_listening "$SERVER_LOG" $SERVER_PID ||
  bail_out "the server did not start: $(cat "$SERVER_LOG")"
: >"$TEST_ROOT/proxy.out"
"$REALMFS_FAULT_PROXY" --target "127.0.0.1:$(listening_port "$SERVER_LOG")" \
  >"$TEST_ROOT/proxy.out" 2>"$PROXY_LOG" </dev/null &
PROXY_PID=$!
on_cleanup "kill $PROXY_PID"
wait_until 5 started_and_listening "$TEST_ROOT/proxy.out" $PROXY_PID ||
  bail_out "the proxy did not start: $(cat "$PROXY_LOG")"
PROXY_URL=ws://127.0.0.1:$(listening_port "$TEST_ROOT/proxy.out")

MOUNTS=()
for ((m = 0; m < MOUNT_COUNT; m++)); do
  MOUNTS+=("$(mount_realm "mount$m" --server "$PROXY_URL" --app "$APP_ID" \
    --user "user$m@example.com" --password-file "$TEST_ROOT/password")") ||
    bail_out "cannot mount as user$m"
  mkdir -p "${MOUNTS[m]}/.realmfs/subscriptions/Item"
  echo TRUEPREDICATE >"${MOUNTS[m]}/.realmfs/subscriptions/Item/all"
done

# ---- the workers ------------------------------------------------------------

# Every worker's random choices come from $RANDOM seeded from SEED and the
# worker's number, drawn only in the worker's own shell (never inside $(),
# whose subshell would not advance it): the same seed makes the same
# choices, though the timing of the faults decides how they interleave.

# random_item_text ID OWNER: sets `text` to a random Item document.
random_item_text() {
  local complete=false
  ((RANDOM % 2)) && complete=true
  printf -v text '{"_id": {"$oid": "%s"}, "owner_id": "%s", "summary": "%s %d", "isComplete": %s}' \
    "$1" "$2" "summary" $RANDOM $complete
}

# random_pause MAX_MS: sleeps 0 to MAX_MS milliseconds.
random_pause() {
  local milliseconds=$((RANDOM % $1)) pause
  printf -v pause '%d.%03d' $((milliseconds / 1000)) $((milliseconds % 1000))
  sleep "$pause"
}

# write_object FILE: writes the worker's `text` to FILE by shell redirection,
# its errors to the worker's `errors` file.  cat, not the builtin printf, so
# that a failed close() (where the mount validates and commits) fails it.
write_object() {
  cat >"$1" 2>"$errors" <<<"$text"
}

# worker NUMBER END: random operations on mount NUMBER until SECONDS >= END;
# one line per operation in worker-NUMBER.ops ("OPERATION ok" or
# "OPERATION failed: MESSAGE").
worker() {
  local number=$1 end=$2 mount=${MOUNTS[$1]} step=0
  local ops=$TEST_ROOT/worker-$number.ops errors=$TEST_ROOT/worker-$number.err
  local files file id new_id text choice operation status
  set +e  # a failed operation is recorded, not the end of the worker
  RANDOM=$((SEED + number))
  shopt -s nullglob
  while ((SECONDS < end)); do
    step=$((step + 1))
    files=("$mount"/Item/*.json)
    choice=$((RANDOM % 100))
    if ((${#files[@]} == 0 || choice < 25)); then
      printf -v id '66%02x%06x%04x%04x%04x%02x' "$number" "$step" $RANDOM $RANDOM $RANDOM \
        $((RANDOM % 256))
      random_item_text "$id" "user$number"
      operation=create
      write_object "$mount/Item/$id.json"
    else
      file=${files[RANDOM % ${#files[@]}]}
      if ((choice < 40)); then
        operation="sed summary"
        sed -i "s/\"summary\": \"[^\"]*\"/\"summary\": \"sed $number.$step\"/" "$file" 2>"$errors"
      elif ((choice < 50)); then
        operation="sed isComplete"
        if ((RANDOM % 2)); then
          sed -i 's/"isComplete": false/"isComplete": true/' "$file" 2>"$errors"
        else
          sed -i 's/"isComplete": true/"isComplete": false/' "$file" 2>"$errors"
        fi
      elif ((choice < 62)); then
        operation="redirect"
        id=$(basename "$file" .json)
        random_item_text "$id" "owner$number.$step"
        write_object "$file"
      elif ((choice < 72)); then
        operation="vim"
        # :x writes only when the substitution changed something, so a
        # file deleted meanwhile is not written back empty.  vim -es shows
        # no message: its verbosefile gets them.
        timeout 30 vim -es -c "set verbosefile=$errors backupcopy=no" \
          -c "%s/\"owner_id\": \"[^\"]*\"/\"owner_id\": \"vim $number.$step\"/e" -c x \
          "$file" 2>"$errors" </dev/null
      elif ((choice < 84)); then
        operation="rename"
        printf -v new_id '67%02x%06x%04x%04x%04x%02x' "$number" "$step" $RANDOM $RANDOM $RANDOM \
          $((RANDOM % 256))
        mv "$file" "$mount/Item/$new_id.json" 2>"$errors"
      else
        operation="delete"
        rm "$file" 2>"$errors"
      fi
    fi
    # shellcheck disable=SC2181  # every branch above ends with its operation
    status=$?
    if ((status == 0)); then
      echo "$operation ok" >>"$ops"
    elif [[ $operation == vim && ! -e $file ]]; then
      # vim says nothing of a file that vanished under it (another mount
      # deleted or renamed it while vim held it): the same case as sed's
      # "not a regular file" below.
      echo "$operation failed: exit $status: No such file or directory afterwards" >>"$ops"
    else
      echo "$operation failed: exit $status: $(tr '\n' ' ' <"$errors")" >>"$ops"
    fi
    random_pause 200
  done
}

# faults END: cuts every connection, or refuses connections for a while,
# at random until SECONDS >= END, then lets connections through again.
faults() {
  RANDOM=$((SEED + 1000))
  while ((SECONDS < $1)); do
    random_pause 2000
    case $((RANDOM % 3)) in
    0) kill -HUP "$PROXY_PID" ;;
    1)
      kill -USR1 "$PROXY_PID"
      random_pause 4000
      kill -USR2 "$PROXY_PID"
      ;;
    esac
  done
  kill -USR2 "$PROXY_PID"
}

run_workers_and_faults() {
  local end=$((SECONDS + DURATION)) pids=() m failed
  for ((m = 0; m < MOUNT_COUNT; m++)); do
    worker $m $end &
    pids+=($!)
  done
  faults $end &
  pids+=($!)
  wait "${pids[@]}"
  # An operation may fail only because its file went away meanwhile (a
  # delete or rename on another mount, or this mount's own rename).  sed -i
  # then says "not a regular file": it does not check its fstat(), which
  # fails with ENOENT on a mount once the object is gone, open or not.
  failed=$(grep -h " failed: " "$TEST_ROOT"/worker-*.ops |
    grep -v -e "No such file or directory" -e "sed: couldn't edit .*: not a regular file" || true)
  assert_equal "" "$failed" "failed operations other than vanished files"
  grep -q "create ok" "$TEST_ROOT"/worker-*.ops
}

CASE_TIMEOUT=$((DURATION + 90))
ok "$MOUNT_COUNT mounts edit at random for $DURATION s while connections are cut (seed $SEED)" \
  run_workers_and_faults
cat "$TEST_ROOT"/worker-*.ops | sed 's/ failed: .*/ failed/' | sort | uniq -c | sed 's/^ */# /'
echo "# faults: $(grep -c -e "cut: reset" -e "down: reset [0-9]" "$PROXY_LOG") cuts," \
  "$(grep -c "down: reset a new" "$PROXY_LOG") connections refused"

# ---- after healing ---------------------------------------------------------------

# Twice: after the first round every upload is in; the second round's
# marks then bring every mount what the others uploaded.
every_mount_catches_up() {
  local mount
  for _ in 1 2; do
    for mount in "${MOUNTS[@]}"; do
      "$REALMFS" wait --timeout 90 "$mount"
    done
  done
}

CASE_TIMEOUT=$((2 * MOUNT_COUNT * 90 + 30))
ok "every mount uploads and downloads everything after healing" every_mount_catches_up
CASE_TIMEOUT=90

# server_view: the server's Item documents, one jq -S -c line each.
server_view() {
  "$REALMFS_SERVER" export --app "$APP" --data "$SERVER_DATA" Item | jq -S -c .
}

# mount_view MOUNT: MOUNT's Item documents the same way; a file whose name
# is not its _id fails it, and so does an empty one (created, never
# committed: not an object).
mount_view() {
  local files view=$TEST_ROOT/view.$BASHPID
  shopt -s nullglob
  files=("$1"/Item/*.json)
  jq -S -c --arg directory "$1/Item/" \
    'if input_filename == $directory + ._id["$oid"] + ".json" then .
     else error("\(input_filename) holds _id \(._id)") end' "${files[@]}" </dev/null >"$view"
  assert_equal ${#files[@]} "$(wc -l <"$view")" "documents in ${#files[@]} files" >&2
  cat "$view"
}

# same_objects NAME EXPECTED ACTUAL: the two views (files of jq -S -c lines)
# hold the same objects; else prints every _id whose documents differ.
same_objects() {
  local differences
  differences=$(jq -n -r --arg name "$1" --slurpfile expected "$2" --slurpfile actual "$3" '
    def by_id: map({key: ._id["$oid"], value: .}) | from_entries;
    ($expected | by_id) as $want | ($actual | by_id) as $have
    | ([$want, $have | keys[]] | unique[]) as $id
    | select($want[$id] != $have[$id])
    | "\($id): expected \($want[$id] // "nothing" | tojson)\n    \($name) has \($have[$id] // "nothing" | tojson)"')
  if [[ -n $differences ]]; then
    echo "$differences"
    echo "replay with REALMFS_SEED=$SEED REALMFS_CONVERGENCE_SECONDS=$DURATION REALMFS_CONVERGENCE_MOUNTS=$MOUNT_COUNT"
    return 1
  fi
}

server_view >"$TEST_ROOT/server.view" || bail_out "cannot export Item from the server"
echo "# the server holds $(wc -l <"$TEST_ROOT/server.view") Items"

shows_what_the_server_holds() {
  mount_view "$1" >"$TEST_ROOT/mount.view"
  same_objects "$1" "$TEST_ROOT/server.view" "$TEST_ROOT/mount.view"
  assert_equal connected "$(jq -er .sync.state "$1/.realmfs/status")" "connection state"
  assert_equal 0 "$(jq -er .sync.pending_uploads "$1/.realmfs/status")" "pending uploads"
}

mounts_agree() {
  mount_view "${MOUNTS[0]}" >"$TEST_ROOT/first.view"
  for mount in "${MOUNTS[@]:1}"; do
    mount_view "$mount" >"$TEST_ROOT/other.view"
    same_objects "$mount" "$TEST_ROOT/first.view" "$TEST_ROOT/other.view"
  done
}

for mount in "${MOUNTS[@]}"; do
  ok "$(basename "$mount") shows what the server holds" shows_what_the_server_holds "$mount"
done
ok "all mounts show the same objects" mounts_agree
for mount in "${MOUNTS[@]}"; do
  jq -r '"# \(input_filename | split("/")[-3]) records \(.operation) \(.error)"' \
    "$mount/.realmfs/errors" | sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2: \1/'
done

for mount in "${MOUNTS[@]}"; do
  unmount_realm "$mount"
done
finish
