#!/usr/bin/env bash
# shellcheck disable=SC2016  # the $ of Extended JSON keys is literal
# Development Mode through the real binary: `realmfs-server import` teaches
# the schemas, `realmfs-server export-app` writes them back into an app
# export that loads with them; and import into the custom user data
# collection of an app that does not list it.  (tests/unit/test_sync_schema.c
# checks inference and the export's contents in detail.)
#
# Environment: REALMFS_SERVER = path of the realmfs-server binary,
# REALMFS_EXPORTS = the directory of app exports (both set by meson).
: "${REALMFS_SERVER:?set REALMFS_SERVER to the realmfs-server binary}"
: "${REALMFS_EXPORTS:?set REALMFS_EXPORTS to the app exports}"
REALMFS=${REALMFS:-unused}
# shellcheck source=../integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"

TIERED=$REALMFS_EXPORTS/tiered        # development mode off; custom user data in "User"
DEVELOPMENT=$REALMFS_EXPORTS/sync-todo  # development mode on, database "todo"

note_lines() {
  printf '%s\n' \
    '{"_id": {"$oid": "650000000000000000000001"}, "text": "hi", "tags": ["a"]}' \
    '{"_id": {"$oid": "650000000000000000000002"}, "text": 5}' \
    '{"_id": {"$oid": "650000000000000000000003"}, "stars": 4}'
}

import_teaches_and_export_app_writes_back() {
  local data=$TEST_ROOT/learn.data out=$TEST_ROOT/learn.out report status=0
  report=$(note_lines | "$REALMFS_SERVER" import --app "$DEVELOPMENT" --data "$data" Note - 2>&1) ||
    status=$?
  assert_equal 3 "$status" "import exit status" || return 1
  assert_equal 'stdin:2: does not match the schema of Note: text: expected string, found long
imported 2 documents into Note, skipped 1' "$report" "import report" || return 1
  "$REALMFS_SERVER" export-app --app "$DEVELOPMENT" --data "$data" --out "$out" || return 1
  assert_equal '{"bsonType":"object","properties":{"_id":{"bsonType":"objectId"},"stars":{"bsonType":"long"},"tags":{"bsonType":"array","items":{"bsonType":"string"}},"text":{"bsonType":"string"}},"required":["_id"],"title":"Note"}' \
    "$(jq -c . "$out/data_sources/mongodb-atlas/todo/Note/schema.json")" "Note's schema" || return 1
  # The exported app is loaded with the schema it learned: a fresh data
  # directory refuses what contradicts it.
  status=0
  report=$(printf '%s\n' '{"_id": {"$oid": "650000000000000000000004"}, "stars": "many"}' |
    "$REALMFS_SERVER" import --app "$out" --data "$TEST_ROOT/fresh.data" Note - 2>&1) || status=$?
  assert_equal 3 "$status" "import into the exported app" || return 1
  assert_match '*stars: expected long, found string*' "$report" "report"
}

export_app_copies_an_app_without_learning() {
  local app
  for app in "$REALMFS_EXPORTS"/*/; do
    app=${app%/}
    "$REALMFS_SERVER" export-app --app "$app" --data "$TEST_ROOT" \
      --out "$TEST_ROOT/copy.${app##*/}" || return 1
    diff -r "$app" "$TEST_ROOT/copy.${app##*/}" >&2 || return 1
  done
}

export_app_refusals() {
  local status=0 report
  mkdir -p "$TEST_ROOT/full" && touch "$TEST_ROOT/full/file"
  report=$("$REALMFS_SERVER" export-app --app "$DEVELOPMENT" --data "$TEST_ROOT" \
    --out "$TEST_ROOT/full" 2>&1) || status=$?
  assert_equal 1 "$status" "exit status for a non-empty OUTDIR" || return 1
  assert_equal "realmfs-server: export-app: $TEST_ROOT/full: exists and is not empty" "$report" \
    "message" || return 1
  status=0
  "$REALMFS_SERVER" export-app --app "$DEVELOPMENT" --data "$TEST_ROOT" >/dev/null 2>&1 ||
    status=$?
  assert_equal 2 "$status" "exit status without --out"
}

import_into_custom_user_data() {
  local data=$TEST_ROOT/custom.data line
  line='{"_id": {"$oid": "650000000000000000000009"}, "canReadAll": true}'
  "$REALMFS_SERVER" import --app "$TIERED" --data "$data" User - <<<"$line" 2>/dev/null || return 1
  assert_equal "$line" "$("$REALMFS_SERVER" export --app "$TIERED" --data "$data" User)" "export"
}

ok "import in Development Mode teaches the schema; export-app writes it back" \
  import_teaches_and_export_app_writes_back
ok "export-app of an app with nothing learned is a copy" export_app_copies_an_app_without_learning
ok "export-app refuses a non-empty OUTDIR, needs --out" export_app_refusals
ok "import into the custom user data collection (tiered's User)" import_into_custom_user_data
finish
