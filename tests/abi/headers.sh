#!/bin/bash
# tests/abi/headers.sh CC CXX INCLUDE_DIR [MORE_INCLUDE_DIRS...]
# Every public header compiles on its own (first include of a translation
# unit) as strict C11 and as C++11 and C++17, so that applications and
# plugins can include any one of them in either language.
set -u
cc=$1 cxx=$2; shift 2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0 n=0
for inc in "$@"; do
  for h in "$inc"/tessera/*.h "$inc"/tessera/plugin/*.h; do
    rel=${h#"$inc"/}
    printf '#include <%s>\n#include <%s>\nint tsr_header_test_dummy;\n' "$rel" "$rel" > "$tmp/t.c"
    cp "$tmp/t.c" "$tmp/t.cpp"
    if ! "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
         -I"$inc" -c "$tmp/t.c" -o "$tmp/t.o"; then
      echo "FAIL: $h does not compile alone as C11"; fail=1
    fi
    n=$((n + 1))
    if [ -n "$cxx" ]; then
      for std in c++11 c++17; do
        if ! "$cxx" -std=$std -pedantic -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.cpp" -o "$tmp/t.o"; then
          echo "FAIL: $h does not compile alone as $std"; fail=1
        fi
      done
    fi
  done
done
[ -n "$cxx" ] || echo "note: no C++ compiler found; only C11 was checked"
echo "checked $n header inclusions"
[ "$n" -gt 0 ] || { echo "FAIL: no headers found"; exit 1; }
exit $fail
