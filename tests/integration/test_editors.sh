#!/usr/bin/env bash
# Real editors and file tools on a mount: each saves the way it does on a
# disk (in place, via backup renames, via temporary files) and the objects
# must come out right; invalid saves must fail and leave the object intact.
# shellcheck disable=SC2012  # ls is what several cases check
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

M=$(mount_realm editors) || bail_out "cannot mount a realm"
# no user configuration: editors run with their defaults
export HOME=$TEST_ROOT/home
mkdir -p "$HOME"
TMUX_SOCKET=realmfs-test-$$
on_cleanup "tmux -L $TMUX_SOCKET kill-server 2>/dev/null"

# A collection for one case, holding object NAME.json with a "title".
# Prints the object's path.
object_with_title() {  # object_with_title COLLECTION NAME TITLE
  mkdir -p "$M/$1"
  printf '{"title": "%s", "n": 1}' "$3" >"$M/$1/$2.json"
  echo "$M/$1/$2.json"
}

# assert_titled FILE NAME TITLE: FILE is the canonical object NAME with TITLE.
assert_titled() {
  assert_object "$1" "{\"_id\": \"$2\", \"title\": \"$3\", \"n\": 1}"
}

# assert_only DIR NAME...: DIR lists exactly these names (besides . and ..).
assert_only() {
  local dir=$1; shift
  assert_equal "$(printf '%s\n' "$@" | sort)" "$(ls -A "$dir" | sort)" "listing of $dir"
}

# ---- editors -------------------------------------------------------------
# Each edit_with_* function replaces FROM by TO in FILE and saves; it
# succeeds only if the editor reports a successful save.

edit_with_vim() {  # edit_with_vim FILE FROM TO [VIM SETTINGS]
  local settings=()
  if [[ -n ${4:-} ]]; then settings=(-c "set $4"); fi
  timeout 30 vim -es "${settings[@]}" -c "%s/$2/$3/" -c wq "$1"
}

elisp_string() {  # the elisp literal for a string
  local text=${1//\\/\\\\}
  printf '"%s"' "${text//\"/\\\"}"
}

# emacs --batch dies on an uncaught error without running unwind forms, so
# it would not put its backup back: catch the error to let it clean up.
edit_with_emacs() {  # edit_with_emacs FILE FROM TO [LISP SETTINGS]
  timeout 30 emacs --batch "$1" --eval "(progn ${4:-}
    (goto-char (point-min)) (replace-string $(elisp_string "$2") $(elisp_string "$3"))
    (condition-case err (save-buffer)
      (error (message \"save failed: %S\" err) (kill-emacs 3))))"
}

tmux_() {
  tmux -L "$TMUX_SOCKET" "$@"
}

screen_matches() {  # screen_matches SESSION REGEX
  tmux_ capture-pane -p -t "$1" | grep -qE -- "$2"
}

session_is_gone() {
  ! tmux_ has-session -t "$1" 2>/dev/null
}

# wait_for_screen SESSION REGEX: waits (bounded) until the screen matches.
wait_for_screen() {
  wait_until 10 screen_matches "$1" "$2" && return 0
  echo "nano never showed /$2/; screen:"
  tmux_ capture-pane -p -t "$1"
  return 1
}

# answer SESSION PROMPT_REGEX TEXT: waits for the prompt, types TEXT, Enter.
answer() {
  wait_for_screen "$1" "$2"
  tmux_ send-keys -t "$1" -l "$3"
  tmux_ send-keys -t "$1" Enter
}

nano_start() {  # nano_start SESSION FILE
  tmux_ new-session -d -s "$1" -x 120 -y 40 "nano '$2'"
  wait_for_screen "$1" '\^X Exit'
}

# nano_save_and_exit SESSION: writes out and exits; fails if nano reports
# an error writing (it then quits without saving).
nano_save_and_exit() {
  local session=$1 status=0
  tmux_ send-keys -t "$session" C-o
  answer "$session" 'File Name to Write' ""
  wait_for_screen "$session" '\[ (Wrote|Error writing)'
  screen_matches "$session" '\[ Wrote ' || status=1
  tmux_ send-keys -t "$session" C-x
  if ((status)); then
    tmux_ capture-pane -p -t "$session" | grep -F '[ Error writing'
    wait_for_screen "$session" 'Save modified buffer'
    tmux_ send-keys -t "$session" n
  fi
  if ! wait_until 10 session_is_gone "$session"; then
    echo "nano did not exit"
    tmux_ kill-session -t "$session"
    return 1
  fi
  return "$status"
}

# nano in a terminal: replace all, write out, exit.
edit_with_nano() {  # edit_with_nano FILE FROM TO
  local session=nano$BASHPID
  nano_start "$session" "$1"
  tmux_ send-keys -t "$session" "C-\\"
  answer "$session" 'Search \(to replace\)' "$2"
  answer "$session" 'Replace with' "$3"
  wait_for_screen "$session" 'Replace this instance'
  tmux_ send-keys -t "$session" a
  wait_for_screen "$session" 'Replaced 1 occurrence'
  nano_save_and_exit "$session"
}

# Each create_with_* function writes TEXT into the new FILE and saves.
create_with_vim() {  # create_with_vim FILE TEXT
  timeout 30 vim -es -c "call setline(1, '$2')" -c wq "$1"
}

create_with_emacs() {
  timeout 30 emacs --batch "$1" --eval "(progn (insert $(elisp_string "$2")) (save-buffer))"
}

create_with_nano() {
  local session=nano$BASHPID
  nano_start "$session" "$1"
  tmux_ send-keys -t "$session" -l "$2"
  nano_save_and_exit "$session"
}

editors_create_objects() {
  mkdir "$M/Created"
  local editor
  for editor in vim emacs nano; do
    "create_with_$editor" "$M/Created/$editor.json" "{\"by\": \"$editor\"}"
    assert_object "$M/Created/$editor.json" "{\"_id\": \"$editor\", \"by\": \"$editor\"}"
  done
  assert_only "$M/Created" emacs.json nano.json vim.json
}

# Editor variants: a name (used for collection names) and its command.
EDITORS=(
  "vim|edit_with_vim"
  "vimbcno|edit_with_vim_backupcopy_no"
  "vimbcyes|edit_with_vim_backupcopy_yes"
  "vimwb|edit_with_vim_writebackup"
  "emacs|edit_with_emacs"
  "emacsbackup|edit_with_emacs_backups"
  "nano|edit_with_nano"
)
edit_with_vim_backupcopy_no() { edit_with_vim "$@" "backupcopy=no"; }
edit_with_vim_backupcopy_yes() { edit_with_vim "$@" "backupcopy=yes"; }
edit_with_vim_writebackup() { edit_with_vim "$@" "writebackup nobackup"; }
# files under /tmp are never backed up by default: turn that off too
edit_with_emacs_backups() { edit_with_emacs "$@" "(setq make-backup-files t backup-inhibited nil)"; }

# editor_saves VARIANT EDIT: a valid edit is saved as the new object and
# leaves no scratch files behind (except emacs' backup, a plain file).
editor_saves() {
  local variant=$1 edit=$2 file
  file=$(object_with_title "Ok$variant" e1 alpha)
  "$edit" "$file" alpha beta
  assert_titled "$file" e1 beta
  if [[ $variant == emacsbackup ]]; then
    assert_only "$M/Ok$variant" e1.json e1.json~
    assert_equal "regular file" "$(stat -c %F "$file~")" "type of the backup"
    assert_titled "$file~" e1 alpha
    assert_equal 1 "$(jq '.collections[] | select(.name == "Ok'"$variant"'") | .objects' "$M/.realmfs/status")"
  else
    assert_only "$M/Ok$variant" e1.json
  fi
}

# editor_fails VARIANT EDIT: an edit that makes the object invalid fails to
# save, and the object keeps its stored version.
editor_fails() {
  local variant=$1 edit=$2 file status=0
  file=$(object_with_title "Bad$variant" e1 alpha)
  local count
  count=$(error_count "$M")
  "$edit" "$file" '"title"' 'title' || status=$?
  if ((status == 0)); then
    echo "the editor reported a successful save"
    return 1
  fi
  assert_titled "$file" e1 alpha
  assert_only "$M/Bad$variant" e1.json
  ((count < $(error_count "$M"))) || { echo "no error recorded"; return 1; }
  assert_match "Bad$variant/e1.json|*|EINVAL|line 3, column *" "$(last_error "$M")" "error record"
}

# ---- file tools ---------------------------------------------------------

sed_in_place() {
  local file
  file=$(object_with_title Sed s1 alpha)
  sed -i 's/alpha/beta/' "$file"
  assert_titled "$file" s1 beta
  assert_only "$M/Sed" s1.json
  local status=0 message
  message=$(sed -i 's/{/[/' "$file" 2>&1) || status=$?
  assert_equal 4 "$status" "sed's exit status on an invalid result"
  assert_match "sed: cannot rename $M/Sed/sed*: Invalid argument" "$message" "sed's message"
  assert_titled "$file" s1 beta
  assert_match "Sed/s1.json|rename|EINVAL|line 2, column *" "$(last_error "$M")" "error record"
}

jq_through_temporary_file() {
  local file
  file=$(object_with_title Jq j1 alpha)
  jq '.x = 1' "$file" >"$file.tmp"
  mv "$file.tmp" "$file"
  assert_object "$file" '{"_id": "j1", "title": "alpha", "n": 1, "x": 1}'
  assert_only "$M/Jq" j1.json
}

cp_in_and_out() {
  mkdir "$M/Cp"
  local outside=$TEST_ROOT/cp
  mkdir -p "$outside"
  echo '{"b": [1, 2], "a": "x"}' >"$outside/in.json"
  cp "$outside/in.json" "$M/Cp/c1.json"
  assert_object "$M/Cp/c1.json" '{"_id": "c1", "b": [1, 2], "a": "x"}'
  cp "$M/Cp/c1.json" "$outside/out.json"
  cmp "$M/Cp/c1.json" "$outside/out.json"
  cp "$outside/out.json" "$M/Cp/c1.json"  # over an existing object
  assert_object "$M/Cp/c1.json" '{"_id": "c1", "b": [1, 2], "a": "x"}'
}

# make_tree DIR COUNT: COUNT canonical objects in DIR, as a realm shows them.
make_tree() {
  mkdir -p "$1"
  local i
  for ((i = 0; i < $2; i++)); do
    canonical "{\"_id\": \"o$i\", \"i\": $i, \"tags\": [\"t$((i % 3))\"], \"ok\": true}" >"$1/o$i.json"
  done
}

cp_recursive_round_trip() {
  make_tree "$TEST_ROOT/tree/Copied" 40
  cp -r "$TEST_ROOT/tree/Copied" "$M/"
  mkdir "$TEST_ROOT/back"
  cp -r "$M/Copied" "$TEST_ROOT/back/"
  diff -r "$TEST_ROOT/tree/Copied" "$TEST_ROOT/back/Copied"
  assert_equal 40 "$(jq '.collections[] | select(.name == "Copied") | .objects' "$M/.realmfs/status")"
}

rsync_in() {
  make_tree "$TEST_ROOT/rsync/Synced" 30
  rsync -a "$TEST_ROOT/rsync/Synced/" "$M/Synced/"
  diff -r "$TEST_ROOT/rsync/Synced" "$M/Synced"
  assert_equal 30 "$(ls -A "$M/Synced" | wc -l)" "entries (no temporary files left)"
}

# rsync -a sets the mtime of its temporary file, then renames it into
# place; a second run compares sizes and mtimes and has nothing to do.
rsync_keeps_mtimes() {
  make_tree "$TEST_ROOT/rsync/Timed" 5
  touch -d '2021-06-01 12:00:00 UTC' "$TEST_ROOT/rsync/Timed"/*.json
  rsync -a "$TEST_ROOT/rsync/Timed/" "$M/Timed/"
  assert_equal "1622548800" "$(stat -c %Y "$M/Timed/o3.json")" "mtime"
  assert_equal "" "$(rsync -a --omit-dir-times --itemize-changes "$TEST_ROOT/rsync/Timed/" "$M/Timed/")" \
    "changes found by a second rsync"
}

grep_and_find_over_tree() {
  make_tree "$M/Searched" 9
  sed -i 's/"ok": true/"ok": false/' "$M/Searched/o4.json"
  local expected
  expected=$(printf '%s\n' "$M"/Searched/o{1,4,7}.json)
  assert_equal "$expected" "$(grep -rl '"t1"' "$M/Searched" | sort)" "grep -rl"
  assert_equal "$M/Searched/o4.json:  \"ok\": false" "$(grep -r '"ok": false' "$M/Searched")" "grep -r"
  local reference=$TEST_ROOT/reference-grep
  sleep 0.05
  touch "$reference"
  sleep 0.05
  vim -es -c '%s/"i": 8/"i": 80/' -c wq "$M/Searched/o8.json"
  assert_equal "$M/Searched/o8.json" "$(find "$M" -newer "$reference" -name '*.json')" "find -newer"
}

editors_edit_schemas() {
  mkdir "$M/Typed"
  local schema=$M/.realmfs/schema/Typed.json
  echo '{"bsonType": "object", "properties": {"_id": {"bsonType": "string"}, "n": {"bsonType": "int"}}}' >"$schema"
  edit_with_vim "$schema" '"int"' '"double"'
  sed -i 's/"string"/"objectId"/' "$schema"
  assert_object "$schema" '{"bsonType": "object", "properties": {"_id": {"bsonType": "objectId"}, "n": {"bsonType": "double"}}}'
  local status=0
  edit_with_vim "$schema" '"double"' '"dubble"' || status=$?
  assert_equal 1 "$status" "vim's exit status after an invalid schema edit"
  assert_match '.realmfs/schema/Typed.json|*|EINVAL|properties.n: unknown bsonType "dubble"' \
    "$(last_error "$M")" "error record"
  assert_only "$M/.realmfs/schema" Typed.json
  assert_equal '"double"' "$(jq -c .properties.n.bsonType "$schema")" "n's type after the refused edit"
}

mv_renames_collection() {
  make_tree "$M/Before" 5
  echo 'swap' >"$M/Before/.o1.json.swp"
  mv "$M/Before" "$M/After"
  assert_no_file "$M/Before"
  assert_only "$M/After" .o1.json.swp o0.json o1.json o2.json o3.json o4.json
  assert_object "$M/After/o3.json" '{"_id": "o3", "i": 3, "tags": ["t0"], "ok": true}'
}

rm_recursive_collection() {
  make_tree "$M/Removed" 25
  touch "$M/Removed/pending.json" "$M/Removed/notes.txt~"
  rm -r "$M/Removed"
  assert_no_file "$M/Removed"
  jq -e '.collections | map(.name) | index("Removed") == null' "$M/.realmfs/status" >/dev/null
}

for entry in "${EDITORS[@]}"; do
  ok "${entry%%|*}: a valid edit is saved" editor_saves "${entry%%|*}" "${entry#*|}"
  ok "${entry%%|*}: an invalid edit fails and keeps the object" editor_fails "${entry%%|*}" "${entry#*|}"
done
ok "vim, emacs and nano create new objects" editors_create_objects
ok "sed -i edits in place; an invalid result is refused" sed_in_place
ok "jq to a temporary file, then mv over the object" jq_through_temporary_file
ok "cp into and out of a collection" cp_in_and_out
ok "cp -r of a directory of objects round-trips byte for byte" cp_recursive_round_trip
ok "rsync -a into a new collection" rsync_in
ok "rsync -a keeps mtimes: a second run transfers nothing" rsync_keeps_mtimes
ok "grep -r and find -newer over a collection" grep_and_find_over_tree
ok "vim and sed edit a schema; an invalid schema edit is refused" editors_edit_schemas
ok "mv renames a collection (copying, as across file systems)" mv_renames_collection
ok "rm -r removes a whole collection" rm_recursive_collection
finish
