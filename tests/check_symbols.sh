#!/bin/sh
# Every external symbol libdeconv.a defines carries the dc_ prefix, so the library can be
# linked into any program without clashing with its names. Usage: check_symbols.sh LIB.a
set -eu
lib=$1
[ -f "$lib" ] || { echo "check_symbols: $lib not found" >&2; exit 1; }
# defined, global symbols: code (T), data (D), bss (B), read-only (R), common (C)
all=$(nm -g --defined-only "$lib" | awk 'NF == 3 && $2 ~ /^[TDBRCVW]$/ { print $3 }' | sort -u)
count=$(printf '%s\n' "$all" | grep -c . || true)
bad=$(printf '%s\n' "$all" | grep -v '^dc_' | grep . || true)
if [ "$count" -lt 100 ]; then
    echo "check_symbols: only $count external symbols in $lib: is this the library?" >&2
    exit 1
fi
if [ -n "$bad" ]; then
    echo "check_symbols: external symbols of $lib without the dc_ prefix (make them static or dc_-prefixed):" >&2
    printf '  %s\n' $bad >&2
    exit 1
fi
echo "check_symbols: all $count external symbols of $lib start with dc_"
