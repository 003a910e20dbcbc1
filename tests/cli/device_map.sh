#!/bin/bash
# device_map: a mixed map (some layers on one backend, the rest on another)
# gives the same greedy tokens as a single backend; tessera inspect prints
# the resulting hf_device_map; a device no backend provides is an error
# naming it.  The mixed part needs the onednn plugin (skipped otherwise).
set -u
T=${TESSERA:?}
M=fixtures/stories260K-hf
fail=0; n=0
check() { n=$((n+1)); if eval "$2"; then :; else echo "FAIL: $1"; fail=$((fail+1)); fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

base=$("$T" generate -m $M -p "Lily and Ben" -n 48 --temp 0 -q --ids)
cat > "$tmp/cpu.yaml" <<Y
device_map: {"": cpu}
Y
one=$("$T" generate -m $M -p "Lily and Ben" -n 48 --temp 0 -q --ids -c "$tmp/cpu.yaml")
check "device_map {'': cpu} gives the same tokens" '[ "$one" = "$base" ]'

cat > "$tmp/bad.yaml" <<Y
device_map: {model.layers.0-2: cuda:0, lm_head: cpu}
Y
"$T" generate -m $M -p x -n 2 -q -c "$tmp/bad.yaml" 2>"$tmp/err"; rc=$?
check "a device no loaded backend provides is an error naming it" '[ $rc = 1 ] && grep -q "cuda:0" "$tmp/err"'

if "$T" plugins --json 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if any(p["name"]=="onednn" and p["available"] for p in json.load(sys.stdin)) else 1)'; then
    cat > "$tmp/mixed.yaml" <<Y
backends: [onednn, cpu]
device_map:
  model.embed_tokens: cpu
  model.layers.0-2: onednn
  model.layers.3-4: cpu
  model.norm: cpu
  lm_head: onednn
Y
    # every matmul of the onednn layers really runs there (no small-batch decline)
    mixed=$(TESSERA_ONEDNN_MIN_ROWS=1 "$T" generate -m $M -p "Lily and Ben" -n 48 --temp 0 -q --ids -c "$tmp/mixed.yaml")
    check "mixed onednn/cpu device_map gives the same tokens as cpu" '[ "$mixed" = "$base" ]'
    "$T" inspect -m $M -c "$tmp/mixed.yaml" -q > "$tmp/inspect"
    check "inspect: layer 1 on onednn" 'grep -q "^  model.layers.1: onednn" "$tmp/inspect"'
    check "inspect: layer 4 on cpu" 'grep -q "^  model.layers.4: cpu" "$tmp/inspect"'
    check "inspect: lm_head on onednn" 'grep -q "^  lm_head: onednn" "$tmp/inspect"'
else
    echo "SKIP: the onednn plugin is not available; mixed device_map part not run"
    echo "$((n-fail)) passed, $fail failed"
    [ $fail = 0 ] || exit 1
    exit 77
fi
echo "$((n-fail)) passed, $fail failed"
[ $fail = 0 ]
