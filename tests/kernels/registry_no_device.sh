#!/bin/bash
# tests/kernels/registry_no_device.sh <cuda|hip> - on a machine without the
# GPU, `tessera plugins` lists the built plugin as not usable, with its
# probe()'s sentence, and generation asked to use it falls back to cpu.
set -u
: "${TESSERA:?run through ctest}" "${TESSERA_BUILD_DIR:?run through ctest}"
gpu=${1:?usage: registry_no_device.sh cuda|hip}
case $gpu in
  cuda) api=cudaGetDeviceCount ;;
  hip) api=hipGetDeviceCount ;;
  *) echo "unknown backend $gpu"; exit 2 ;;
esac
export TESSERA_PLUGIN_PATH=$TESSERA_BUILD_DIR/share/tessera/plugins.d XDG_CONFIG_HOME=/nonexistent-tessera-test
fail=0
out=$("$TESSERA" plugins 2>&1)
line=$(grep -E "^$gpu +backend " <<<"$out")
if [ -z "$line" ]; then
  echo "FAIL: tessera plugins does not list $gpu:"; echo "$out"; exit 1
fi
echo "$line"
grep -q "plugin '$gpu' cannot run here: no usable $gpu device: $api failed with" <<<"$line" ||
  { echo "FAIL: the $gpu row does not carry probe()'s sentence"; fail=1; }
if command -v jq >/dev/null; then
  json=$("$TESSERA" plugins --json)
  [ "$(jq -r ".[] | select(.name==\"$gpu\") | .available" <<<"$json")" = false ] ||
    { echo "FAIL: --json shows $gpu as available"; fail=1; }
fi
# asking for it: a warning naming the reason, then the cpu backend runs
gen=$("$TESSERA" generate -m fixtures/stories260K-hf -p "Once upon a time" -n 4 --temp 0 \
      --backends "$gpu,cpu" 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL: generate --backends $gpu,cpu failed (rc $rc): $gen"; fail=1; }
grep -q "$api failed" <<<"$gen" || { echo "FAIL: no warning naming $api: $gen"; fail=1; }
[ $fail -eq 0 ] && echo "registry_no_device.sh: $gpu is built, listed as not usable with its reason, and skipped"
exit $fail
