#!/bin/sh
# Benchmark deconv against its PyTorch twin on this machine, in one script run, and append a
# dated section to bench/RESULTS.md.
#
#   bench/run.sh                      CPU backend, plus OpenCL when a device is present
#   DEVICES=cpu bench/run.sh          only the CPU backend
#   MODELS=complete,classifier bench/run.sh
#   THREADS=2 WARMUP=3 REPEATS=5 STEPS=5 bench/run.sh
#   CL_WARMUP=1 CL_REPEATS=3 CL_STEPS=1  (OpenCL: PoCL is slow, fewer steps by default)
#   DECONV_BIN=path/to/deconv         use that binary instead of building build-bench/
#   PYTHON=/usr/bin/python3           a python with torch
#   RESULTS=bench/RESULTS.md          where the section goes ("-" : do not write)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-$(nproc)}
MODELS=${MODELS:-complete,vae,glo,classifier,diffusion}
WARMUP=${WARMUP:-3}
REPEATS=${REPEATS:-5}
STEPS=${STEPS:-5}
CL_WARMUP=${CL_WARMUP:-1}
CL_REPEATS=${CL_REPEATS:-3}
CL_STEPS=${CL_STEPS:-1}
RESULTS=${RESULTS:-bench/RESULTS.md}

if [ -z "${DECONV_BIN:-}" ]; then
    cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$ROOT/build-bench" --target deconv_cli -j"$(nproc)" >/dev/null
    DECONV_BIN="$ROOT/build-bench/deconv"
fi

if [ -z "${DEVICES:-}" ]; then
    DEVICES=cpu
    if "$DECONV_BIN" devices 2>/dev/null | grep -q "^OpenCL platform"; then DEVICES=cpu,opencl; fi
fi

TMP=$(mktemp -d /tmp/deconv-bench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
load() { cut -d' ' -f1 /proc/loadavg; }
LOAD_BEFORE=$(load)
echo "load average before: $LOAD_BEFORE (figures taken above ~1.5 on a 2-core machine are noisy)"

CMD_CPU="deconv bench --device cpu --models $MODELS --threads $THREADS --warmup $WARMUP --repeats $REPEATS --steps $STEPS"
CMD_CL="deconv bench --device opencl --models $MODELS --warmup $CL_WARMUP --repeats $CL_REPEATS --steps $CL_STEPS"
CMD_TORCH="torch_twin.py --models $MODELS --threads $THREADS --warmup $WARMUP --repeats $REPEATS --steps $STEPS"

DECONV_JSON=""
case ",$DEVICES," in
*,cpu,*)
    echo "== $CMD_CPU"
    "$DECONV_BIN" bench --device cpu --models "$MODELS" --threads "$THREADS" --warmup "$WARMUP" \
        --repeats "$REPEATS" --steps "$STEPS" --json "$TMP/cpu.json"
    DECONV_JSON="$DECONV_JSON --deconv $TMP/cpu.json"
    ;;
esac
echo "== $CMD_TORCH"
"$PYTHON" bench/torch_twin.py --models "$MODELS" --threads "$THREADS" --warmup "$WARMUP" \
    --repeats "$REPEATS" --steps "$STEPS" --deconv "$DECONV_BIN" --json "$TMP/torch.json"
case ",$DEVICES," in
*,opencl*)
    CL_DEV=$(echo "$DEVICES" | tr ',' '\n' | grep '^opencl' | head -n1)
    echo "== $CMD_CL"
    "$DECONV_BIN" bench --device "$CL_DEV" --models "$MODELS" --warmup "$CL_WARMUP" \
        --repeats "$CL_REPEATS" --steps "$CL_STEPS" --json "$TMP/cl.json"
    DECONV_JSON="$DECONV_JSON --deconv $TMP/cl.json"
    ;;
esac
LOAD_AFTER=$(load)

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT (+ uncommitted changes)"; fi
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)
CORES=$(nproc)
COMMAND="THREADS=$THREADS MODELS=$MODELS DEVICES=$DEVICES bench/run.sh ($CMD_CPU; $CMD_TORCH"
case ",$DEVICES," in *,opencl*) COMMAND="$COMMAND; $CMD_CL" ;; esac
COMMAND="$COMMAND)"

OUT="$RESULTS"
[ "$RESULTS" = "-" ] && OUT="$TMP/discard.md"
# shellcheck disable=SC2086
"$PYTHON" bench/report.py --torch "$TMP/torch.json" $DECONV_JSON --results "$OUT" \
    --commit "$COMMIT" --command "$COMMAND" --load-before "$LOAD_BEFORE" --load-after "$LOAD_AFTER" \
    --cpu "$CPU" --cores "$CORES"
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$TMP"/*.json "$KEEP"/; fi
