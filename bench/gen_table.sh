#!/usr/bin/env bash
# Regenerates the README's generative tables from scratch: trains every model of the tables
# with the documented commands into a fresh folder, runs `deconv eval RUN --json` on each,
# and prints the two markdown tables (guns, Fashion-MNIST 32x32).
#
#   bash bench/gen_table.sh [OUT.md]
#
# Environment:
#   QUICK=1     few epochs and samples: checks the script itself, not the models (the
#               figures are meaningless); 8 minutes on 2 busy cores (7m45s measured)
#   DECONV=...  the binary (default: build/deconv)
#   WORK=DIR    keep the runs, eval.json and eval.txt files there (default: a temp folder,
#               removed at the end)
#   DEVICE=...  --device for train and eval (default cpu: the tables are CPU figures)
#   ONLY=guns|fashion   one of the two tables
#   EVAL_ONLY=1 with WORK=DIR of an earlier run: keep its trained runs, evaluate them again
#               (a changed `deconv eval` gives new figures without retraining)
#   REUSE=1     with WORK=DIR: train only the models that have no run there yet (e.g. a
#               diffusion run trained by the same command outside the script, copied in)
#   KEEP_EVAL=1 with REUSE=1: a kept run's eval.json is kept too when it is newer than its
#               model (for rows a change leaves alone, e.g. the diffusion models' 15-minute
#               evaluation when only the encoder-decoders changed; say so beside the table)
#   ROWS="complete fm32"  only the rows with these run folders (the names after the first
#               '|' below; default: every row), e.g. to regenerate the rows a change touched
#   CLASSIFIER=FILE     the feature network for the Frechet distance (default: eval's own,
#               assets/fm32_classifier.safetensors; another one gives other FD figures)
# The full run trains 5 gun models (400 epochs each; diffusion 3000 at 32x32, about 15
# minutes) and 5 Fashion-MNIST models (2 epochs each; diffusion 5 epochs, about 28 minutes)
# and evaluates 10,000 samples per Fashion-MNIST model (the diffusion model's by Heun, 10
# steps: about 10 minutes). Each model's training and evaluation time goes to stderr.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${DECONV:-$root/build/deconv}"
device="${DEVICE:-cpu}"
only="${ONLY:-all}"
out="${1:-/dev/stdout}"
[ -x "$bin" ] || { echo "gen_table.sh: no binary at $bin (build first, or set DECONV)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "gen_table.sh: needs python3 (standard library only)" >&2; exit 1; }
if [ -n "${WORK:-}" ]; then
  work="$WORK"
  mkdir -p "$work"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/gen_table.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi

if [ "${QUICK:-0}" = 1 ]; then
  guns_train="--epochs 3"
  fm_train="--epochs 1 --val 0.98"  # 2% of the training set, one epoch
  fm_eval="--samples 500 --limit 100"
else
  guns_train=""                     # the defaults: 400 epochs on the bundled guns
  fm_train=""                       # each model's own epochs (in the list below)
  fm_eval=""                        # 10,000 samples, the first 500 validation images
fi

# name | run folder | train options (the README's commands, without --out) | eval options
# (the table's own train options come after a model's, so QUICK=1's --epochs wins)
guns_models=(
  "complete (default)|complete||"
  "complete --tied|tied|--tied|"
  "vae|vae|--model vae|"
  "glo|glo|--model glo|"
  "diffusion|diffusion|--model diffusion|"
)
fm_models=(
  "complete|fm32|--data fashion-mnist --size 32 --epochs 2|"
  "complete --tied|tied32|--tied --data fashion-mnist --size 32 --epochs 2|"
  "vae|vae32|--model vae --data fashion-mnist --size 32 --epochs 2|"
  "glo|glo32|--model glo --data fashion-mnist --size 32 --epochs 2|"
  "diffusion|fmdiff|--model diffusion --data fashion-mnist --size 32 --epochs 5|--sampler heun --steps 10"
)

run_models() { # table extra_train extra_eval models...
  local table="$1" extra_train="$2" extra_eval="$3"
  shift 3
  local entry name folder opts model_eval evopts dir t0
  for entry in "$@"; do
    IFS='|' read -r name folder opts model_eval <<< "$entry"
    if [ -n "${ROWS:-}" ] && [[ " $ROWS " != *" $folder "* ]]; then continue; fi
    opts="$(echo $opts $extra_train)"
    evopts="$(echo $model_eval $extra_eval)"
    dir="$work/$folder"
    echo "== $table: $name: deconv train $opts --out $dir; deconv eval $dir $evopts" >&2
    if [ "${EVAL_ONLY:-0}" = 1 ]; then
      [ -f "$dir/model.safetensors" ] || { echo "gen_table.sh: EVAL_ONLY: no run at $dir" >&2; exit 1; }
    elif [ "${REUSE:-0}" = 1 ] && [ -f "$dir/model.safetensors" ]; then
      echo "gen_table.sh: REUSE: keeping the run at $dir" >&2
    else
      t0=$(date +%s)
      # shellcheck disable=SC2086
      "$bin" train $opts --out "$dir" --device "$device" --quiet >&2
      echo "gen_table.sh: $name trained in $(( $(date +%s) - t0 )) s (wall clock)" >&2
    fi
    if [ "${REUSE:-0}" = 1 ] && [ "${KEEP_EVAL:-0}" = 1 ] && [ "$dir/eval.json" -nt "$dir/model.safetensors" ]; then
      echo "gen_table.sh: KEEP_EVAL: keeping $dir/eval.json" >&2
    else
      t0=$(date +%s)
      # shellcheck disable=SC2086
      "$bin" eval "$dir" --device "$device" $evopts ${CLASSIFIER:+--classifier "$CLASSIFIER"} \
        --json "$dir/eval.json" > "$dir/eval.txt"
      echo "gen_table.sh: $name evaluated in $(( $(date +%s) - t0 )) s (wall clock)" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$folder" "$opts" "$evopts" "$dir/eval.json" >> "$work/$table.list"
  done
}

rm -f "$work/guns.list" "$work/fashion.list"
start=$(date +%s)
if [ "$only" != fashion ]; then run_models guns "$guns_train" "" "${guns_models[@]}"; fi
if [ "$only" != guns ]; then run_models fashion "$fm_train" "$fm_eval" "${fm_models[@]}"; fi
secs=$(( $(date +%s) - start ))

python3 - "$work" "${QUICK:-0}" "$secs" > "$out" <<'PY'
import json, os, sys

work, quick, secs = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])

def rows(table):
    path = os.path.join(work, table + ".list")
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path):
        name, folder, opts, extra_eval, js = line.rstrip("\n").split("\t")
        out.append((name, (folder, opts, extra_eval), json.load(open(js))))
    return out

def f(x, fmt):
    return "—" if x is None else format(x, fmt)

def pct(x):
    return "—" if x is None else f"{100 * x:.0f}%"

def failed(j):
    bad = [v["figure"] for v in j["verdicts"] if not v["pass"]]
    return "PASS" if not bad else "FAIL: " + ", ".join(bad)

def completion(j):
    c = j.get("completion")
    if not c:
        return "— | — | —"
    refined = f' ({f(c["refined_psnr"], ".2f")})' if "refined_psnr" in c else ""
    model = f'{f(c["model_psnr"], ".2f")}{refined}'
    if "average_psnr" in c:  # diffusion: the verdict judges the mean of the draws' inpaintings
        model = f'{f(c["average_psnr"], ".2f")} (mean of {c["average_of"]} inpaintings; one: {f(c["model_psnr"], ".2f")})'
    return f'{model} | {f(c["mean_baseline_psnr"], ".2f")} | {f(c["nearest_baseline_psnr"], ".2f")}'

if quick:
    print("<!-- QUICK=1: a few epochs only; these figures test the script, not the models -->")
guns = rows("guns")
if guns:
    t = guns[0][2]["small_data"]["training"]
    print(f'**Guns** ({guns[0][2]["n_train"]} training images; {guns[0][2]["n_samples"]} samples per model; '
          f'training images: {pct(t["mid_grey_share"])} mid-grey, edge sharpness {t["edge_sharpness"]:.2f}, '
          f'nearest other training image {t["mean_nearest"]:.3f}, spread {t["spread"]:.3f})')
    print()
    print("| model | mid-grey (train) | edge sharpness (train) | near-copies | nearest/2nd ratio (train) "
          "| novelty: mean / min distance (train) | spread (train) | hidden PSNR dB (3 passes) | mean baseline "
          "| nearest-visible baseline | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, opts, j in guns:
        s, t = j["small_data"]["samples"], j["small_data"]["training"]
        print(f'| `{name}` | {pct(s["mid_grey_share"])} ({pct(t["mid_grey_share"])}) '
              f'| {s["edge_sharpness"]:.2f} ({t["edge_sharpness"]:.2f}) | {pct(s["memorised_share"])} '
              f'| {s["mean_nearest_ratio"]:.2f} ({t["mean_nearest_ratio"]:.2f}) '
              f'| {s["mean_nearest"]:.3f} / {s["min_nearest"]:.3f} ({t["mean_nearest"]:.3f}) '
              f'| {s["spread"]:.3f} ({t["spread"]:.3f}) | {completion(j)} | {failed(j)} |')
    print()
fm = rows("fashion")
if fm:
    fl = fm[0][2]["fashion_mnist"].get("floor_train_vs_test")
    head = fm[0][2]
    print(f'**Fashion-MNIST 32×32** ({head["n_train"]} training images; {head["n_samples"]} samples per model '
          f'against the 10,000 test images in the pinned classifier\'s features'
          + (f'; floor, {fl["n"]} training images vs the test set: FD {fl["frechet_distance"]:.3f}, '
             f'precision {fl["precision"]:.3f}, recall {fl["recall"]:.3f}' if fl else "") + ")")
    print()
    print("| model | FD (floor) | precision (floor) | recall (floor) | top class share (floor) | class entropy (floor) "
          "| mid-grey (train) | near-copies | hidden PSNR dB (3 passes) | mean baseline | nearest-visible baseline | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, opts, j in fm:
        m = j["fashion_mnist"]
        sd = j["small_data"]
        if "skipped" in m:
            fdcols = "— | — | — | — | —"
        else:
            s, fl = m["samples"], m["floor_train_vs_test"]
            fdcols = (f'{s["frechet_distance"]:.3f} ({fl["frechet_distance"]:.3f}) | {s["precision"]:.3f} ({fl["precision"]:.3f}) '
                      f'| {s["recall"]:.3f} ({fl["recall"]:.3f}) | {pct(s["top_class_share"])} ({pct(fl["top_class_share"])}) '
                      f'| {s["class_entropy_norm"]:.2f} ({fl["class_entropy_norm"]:.2f})')
        print(f'| `{name}` | {fdcols} | {pct(sd["samples"]["mid_grey_share"])} ({pct(sd["training"]["mid_grey_share"])}) '
              f'| {pct(sd["samples"]["memorised_share"])} | {completion(j)} | {failed(j)} |')
    print()
print("Commands:")
print()
print("```sh")
for name, (folder, opts, extra_eval), j in guns + fm:
    train = " ".join(["deconv train"] + opts.split() + ["--out", "runs/" + folder])
    ev = " ".join(["deconv eval", "runs/" + folder] + extra_eval.split() + ["--json", f"runs/{folder}/eval.json"])
    print(f"{train} && {ev}")
print("```")
print()
print(f"<!-- generated by bench/gen_table.sh{' (QUICK=1)' if quick else ''} in {secs} s -->")
PY
echo "gen_table.sh: tables written to $out (runs in $work; $secs s)" >&2
