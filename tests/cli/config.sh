#!/bin/bash
# `tessera config`: --help, check, show (layers and their origins), --set errors.
# Runs from the source root; expected messages use the 1-based line:column of
# the offending node in tests/data/config/*.yaml.
set -u
: "${TESSERA:?set TESSERA to the tessera binary}"
D=tests/data/config
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# No user configuration leaks into the test: an empty home, no XDG dir.
export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/xdg"
mkdir -p "$HOME" "$XDG_CONFIG_HOME"

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# run EXPECTED_RC CMD...: stdout in $tmp/out, stderr in $tmp/err
run() {
    local want=$1; shift
    "$@" > "$tmp/out" 2> "$tmp/err"
    local rc=$?
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want; stderr: $(cat "$tmp/err")"
}
has() { grep -qF -- "$2" "$tmp/$1" || fail "$1 of the last command lacks '$2': $(cat "$tmp/$1")"; }
is()  { [ "$(cat "$tmp/$1")" = "$2" ] || fail "$1 is '$(cat "$tmp/$1")', want '$2'"; }

# --help: usage and every key of the reference
run 0 "$TESSERA" config --help
has out "usage: tessera config show"
has out "generation.temperature"
has out "dtype (or torch_dtype)"
has out "quantization.bnb_4bit_quant_type"
has out "cache.implementation"

# no subcommand, unknown subcommand: usage errors
run 2 "$TESSERA" config
has err "usage: tessera config"
run 2 "$TESSERA" config frob
has err "unknown subcommand 'frob'"

# check: valid files
run 0 "$TESSERA" config check $D/full.yaml $D/device_map.yaml
is out "$D/full.yaml: ok
$D/device_map.yaml: ok"

# check: each error with file:line:column
run 1 "$TESSERA" config check $D/unknown_nested.yaml
is err "tessera: config check: $D/unknown_nested.yaml:4:3: unknown key 'generation.temprature' (did you mean 'generation.temperature'?)"
run 1 "$TESSERA" config check $D/wrong_type.yaml
is err "tessera: config check: $D/wrong_type.yaml:2:10: key 'threads' expects an integer, got 'many'"
run 1 "$TESSERA" config check $D/malformed.yaml
is err "tessera: config check: $D/malformed.yaml:4:8: malformed YAML: did not find expected ',' or ']' while parsing a flow sequence"
run 1 "$TESSERA" config check $D/duplicate.yaml
is err "tessera: config check: $D/duplicate.yaml:4:3: duplicate key 'generation.top_p' (first at line 2)"
run 1 "$TESSERA" config check $D/full.yaml $D/bad_enum.yaml
has out "$D/full.yaml: ok"
is err "tessera: config check: $D/bad_enum.yaml:1:8: key 'dtype' expects one of float32, float16, bfloat16, auto, got 'fp8'"
run 1 "$TESSERA" config check $D/does_not_exist.yaml
has err "does_not_exist.yaml"

# show: defaults only
run 0 "$TESSERA" config show
has out "# Effective configuration; later layers win: default"
grep -qE '^dtype: auto +# default$' "$tmp/out" || fail "show: dtype not from the defaults"
grep -qE '^  top_k: 50 +# default$' "$tmp/out" || fail "show: generation.top_k not 50 by default"
grep -qE '^model: null +# unset$' "$tmp/out" || fail "show: model not unset"

# show: user file < -c file < later -c file < flags
mkdir -p "$XDG_CONFIG_HOME/tessera"
printf 'threads: 2\nlog_level: debug\ngeneration: {top_k: 3}\n' > "$XDG_CONFIG_HOME/tessera/tessera.yaml"
run 0 "$TESSERA" config show -c $D/full.yaml -c $D/override.yaml --set generation.top_k=7 --set torch_dtype=float32
cp "$tmp/out" "$tmp/show"
has out "default < $XDG_CONFIG_HOME/tessera/tessera.yaml < $D/full.yaml < $D/override.yaml < command line"
grep -qE "^log_level: debug +# $XDG_CONFIG_HOME/tessera/tessera.yaml\$" "$tmp/show" || fail "show: user file layer"
grep -qE "^threads: 4 +# $D/override.yaml\$" "$tmp/show" || fail "show: -c override.yaml over the user file"
grep -qE "^backends: \[cuda, onednn, cpu\] +# $D/full.yaml\$" "$tmp/show" || fail "show: backends from full.yaml"
grep -qE "^  temperature: 0.2 +# $D/override.yaml\$" "$tmp/show" || fail "show: later -c wins"
grep -qE "^  top_p: 0.9 +# $D/full.yaml\$" "$tmp/show" || fail "show: earlier -c kept"
grep -qE "^  top_k: 7 +# command line\$" "$tmp/show" || fail "show: --set wins over files"
grep -qE "^dtype: float32 +# command line\$" "$tmp/show" || fail "show: torch_dtype alias"
grep -qE "^max_memory: \{cuda:0: 6GiB, cpu: 20GiB\} +# $D/full.yaml\$" "$tmp/show" || fail "show: max_memory"

# the output of show is itself a valid configuration file
cp "$tmp/show" "$tmp/show.yaml"
run 0 "$TESSERA" config check "$tmp/show.yaml"

# show: --set errors
run 1 "$TESSERA" config show --set generation.top_p=abc
is err "tessera: option: command line: key 'generation.top_p' expects a number, got 'abc'"
run 1 "$TESSERA" config show --set generation.temprature=0.5
is err "tessera: option: command line: unknown key 'generation.temprature' (did you mean 'generation.temperature'?)"
run 2 "$TESSERA" config show --frobnicate
has err "unknown option '--frobnicate'"

# a broken user file is reported, with its position
printf 'threads: [1\n' > "$XDG_CONFIG_HOME/tessera/tessera.yaml"
run 1 "$TESSERA" config show
has err "$XDG_CONFIG_HOME/tessera/tessera.yaml:2:1: malformed YAML"

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)" >&2
    exit 1
fi
echo "ok: tessera config"
