#!/bin/sh
# Data-parallel scaling on this machine: images/s of `deconv train` in one process and on
# 2 MPI ranks (1 thread each, the same global batch), the bytes all-reduced per step and
# the share of the step spent in the exchange, with the all-reduce after backward
# (--serial-exchange) and overlapped with it (the default). Feeds the scaling estimate in
# README.md ("Scaling out"); record the figures in bench/NOTES.md with the machine's load.
#
#   bench/mpi.sh                          complete on the bundled guns, 3 epochs
#   MODEL=glo EPOCHS=5 BATCH=16 bench/mpi.sh
#   DECONV_BIN=path/to/deconv bench/mpi.sh (default: build/deconv)
#   MEMORY=60 bench/mpi.sh                instead: each rank's peak memory (VmHWM) training
#                                         the classifier on Fashion-MNIST's 60000 images
#                                         on 2 ranks, read after 60 s (the first epoch
#                                         started): rank 0 decodes every image, rank 1
#                                         only its share
# Take figures only on a quiet machine (1-min load below ~1; see bench/NOTES.md).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DECONV_BIN:-$ROOT/build/deconv}
MODEL=${MODEL:-complete}
EPOCHS=${EPOCHS:-3}
BATCH=${BATCH:-16}
WORK=${WORK:-$(mktemp -d)}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
MPI="mpirun --oversubscribe --allow-run-as-root --mca btl self,vader"

if [ -n "${MEMORY:-}" ]; then
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    $MPI -np 2 "$BIN" train --model classifier --data fashion-mnist --epochs 1 --batch 32 \
        --threads 1 --device cpu --force --out "$WORK/mem" >"$WORK/mem.log" 2>&1 &
    pid=$!
    sleep "$MEMORY"
    # each rank's peak resident memory so far (VmHWM), read before the run is stopped
    for child in $(pgrep -P $pid); do
        rank=$(tr '\0' '\n' <"/proc/$child/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
        [ -n "$rank" ] && echo "rank $rank: peak RSS $(grep VmHWM "/proc/$child/status" | tr -s ' \t' ' ')"
    done
    kill -INT $pid
    wait $pid || true
    grep "train / " "$WORK/mem.log" || true
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
    exit 0
fi

COMMON="--model $MODEL --epochs $EPOCHS --batch $BATCH --save-every $EPOCHS \
--sample-every $EPOCHS --threads 1 --device cpu --force"

# images/s of the training steps: the mean of loss.csv's per-epoch figures after the
# first epoch (which pays for warm-up)
rate() {
    awk -F, 'NR > 2 { s += $6; n++ } END { if (n) printf "%.1f", s / n; else print "?" }' "$1"
}

# per step: the exchange's seconds (after backward + inside it) against the step's
# (global batch / images per second)
share() {
    echo "$1" | awk -v batch="$BATCH" -v rate="$2" '{
        for (i = 1; i <= NF; i++) {
            if ($i == "all-reduced") bytes = $(i + 1)
            if ($i == "steps" && $(i + 1) == "in") steps = $(i - 1)
            if ($i == "exchange" && $(i + 1) == "after") after = $(i - 6)
            if ($i == "during" && $(i + 1) == "backward,") during = $(i - 6)
        }
        step = batch / rate; a = after / steps; d = during / steps
        printf "per step: %.1f ms, of it %.1f ms (%.1f %%) in the exchange of %d bytes: " \
               "%.1f ms after backward, %.1f ms inside it\n",
               1000 * step, 1000 * (a + d), 100 * (a + d) / step, bytes, 1000 * a, 1000 * d
    }'
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" train $COMMON --out "$WORK/one" --quiet
one=$(rate "$WORK/one/loss.csv")
echo "model $MODEL, global batch $BATCH, $EPOCHS epochs, 1 thread per process"
echo "1 process: $one images/s"
for mode in serial overlap; do
    flag=""
    [ $mode = serial ] && flag="--serial-exchange"
    $MPI -np 2 "$BIN" train $COMMON $flag --out "$WORK/$mode" >"$WORK/$mode.log" 2>&1 ||
        { cat "$WORK/$mode.log"; exit 1; }
    two=$(rate "$WORK/$mode/loss.csv")
    stats=$(grep "all-reduced" "$WORK/$mode.log")
    echo "2 ranks, $mode: $two images/s"
    echo "  ${stats#deconv train: }"
    echo "  $(share "$stats" "$two")"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
