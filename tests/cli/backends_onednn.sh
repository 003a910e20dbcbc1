#!/bin/bash
# tests/cli/backends_onednn.sh - the oneDNN backend changes no output:
# greedy generation with `--backends onednn,cpu` prints exactly the text of
# `--backends cpu`, with the default row threshold (prefill of the prompt)
# and with TESSERA_ONEDNN_MIN_ROWS=1 (every matmul, decode included, on
# oneDNN).  Exits 77 (ctest: skipped) when the onednn plugin was not built.
set -u
: "${TESSERA:?run through ctest}" "${TESSERA_BUILD_DIR:?run through ctest}"
plugin=$TESSERA_BUILD_DIR/lib/tessera-1/plugins/tessera-onednn.so
if [ ! -f "$plugin" ]; then
  echo "SKIP: the onednn plugin was not built ($plugin missing; install libdnnl-dev and reconfigure)"
  exit 77
fi
unset TESSERA_PLUGIN_PATH TESSERA_ONEDNN_MIN_ROWS
fail=0
gen() { "$TESSERA" generate -m fixtures/stories260K-hf -p "Once upon a time" -n 64 --temp 0 "$@"; }

ref=$(gen --backends cpu 2>/dev/null) || { echo "FAIL: generate with --backends cpu"; exit 1; }
[ -n "$ref" ] || { echo "FAIL: empty reference text"; exit 1; }

list=$("$TESSERA" plugins 2>&1)
if ! grep -E "^onednn +backend .* available$" <<<"$list" >/dev/null; then
  echo "FAIL: tessera plugins does not show onednn as available:"; echo "$list"; exit 1
fi

out=$(gen --backends onednn,cpu 2>/tmp/tsr-onednn-$$.err); rc=$?
if [ $rc -ne 0 ] || [ "$out" != "$ref" ]; then
  echo "FAIL: --backends onednn,cpu (rc $rc) differs from --backends cpu"
  diff <(echo "$ref") <(echo "$out"); cat /tmp/tsr-onednn-$$.err; fail=1
fi
if grep -q "not used" /tmp/tsr-onednn-$$.err; then
  echo "FAIL: the onednn backend was not used:"; cat /tmp/tsr-onednn-$$.err; fail=1
fi
rm -f /tmp/tsr-onednn-$$.err

out=$(TESSERA_ONEDNN_MIN_ROWS=1 gen --backends onednn,cpu 2>/dev/null); rc=$?
if [ $rc -ne 0 ] || [ "$out" != "$ref" ]; then
  echo "FAIL: TESSERA_ONEDNN_MIN_ROWS=1 --backends onednn,cpu (rc $rc) differs from --backends cpu"
  diff <(echo "$ref") <(echo "$out"); fail=1
fi

# A bad override is a clear error, not a silent fallback.
err=$(TESSERA_ONEDNN_MIN_ROWS=zero gen --backends onednn,cpu 2>&1 >/dev/null)
grep -q "TESSERA_ONEDNN_MIN_ROWS='zero' is not a positive integer" <<<"$err" ||
  { echo "FAIL: bad TESSERA_ONEDNN_MIN_ROWS not reported: $err"; fail=1; }

[ $fail -eq 0 ] && echo "backends_onednn.sh: onednn,cpu prints the same 64 greedy tokens as cpu (default threshold and MIN_ROWS=1)"
exit $fail
