#!/bin/bash
# device_map with a backend that has its own memory: the test-only fakedev
# plugin (tests/plugins/fakedev) checks that every pointer it is given lies
# in its buffers, so a missing copy or a weight left in host memory fails
# the run.  Greedy tokens of stories260K must equal the cpu-only run for
# device_map auto (all on fakedev), a mixed explicit map, and a max_memory
# that spills layers to cpu and to disk; tessera inspect prints the map.
set -u
T=${TESSERA:?}
M=fixtures/stories260K-hf
: "${TESSERA_PLUGIN_PATH:?run through ctest (needs the fakedev plugins.d)}"
[ -f "${TESSERA_PLUGIN_PATH%%:*}/../lib/tessera-fakedev.so" ] ||
    { echo "FAIL: the fakedev test plugin is not built (target tessera-fakedev)"; exit 1; }
fail=0; n=0
check() { n=$((n+1)); if eval "$2"; then :; else echo "FAIL: $1"; fail=$((fail+1)); fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export TESSERA_FAKEDEV_STATS="$tmp/stats"
gen() { "$T" generate -m $M -p "Lily and Ben" -n 48 --temp 0 -q --ids "$@"; }
stat() { tail -1 "$tmp/stats" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

base=$(gen)
check "cpu-only run gives tokens" '[ -n "$base" ]'

# auto: everything fits on fakedev
printf 'backends: [fakedev, cpu]\ndevice_map: auto\n' > "$tmp/auto.yaml"
out=$(gen -c "$tmp/auto.yaml"); rc=$?
check "auto on fakedev: same tokens as cpu (rc $rc)" '[ $rc = 0 ] && [ "$out" = "$base" ]'
check "auto: fakedev ran nodes" '[ "$(stat nodes)" -gt 0 ]'
check "auto: activations came back to the host" '[ "$(stat downloads)" -gt 0 ]'
check "auto: no buffer left behind" '[ "$(stat leaked)" = 0 ]'
"$T" inspect -m $M -c "$tmp/auto.yaml" -q > "$tmp/i.auto"
for mod in model.embed_tokens model.layers.0 model.layers.4 model.norm lm_head; do
    check "inspect auto: $mod on fakedev:0" 'grep -q "^  $mod: fakedev:0\$" "$tmp/i.auto"'
done
check "inspect auto: weights uploaded" 'grep -q "^device fakedev:0 .*47 weights uploaded" "$tmp/i.auto"'

# a mixed explicit map: fakedev, cpu and disk layers, tied lm_head on fakedev
cat > "$tmp/mixed.yaml" <<Y
backends: [fakedev, cpu]
device_map:
  model.embed_tokens: cpu
  model.layers.0-1: fakedev:0
  model.layers.2: cpu
  model.layers.3: disk
  model.layers.4: fakedev
  model.norm: cpu
  lm_head: fakedev:0
Y
out=$(gen -c "$tmp/mixed.yaml"); rc=$?
check "mixed map: same tokens as cpu (rc $rc)" '[ $rc = 0 ] && [ "$out" = "$base" ]'
"$T" inspect -m $M -c "$tmp/mixed.yaml" -q > "$tmp/i.mixed"
check "inspect mixed: layer 2 on cpu" 'grep -q "^  model.layers.2: cpu\$" "$tmp/i.mixed"'
check "inspect mixed: layer 3 on disk" 'grep -q "^  model.layers.3: disk\$" "$tmp/i.mixed"'
check "inspect mixed: disk weights stay offloaded" \
    'grep -q "^  model.layers.3.mlp.up_proj.weight: .*offloaded (disk)" "$tmp/i.mixed"'

# max_memory too small for the model: layers spill to cpu, then to disk
cat > "$tmp/small.yaml" <<Y
backends: [fakedev, cpu]
device_map: auto
max_memory: {fakedev:0: 3MiB, cpu: 700KiB}
Y
out=$(TESSERA_FAKEDEV_MEMORY=4MiB gen -c "$tmp/small.yaml"); rc=$?
check "max_memory spill: same tokens as cpu (rc $rc)" '[ $rc = 0 ] && [ "$out" = "$base" ]'
check "max_memory spill: fakedev stayed within 4MiB" '[ "$(stat peak)" -le 4194304 ]'
TESSERA_FAKEDEV_MEMORY=4MiB "$T" inspect -m $M -c "$tmp/small.yaml" -q > "$tmp/i.small"
check "inspect spill: some module on fakedev:0" 'grep -q "^  model.layers.0: fakedev:0\$" "$tmp/i.small"'
check "inspect spill: some layer on cpu" 'grep -q "^  model.layers.[0-9]: cpu\$" "$tmp/i.small"'
check "inspect spill: some layer on disk" 'grep -q "^  model.layers.[0-9]: disk\$" "$tmp/i.small"'

# sequential with the device's own (small) memory and no max_memory
printf 'backends: [fakedev, cpu]\ndevice_map: sequential\n' > "$tmp/seq.yaml"
out=$(TESSERA_FAKEDEV_MEMORY=2700KiB gen -c "$tmp/seq.yaml"); rc=$?
check "sequential, small device: same tokens as cpu (rc $rc)" '[ $rc = 0 ] && [ "$out" = "$base" ]'
TESSERA_FAKEDEV_MEMORY=2700KiB "$T" inspect -m $M -c "$tmp/seq.yaml" -q > "$tmp/i.seq"
check "inspect sequential: layer 4 left the device" '! grep -q "^  model.layers.4: fakedev:0\$" "$tmp/i.seq"'

# a device too small for what the map puts on it: an error naming it
printf 'backends: [fakedev, cpu]\ndevice_map: {"": fakedev:0}\n' > "$tmp/all.yaml"
TESSERA_FAKEDEV_MEMORY=100KiB gen -c "$tmp/all.yaml" > /dev/null 2> "$tmp/err"; rc=$?
check "too small a device is an error naming the weight and device" \
    '[ $rc != 0 ] && grep -q "fakedev:0" "$tmp/err" && grep -qi "weight" "$tmp/err"'

echo "$((n-fail)) passed, $fail failed"
[ $fail = 0 ]
