#!/bin/bash
# tests/cli/quantize.sh - `tessera quantize` with the hqq quantizer: the
# saved checkpoint has quantization_config, loads pre-quantized, generates,
# and computes exactly what the on-load quantized model computes (so the
# quantized weights survived save -> load bit for bit).
set -u
: "${TESSERA:?run through ctest}" "${TESSERA_BUILD_DIR:?run through ctest}"
export TESSERA_PLUGIN_PATH=$TESSERA_BUILD_DIR/share/tessera/plugins.d XDG_CONFIG_HOME=/nonexistent-tessera-test
fail=0
check() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! "$TESSERA" plugins 2>/dev/null | grep -q hqq; then echo "SKIP: no hqq quantizer plugin"; exit 0; fi

"$TESSERA" quantize -m fixtures/stories260K-hf --method hqq --bits 4 --group-size 64 -o "$tmp/q" 2>"$tmp/err"; rc=$?
check "quantize exits 0" '[ $rc -eq 0 ]'
check "final summary on stderr" 'grep -q "quantized fixtures/stories260K-hf with hqq" "$tmp/err"'
check "config.json has quantization_config" 'grep -q "\"quantization_config\"" "$tmp/q/config.json"'
check "config.json keeps the model's keys" 'grep -q "\"num_hidden_layers\": 5" "$tmp/q/config.json"'
for f in tokenizer.json tokenizer_config.json generation_config.json model.safetensors; do
  check "writes $f" '[ -s "$tmp/q/$f" ]'
done
ids_saved=$("$TESSERA" generate -q -m "$tmp/q" -p "Once upon a time" -n 48 --temp 0 --ids 2>/dev/null)
ids_onload=$("$TESSERA" generate -q -m fixtures/stories260K-hf --set quantization.method=hqq \
  --set quantization.nbits=4 --set quantization.group_size=64 -p "Once upon a time" -n 48 --temp 0 --ids 2>/dev/null)
check "the saved checkpoint generates" '[ $(wc -w <<<"$ids_saved") -ge 40 ]'
check "saved == quantized on load (greedy ids)" '[ "$ids_saved" = "$ids_onload" ]'
"$TESSERA" inspect -q -m "$tmp/q" >"$tmp/inspect" 2>/dev/null
check "inspect shows quantized weights" 'grep -q "q_proj.weight: {shape: \[64, 64\], format: INT_GROUP" "$tmp/inspect"'
# saving the pre-quantized checkpoint again gives the same bytes
"$TESSERA" quantize -q -m "$tmp/q" --method hqq -o "$tmp/q2" 2>/dev/null; rc=$?
check "re-saving a pre-quantized checkpoint works" '[ $rc -eq 0 ]'
check "and is byte-identical" 'cmp -s "$tmp/q/model.safetensors" "$tmp/q2/model.safetensors"'
"$TESSERA" quantize -m fixtures/stories260K-hf -o "$tmp/x" >/dev/null 2>&1; rc=$?
check "missing --method is a usage error" '[ $rc -eq 2 ]'
exit $fail
