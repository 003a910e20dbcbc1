#!/bin/bash
# tests/cli/convert.sh - `tessera convert`: tessera generates the same greedy
# text from its own GGUF of stories260K as from the Hugging Face folder (and
# from llama.cpp's GGUF of the same weights), back to HF keeps the weights
# bit for bit, quantized outputs load and generate, bad uses are refused.
set -u
: "${TESSERA:?run through ctest}" "${TESSERA_BUILD_DIR:?run through ctest}"
export TESSERA_PLUGIN_PATH=$TESSERA_BUILD_DIR/share/tessera/plugins.d XDG_CONFIG_HOME=/nonexistent-tessera-test
fail=0
check() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
gen() { "$TESSERA" generate -q -m "$1" -p "Once upon a time" -n 64 --temp 0 2>/dev/null; }

"$TESSERA" convert -q -m fixtures/stories260K-hf -o "$tmp/s.gguf" --outtype f32; rc=$?
check "HF -> GGUF exits 0" '[ $rc -eq 0 ] && [ -s "$tmp/s.gguf" ]'
hf=$(gen fixtures/stories260K-hf)
ours=$(gen "$tmp/s.gguf")
theirs=$(gen fixtures/stories260K-gguf/stories260K-f32.gguf)
check "greedy text is not empty" '[ -n "$hf" ]'
check "same greedy text from our GGUF as from the HF folder" '[ "$ours" = "$hf" ]'
check "same greedy text as from llama.cpp's GGUF" '[ "$ours" = "$theirs" ]'

"$TESSERA" convert -q -m "$tmp/s.gguf" -o "$tmp/back"; rc=$?
check "GGUF -> HF exits 0" '[ $rc -eq 0 ]'
check "weights come back byte for byte" 'cmp -s "$tmp/back/model.safetensors" fixtures/stories260K-hf/model.safetensors'
for f in config.json tokenizer.json tokenizer_config.json generation_config.json; do
  check "GGUF -> HF writes $f" '[ -s "$tmp/back/$f" ]'
done
check "same greedy text from the folder written back" '[ "$(gen "$tmp/back")" = "$hf" ]'
# llama.cpp's own (mixed Q5_0/Q8_0/F16) file also converts to a working folder
"$TESSERA" convert -q -m fixtures/stories260K-gguf/stories260K-q4_k_m.gguf -o "$tmp/q4km"; rc=$?
check "llama.cpp's q4_k_m GGUF -> HF exits 0" '[ $rc -eq 0 ]'
check "its folder generates" '[ -n "$(gen "$tmp/q4km")" ]'

# quantized output types (stories' ffn_down rows of 172 fall back to F16)
for t in q8_0 q4_0 q5_1 f16 bf16; do
  "$TESSERA" convert -q -m fixtures/stories260K-hf -o "$tmp/s-$t.gguf" --outtype $t; rc=$?
  check "--outtype $t exits 0" '[ $rc -eq 0 ]'
  out=$(gen "$tmp/s-$t.gguf")
  check "--outtype $t generates text" '[ ${#out} -gt 20 ]'
done
check "f16 keeps the greedy text" '[ "$(gen "$tmp/s-f16.gguf")" = "$hf" ]'

# refusals
"$TESSERA" convert -q -m fixtures/stories260K-hf -o "$tmp/x.gguf" --outtype q3_k >/dev/null 2>&1; rc=$?
check "unknown --outtype fails" '[ $rc -eq 1 ] && [ ! -e "$tmp/x.gguf" ]'
"$TESSERA" convert -q -m fixtures/tiny-gpt2 -o "$tmp/x.gguf" 2>"$tmp/err"; rc=$?
check "unsupported architecture fails with a sentence" '[ $rc -eq 1 ] && grep -q "gpt2" "$tmp/err"'
"$TESSERA" convert -m fixtures/stories260K-hf >/dev/null 2>&1; rc=$?
check "missing -o is a usage error" '[ $rc -eq 2 ]'
"$TESSERA" convert --help | grep -q -- --outtype
check "--help documents --outtype" '[ $? -eq 0 ]'
exit $fail
