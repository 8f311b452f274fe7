#!/usr/bin/env bash
# `realmfs query`: Realm Query Language over a mounted collection's store.
source "$(dirname "$0")/lib.sh"

M=$(mount_realm query) || { echo "Bail out! cannot mount"; exit 1; }
mkdir "$M/Task"
for i in $(seq 1 300); do
  printf '{"owner": "user-%d", "priority": %d, "done": %s, "title": "task %d", "tags": [%s]}\n' \
    $((i % 7)) $((i % 5)) "$([[ $((i % 3)) -eq 0 ]] && echo true || echo false)" "$i" \
    "$([[ $((i % 4)) -eq 0 ]] && echo '"urgent"' || echo '')" >"$M/Task/$i.json"
done

# The same selection made by jq over every file, as a reference.
jq_selection() {  # jq_selection FILTER
  local file
  for file in "$M"/Task/*.json; do
    jq -e "$1" "$file" >/dev/null && echo "$file"
  done | sort
}

matches_agree_with_jq() {
  local predicate=$1 filter=$2 expected actual
  expected=$(jq_selection "$filter")
  actual=$("$REALMFS" query "$M" Task "$predicate" | sort)
  [[ -n $expected ]] || { echo "the reference selection is empty"; return 1; }
  assert_equal "$expected" "$actual" "paths matching $predicate"
}

comparisons_and_logic() {
  matches_agree_with_jq 'priority >= 3 AND done == false' '.priority >= 3 and .done == false'
}

strings_and_lists() {
  matches_agree_with_jq 'title ENDSWITH "7" OR ANY tags == "urgent"' \
    '(.title | endswith("7")) or (.tags | index("urgent") != null)'
}

nul_separated_output_feeds_xargs() {
  local count
  count=$("$REALMFS" query -0 "$M" Task 'owner == "user-3"' | xargs -0 cat | grep -c '"owner": "user-3"')
  assert_equal "$(jq_selection '.owner == "user-3"' | wc -l)" "$count" "objects read through xargs -0"
}

bad_predicate_shows_a_caret() {
  local output status=0
  output=$("$REALMFS" query "$M" Task 'priority >> 3' 2>&1) || status=$?
  assert_equal 2 "$status" "exit status" || return 1
  # the caret line points under the error position given in the message
  local position caret_line
  position=$(sed -n 's/.*byte \([0-9]*\).*/\1/p' <<<"$output" | head -1)
  caret_line=$(tail -1 <<<"$output")
  assert_equal "$((position + 3))" "${#caret_line}" "caret column (2-space indent)"
}

refused_constructs_exit_2() {
  local predicate status
  for predicate in 'priority > 1 SORT(priority ASC)' 'tags.@count > 1' 'owner == $0'; do
    status=0
    "$REALMFS" query "$M" Task "$predicate" >/dev/null 2>&1 || status=$?
    assert_equal 2 "$status" "exit status for $predicate" || return 1
  done
}

schema_rejects_unknown_fields() {
  mkdir "$M/Note"
  printf '%s\n' '{"title": "Note", "bsonType": "object", "properties": {"_id": {"bsonType": "string"}, "text": {"bsonType": "string"}}}' \
    >"$M/.realmfs/schema/Note.json"
  echo '{"text": "hello"}' >"$M/Note/n1.json"
  assert_equal "$M/Note/n1.json" "$("$REALMFS" query "$M" Note 'text BEGINSWITH "he"')" || return 1
  local status=0
  "$REALMFS" query "$M" Note 'colour == "red"' >/dev/null 2>&1 || status=$?
  assert_equal 2 "$status" "exit status for an unknown field"
}

missing_collection_or_mount_exits_1() {
  local status=0
  "$REALMFS" query "$M" Nothing 'TRUEPREDICATE' >/dev/null 2>&1 || status=$?
  assert_equal 1 "$status" "exit status for a missing collection" || return 1
  status=0
  "$REALMFS" query "$TEST_ROOT" Task 'TRUEPREDICATE' >/dev/null 2>&1 || status=$?
  assert_equal 1 "$status" "exit status for a directory that is not a mount"
}

ok "comparisons and AND agree with jq" comparisons_and_logic
ok "string operators, OR and ANY over lists agree with jq" strings_and_lists
ok "-0 separates paths with NUL for xargs -0" nul_separated_output_feeds_xargs
ok "a bad predicate exits 2 with a caret under the position" bad_predicate_shows_a_caret
ok "SORT, aggregates and unbound parameters are refused" refused_constructs_exit_2
ok "with a schema, unknown fields are refused" schema_rejects_unknown_fields
ok "a missing collection or a non-mount exits 1" missing_collection_or_mount_exits_1
finish
