#!/bin/sh
# The one prepared script for a lent NVIDIA GPU machine (no package registry there): runs
# deconv's OpenCL backend against NVIDIA's OpenCL driver and the PyTorch twin on CUDA in the
# same call, and writes logs and a results table to OUTDIR. Sized for < 8 minutes.
#
#   bench/gpu_fetch.sh         here, first: runtime libraries + binaries into .gpu/
#   bench/gpu.sh OUTDIR        there (carry .gpu); then copy OUTDIR/RESULTS.md into
#                              bench/RESULTS.md with the device, driver and date it prints
#
# Steps, each with its own time limit so one hang cannot eat the lease:
#   1. unpack .gpu/debs into .gpu/root (python, no dpkg needed) and find libnvidia-opencl
#   2. deconv devices                                   (devices.txt)
#   3. the CPU-vs-OpenCL parity tests on the GPU         (parity.log)
#   4. deconv bench --device opencl, every preset, with the OpenCL start-up time (first
#      start compiles the kernels, the second reads the binary cache) and one profiled step:
#      the per-primitive times and the step's budget (launches, device traffic, transfers)
#      next to its roofline estimate                                  (bench_cl.log, cl.json)
#   4b. complete again with the row kernels in the form CPU devices get (DECONV_CL_ELEM=0),
#      to measure the GPU form's gain                        (bench_cl_rows.log, cl_rows.json)
#   4c. the diffusion preset, in a step of its own so that a slow one cannot cost the
#      others' figures                                  (bench_cl_diffusion.log, cl_diffusion.json)
#   5. the PyTorch twin on CUDA, true FP32 and TF32 (torch_tf32_off.json, torch_tf32_on.json),
#      and on the diffusion preset, FP32                                (torch_diffusion.json)
#   6. RESULTS.md: ours vs PyTorch FP32 (bench/report.py), plus the TF32 figures
# Environment: MODELS (default the four presets of steps 4-5), DIFFUSION (default 1; 0
# skips steps 4c and the twin's diffusion run), TORCH_DEVICE (default cuda; cpu for a dry
# run on a machine without CUDA), PYTHON (default python3), OPENCL_DEVICE (default opencl),
# WARMUP/REPEATS/STEPS (2/3/5 for deconv, 3/5/5 for PyTorch; lower them for a dry run),
# BENCH_FLAGS (extra `deconv bench` options, e.g. --no-gemm).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${1:?usage: bench/gpu.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MODELS=${MODELS:-complete,vae,glo,classifier}
DIFFUSION=${DIFFUSION:-1}
TORCH_DEVICE=${TORCH_DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
CLDEV=${OPENCL_DEVICE:-opencl}
WARMUP=${WARMUP:-}
REPEATS=${REPEATS:-}
STEPS=${STEPS:-}
BENCH_FLAGS=${BENCH_FLAGS:-}
LOG="$OUT/gpu.log"
say() { echo "== $*" | tee -a "$LOG"; }
step() { # step SECONDS NAME LOGFILE command...: time-limited, logged, never fatal
    secs=$1 name=$2 file=$3
    shift 3
    say "$name (limit ${secs}s): $*"
    t0=$(date +%s)
    timeout "$secs" "$@" > "$OUT/$file" 2>&1
    rc=$?
    echo "   exit $rc after $(( $(date +%s) - t0 )) s; log $file" | tee -a "$LOG"
    tail -n 5 "$OUT/$file" | sed 's/^/   | /' | tee -a "$LOG"
    return $rc
}

say "bench/gpu.sh at $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n), commit $(cat .gpu/commit 2>/dev/null || echo '?')"
[ -x .gpu/bin/deconv ] || { echo "gpu.sh: .gpu/bin/deconv missing: run bench/gpu_fetch.sh first and carry .gpu" | tee -a "$LOG"; exit 2; }

# 1. libraries: unpack the .deb files with python (a .deb is an ar archive holding data.tar.*)
unpack() { # unpack DIR_OF_DEBS DEST
    "$PYTHON" - "$1" "$2" <<'PY'
import io, os, sys, tarfile
src, dest = sys.argv[1], sys.argv[2]
os.makedirs(dest, exist_ok=True)
for name in sorted(os.listdir(src)):
    if not name.endswith(".deb"):
        continue
    data = open(os.path.join(src, name), "rb").read()
    assert data[:8] == b"!<arch>\n", name + ": not a .deb"
    pos = 8
    while pos + 60 <= len(data):
        hdr = data[pos:pos + 60]
        member, size = hdr[:16].decode().strip().rstrip("/"), int(hdr[48:58])
        body = data[pos + 60:pos + 60 + size]
        if member.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as t:
                t.extractall(dest)
        pos += 60 + size + (size & 1)
PY
}
unpack .gpu/debs .gpu/root || { echo "gpu.sh: unpacking .gpu/debs failed" | tee -a "$LOG"; exit 2; }
LIBS="$ROOT/.gpu/root/usr/lib/x86_64-linux-gnu:$ROOT/.gpu/root/usr/lib/x86_64-linux-gnu/openblas-pthread:$ROOT/.gpu/root/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd .gpu/bin/deconv | grep -q 'not found'; then
    say "libraries still missing, adding the fallback C++/zlib runtimes:"
    ldd .gpu/bin/deconv | grep 'not found' | tee -a "$LOG"
    unpack .gpu/fallback .gpu/root-fallback
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$ROOT/.gpu/root-fallback/usr/lib/x86_64-linux-gnu:$ROOT/.gpu/root-fallback/lib/x86_64-linux-gnu"
fi
ldd .gpu/bin/deconv > "$OUT/ldd.txt" 2>&1
if grep -q 'not found' "$OUT/ldd.txt"; then say "still missing:"; grep 'not found' "$OUT/ldd.txt" | tee -a "$LOG"; fi

# NVIDIA's ICD: keep the system's vendors folder if it names NVIDIA, else make our own
if ! grep -qs nvidia /etc/OpenCL/vendors/*.icd; then
    NVLIB=$(ldconfig -p 2>/dev/null | sed -n 's/.*libnvidia-opencl.so.1 .*=> //p' | head -n1)
    [ -n "$NVLIB" ] || NVLIB=$(find /usr/local/nvidia /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib \
        -name 'libnvidia-opencl.so.1*' 2>/dev/null | head -n1)
    if [ -n "$NVLIB" ]; then
        mkdir -p .gpu/vendors
        echo "$NVLIB" > .gpu/vendors/nvidia.icd
        export OCL_ICD_VENDORS="$ROOT/.gpu/vendors"
        say "NVIDIA OpenCL driver: $NVLIB (OCL_ICD_VENDORS=$OCL_ICD_VENDORS)"
    else
        say "no libnvidia-opencl.so.1 found: the OpenCL steps use whatever ICD the system lists"
    fi
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
    --format=csv 2>&1 | tee "$OUT/nvidia-smi.csv" | sed 's/^/   /' | tee -a "$LOG"

# 2-4. deconv
export DECONV_SOURCE_DIR="$ROOT" DECONV_CACHE_DIR="$OUT/clcache"
step 60 "devices" devices.txt .gpu/bin/deconv devices
step 200 "parity tests (CPU vs OpenCL)" parity.log .gpu/bin/test_backend_parity
# shellcheck disable=SC2086
step 240 "deconv bench --device $CLDEV" bench_cl.log \
    .gpu/bin/deconv bench --device "$CLDEV" --models "$MODELS" --warmup "${WARMUP:-2}" \
    --repeats "${REPEATS:-3}" --steps "${STEPS:-5}" --profile 1 $BENCH_FLAGS --json "$OUT/cl.json"

# 4b. the row kernels' other form on the same device (a GPU gets one work-item per
# element; this is the one-row-per-work-item form PoCL gets): complete only, training only
step 60 "complete with DECONV_CL_ELEM=0 (one work-item per row, the CPU-device form)" \
    bench_cl_rows.log env DECONV_CL_ELEM=0 .gpu/bin/deconv bench \
    --device "$CLDEV" --models complete --warmup "${WARMUP:-2}" --repeats "${REPEATS:-3}" \
    --steps "${STEPS:-5}" --no-infer --no-gemm --no-startup --profile 1 \
    --json "$OUT/cl_rows.json"

# 4c. the diffusion preset (its own step and limit)
if [ "$DIFFUSION" = 1 ]; then
    # shellcheck disable=SC2086
    step 120 "deconv bench --device $CLDEV --models diffusion" bench_cl_diffusion.log \
        .gpu/bin/deconv bench --device "$CLDEV" --models diffusion --warmup "${WARMUP:-2}" \
        --repeats "${REPEATS:-3}" --steps "${STEPS:-5}" --no-startup --profile 1 $BENCH_FLAGS \
        --json "$OUT/cl_diffusion.json"
fi

# 5. PyTorch twin (the same networks) on CUDA: true FP32 first (the fair comparison), TF32
for tf in off on; do
    step 120 "PyTorch twin on $TORCH_DEVICE, TF32 $tf" "torch_tf32_$tf.log" "$PYTHON" bench/torch_twin.py \
        --device "$TORCH_DEVICE" --tf32 $tf --models "$MODELS" --warmup "${WARMUP:-3}" \
        --repeats "${REPEATS:-5}" --steps "${STEPS:-5}" \
        --deconv .gpu/bin/deconv --json "$OUT/torch_tf32_$tf.json"
done
if [ "$DIFFUSION" = 1 ]; then
    step 120 "PyTorch twin on $TORCH_DEVICE, diffusion, TF32 off" torch_diffusion.log \
        "$PYTHON" bench/torch_twin.py --device "$TORCH_DEVICE" --tf32 off --models diffusion \
        --warmup "${WARMUP:-3}" --repeats "${REPEATS:-5}" --steps "${STEPS:-5}" \
        --deconv .gpu/bin/deconv --json "$OUT/torch_diffusion.json"
fi

# 6. the table
if [ -s "$OUT/cl.json" ] && [ -s "$OUT/torch_tf32_off.json" ]; then
    DEV=$(sed -n 's/.*measured here (\(.*\)): .*/\1/p' "$OUT/bench_cl.log" | head -n1)
    # the diffusion runs, where they finished, join the others: one twin file, two of ours
    "$PYTHON" - "$OUT/torch_tf32_off.json" "$OUT/torch_diffusion.json" "$OUT/torch_fp32_all.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
try:
    d["results"] += json.load(open(sys.argv[2]))["results"]
except Exception as e:
    print(f"gpu.sh: no PyTorch diffusion figures ({e})")
json.dump(d, open(sys.argv[3], "w"), indent=1)
PY
    DIFF_JSON=""
    [ -s "$OUT/cl_diffusion.json" ] && DIFF_JSON="--deconv $OUT/cl_diffusion.json"
    # shellcheck disable=SC2086
    "$PYTHON" bench/report.py --torch "$OUT/torch_fp32_all.json" --deconv "$OUT/cl.json" $DIFF_JSON \
        --results "$OUT/RESULTS.md" --commit "$(cat .gpu/commit 2>/dev/null || echo '?')" \
        --command "bench/gpu.sh (deconv bench --device $CLDEV; torch_twin.py --device $TORCH_DEVICE --tf32 off)" \
        --cpu "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "$DEV")" \
        --cores "$(nproc)" >> "$LOG" 2>&1
    {
        echo
        echo "PyTorch figures in the table above: $TORCH_DEVICE, true FP32 (TF32 off). With TF32 on:"
        "$PYTHON" - "$OUT/torch_tf32_on.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"(no TF32 figures: {e})"); sys.exit()
for r in d["results"]:
    print(f"- {r['model']}: train {r['train_ips']:.1f} img/s, inference {r['infer_ips']:.1f} img/s")
PY
    } >> "$OUT/RESULTS.md"
    say "results table: $OUT/RESULTS.md"
    tail -n 12 "$OUT/RESULTS.md" | tee -a "$LOG"
else
    say "no results table: deconv or PyTorch figures missing (see the logs above)"
fi
say "done at $(date -u '+%H:%M:%S UTC')"
