#!/bin/sh
# Data-parallel scaling on this machine: images/s of `deconv train` in one process and on
# 2 MPI ranks (1 thread each, the same global batch), the bytes all-reduced per step and
# the share of the step spent in the exchange. Feeds the scaling estimate in README.md
# ("Scaling out"); record the figures in bench/NOTES.md with the machine's load.
#
#   bench/mpi.sh                          complete on the bundled guns, 3 epochs
#   MODEL=glo EPOCHS=5 BATCH=16 bench/mpi.sh
#   DECONV_BIN=path/to/deconv bench/mpi.sh (default: build/deconv)
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
COMMON="--model $MODEL --epochs $EPOCHS --batch $BATCH --save-every $EPOCHS \
--sample-every $EPOCHS --threads 1 --device cpu --force"

# images/s of the training steps: the mean of loss.csv's per-epoch figures after the
# first epoch (which pays for warm-up)
rate() {
    awk -F, 'NR > 2 { s += $6; n++ } END { if (n) printf "%.1f", s / n; else print "?" }' "$1"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" train $COMMON --out "$WORK/one" --quiet
one=$(rate "$WORK/one/loss.csv")
$MPI -np 2 "$BIN" train $COMMON --out "$WORK/two" >"$WORK/two.log" 2>&1 ||
    { cat "$WORK/two.log"; exit 1; }
two=$(rate "$WORK/two/loss.csv")
stats=$(grep "all-reduced" "$WORK/two.log")
echo "model $MODEL, global batch $BATCH, $EPOCHS epochs, 1 thread per process"
echo "1 process: $one images/s"
echo "2 ranks:   $two images/s"
echo "2 ranks:   ${stats#deconv train: }"
# per step: the exchange's seconds against the step's (global batch / images per second)
echo "$stats" | awk -v batch="$BATCH" -v rate="$two" '{
    for (i = 1; i <= NF; i++) {
        if ($i == "all-reduced") bytes = $(i + 1)
        if ($i == "steps" && $(i + 1) == "in") steps = $(i - 1)
        if ($i == "in" && $(i + 1) == "the" && $(i + 2) == "exchange,") comm = $(i - 4)
    }
    step = batch / rate; per = comm / steps
    printf "per step (2 ranks): %.1f ms, of it %.1f ms (%.1f %%) in the exchange of %d bytes\n",
           1000 * step, 1000 * per, 100 * per / step, bytes
}'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
