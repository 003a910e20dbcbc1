#!/bin/bash
# tessera generate / tokenize on stories260K: stdout carries only the text,
# greedy output equals the reference's, --ids, seeds, stop strings,
# --dump-tensors, and clear failures.
set -u
T=${TESSERA:?}
M=fixtures/stories260K-hf
fail=0; n=0
check() { n=$((n+1)); if eval "$2"; then :; else echo "FAIL: $1"; fail=$((fail+1)); fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# greedy text = the reference continuation (fixtures/stories260K-reference)
out=$("$T" generate -m $M -p "Once upon a time" -n 44 --temp 0 2>"$tmp/err")
ref=$(python3 -c "import json;c=json.load(open('fixtures/stories260K-reference/reference_outputs.json'))['cases'][1];print(c['greedy_text'][len('Once upon a time'):])")
check "greedy text equals the reference" '[ "$out" = "$ref" ]'
check "stderr has the timing line, stdout does not" 'grep -q "tokens/s" "$tmp/err" && ! grep -q "tokens/s" <<<"$out"'

# --ids prints the generated ids: the reference's
ids=$("$T" generate -m $M -p "Once upon a time" -n 10 --temp 0 --ids -q)
refids=$(python3 -c "import json;c=json.load(open('fixtures/stories260K-reference/reference_outputs.json'))['cases'][1];print(' '.join(map(str,c['all_ids'][5:15])))")
check "--ids prints the reference ids" '[ "$ids" = "$refids" ]'

# tokenize = prompt_ids_with_bos; --decode inverts it
tk=$("$T" tokenize -m $M "Lily and Ben went to the park")
reftk=$(python3 -c "import json;c=json.load(open('fixtures/stories260K-reference/reference_outputs.json'))['cases'][3];print(' '.join(map(str,c['prompt_ids_with_bos'])))")
check "tokenize gives the reference ids" '[ "$tk" = "$reftk" ]'
dec=$("$T" tokenize -m $M --decode --skip-special $tk)
check "decode inverts tokenize" '[ "$dec" = "Lily and Ben went to the park" ]'

# sampling: same seed, same text; top_k 1 is greedy
a=$("$T" generate -m $M -p "Zoo" -n 30 --temp 0.9 --seed 7 -q)
b=$("$T" generate -m $M -p "Zoo" -n 30 --temp 0.9 --seed 7 -q)
c=$("$T" generate -m $M -p "Zoo" -n 30 --temp 0.9 --seed 8 -q)
g=$("$T" generate -m $M -p "Zoo" -n 30 --temp 0 -q)
k1=$("$T" generate -m $M -p "Zoo" -n 30 --temp 1.5 --top-k 1 --seed 3 -q)
check "same seed, same text" '[ "$a" = "$b" ]'
check "another seed, another text" '[ "$a" != "$c" ]'
check "top_k 1 equals greedy" '[ "$k1" = "$g" ]'

# a stop string ends generation right after the text contains it
s=$("$T" generate -m $M -p "Once upon a time" -n 100 --temp 0 --stop "Lily" -q)
check "stop string ends the text" '[[ "$s" == *Lily ]] && [ ${#s} -lt 40 ]'

# a run configuration file drives the same settings
printf 'generation:\n  max_new_tokens: 44\n  do_sample: false\n' > "$tmp/run.yaml"
y=$("$T" generate -m $M -p "Once upon a time" -c "$tmp/run.yaml" -q)
check "-c run.yaml gives the same greedy text" '[ "$y" = "$ref" ]'

# --dump-tensors writes every intermediate as .npy
"$T" generate -m $M -p "Zoo" -n 2 --temp 0 -q --dump-tensors "$tmp/dump" >/dev/null
check "dump has named layers" '[ -f "$tmp/dump/step000.model.layers.0.self_attn.q_proj.npy" ] && [ -f "$tmp/dump/step000.lm_head.npy" ]'
check "dump files are .npy" '[ "$(head -c 6 "$tmp/dump/step000.lm_head.npy" | tail -c 5)" = "NUMPY" ]'

# failures are one clear sentence, exit 1
"$T" generate -m /nonexistent -p x 2>"$tmp/e1"; rc=$?
check "missing model: exit 1, names the path" '[ $rc = 1 ] && grep -q "/nonexistent" "$tmp/e1"'
"$T" generate -m $M --backends nosuchbackend -p x 2>"$tmp/e2"; rc=$?
check "unknown backend: names it" '[ $rc = 1 ] && grep -q "nosuchbackend" "$tmp/e2"'
"$T" generate -m $M --frobnicate 2>"$tmp/e3"; rc=$?
check "unknown option: exit 2" '[ $rc = 2 ] && grep -q "frobnicate" "$tmp/e3"'
"$T" generate --help | grep -q -- "--temp" ; check "--help documents --temp" '[ $? = 0 ]'

echo "$((n-fail)) passed, $fail failed"
[ $fail = 0 ]
