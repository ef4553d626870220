#!/bin/sh
# Multi-rank checks of data-parallel training (CTest runs each case; tests/mpi/dist_train.c
# holds the programs). 2 ranks on one machine, oversubscribed, one thread each.
#   run.sh CASE DIST_TRAIN DECONV WORK     CASE: match-cpu | lazy-overlap | lazy-folder |
#                                            match-opencl | kill | resume | cli
set -u
case_name=$1 prog=$2 cli=$3 work=$4
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# shared memory between the ranks; no network interface is needed
mpi="mpirun --oversubscribe --allow-run-as-root --mca btl self,vader -np"
rm -rf "$work" && mkdir -p "$work" || exit 1
fail() { echo "run.sh $case_name: $*" >&2; exit 1; }

case "$case_name" in
match-cpu)
    for kind in complete glo classifier classifier-syncbn; do
        for optim in sgd adam; do
            $mpi 2 "$prog" match "$kind" "$optim" cpu "$work" ||
                fail "$kind, $optim: 2 ranks do not match one process"
        done
    done ;;
lazy-overlap)
    $mpi 2 "$prog" lazy-overlap "$work" ||
        fail "the overlapped all-reduce or the lazily loaded data changed the weights" ;;
lazy-folder)
    $mpi 2 "$prog" lazy-folder "$work" ||
        fail "the lazily loaded folder: no match with one process, or a rank decoded too much" ;;
match-opencl)
    $mpi 2 "$prog" match glo adam opencl "$work" ||
        fail "glo on OpenCL: 2 ranks do not match one process" ;;
kill)
    # rank 1 dies mid-run: mpirun must end rank 0 too, say so, and leave the checkpoint intact
    log="$work/kill.log"
    timeout 120 $mpi 2 "$prog" kill "$work" >"$log" 2>&1
    rc=$?
    cat "$log"
    [ $rc -ne 0 ] || fail "mpirun returned 0 after a rank died"
    [ $rc -ne 124 ] || fail "the job hung after a rank died"
    grep -q "exited on signal 9" "$log" || fail "no message naming the dead rank"
    grep -q "was not ended" "$log" && fail "a rank kept running"
    ls "$work"/glo_kill/*.tmp* 2>/dev/null && fail "a temporary checkpoint file was left"
    "$prog" check "$work" || fail "the last checkpoint is not intact"
    # the same with the command line: rank 1 killed from outside while it trains
    out="$work/cli_kill"
    $mpi 2 "$cli" train --model glo --size 16 --base 4 --blocks 2 --latent 8 --epochs 100000 \
        --batch 8 --save-every 1 --threads 1 --device cpu --out "$out" >"$work/cli_kill.log" 2>&1 &
    pid=$!
    i=0
    while [ ! -f "$out/model.safetensors" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    sleep 1
    for child in $(pgrep -P $pid); do
        tr '\0' '\n' <"/proc/$child/environ" | grep -qx "OMPI_COMM_WORLD_RANK=1" && kill -9 "$child"
    done
    i=0
    while kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 $pid 2>/dev/null && { kill -9 $pid; fail "rank 0 kept running after rank 1 died"; }
    wait $pid && fail "mpirun returned 0 after a rank died"
    cat "$work/cli_kill.log"
    grep -q "exited on signal 9" "$work/cli_kill.log" || fail "no message naming the dead rank"
    epoch=$(tail -n 1 "$out/loss.csv" | cut -d, -f1)
    "$cli" train --resume "$out" --epochs $((epoch + 1)) --threads 1 --device cpu --quiet ||
        fail "the killed run's checkpoint does not resume" ;;
resume)
    $mpi 2 "$prog" resume "$work" || fail "the 2-rank part failed"
    "$prog" resume1 "$work" || fail "resuming on 1 rank does not match one process" ;;
cli)
    # the command line under mpirun: rank 0 alone prints and writes the run folder; an
    # uneven split of the batch is refused on every rank with a message
    out="$work/cli"
    $mpi 2 "$cli" train --model glo --size 16 --base 4 --blocks 2 --latent 8 --epochs 2 \
        --batch 8 --threads 1 --device cpu --out "$out" >"$work/cli.log" 2>&1 ||
        { cat "$work/cli.log"; fail "deconv train under mpirun failed"; }
    cat "$work/cli.log"
    [ "$(grep -c "deconv train: done" "$work/cli.log")" = 1 ] || fail "not exactly one rank reported"
    [ -f "$out/model.safetensors" ] && [ -f "$out/loss.csv" ] || fail "no checkpoint or loss.csv"
    # an image folder under mpirun: every rank loads it lazily; the data fingerprint the
    # ranks compute from their shares is the one one process computes, and a resume with
    # other data is still refused
    fingerprint() { sed -n 's/.*"fingerprint":[[:space:]]*"\([^"]*\)".*/\1/p' "$1/config.json"; }
    guns="${DECONV_SOURCE_DIR:-.}/assets/guns"
    "$cli" train --model glo --size 16 --base 4 --blocks 2 --latent 8 --epochs 1 --batch 8 \
        --threads 1 --device cpu --quiet --data "$guns" --out "$work/one" ||
        fail "the one-process run failed"
    [ -n "$(fingerprint "$out")" ] || fail "no fingerprint in config.json"
    [ "$(fingerprint "$out")" = "$(fingerprint "$work/one")" ] ||
        fail "fingerprints differ: 2 ranks $(fingerprint "$out"), one process $(fingerprint "$work/one")"
    other="$work/other_guns"
    mkdir -p "$other" && cp "$guns"/*.png "$other"/ && rm "$other"/uzi.png
    $mpi 2 "$cli" train --resume "$out" --epochs 3 --threads 1 --device cpu --data "$other" \
        >"$work/other.log" 2>&1 && { cat "$work/other.log"; fail "a resume on other data was accepted"; }
    cat "$work/other.log"
    grep -q "its images differ from the data run" "$work/other.log" || fail "no message for other data"
    same="$work/same_guns"
    mkdir -p "$same" && cp "$guns"/*.png "$same"/
    $mpi 2 "$cli" train --resume "$out" --epochs 3 --threads 1 --device cpu --data "$same" \
        >"$work/same.log" 2>&1 || { cat "$work/same.log"; fail "a resume on a copy of the data failed"; }
    # IDX data: rank 1 loads lazily and decodes only its share; one rank reports
    $mpi 2 "$cli" train --model classifier --data fashion-mnist:test --val 0.9 --base 4 \
        --blocks 2 --epochs 1 --batch 16 --threads 1 --device cpu --sync-batchnorm \
        --serial-exchange --out "$work/fm" \
        >"$work/fm.log" 2>&1 || { cat "$work/fm.log"; fail "classifier on Fashion-MNIST failed"; }
    [ "$(grep -c "deconv train: done" "$work/fm.log")" = 1 ] || fail "Fashion-MNIST: not one report"
    [ -f "$work/fm/model.safetensors" ] || fail "Fashion-MNIST: no checkpoint"
    timeout 120 $mpi 2 "$cli" train --model glo --size 16 --epochs 1 --batch 7 --threads 1 \
        --device cpu --out "$work/odd" >"$work/odd.log" 2>&1 && fail "batch 7 on 2 ranks was accepted"
    cat "$work/odd.log"
    grep -q "batch 7 cannot be split evenly over 2 ranks" "$work/odd.log" || fail "no message for batch 7"
    # Ctrl-C on mpirun (SIGINT; mpirun passes SIGTERM on): the ranks agree on the step to
    # stop after, rank 0 saves there and says so once; then one process resumes the run
    int="$work/int"
    $mpi 2 "$cli" train --model glo --size 16 --base 4 --blocks 2 --latent 8 --epochs 100000 \
        --batch 8 --threads 1 --device cpu --out "$int" >"$work/int.log" 2>&1 &
    pid=$!
    i=0
    while [ ! -f "$int/loss.csv" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    kill -INT $pid
    wait $pid
    rc=$?
    cat "$work/int.log"
    [ $rc -ne 0 ] || fail "mpirun returned 0 after Ctrl-C"
    [ "$(grep -c "interrupted; checkpoint saved at epoch" "$work/int.log")" = 1 ] ||
        fail "not exactly one 'interrupted; checkpoint saved' message"
    epoch=$(sed -n 's/.*checkpoint saved at epoch \([0-9]*\) step.*/\1/p' "$work/int.log")
    "$cli" train --resume "$int" --epochs "$epoch" --threads 1 --device cpu --quiet ||
        fail "the interrupted 2-rank run does not resume in one process" ;;
*) fail "unknown case" ;;
esac
echo "run.sh $case_name: ok"
