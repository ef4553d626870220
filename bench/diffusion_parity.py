#!/usr/bin/python3
"""Learning parity of the diffusion U-Net: train bench/torch_twin.py's `Diffusion` on
Fashion-MNIST as `deconv train --model diffusion --data fashion-mnist --size 32` trains it, then
sample as `deconv eval` samples, and write the samples as a .npy that
`deconv eval --images FILE.npy` scores in the same pinned classifier features as deconv's own
samples. bench/diffusion_parity.sh runs both sides; NOTES.md says how to read the figures.

What is the same as deconv's run (host/models/diffusion.c, host/train.c, host/optim.c):
  data      fashion-mnist:train, 28x28 bytes -> [-1, 1] -> 32x32 by the Catmull-Rom resize
            that stb_image_resize applies in deconv's loader (edge clamp, weights normalised,
            clamped to [-1, 1]); 10 % held out (--val 0.1: 54,000 training images; which
            ones differs from deconv's split), no augmentation
  network   the same U-Net, parameter count checked against `deconv info` (a mismatch stops
            the script before training), initialised as deconv does
  training  flow matching: t ~ U(0, 1) per image, x_t = (1 - t) x0 + t n, MSE on v = n - x0;
            Adam (0.9, 0.999, eps 1e-8) at --lr 1e-3, batch 64, cosine decay to 0 over all
            steps (no warm-up); --epochs 2 = 2 x ceil(54000 / 64) = 1688 steps; EMA weights
            (--ema 0.999, as deconv's diffusion default: ema = d ema + (1 - d) w after every
            step, d = min(decay, (1 + s) / (10 + s)) at step s, starting from the initial
            weights) sample
  sampling  Euler, 32 steps from t = 1 to 0 (deconv's DC_FLOW_STEPS), clamped to [-1, 1];
            10,000 samples, as `deconv eval` makes for Fashion-MNIST runs

Run with the Debian python that has torch:  /usr/bin/python3 bench/diffusion_parity.py --help
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_twin  # noqa: E402  (the twin's networks)

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
DEFAULT_DECONV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "deconv")


def read_idx_images(path):
    """u8 [n, rows, cols] of an IDX3 file (.gz or plain)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">i4")
    if magic != 2051:
        sys.exit(f"diffusion_parity: {path}: not an IDX3 image file (magic {magic})")
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, rows, cols)


def catmull_rom(x):
    x = np.abs(x)
    return np.where(x < 1, 1 - x * x * (2.5 - 1.5 * x),
                    np.where(x < 2, 2 - x * (4 + x * (0.5 * x - 2.5)), 0.0))


def upsample_matrix(n_in, n_out):
    """[n_out, n_in] weights of stb_image_resize's upsampling (Catmull-Rom, support 2 input
    pixels, edge clamp, each row normalised to sum 1), in float32 as stb computes them."""
    scale = np.float32(n_out / n_in)
    radius = np.float32(2.0) * scale
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for o in range(n_out):
        center_out = np.float32(o + 0.5)
        lo = (center_out - radius) / scale
        hi = (center_out + radius) / scale
        center_in = center_out / scale
        first, last = int(math.floor(lo + 0.5)), int(math.floor(hi - 0.5))
        taps = np.arange(first, last + 1)
        k = catmull_rom(np.float32(center_in) - (taps + np.float32(0.5))).astype(np.float32)
        k = k / np.float32(k.sum())
        for tap, weight in zip(taps, k):
            w[o, min(max(tap, 0), n_in - 1)] += weight
    return w.astype(np.float32)


def fashion_path(part):
    prefix = "train" if part == "train" else "t10k"
    return os.path.join(FASHION_DIR, f"{prefix}-images-idx3-ubyte.gz")


def load_fashion(part, size):
    """Fashion-MNIST images as deconv's loader makes them: [n, 1, size, size] float32 in [-1, 1]."""
    return load_idx(fashion_path(part), size)


def load_idx(path, size):
    """An IDX3 file's images as deconv's loader makes them: [n, 1, size, size] float32 in [-1, 1]."""
    px = read_idx_images(path)
    x = px.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    if px.shape[1] != size:
        if px.shape[1] > size:
            sys.exit("diffusion_parity: only upsampling (28 -> 32) is reproduced")
        w = upsample_matrix(px.shape[1], size)
        x = np.einsum("oi,nij,pj->nop", w, x, w, optimize=True).astype(np.float32)
        x = np.clip(x, -1.0, 1.0)
    return np.ascontiguousarray(x[:, None])


def cosine_lr(lr, step, total):
    """host/optim.c: lr * (1 + cos(pi * step / total)) / 2, min_lr 0, no warm-up."""
    f = min(step / total, 1.0) if total > 0 else 0.0
    return lr * 0.5 * (1.0 + math.cos(math.pi * f))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="samples .npy ([N, 1, 32, 32] float32)")
    ap.add_argument("--data", help="train on this IDX3 image file (default: fashion-mnist:train)")
    ap.add_argument("--write-idx", metavar="PATH",
                    help="only write the first --limit training images as an IDX3 file (a small "
                         "data set both sides can train on, for smoke runs) and exit")
    ap.add_argument("--epochs", type=int, default=2, help="deconv's default for Fashion-MNIST (2)")
    ap.add_argument("--steps", type=int, default=0, help="train this many steps instead of --epochs")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    ap.add_argument("--val", type=float, default=0.1, help="held-out share, as deconv's --val")
    ap.add_argument("--limit", type=int, default=0, help="--write-idx: the first N images only")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--ema", type=float, default=0.999,
                    help="EMA decay of the sampling weights (0: the trained weights, deconv --ema 0)")
    ap.add_argument("--sample-steps", type=int, default=32, help="Euler steps (DC_FLOW_STEPS)")
    ap.add_argument("--sample-batch", type=int, default=250)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--deconv", default=DEFAULT_DECONV, help="deconv binary for the parameter check")
    ap.add_argument("--checkpoint", help="also save the twin's state_dict here")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--json", help="write the run's figures (steps, time, images/s, loss) here")
    args = ap.parse_args()
    if args.write_idx:
        px = read_idx_images(fashion_path("train"))
        px = px[: args.limit] if args.limit else px
        with open(args.write_idx, "wb") as f:
            f.write(np.array([2051, *px.shape], dtype=">i4").tobytes() + px.tobytes())
        print(f"{len(px)} images -> {args.write_idx}")
        return
    if not args.out:
        ap.error("--out is required")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    # without the mask-conditioned input, as the deconv run (--cond-mask 0)
    model = torch_twin.Diffusion(cond=False)
    params = torch_twin.count_params(model)
    torch_twin.PRESETS["diffusion"]["size"] = args.size
    theirs = torch_twin.deconv_params(args.deconv, "diffusion", ["--cond-mask", "0"])
    print(f"twin parameters {params}, deconv's {theirs}")
    if theirs != params:
        sys.exit(f"diffusion_parity: parameter counts differ (twin {params}, deconv {theirs}): "
                 "the twin is not deconv's network")

    data = load_idx(args.data, args.size) if args.data else load_fashion("train", args.size)
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(data))
    n_val = int(round(args.val * len(data)))
    train = torch.from_numpy(data[perm[n_val:]])
    steps_per_epoch = (len(train) + args.batch - 1) // args.batch
    total = args.steps or args.epochs * steps_per_epoch
    print(f"{len(train)} training images, batch {args.batch}, {total} steps "
          f"({total / steps_per_epoch:.2f} epochs), lr {args.lr} {args.schedule}")

    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = [p.detach().clone() for p in model.parameters()] if args.ema > 0 else None
    gen = torch.Generator().manual_seed(args.seed)
    model.train()
    t0 = time.perf_counter()
    step, loss_sum, loss_n, losses = 0, 0.0, 0, []
    while step < total:
        order = torch.randperm(len(train), generator=gen)
        for first in range(0, len(train), args.batch):
            if step >= total:
                break
            for group in opt.param_groups:
                group["lr"] = cosine_lr(args.lr, step, total) if args.schedule == "cosine" else args.lr
            loss = model.loss({"target": train[order[first:first + args.batch]]})
            opt.zero_grad()
            loss.backward()
            opt.step()
            if ema is not None:
                d = min(args.ema, (1.0 + step) / (10.0 + step))
                with torch.no_grad():
                    for e, p in zip(ema, model.parameters()):
                        e.mul_(d).add_(p.detach(), alpha=1.0 - d)
            step += 1
            loss_sum += float(loss)
            loss_n += 1
            if step % args.log_every == 0 or step == total:
                el = time.perf_counter() - t0
                losses.append((step, loss_sum / loss_n))
                print(f"step {step}/{total}  loss {loss_sum / loss_n:.5f}  "
                      f"{step * args.batch / el:.1f} images/s  {el:.0f} s", flush=True)
                loss_sum, loss_n = 0.0, 0
    train_s = time.perf_counter() - t0
    if args.checkpoint:
        torch.save(model.state_dict(), args.checkpoint)

    if ema is not None:
        with torch.no_grad():
            for e, p in zip(ema, model.parameters()):
                p.copy_(e)
    model.eval()
    t1 = time.perf_counter()
    noise_gen = torch.Generator().manual_seed(args.seed + 1)
    out = np.empty((args.samples, 1, args.size, args.size), dtype=np.float32)
    for first in range(0, args.samples, args.sample_batch):
        n = min(args.sample_batch, args.samples - first)
        noise = torch.randn(n, 1, args.size, args.size, generator=noise_gen)
        out[first:first + n] = model.sample(noise, args.sample_steps).numpy()
    sample_s = time.perf_counter() - t1
    np.save(args.out, out)
    print(f"trained {total} steps in {train_s:.0f} s ({total * args.batch / train_s:.1f} images/s); "
          f"{args.samples} samples ({args.sample_steps} Euler steps) in {sample_s:.0f} s -> {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(params=params, steps=total, batch=args.batch, lr=args.lr, ema=args.ema,
                           schedule=args.schedule, n_train=len(train), train_s=train_s,
                           train_ips=total * args.batch / train_s, samples=args.samples,
                           sample_steps=args.sample_steps, sample_s=sample_s, losses=losses,
                           threads=torch.get_num_threads(), torch=torch.__version__), f, indent=1)


if __name__ == "__main__":
    main()
