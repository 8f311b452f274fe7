#!/usr/bin/env bash
# shellcheck disable=SC2016  # the $ of Extended JSON keys is literal
# `realmfs-server import` and `export`: JSON lines in and out of the sync
# store, with real app exports.
#
# Environment: REALMFS_SERVER = path of the realmfs-server binary,
# REALMFS_EXPORTS = the directory of app exports (both set by meson).
: "${REALMFS_SERVER:?set REALMFS_SERVER to the realmfs-server binary}"
: "${REALMFS_EXPORTS:?set REALMFS_EXPORTS to the app exports}"
# lib.sh's case runner and assertions; its mount helpers are not used here.
REALMFS=${REALMFS:-unused}
# shellcheck source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"

# tiered has development mode off and an Item schema requiring _id
# (objectId), owner_id, name and team; sync-todo has development mode on.
TIERED=$REALMFS_EXPORTS/tiered
DEVELOPMENT=$REALMFS_EXPORTS/sync-todo

oid() {  # oid N: an ObjectId whose last digits are N, in N's order
  printf '{"$oid": "6500000000000000%08d"}' "$1"
}

# Three good lines, one of each kind of bad line, blank lines ignored.
write_mixed_file() {
  cat >"$1" <<EOF
{"_id": $(oid 1), "owner_id": "u1", "name": "first", "team": "a"}

{"_id": $(oid 2), "owner_id": "u1", "name": "second", "team": "a", "collaborators": ["u2"]}
{"_id": $(oid 3), "owner_id": "u1", "name": "no team"}
{"_id": $(oid 4), "owner_id": "u1", "name": }
{"owner_id": "u1", "name": "no id", "team": "a"}
   
{"_id": $(oid 5), "owner_id": "u2", "name": "fifth", "team": "b"}
EOF
}

# The good lines of write_mixed_file, as jq -S -c writes them.
expected_good_lines() {
  sed -n '1p;3p;8p' "$1" | jq -S -c .
}

import_reports_bad_lines_and_keeps_the_good_ones() {
  local data=$TEST_ROOT/mixed.data file=$TEST_ROOT/mixed.json status=0 report bad_json
  write_mixed_file "$file"
  bad_json=$(sed -n 5p "$file")  # its error is at its last character
  report=$("$REALMFS_SERVER" import --app "$TIERED" --data "$data" Item "$file" 2>&1) || status=$?
  assert_equal 3 "$status" "exit status with skipped lines" || return 1
  assert_equal "$file:4: does not match the schema of Item: team: required field is missing
$file:5: column ${#bad_json}: unexpected token near '}'
$file:6: the document has no _id
imported 3 documents into Item, skipped 3" "$report" "report" || return 1
  assert_equal "$(expected_good_lines "$file")" \
    "$("$REALMFS_SERVER" export --app "$TIERED" --data "$data" Item | jq -S -c .)" "export"
}

reimport_leaves_the_same_documents() {
  local data=$TEST_ROOT/again.data file=$TEST_ROOT/again.json first second
  write_mixed_file "$file"
  "$REALMFS_SERVER" import --app "$TIERED" --data "$data" Item "$file" 2>/dev/null || [[ $? -eq 3 ]]
  first=$("$REALMFS_SERVER" export --app "$TIERED" --data "$data" Item)
  "$REALMFS_SERVER" import --app "$TIERED" --data "$data" Item "$file" 2>/dev/null || [[ $? -eq 3 ]]
  second=$("$REALMFS_SERVER" export --app "$TIERED" --data "$data" Item)
  assert_equal "$first" "$second" "export after importing twice"
}

# tiered's custom user data collection, User, is not in the app and has no
# schema: it takes any document, _ids of several types included.
canonical_extended_json_is_read_and_relaxed_written() {
  local data=$TEST_ROOT/canonical.data exported
  printf '%s\n' \
    '{"_id": {"$numberLong": "7"}, "n": {"$numberInt": "5"}, "d": {"$numberDouble": "1.5"}, "when": {"$date": {"$numberLong": "1714564800000"}}}' \
    '{"_id": "text", "big": {"$numberLong": "9007199254740993"}}' |
    "$REALMFS_SERVER" import --app "$TIERED" --data "$data" User - 2>/dev/null
  # ints come before strings in _id order
  exported=$("$REALMFS_SERVER" export --app "$TIERED" --data "$data" User)
  assert_equal '{"_id": 7, "n": 5, "d": 1.5, "when": {"$date": "2024-05-01T12:00:00Z"}}
{"_id": "text", "big": {"$numberLong": "9007199254740993"}}' "$exported" "export"
}

standard_input_and_output_file() {
  local data=$TEST_ROOT/stdin.data report status=0
  report=$(printf '{"_id": 1, "a": 1}\n{"_id": }\n' |
    "$REALMFS_SERVER" import --app "$DEVELOPMENT" --data "$data" Loose - 2>&1) || status=$?
  assert_equal 3 "$status" "exit status" || return 1
  assert_match 'stdin:2: column *' "$(head -1 <<<"$report")" "report" || return 1
  "$REALMFS_SERVER" export --app "$DEVELOPMENT" --data "$data" Loose "$TEST_ROOT/out.json"
  assert_file_equals "$TEST_ROOT/out.json" '{"_id": 1, "a": 1}'
}

many_lines_span_batches_in_id_order() {
  local data=$TEST_ROOT/many.data file=$TEST_ROOT/many.json report
  for i in $(seq 2500 -1 1); do
    printf '{"_id": %s, "owner_id": "u", "name": "item %d", "team": "t"}\n' "$(oid "$i")" "$i"
  done >"$file"
  report=$("$REALMFS_SERVER" import --app "$TIERED" --data "$data" Item "$file" 2>&1)
  assert_equal "imported 2500 documents into Item, skipped 0" "$report" "report" || return 1
  assert_equal "$(seq 1 2500 | sed 's/^/item /')" \
    "$("$REALMFS_SERVER" export --app "$TIERED" --data "$data" Item | jq -r .name)" "names in id order"
}

collection_outside_the_app_exits_1() {
  local data=$TEST_ROOT/outside.data report status=0
  write_mixed_file "$TEST_ROOT/outside.json"
  report=$("$REALMFS_SERVER" import --app "$TIERED" --data "$data" Nope "$TEST_ROOT/outside.json" 2>&1) ||
    status=$?
  assert_equal 1 "$status" "exit status" || return 1
  assert_match '*no collection "Nope"*development mode*' "$report" "message" || return 1
  status=0
  "$REALMFS_SERVER" export --app "$TIERED" --data "$data" Nope >/dev/null 2>&1 || status=$?
  assert_equal 1 "$status" "export exit status"
}

failures_and_usage_errors() {
  local status=0
  "$REALMFS_SERVER" export --app "$TIERED" --data "$TEST_ROOT/never" Item >/dev/null 2>&1 || status=$?
  assert_equal 1 "$status" "export of a data directory without a store" || return 1
  assert_no_file "$TEST_ROOT/never" || return 1
  status=0
  "$REALMFS_SERVER" import --app "$TIERED" --data "$TEST_ROOT/d" Item "$TEST_ROOT/missing.json" \
    2>/dev/null || status=$?
  assert_equal 1 "$status" "import of a missing file" || return 1
  local arguments
  for arguments in "import --app $TIERED Item x" "import --app $TIERED --data d Item" \
                   "export --data d Item" "export --app $TIERED --data d" "export --bogus"; do
    status=0
    # shellcheck disable=SC2086  # the arguments are split on purpose
    "$REALMFS_SERVER" $arguments >/dev/null 2>&1 || status=$?
    assert_equal 2 "$status" "exit status of: $arguments" || return 1
  done
  "$REALMFS_SERVER" import --help | grep -q '^Exit status: 0 every line imported; 3 '
}

ok "import reports bad lines as FILE:LINE and keeps the good ones" \
  import_reports_bad_lines_and_keeps_the_good_ones
ok "importing a file again leaves the same documents" reimport_leaves_the_same_documents
ok "Canonical Extended JSON is read, Relaxed written" canonical_extended_json_is_read_and_relaxed_written
ok "import from standard input, export to a file" standard_input_and_output_file
ok "2,500 lines span batches and export in _id order" many_lines_span_batches_in_id_order
ok "a collection outside the app (no development mode) exits 1" collection_outside_the_app_exits_1
ok "failures exit 1, usage errors 2" failures_and_usage_errors
finish
