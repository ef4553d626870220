#!/usr/bin/python3
"""Merge `deconv bench --json` files with `torch_twin.py --json`, print ours/PyTorch ratios,
and append a dated section to bench/RESULTS.md (earlier sections are kept).

    report.py --torch T.json --deconv A.json [--deconv B.json ...] --results bench/RESULTS.md
              --commit abc1234 --command "bench/run.sh ..." --load-before 0.4 --load-after 0.6
"""
import argparse
import json
import os
import time

HEADER = """# deconv benchmark results

Each section is one run of `bench/run.sh` on one machine: `deconv bench` and the PyTorch twin
(`bench/torch_twin.py`, the same networks layer for layer, same batch, Adam, same thread
count) measured in the same script run. Compare ratios within a section, never absolute
figures across sections. Newest section last.

Columns: images/s are medians of repeated timed runs after warm-up (training step = upload
batch, forward, zero_grad, backward, Adam; inference = eval-mode forward). step GFLOP/s =
3 x the graph's forward FLOPs / step time. SGEMM = the backend's own gemm on the step's
conv/dense products with the conv op's chunking; "step/SGEMM" is how close the whole step
is to running only its GEMMs at that rate. RSS = peak resident memory of the benchmark
process for that model (getrusage); device = peak bytes allocated through the backend.
load = the 1-minute load average when each benchmark started and ended. A benchmark running
2 threads pulls it toward 2 by itself, so the start value is the one to read: on this 2-core
machine a start above ~1.5, or an end well above 2, means other work shared the cores and
the figures are low (PyTorch suffers most: its classifier drops ~10x under load).
On the OpenCL rows the PyTorch figure is still PyTorch on the CPU.
"""


def fmt(x, digits=1):
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return f"{x:.{digits}f}"


def load(r):
    """'a-b': the 1-minute load average when that benchmark started and ended."""
    v = r.get("loadavg_1min") if r else None
    return f"{v[0]:.1f}-{v[1]:.1f}" if v and len(v) == 2 and None not in v else "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch", required=True)
    ap.add_argument("--deconv", action="append", default=[])
    ap.add_argument("--results", required=True)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--load-before", default="?")
    ap.add_argument("--load-after", default="?")
    ap.add_argument("--cpu", default="")
    ap.add_argument("--cores", default="")
    args = ap.parse_args()

    with open(args.torch) as f:
        tw = json.load(f)
    torch_by_model = {r["model"]: r for r in tw["results"]}
    ours, startups, machine = [], [], {}
    for path in args.deconv:
        with open(path) as f:
            d = json.load(f)
        machine = machine or d
        ours += d.get("results", [])
        startups += d.get("startup", [])

    rows = []
    for r in ours:
        t = torch_by_model.get(r["model"], {})
        if "error" in r:
            rows.append((r["device"], r["model"], "failed: " + r["error"]))
            continue
        tr = r["train_ips"] / t["train_ips"] if t else None
        ir = r["infer_ips"] / t["infer_ips"] if t else None
        rows.append((r, t, tr, ir))

    # ---- console ----
    print(f"\n{'backend':<8} {'model':<11} {'train ours':>10} {'torch':>8} {'ratio':>6}   "
          f"{'infer ours':>10} {'torch':>8} {'ratio':>6}   {'GFLOP/s':>7} {'SGEMM':>7} {'step/SGEMM':>10}")
    for row in rows:
        if len(row) == 3:
            print(f"{row[0]:<8} {row[1]:<11} {row[2]}")
            continue
        r, t, tr, ir = row
        print(f"{r['device']:<8} {r['model']:<11} {r['train_ips']:>10.1f} {fmt(t.get('train_ips')):>8} "
              f"{fmt(tr, 2):>6}   {r['infer_ips']:>10.1f} {fmt(t.get('infer_ips')):>8} {fmt(ir, 2):>6}   "
              f"{r['step_gflops']:>7.1f} {fmt(r.get('sgemm_gflops')):>7} {fmt(r.get('ratio_to_sgemm'), 2):>10}")

    # ---- RESULTS.md ----
    lines = []
    date = machine.get("date") or time.strftime("%Y-%m-%d %H:%M:%S %z")
    lines.append(f"\n## {date} — commit {args.commit}\n")
    cpu = args.cpu or machine.get("cpu", "?")
    cores = args.cores or machine.get("cores", "?")
    lines.append(f"- machine: {cpu}, {cores} cores; load average (1 min) {args.load_before} before, "
                 f"{args.load_after} after")
    lines.append(f"- PyTorch {tw.get('torch')} ({tw.get('threads')} threads, mkldnn {tw.get('mkldnn')}); "
                 f"deconv {machine.get('version', '?')}")
    lines.append(f"- command: `{args.command}`")
    threads = {r.get("threads") for r in ours if r.get("backend") == "cpu"}
    lines.append(f"- CPU backend threads: {', '.join(str(int(x)) for x in threads if x)}")
    for r in ours:
        if "error" not in r:
            lines.append(f"- {r['device']} {r['model']}: warm-up {r['warmup']}, {r['repeats']} runs x "
                         f"{r['steps']} steps, device '{r['device_name']}'")
            break
    lines.append("")
    lines.append("| backend | model | batch | train img/s ours | PyTorch | ours/PyTorch | infer img/s ours "
                 "| PyTorch | ours/PyTorch | step GFLOP | step GFLOP/s | SGEMM GFLOP/s | step/SGEMM "
                 "| peak RSS MB | device MB | params (ours = PyTorch) | load ours / PyTorch |")
    lines.append("|" + "---|" * 17)
    for row in rows:
        if len(row) == 3:
            lines.append(f"| {row[0]} | {row[1]} | {row[2]} |" + " |" * 14)
            continue
        r, t, tr, ir = row
        same = "yes" if t and int(t.get("params", -1)) == int(r["params"]) else "NO"
        lines.append(
            f"| {r['device']} | {r['model']} | {int(r['batch'])} | {r['train_ips']:.1f} | "
            f"{fmt(t.get('train_ips'))} | **{fmt(tr, 2)}** | {r['infer_ips']:.1f} | {fmt(t.get('infer_ips'))} | "
            f"{fmt(ir, 2)} | {r['step_flops'] / 1e9:.2f} | {r['step_gflops']:.1f} | "
            f"{fmt(r.get('sgemm_gflops'))} | {fmt(r.get('ratio_to_sgemm'), 2)} | {r['peak_rss_mb']:.0f} | "
            f"{r['device_peak_mb']:.0f} | {int(r['params'])} {same} | {load(r)} / {load(t)} |")
    for s in startups:
        lines.append("")
        lines.append(f"OpenCL start-up on `{s['device']}` ({s['model']} model, timed from spawning the "
                     f"process; cold = empty XDG_CACHE_HOME, warm = the same folder again):")
        lines.append("")
        lines.append("| start | ready to step (s) | program build/load (s) | first step done (s) "
                     "| first step (s) | next step (s) |")
        lines.append("|---|---|---|---|---|---|")
        for key, name in (("first_start", "first (cold cache)"), ("second_start", "second (warm cache)")):
            v = s.get(key)
            if not v:
                continue
            lines.append(f"| {name} | {v['to_ready_s']:.3f} | {v['program_s']:.3f} "
                         f"({'cache' if v.get('program_from_cache') else 'compiled'}) | "
                         f"{v['to_first_step_done_s']:.3f} | {v['first_step_s']:.3f} | {v['second_step_s']:.3f} |")
    text = "\n".join(lines) + "\n"
    new = not os.path.exists(args.results)
    with open(args.results, "a") as f:
        if new:
            f.write(HEADER)
        f.write(text)
    print(f"\nappended to {args.results}")


if __name__ == "__main__":
    main()
