#!/bin/bash
# tests/cli/plugins.sh - `tessera plugins` over the ABI test plugins
# (tests/abi, built into $TESSERA_BUILD_DIR/tests/abi): table, --json,
# --no-load, --help, and a broken plugin never hiding the good ones.
set -u
: "${TESSERA:?run through ctest}" "${TESSERA_BUILD_DIR:?run through ctest}"
abi=$TESSERA_BUILD_DIR/tests/abi
abi_now=$("$TESSERA" --version | sed -n 's/.*plugin ABI \([0-9]*\.[0-9]*\)).*/\1/p')
fail=0
check() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
export TESSERA_PLUGIN_PATH=$abi/plugins.d XDG_CONFIG_HOME=/nonexistent-tessera-test
[ -f "$abi/plugins/tessera-abi-good.so" ] || { echo "FAIL: ABI test plugins not built ($abi)"; exit 1; }

# --help tells the truth about options and the search path.
help=$("$TESSERA" plugins --help); rc=$?
check "--help exits 0" '[ $rc -eq 0 ]'
for w in --json --no-load TESSERA_PLUGIN_PATH plugins.d priority; do
  check "--help mentions $w" 'grep -q -- "$w" <<<"$help"'
done
"$TESSERA" plugins --bogus >/dev/null 2>&1; rc=$?
check "unknown option exits 2" '[ $rc -eq 2 ]'

# Table.
out=$("$TESSERA" plugins 2>&1); rc=$?
check "table exits 0 though some plugins are broken" '[ $rc -eq 0 ]'
check "table header" 'grep -q "^NAME .*KIND .*VERSION .*ABI .*PROVIDES .*STATUS" <<<"$out"'
check "good plugin available" 'grep -E "^abi-good +backend +1\.0\.0-test +1\.0 +10 +abi-dev +available$" <<<"$out" >/dev/null'
check "major sentence" 'grep -q "not loadable: plugin .abi-major2. was built for plugin ABI 2.0 but this tessera provides $abi_now" <<<"$out"'
check "conflict listed" 'grep -q "backend .abi-dev. is provided by .abi-probefail. (priority 20) and .abi-good. (priority 10)" <<<"$out"'
check "manifest path shown" 'grep -q "manifest $abi/plugins.d/good.yaml" <<<"$out"'

# JSON: valid, and the same facts.
json=$("$TESSERA" plugins --json); rc=$?
check "--json exits 0" '[ $rc -eq 0 ]'
if command -v jq >/dev/null; then
  check "--json is valid JSON" 'jq -e . <<<"$json" >/dev/null'
  q() { jq -r "$1" <<<"$json"; }
  check "json good" '[ "$(q ".[] | select(.manifest|endswith(\"/good.yaml\")) | [.available,.abi,.version,.priority,(.provides|join(\",\")),.status] | @tsv")" = "$(printf "true\t1.0\t1.0.0-test\t10\tabi-dev\tavailable")" ]'
  check "json model" '[ "$(q ".[] | select(.name==\"abi-model\") | .provides | join(\",\")")" = "abi-model,abi-model-2" ]'
  check "json minor" 'q ".[] | select(.name==\"abi-minor99\") | .status" | grep -q "built for plugin ABI 1.99, newer than this tessera.s $abi_now"'
  check "json minor abi" '[ "$(q ".[] | select(.name==\"abi-minor99\") | .abi")" = "1.99" ]'
  check "json probe" '[ "$(q ".[] | select(.name==\"abi-probefail\") | .status")" = "plugin '"'"'abi-probefail'"'"' cannot run here: the abi-test device is switched off" ]'
  check "json missing dep" 'q ".[] | select(.name==\"abi-missingdep\") | .status" | grep -q "libtsrabistub.so: cannot open shared object file"'
  check "json missing lib" 'q ".[] | select(.name==\"abi-missinglib\") | .status" | grep -q "$abi/plugins.d/tessera-abi-does-not-exist.so"'
  check "json bad manifest" 'q ".[] | select(.name==\"abi-badkey\") | .status" | grep -q "badkey.yaml:5:1: unknown key"'
  check "json conflicts" '[ "$(q ".[] | select(.manifest|endswith(\"/good.yaml\")) | .conflicts | map(.with + \":\" + (.preferred|tostring)) | sort | join(\" \")")" = "abi-good-low:true abi-probefail:false" ]'
  check "json 2 available backends for abi-dev" '[ "$(q "[.[] | select(.available and (.provides|index(\"abi-dev\")))] | length")" = 2 ]'
else
  echo "note: jq not installed; JSON contents not checked"
  check "--json looks like an array" '[ "${json:0:1}" = "[" ]'
fi

# --no-load: manifests only.
nl=$("$TESSERA" plugins --no-load --json)
if command -v jq >/dev/null; then
  check "--no-load does not load" '[ "$(jq -r ".[] | select(.manifest|endswith(\"/good.yaml\")) | .status + \"|\" + .abi" <<<"$nl")" = "not loaded|" ]'
  check "--no-load still reports bad manifests" 'jq -r ".[] | select(.name==\"abi-badkey\") | .status" <<<"$nl" | grep -q "invalid manifest"'
fi

# Override: a/same.yaml hides b/same.yaml.
export TESSERA_PLUGIN_PATH=$abi/override/a:$abi/override/b
ov=$("$TESSERA" plugins)
check "override origin" 'grep -q "found in .*override/a (overrides .*override/b/same.yaml)" <<<"$ov"'
check "overridden one hidden" '! grep -q "^abi-good-low " <<<"$ov"'

# No manifests at all: still a clean, valid answer.
export TESSERA_PLUGIN_PATH=/nonexistent-tessera-dir
empty=$("$TESSERA" plugins --json); rc=$?
check "empty listing exits 0" '[ $rc -eq 0 ]'
if command -v jq >/dev/null; then check "empty listing is JSON" 'jq -e "type==\"array\"" <<<"$empty" >/dev/null'; fi
[ $fail -eq 0 ] && echo "plugins.sh: all checks passed"
exit $fail
