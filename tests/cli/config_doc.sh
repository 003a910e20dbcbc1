#!/bin/bash
# docs/configuration.md is generated from the key table (core/config_keys.c):
# it must equal `tessera config --markdown` byte for byte.  To refresh it:
#   $BUILD/bin/tessera config --markdown > docs/configuration.md
set -eu
: "${TESSERA:?set TESSERA to the tessera binary}"
doc="${TESSERA_SOURCE_DIR:-.}/docs/configuration.md"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$TESSERA" config --markdown > "$out"
if ! cmp -s "$out" "$doc"; then
    echo "FAIL: docs/configuration.md differs from 'tessera config --markdown':" >&2
    diff -u "$doc" "$out" >&2 || true
    echo "regenerate it with: $TESSERA config --markdown > docs/configuration.md" >&2
    exit 1
fi
echo "ok: docs/configuration.md matches tessera config --markdown"
