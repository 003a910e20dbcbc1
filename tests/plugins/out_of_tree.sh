#!/bin/bash
# tests/plugins/out_of_tree.sh - the third-party plugin proof.
#  1. `cmake --install` tessera into a temporary prefix (and with DESTDIR):
#     nothing is written outside them; the layout is complete.
#  2. exported symbols: libtessera.so.0 only tsr_*/tessera_*, each plugin
#     exactly tessera_plugin_entry.
#  3. build examples/hello-plugin out of tree twice: CMake find_package(Tessera)
#     and plain cc + pkg-config; the installed `tessera plugins` lists both
#     as available (table and --json); an application built against the
#     installed library sees it; the registry loads it and runs its kernels.
set -u
: "${TESSERA_BUILD_DIR:?run through ctest}" "${TESSERA_SOURCE_DIR:?}" "${TESSERA_USE_PLUGIN:?}"
cmake=${CMAKE_COMMAND:-cmake} cc=${CC:-cc}
tmp=$(mktemp -d /tmp/tessera-oot-XXXXXX); trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fail=1; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
export XDG_CONFIG_HOME=$tmp/no-config; unset TESSERA_PLUGIN_PATH

# --- 1. install ------------------------------------------------------------
prefix=$tmp/prefix
if ! "$cmake" --install "$TESSERA_BUILD_DIR" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log"; echo "FAIL: cmake --install"; exit 1
fi
check "every installed file is under the prefix" \
  '! grep -v "^$prefix/" "$TESSERA_BUILD_DIR/install_manifest.txt" | grep -q .'
# DESTDIR: install_manifest.txt then lists the paths without DESTDIR; each
# must exist under DESTDIR, and nothing under the configured prefix may be new.
dest=$tmp/dest
cfg_prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$TESSERA_BUILD_DIR/CMakeCache.txt")
touch "$tmp/stamp"; sleep 1
if DESTDIR=$dest "$cmake" --install "$TESSERA_BUILD_DIR" >"$tmp/destdir.log" 2>&1; then
  missing=$(while read -r f; do [ -e "$dest$f" ] || [ -L "$dest$f" ] || echo "$f"; done <"$TESSERA_BUILD_DIR/install_manifest.txt")
  check "DESTDIR install: every file under DESTDIR" '[ -s "$TESSERA_BUILD_DIR/install_manifest.txt" ] && [ -z "$missing" ]'
  check "DESTDIR install: all files below the configured prefix $cfg_prefix" \
    '! grep -v "^$cfg_prefix/" "$TESSERA_BUILD_DIR/install_manifest.txt" | grep -q .'
  newer=$( [ -d "$cfg_prefix" ] && find "$cfg_prefix" -newer "$tmp/stamp" 2>/dev/null | head -3)
  check "DESTDIR install: nothing new in $cfg_prefix itself" '[ -z "$newer" ]'
else
  cat "$tmp/destdir.log"; bad "DESTDIR install"
fi
# Reinstall the prefix so that install_manifest.txt describes it again.
"$cmake" --install "$TESSERA_BUILD_DIR" --prefix "$prefix" >/dev/null 2>&1

libdir=$prefix/${TESSERA_LIBDIR:-lib}
so=$(ls "$libdir"/libtessera.so.0 2>/dev/null)
check "libtessera.so.0 installed" '[ -n "$so" ] && [ -L "$libdir/libtessera.so" ]'
check "SONAME is libtessera.so.0" 'objdump -p "$so" | grep -q "SONAME *libtessera.so.0$"'
for f in include/tessera/tessera.h include/tessera/types.h include/tessera/plugin/plugin.h \
         include/tessera/plugin/host.h bin/tessera; do
  check "installed $f" '[ -f "$prefix/$f" ]'
done
check "tessera.pc installed" '[ -f "$libdir/pkgconfig/tessera.pc" ]'
check "CMake package installed" '[ -f "$libdir/cmake/Tessera/TesseraConfig.cmake" ] && [ -f "$libdir/cmake/Tessera/TesseraConfigVersion.cmake" ]'
check "no internal header installed" '[ ! -e "$prefix/include/tessera/internal.h" ] && ! find "$prefix/include" -name "internal.h" | grep -q .'
# Component split: runtime gets the library only, dev the rest.
"$cmake" --install "$TESSERA_BUILD_DIR" --prefix "$tmp/rt" --component runtime >/dev/null 2>&1
check "runtime component: libtessera.so.0 and no headers/namelink" \
  '[ -e "$tmp/rt/${TESSERA_LIBDIR:-lib}/libtessera.so.0" ] && [ ! -e "$tmp/rt/${TESSERA_LIBDIR:-lib}/libtessera.so" ] && [ ! -d "$tmp/rt/include" ]'
"$cmake" --install "$TESSERA_BUILD_DIR" --prefix "$tmp/dev" --component dev >/dev/null 2>&1
check "dev component: headers, namelink, pc, cmake" \
  '[ -L "$tmp/dev/${TESSERA_LIBDIR:-lib}/libtessera.so" ] && [ -f "$tmp/dev/include/tessera/tessera.h" ] && [ -f "$tmp/dev/${TESSERA_LIBDIR:-lib}/pkgconfig/tessera.pc" ]'

# --- 2. exported symbols ---------------------------------------------------
# Defined dynamic symbols, minus the version node (type A) and the linker's own.
dynsyms() { nm -D --defined-only "$1" | awk '$2 != "A" {print $3}' | grep -v -E '^(_init|_fini|_edata|_end|__bss_start)(@.*)?$'; }
other=$(dynsyms "$so" | grep -v -E '^(tsr_[a-z]|tessera_)')
check "libtessera.so.0 exports only tsr_*/tessera_* (not tsr__*)" '[ -z "$other" ]' || echo "$other" | head
check "libtessera.so.0 exports the public API (versioned TESSERA_0)" 'dynsyms "$so" | grep -qx "tsr_plugins_scan@@TESSERA_0"'
check_plugin_syms() {
  local s; s=$(dynsyms "$1" | tr '\n' ' ')
  check "$(basename "$1") exports exactly tessera_plugin_entry" '[ "$s" = "tessera_plugin_entry " ]' || echo "  exports: $s"
}
for p in "$libdir"/tessera-1/plugins/*.so; do [ -e "$p" ] && check_plugin_syms "$p"; done

# --- 3. out-of-tree plugin ---------------------------------------------------
export PKG_CONFIG_PATH=$libdir/pkgconfig
check "pkg-config plugindir" '[ "$(pkg-config --variable=plugindir tessera)" = "$libdir/tessera-1/plugins" ]'
check "pkg-config manifestdir" '[ "$(pkg-config --variable=manifestdir tessera)" = "$prefix/share/tessera/plugins.d" ]'
check "pkg-config cflags" 'pkg-config --cflags tessera | grep -q -- "-I$prefix/include"'

ex=$TESSERA_SOURCE_DIR/examples/hello-plugin
# (a) CMake, installed into the same prefix (as a distribution package would).
if "$cmake" -S "$ex" -B "$tmp/ex-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_INSTALL_PREFIX="$prefix" \
     -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >"$tmp/ex.log" 2>&1 &&
   "$cmake" --build "$tmp/ex-build" >>"$tmp/ex.log" 2>&1 &&
   "$cmake" --install "$tmp/ex-build" >>"$tmp/ex.log" 2>&1; then
  ok "example built and installed with find_package(Tessera)"
else
  cat "$tmp/ex.log"; bad "example with CMake"
fi
check "example installed into plugindir and manifestdir" \
  '[ -f "$libdir/tessera-1/plugins/tessera-example.so" ] && [ -f "$prefix/share/tessera/plugins.d/hello.yaml" ]'
[ -f "$libdir/tessera-1/plugins/tessera-example.so" ] && check_plugin_syms "$libdir/tessera-1/plugins/tessera-example.so"

# (b) plain cc + pkg-config, dropped into a plugins.d named by TESSERA_PLUGIN_PATH.
mkdir -p "$tmp/user/plugins.d"
if "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -O2 -shared -fPIC -fvisibility=hidden \
     $(pkg-config --cflags tessera) "$ex/hello.c" -o "$tmp/user/plugins.d/tessera-example.so" -lm; then
  ok "example built with cc + pkg-config"
else
  bad "example with cc"
fi
cp "$ex/hello.yaml" "$tmp/user/plugins.d/hello.yaml"
check_plugin_syms "$tmp/user/plugins.d/tessera-example.so"

export LD_LIBRARY_PATH=$libdir
# The installed CLI finds the CMake-installed copy through its own prefix.
abi_now=$("$prefix/bin/tessera" --version | sed -n 's/.*plugin ABI \([0-9]*\.[0-9]*\)).*/\1/p')
out=$("$prefix/bin/tessera" plugins 2>&1); echo "$out" | sed 's/^/  | /' | head -20
check "installed tessera lists example (own prefix) as available" \
  'grep -E "^example +backend +1\.0\.0 +${abi_now//./\\.} +0 +example +available$" <<<"$out" >/dev/null'
check "…from the prefix's plugins.d" 'grep -q "manifest $prefix/share/tessera/plugins.d/hello.yaml" <<<"$out"'
# TESSERA_PLUGIN_PATH comes first: the user's copy overrides the packaged one.
export TESSERA_PLUGIN_PATH=$tmp/user/plugins.d
json=$("$prefix/bin/tessera" plugins --json)
if command -v jq >/dev/null; then
  check "--json: valid" 'jq -e . <<<"$json" >/dev/null'
  check "--json: example available from TESSERA_PLUGIN_PATH" \
    '[ "$(jq -r ".[] | select(.name==\"example\") | [.available, .abi, .library] | @tsv" <<<"$json")" = "$(printf "true\t%s\t%s" "$abi_now" "$(realpath "$tmp/user/plugins.d/tessera-example.so")")" ]'
  check "--json: it overrides the packaged manifest" \
    'jq -r ".[] | select(.name==\"example\") | .origin" <<<"$json" | grep -q "(overrides $prefix/share/tessera/plugins.d/hello.yaml)"'
else
  check "--json mentions example" 'grep -q "\"name\": \"example\"" <<<"$json"'
fi
# An application built against the installed library (pkg-config).  A
# sanitizer build of tessera needs its applications built the same way.
san=""
if ldd "$libdir/libtessera.so.0" 2>/dev/null | grep -q libasan; then
  san="-fsanitize=address,undefined"
fi
if "$cc" -std=c11 -Wall -Werror $san "$TESSERA_SOURCE_DIR/tests/plugins/list_public.c" -o "$tmp/list_public" \
     $(pkg-config --cflags --libs tessera); then
  check "application linked to the installed libtessera sees example" '"$tmp/list_public" example'
  check "it used the installed library" 'LD_DEBUG=libs "$tmp/list_public" example 2>&1 | grep -q "calling init: $libdir/libtessera.so.0"'
else
  bad "building list_public against the installed library"
fi
unset LD_LIBRARY_PATH
# USED: the registry loads it and its kernels compute SiLU and Add.
check "registry loads example and runs its kernels" '"$TESSERA_USE_PLUGIN" "$tmp/user/plugins.d/"'

[ $fail -eq 0 ] && echo "out_of_tree.sh: all checks passed"
exit $fail
