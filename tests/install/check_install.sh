#!/bin/sh
# Installs the build into a temporary prefix and uses it as another program would: the
# files are where they belong, libdeconv.so exports the public API only, the man pages
# render and bash completion completes; then tests/install/consumer.c is built against the
# installed package through pkg-config (shared and static) and through find_package(deconv)
# (deconv::deconv and deconv::deconv_static), and each build runs its checks.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR C_COMPILER
set -eu
build=$1 src=$(cd "$2" && pwd) cc=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/deconv-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "check_install: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$work/install.log" || {
    cat "$work/install.log" >&2
    fail "cmake --install failed"
}
libdir=$prefix/lib
[ -d "$libdir/pkgconfig" ] || libdir=$(dirname "$(find "$prefix" -name deconv.pc | head -n 1)")/..
libdir=$(cd "$libdir" && pwd)

# ---- the files
commands=$(sed -n 's/^X(\([a-z0-9_]*\),.*/\1/p' "$src/host/cli/commands.def")
[ -n "$commands" ] || fail "no commands in host/cli/commands.def"
for f in include/deconv/deconv.h include/deconv/backend.h include/deconv/primitives.def \
         include/deconv/model.h bin/deconv share/man/man1/deconv.1 \
         share/bash-completion/completions/deconv share/deconv/guns \
         share/deconv/fm32_classifier.safetensors; do
    [ -e "$prefix/$f" ] || fail "$f is not installed"
done
for c in $commands; do
    [ -f "$prefix/share/man/man1/deconv-$c.1" ] || fail "no man page deconv-$c.1"
done
for f in libdeconv.a libdeconv.so pkgconfig/deconv.pc cmake/deconv/deconvConfig.cmake \
         cmake/deconv/deconvConfigVersion.cmake cmake/deconv/deconvTargets.cmake; do
    [ -e "$libdir/$f" ] || fail "$f is not installed in $libdir"
done
soname=$(readelf -d "$libdir/libdeconv.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
case $soname in libdeconv.so.[0-9]*) ;; *) fail "libdeconv.so has SONAME '$soname'" ;; esac
[ -f "$libdir/$soname" ] || fail "$soname (the SONAME) is not installed"
echo "check_install: installed in $prefix; SONAME $soname"

# ---- libdeconv.so exports the public API (dc_ names) and keeps internal helpers hidden
exported=$(nm -D --defined-only "$libdir/libdeconv.so" | awk 'NF == 3 { print $3 }' | sort -u)
stray=$(printf '%s\n' "$exported" | grep -v '^dc_' | grep -v '^_' || true)
[ -z "$stray" ] || fail "libdeconv.so exports names without the dc_ prefix: $stray"
printf '%s\n' "$exported" | grep -qx dc_graph_forward || fail "dc_graph_forward is not exported"
printf '%s\n' "$exported" | grep -qx dc_model_create || fail "dc_model_create is not exported"
if printf '%s\n' "$exported" | grep -qx dc_strlcpy; then
    fail "the internal dc_strlcpy (host/internal.h) is exported"
fi
in_archive=$(nm -g --defined-only "$libdir/libdeconv.a" | awk 'NF == 3 { print $3 }' |
             sort -u | wc -l)
echo "check_install: libdeconv.so exports $(printf '%s\n' "$exported" | wc -l) of the" \
     "$in_archive external names of libdeconv.a"

# ---- the installed binary runs and reads its assets from the prefix it was configured for
"$prefix/bin/deconv" --help >"$work/help.txt" 2>&1 || fail "installed deconv --help failed"
grep -q train "$work/help.txt" || fail "installed deconv --help lists no train command"
if grep -q "$src/assets" "$prefix/bin/deconv"; then
    fail "the installed deconv reads assets from the source tree ($src/assets)"
fi

# ---- man pages: each renders without warnings and carries its command's options
for page in "$prefix"/share/man/man1/deconv*.1; do
    warnings=$(groff -k -man -ww -z "$page" 2>&1 || true)
    [ -z "$warnings" ] || fail "$(basename "$page"): groff warns: $warnings"
done
if grep -l -F "$src/" "$prefix"/share/man/man1/deconv*.1; then
    fail "the man pages above name paths in the source tree ($src)"
fi
man_text=$(MANWIDTH=100 man -l "$prefix/share/man/man1/deconv-train.1" 2>/dev/null | col -b)
for want in "deconv-train - train a model" "--epochs" "--resume RUN"; do
    printf '%s\n' "$man_text" | grep -qF -- "$want" || fail "deconv-train(1) lacks '$want'"
done
found=$(MANPATH="$prefix/share/man" man -w deconv-visualize 2>/dev/null || true)
[ "$found" = "$prefix/share/man/man1/deconv-visualize.1" ] ||
    fail "man -w deconv-visualize finds '$found'"

# ---- bash completion
complete_words() { # the words typed so far, the last one being completed
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _deconv
             printf "%s\n" "${COMPREPLY[@]}"' _ \
        "$prefix/share/bash-completion/completions/deconv" "$@" |
        sort | tr '\n' ' ' | sed 's/ $//'
}
expect_completion() { # EXPECTED WORDS...
    want=$1
    shift
    got=$(complete_words "$@")
    [ "$got" = "$want" ] || fail "completing '$*' gave '$got', expected '$want'"
}
expect_completion "train" deconv tra
expect_completion "--model" deconv train --mod
expect_completion "classifier complete" deconv train --model c
expect_completion "gradcam guided" deconv visualize g
expect_completion "cpu" deconv eval --device cp
echo "check_install: man pages render, bash completion completes"

# ---- the consumer through pkg-config
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --exists deconv || fail "pkg-config does not find deconv in $PKG_CONFIG_PATH"
version=$(pkg-config --modversion deconv)
# shellcheck disable=SC2046 # pkg-config's output is meant to be split into words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_shared" "$src/tests/install/consumer.c" \
    $(pkg-config --cflags --libs deconv) -lm ||
    fail "consumer: shared build through pkg-config failed"
readelf -d "$work/consumer_shared" | grep -qF "[$soname]" ||
    fail "consumer_shared does not need $soname"
LD_LIBRARY_PATH="$libdir" "$work/consumer_shared" || fail "consumer_shared failed"
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer_static" "$src/tests/install/consumer.c" \
    $(pkg-config --cflags deconv) $(pkg-config --libs-only-L deconv) \
    -Wl,-Bstatic -ldeconv -Wl,-Bdynamic -Wl,--as-needed $(pkg-config --static --libs deconv) -lm ||
    fail "consumer: static build through pkg-config failed"
if readelf -d "$work/consumer_static" | grep -q 'libdeconv'; then
    fail "consumer_static needs libdeconv.so"
fi
"$work/consumer_static" || fail "consumer_static failed"
echo "check_install: pkg-config (deconv $version): shared and static consumers pass"

# ---- the consumer through find_package(deconv)
cmake -S "$src/tests/install" -B "$work/cmake-consumer" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log" 2>&1 &&
    cmake --build "$work/cmake-consumer" >>"$work/cmake.log" 2>&1 || {
    cat "$work/cmake.log" >&2
    fail "the find_package(deconv) project does not build"
}
readelf -d "$work/cmake-consumer/consumer_shared" | grep -qF "[$soname]" ||
    fail "deconv::deconv does not link $soname"
if readelf -d "$work/cmake-consumer/consumer_static" | grep -q 'libdeconv'; then
    fail "deconv::deconv_static links libdeconv.so"
fi
"$work/cmake-consumer/consumer_shared" || fail "find_package consumer_shared failed"
"$work/cmake-consumer/consumer_static" || fail "find_package consumer_static failed"
echo "check_install: find_package(deconv): deconv::deconv and deconv::deconv_static consumers pass"
