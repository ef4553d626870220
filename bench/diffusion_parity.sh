#!/bin/sh
# Learning parity of the diffusion U-Net on Fashion-MNIST 32x32: deconv and its PyTorch twin
# (bench/torch_twin.py's Diffusion, trained by bench/diffusion_parity.py) train the same
# network the same number of steps with deconv's defaults (batch 64, Adam lr 1e-3, cosine
# decay, 2 epochs of the 54,000 training images), each samples 10,000 images (Euler, 32
# steps), and `deconv eval` scores both sets in the same pinned classifier features: Frechet
# distance, precision, recall. The issue's target: the twin's FD within 10 % of deconv's.
#
#   bench/diffusion_parity.sh                 both sides, 2 epochs (about an hour on 2 cores)
#   EPOCHS=1 bench/diffusion_parity.sh
#   SIDES=twin bench/diffusion_parity.sh      only the twin (SIDES=deconv: only deconv)
#   THREADS=2 OUT=runs/parity DECONV_BIN=build/deconv PYTHON=/usr/bin/python3
#   SAMPLES=2000 bench/diffusion_parity.sh     fewer samples per side (both sides the same: the
#                                             figures compare, but FD grows as samples shrink)
#   SMOKE=1 bench/diffusion_parity.sh         a minutes-long run of the whole pipeline on 384
#                                             images (6 steps, 50 samples: no figures to read)
# Writes OUT/deconv_eval.json, OUT/twin_eval.json, OUT/twin_samples.npy, OUT/twin_run.json
# and prints the figures side by side.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-$(nproc)}
EPOCHS=${EPOCHS:-2}
SIDES=${SIDES:-deconv,twin}
OUT=${OUT:-runs/diffusion_parity}
SMOKE=${SMOKE:-}

if [ -z "${DECONV_BIN:-}" ]; then
    cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$ROOT/build-bench" --target deconv_cli -j"$(nproc)" >/dev/null
    DECONV_BIN="$ROOT/build-bench/deconv"
fi
mkdir -p "$OUT"

SAMPLES=${SAMPLES:-10000}
DATA=fashion-mnist
TWIN_DATA=""
TWIN_EXTRA=""
if [ -n "$SMOKE" ]; then
    # the first 384 training images as an IDX file (346 train / 38 val: 6 steps of 64), 50
    # samples; deconv's eval then skips the Frechet block (the pinned classifier's block
    # is for runs on fashion-mnist itself), the twin's samples are still scored
    SAMPLES=50
    EPOCHS=1
    DATA="$OUT/smoke-images-idx3-ubyte"
    "$PYTHON" bench/diffusion_parity.py --write-idx "$DATA" --limit 384
    TWIN_DATA="--data $DATA"
    TWIN_EXTRA="--log-every 1"
fi

case ",$SIDES," in
*,deconv,*)
    echo "== deconv train --model diffusion --data $DATA --size 32 --epochs $EPOCHS --unconditional --cond-mask 0"
    "$DECONV_BIN" train --model diffusion --data "$DATA" --size 32 --epochs "$EPOCHS" --unconditional --cond-mask 0 \
        --device cpu --threads "$THREADS" --out "$OUT/deconv" --force --sample-every 1000
    echo "== deconv eval $OUT/deconv --samples $SAMPLES"
    "$DECONV_BIN" eval "$OUT/deconv" --device cpu --samples "$SAMPLES" --json "$OUT/deconv_eval.json" \
        >"$OUT/deconv_eval.txt"
    cat "$OUT/deconv_eval.txt"
    ;;
esac
case ",$SIDES," in
*,twin,*)
    echo "== diffusion_parity.py --epochs $EPOCHS --samples $SAMPLES (the PyTorch twin)"
    # shellcheck disable=SC2086
    "$PYTHON" bench/diffusion_parity.py --epochs "$EPOCHS" --samples "$SAMPLES" --threads "$THREADS" \
        --deconv "$DECONV_BIN" --out "$OUT/twin_samples.npy" --json "$OUT/twin_run.json" \
        $TWIN_DATA $TWIN_EXTRA
    echo "== deconv eval --images $OUT/twin_samples.npy --data fashion-mnist"
    "$DECONV_BIN" eval --images "$OUT/twin_samples.npy" --data fashion-mnist --device cpu \
        --json "$OUT/twin_eval.json" >"$OUT/twin_eval.txt"
    cat "$OUT/twin_eval.txt"
    ;;
esac

"$PYTHON" - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
rows = []
for side in ("deconv", "twin"):
    path = os.path.join(out, f"{side}_eval.json")
    if not os.path.exists(path):
        continue
    fm = json.load(open(path)).get("fashion_mnist", {})
    s = fm.get("samples", {})
    rows.append((side, s.get("n"), s.get("frechet_distance"), s.get("precision"), s.get("recall")))
print(f"\n{'side':<8} {'samples':>8} {'FD':>9} {'precision':>10} {'recall':>8}")
for side, n, fd, p, r in rows:
    f = lambda v, d=3: "-" if v is None else f"{v:.{d}f}"
    print(f"{side:<8} {n if n is not None else '-':>8} {f(fd, 2):>9} {f(p):>10} {f(r):>8}")
fds = dict((r[0], r[2]) for r in rows)
if fds.get("deconv") and fds.get("twin") is not None:
    print(f"twin FD / deconv FD = {fds['twin'] / fds['deconv']:.3f} (target: within 10 %)")
EOF
