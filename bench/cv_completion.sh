#!/usr/bin/env bash
# Completion figures over several train/validation splits: the bundled guns hold out only
# 3 images per split, so one split's hidden-region PSNR moves by 0.1-0.2 dB with which guns
# are held out. This trains the same model once per --split-seed, runs `deconv eval` on
# each, and prints per split and over all of them: the model's hidden-region PSNR after one
# pass and after the refinement passes (or, for diffusion, the mean of the inpaintings), the
# two baselines, and the paired differences with their standard error.
#
#   bash bench/cv_completion.sh [TRAIN OPTIONS...]      e.g. --tied, or --model diffusion
#
# Environment:
#   SEEDS="1 2 3 4 5 6 7 8"  the split seeds (default 1 to 8)
#   DECONV=...               the binary (default: build/deconv)
#   WORK=DIR                 keep the runs there (default: a temp folder, removed at the end)
#   REUSE=1                  with WORK: keep a split's run when it is already there
#   DEVICE=...               --device for train and eval (default cpu)
# Cost: one default training per seed (`complete`: about 45 s on two quiet cores; the
# diffusion model about 15 minutes) plus its eval.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${DECONV:-$root/build/deconv}"
device="${DEVICE:-cpu}"
seeds="${SEEDS:-1 2 3 4 5 6 7 8}"
[ -x "$bin" ] || { echo "cv_completion.sh: no binary at $bin (build first, or set DECONV)" >&2; exit 1; }
if [ -n "${WORK:-}" ]; then
  work="$WORK"
  mkdir -p "$work"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/cv_completion.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi
list="$work/cv.list"
: > "$list"
for s in $seeds; do
  dir="$work/split$s"
  if [ "${REUSE:-0}" = 1 ] && [ -f "$dir/model.safetensors" ]; then
    echo "== split seed $s: keeping $dir" >&2
  else
    echo "== split seed $s: deconv train $* --split-seed $s --out $dir" >&2
    "$bin" train "$@" --split-seed "$s" --out "$dir" --device "$device" --force --quiet >&2
  fi
  "$bin" eval "$dir" --device "$device" --json "$dir/eval.json" > "$dir/eval.txt"
  printf '%s\t%s\n' "$s" "$dir/eval.json" >> "$list"
done

python3 - "$list" "$*" <<'PY'
import json, math, sys

rows = []
for line in open(sys.argv[1]):
    seed, path = line.rstrip("\n").split("\t")
    j = json.load(open(path))
    c = j.get("completion")
    if not c:
        sys.exit(f"cv_completion.sh: {path} has no completion figures")
    flow = "average_psnr" in c
    rows.append(dict(seed=seed, n=j.get("n_val", None),
                     model=c["average_psnr"] if flow else c["model_psnr"],
                     single=c["model_psnr"],
                     refined=c.get("refined_psnr"),
                     mean=c["mean_baseline_psnr"], nn=c["nearest_baseline_psnr"], flow=flow,
                     grey=c.get("hidden_midgrey"), grey_refined=c.get("hidden_midgrey_refined"),
                     grey_truth=c.get("hidden_midgrey_truth")))

def stats(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, sd / math.sqrt(len(xs))

flow = rows[0]["flow"]
opts = sys.argv[2] or "(defaults)"
print(f"deconv train {opts}: hidden-region PSNR (dB) of the held-out images, per split seed")
head = "model (mean of inpaintings)" if flow else "model, 1 pass"
second = "one inpainting" if flow else "3 passes"
print(f"{'seed':>5} {head:>28} {second:>15} {'mean baseline':>14} {'nearest-visible':>16}")
for r in rows:
    other = r["single"] if flow else r["refined"]
    print(f"{r['seed']:>5} {r['model']:>28.2f} {other if other is not None else float('nan'):>15.2f} "
          f"{r['mean']:>14.2f} {r['nn']:>16.2f}")
cols = [("model", [r["model"] for r in rows]), ("mean baseline", [r["mean"] for r in rows]),
        ("nearest-visible baseline", [r["nn"] for r in rows])]
if not flow and all(r["refined"] is not None for r in rows):
    cols.insert(1, ("model, 3 passes", [r["refined"] for r in rows]))
print(f"over {len(rows)} splits (mean +- standard error):")
for name, xs in cols:
    m, se = stats(xs)
    print(f"  {name:<28} {m:7.2f} +- {se:.2f}")
diffs = [("model - mean baseline", [r["model"] - r["mean"] for r in rows]),
         ("model - nearest-visible", [r["model"] - r["nn"] for r in rows])]
if not flow and all(r["refined"] is not None for r in rows):
    diffs.append(("3 passes - 1 pass", [r["refined"] - r["model"] for r in rows]))
print("paired differences (mean +- standard error; a difference is resolved when it is more than")
print("about twice its standard error):")
for name, xs in diffs:
    m, se = stats(xs)
    wins = sum(x > 0 for x in xs)
    print(f"  {name:<28} {m:+7.2f} +- {se:.2f}   ({wins} of {len(xs)} splits above 0)")
if not flow and all(r["grey_refined"] is not None for r in rows):
    # eval's look of the completions: mid-grey (|v| < 0.5, undecided) share of the hole
    g1, _ = stats([100 * r["grey"] for r in rows])
    g3, _ = stats([100 * r["grey_refined"] for r in rows])
    gt, _ = stats([100 * r["grey_truth"] for r in rows])
    m, se = stats([100 * (r["grey_refined"] - r["grey"]) for r in rows])
    print(f"hidden-region mid-grey pixels: {g1:.1f}% after 1 pass, {g3:.1f}% after 3 "
          f"({m:+.1f} +- {se:.1f} points), {gt:.1f}% in the originals")
PY
