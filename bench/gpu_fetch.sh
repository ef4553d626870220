#!/bin/sh
# Prepares what bench/gpu.sh needs on a GPU machine that has no package registry: the
# runtime libraries deconv links (Debian packages, downloaded here, NOT installed) and
# x86-64 binaries of deconv and the OpenCL parity test, all under the git-ignored .gpu/
# (about 15 MB). Then carry ".gpu" to the GPU machine and run `bench/gpu.sh OUTDIR` there.
#
#   bench/gpu_fetch.sh            download + build (needs apt-get download and the build deps)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# Every non-glibc library `ldd build/deconv` and the test binary show, plus the C++ and
# zlib runtimes in case the GPU machine's are missing or older (gpu.sh only adds those
# when the machine's own are not found).
PKGS="ocl-icd-libopencl1 libclblast1 libopenblas0-pthread libgfortran5 libquadmath0 libcjson1
      libfftw3-single3 libgomp1 libcmocka0"
FALLBACK_PKGS="libstdc++6 libgcc-s1 zlib1g"
rm -rf .gpu/debs .gpu/fallback .gpu/bin
mkdir -p .gpu/debs .gpu/fallback .gpu/bin
# shellcheck disable=SC2086
(cd .gpu/debs && apt-get download $PKGS)
# shellcheck disable=SC2086
(cd .gpu/fallback && apt-get download $FALLBACK_PKGS)
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-gpu --target deconv_cli test_backend_parity -j"$(nproc)" >/dev/null
cp build-gpu/deconv build-gpu/test_backend_parity .gpu/bin/
git rev-parse --short HEAD > .gpu/commit 2>/dev/null || echo unknown > .gpu/commit
du -sh .gpu
echo "gpu_fetch: ready; on the GPU machine: bench/gpu.sh OUTDIR (carry .gpu)"
