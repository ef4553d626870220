#!/usr/bin/python3
"""PyTorch twin of deconv's model presets, for `bench/run.sh`.

The same five networks layer for layer (host/models/*.c; `diffusion` is the flow-matching
U-Net of host/models/diffusion.c at 32x32, base 32, 3 levels), the same batch sizes, the
same losses and Adam, on the CPU with the same thread count (or on a CUDA GPU with
`--device cuda`, for bench/gpu.sh: then `--tf32 off` gives true FP32 convolutions and
matmuls, the fair comparison for OpenCL, and `--tf32 on` PyTorch's default). A timed training step is what
`deconv bench` times: forward, zero_grad, backward, optimizer step, the inputs taken from a
fixed random batch; inference is an eval-mode forward under no_grad. Figures: images/s,
median of repeated timed runs after warm-up.

Run with the Debian python that has torch:  /usr/bin/python3 bench/torch_twin.py --help
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The presets' defaults (host/models/models.c: dc_model_spec_default), at the benchmark's
# sizes (host/cli/cmd_bench.c: bench_preset).
PRESETS = {
    "complete": dict(size=64, batch=64),
    "vae": dict(size=64, batch=64),
    "glo": dict(size=64, batch=64, glo_count=1024),
    "classifier": dict(size=28, batch=128),
    "diffusion": dict(size=32, batch=64),
}
CHANNELS, BASE, BLOCKS, KERNEL = 1, 32, 3, 3
LATENT = {"complete": 128, "vae": 128, "glo": 32}
NOISE_STD = 1.0      # complete: std of the code noise, added in eval mode too
VISIBLE_WEIGHT = 0.1  # complete: loss weight of the visible (top) half
BETA = 1.0           # vae
CLASSES = 10
# diffusion (host/models/diffusion.c): U-Net levels, the time embedding's sinusoid scale and
# longest period (dc_time_embedding(t, base, 1000, 10000)), group norm's eps
UNET_LEVELS = 3
TIME_SCALE, TIME_MAX_PERIOD = 1000.0, 10000.0
GN_EPS = 1e-5


class Encoder(nn.Module):
    """blocks x [conv k/1/k//2 -> relu -> maxpool 2], channels base, 2*base, ...; with hole,
    the first conv also reads the mask of the hidden pixels (complete's hole input: deconv's
    enc1 + bias-free enc1_hole convs are one conv over [image, mask])."""

    def __init__(self, hole=False):
        super().__init__()
        layers, c, ch = [], CHANNELS + (1 if hole else 0), BASE
        for _ in range(BLOCKS):
            layers += [nn.Conv2d(c, ch, KERNEL, 1, KERNEL // 2), nn.ReLU(), nn.MaxPool2d(2, 2)]
            c, ch = ch, ch * 2
        self.net = nn.Sequential(*layers)
        self.out_features = c * (64 >> BLOCKS) ** 2

    def forward(self, x):
        return torch.flatten(self.net(x), 1)


class Decoder(nn.Module):
    """dense -> relu -> reshape -> blocks x ConvTranspose2d(k, 2, k//2, output_padding 1)
    with relu between -> tanh."""

    def __init__(self, latent, size=64):
        super().__init__()
        self.top, self.side = BASE << (BLOCKS - 1), size >> BLOCKS
        self.fc = nn.Linear(latent, self.top * self.side * self.side)
        layers = []
        for b in range(BLOCKS - 1, -1, -1):
            cin = BASE << b
            cout = CHANNELS if b == 0 else BASE << (b - 1)
            layers.append(nn.ConvTranspose2d(cin, cout, KERNEL, 2, KERNEL // 2, output_padding=1))
            if b > 0:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        h = F.relu(self.fc(z)).view(-1, self.top, self.side, self.side)
        return torch.tanh(self.net(h))


class Complete(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = Encoder(hole=True)
        self.enc_fc = nn.Linear(self.enc.out_features, LATENT["complete"])
        self.dec = Decoder(LATENT["complete"])

    def forward(self, x, hole):
        code = self.enc_fc(self.enc(torch.cat([x, hole], 1)))
        return self.dec(code + NOISE_STD * torch.randn_like(code))  # noise always on

    def loss(self, batch):
        out = self(batch["x"], batch["hole"])
        return (batch["weight"] * (out - batch["target"]) ** 2).mean()

    def infer(self, batch):
        return self(batch["x"], batch["hole"])


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = Encoder()
        self.enc_mu = nn.Linear(self.enc.out_features, LATENT["vae"])
        self.enc_logvar = nn.Linear(self.enc.out_features, LATENT["vae"])
        self.dec = Decoder(LATENT["vae"])

    def loss(self, batch):
        h = self.enc(batch["x"])
        mu, logvar = self.enc_mu(h), self.enc_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        out = self.dec(z)
        recon = (batch["weight"] * (out - batch["target"]) ** 2).mean()
        kl = -0.5 * torch.sum(1 + logvar - mu * mu - torch.exp(logvar)) / mu.shape[0]
        # KL summed over latent dims, MSE a per-pixel mean (models.c: beta / (C*S*S))
        return recon + BETA / (CHANNELS * 64 * 64) * kl

    def infer(self, batch):
        return self.dec(self.enc_mu(self.enc(batch["x"])))  # eval: z = mu


class GLO(nn.Module):
    def __init__(self, count):
        super().__init__()
        self.latents = nn.Embedding(count, LATENT["glo"])
        nn.init.normal_(self.latents.weight, std=0.1)
        self.dec = Decoder(LATENT["glo"])

    def loss(self, batch):
        return F.mse_loss(self.dec(self.latents(batch["index"])), batch["target"])

    def infer(self, batch):
        return self.dec(self.latents(batch["index"]))


class Classifier(nn.Module):
    """blocks x [2 x (conv no-bias -> BN -> relu)] with maxpool between blocks, GAP, Linear."""

    def __init__(self):
        super().__init__()
        layers, c, ch = [], CHANNELS, BASE
        for b in range(BLOCKS):
            for _ in range(2):
                layers += [nn.Conv2d(c, ch, KERNEL, 1, KERNEL // 2, bias=False),
                           nn.BatchNorm2d(ch, eps=1e-5, momentum=0.1), nn.ReLU()]
                c = ch
            if b + 1 < BLOCKS:
                layers.append(nn.MaxPool2d(2, 2))
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, CLASSES)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))

    def loss(self, batch):
        return F.cross_entropy(self(batch["x"]), batch["labels"])

    def infer(self, batch):
        return self(batch["x"])


# ---------------------------------------------------------------- diffusion (flow matching)
def norm_groups(ch):
    """deconv's group count: the largest count <= 8 that divides the channels."""
    g = 8
    while ch % g:
        g -= 1
    return g


AUG_PARAMS = 5  # DC_AUGMENT_PARAMS: flip, shift x, shift y, log scale, angle


def time_embedding(t, dim, scale=TIME_SCALE, max_period=TIME_MAX_PERIOD):
    """[sin(a_k), cos(a_k)], a_k = scale * t * max_period^(-k / (dim/2)), k < dim/2 (the
    time_embedding op, host/ops/unet.c)."""
    half = dim // 2
    freqs = max_period ** (-torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = scale * t.reshape(-1, 1) * freqs
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class ResBlock(nn.Module):
    """groupnorm-SiLU-conv, groupnorm, + dense(temb) per channel, SiLU-conv, + the input
    (a 1x1 conv when the channels change)."""

    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_groups(cin), cin, eps=GN_EPS)
        self.conv1 = nn.Conv2d(cin, cout, KERNEL, 1, KERNEL // 2)
        self.time = nn.Linear(tdim, cout)
        self.norm2 = nn.GroupNorm(norm_groups(cout), cout, eps=GN_EPS)
        self.conv2 = nn.Conv2d(cout, cout, KERNEL, 1, KERNEL // 2)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h) + self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(h))
        return h + (self.skip(x) if self.skip is not None else x)


class AttentionBlock(nn.Module):
    """h + proj(attention(qkv(groupnorm(h)))) (deconv --attention): qkv a 1x1 conv C -> 3C
    (queries, keys, values), single-head softmax(q^T k / sqrt(C)) over the H*W positions,
    proj a 1x1 conv C -> C (the attention op, host/ops/unet.c)."""

    def __init__(self, ch):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups(ch), ch, eps=GN_EPS)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        n, ch, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, ch, h * w).unbind(1)
        a = torch.softmax(torch.bmm(q.transpose(1, 2), k) * ch ** -0.5, dim=-1)
        return x + self.proj(torch.bmm(v, a.transpose(1, 2)).reshape(n, ch, h, w))


class Diffusion(nn.Module):
    """The residual U-Net of host/models/diffusion.c: stem conv -> per level ResBlock (skip
    kept), stride-2 conv down (not after the last) -> middle ResBlock -> per level, lowest
    first: concat [h, skip], ResBlock, ConvTranspose2d k4 s2 p1 to the next level's channels
    (not after the top) -> groupnorm -> SiLU -> conv to the image. Time: sinusoid(base) ->
    dense(4 base) -> SiLU -> dense(4 base), + dense(augmentation parameters, 5 -> 4 base;
    zeros without augmentation) -> SiLU, projected per ResBlock. With cond (deconv's default,
    --cond-mask > 0) the stem also reads the known pixels and the mask (C + 1 channels; new
    images: zeros and a mask of ones). With attention (--attention) an AttentionBlock follows
    the middle ResBlock. Initialised as
    deconv initialises: He-normal convs (transposed: fan-in C k^2 / stride^2), Xavier-uniform
    dense layers, zero biases, group norm 1 / 0."""

    def __init__(self, channels=CHANNELS, base=BASE, levels=UNET_LEVELS, cond=True,
                 attention=False):
        super().__init__()
        self.cond = cond
        tdim = 4 * base
        self.sin_dim = base + (base & 1)
        self.time_fc1 = nn.Linear(self.sin_dim, tdim)
        self.time_fc2 = nn.Linear(tdim, tdim)
        self.aug_fc = nn.Linear(AUG_PARAMS, tdim)
        self.stem = nn.Conv2d(2 * channels + 1 if cond else channels, base, KERNEL, 1,
                              KERNEL // 2)
        self.down, self.pool = nn.ModuleList(), nn.ModuleList()
        ch = base
        for lvl in range(levels):
            out = base << lvl
            self.down.append(ResBlock(ch, out, tdim))
            ch = out
            if lvl + 1 < levels:
                self.pool.append(nn.Conv2d(ch, ch, 3, 2, 1))
        self.mid = ResBlock(ch, ch, tdim)
        self.mid_attn = AttentionBlock(ch) if attention else None
        self.up, self.deconv = nn.ModuleList(), nn.ModuleList()
        for lvl in range(levels - 1, -1, -1):
            out = base << lvl
            self.up.append(ResBlock(ch + out, out, tdim))
            ch = out
            if lvl > 0:
                self.deconv.append(nn.ConvTranspose2d(ch, base << (lvl - 1), 4, 2, 1))
                ch = base << (lvl - 1)
        self.out_norm = nn.GroupNorm(norm_groups(ch), ch, eps=GN_EPS)
        self.out = nn.Conv2d(ch, channels, KERNEL, 1, KERNEL // 2)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        for mod in self.modules():
            if isinstance(mod, nn.ConvTranspose2d):
                cin, _, kh, kw = mod.weight.shape
                fan_in = cin * kh * kw / (mod.stride[0] * mod.stride[1])
                mod.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
            elif isinstance(mod, nn.Conv2d):
                mod.weight.normal_(0.0, (2.0 / mod.weight[0].numel()) ** 0.5)
            elif isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
            else:
                continue
            nn.init.zeros_(mod.bias)

    def forward(self, x, t, aug=None, cond=None):
        if aug is None:  # no augmentation (and sampling): zeros
            aug = x.new_zeros(x.shape[0], AUG_PARAMS)
        if self.cond:
            if cond is None:  # nothing known: zeros and a mask of ones
                cond = torch.cat([torch.zeros_like(x), x.new_ones(x.shape[0], 1, *x.shape[2:])], 1)
            x = torch.cat([x, cond], 1)
        temb = F.silu(self.time_fc1(time_embedding(t, self.sin_dim)))
        temb = F.silu(self.time_fc2(temb) + self.aug_fc(aug))
        h = self.stem(x)
        skips = []
        for lvl, block in enumerate(self.down):
            h = block(h, temb)
            skips.append(h)
            if lvl < len(self.pool):
                h = self.pool[lvl](h)
        h = self.mid(h, temb)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
            if i < len(self.deconv):
                h = self.deconv[i](h)
        return self.out(F.silu(self.out_norm(h)))

    def loss(self, batch):
        """Flow matching: x_t = (1 - t) x0 + t n, t ~ U(0, 1) per image; MSE on v = n - x0."""
        x0 = batch["target"]
        t = torch.rand(x0.shape[0], device=x0.device)
        noise = torch.randn_like(x0)
        tb = t.view(-1, 1, 1, 1)
        cond = None
        if self.cond:  # half the images with their top half known, the rest nothing known
            mask = torch.ones_like(x0[:, :1])
            mask[: x0.shape[0] // 2, :, : x0.shape[2] // 2] = 0.0
            cond = torch.cat([x0 * (1 - mask), mask], 1)
        return F.mse_loss(self((1 - tb) * x0 + tb * noise, t, None, cond), noise - x0)

    def infer(self, batch):
        return self(batch["x"], batch["t"])

    @torch.no_grad()
    def sample(self, noise, steps):
        """Euler from t = 1 to 0 in `steps` equal steps, clamped to [-1, 1] at the end
        (host/models/flow_sample.c)."""
        x = noise.clone()
        for step in range(steps):
            t, t_next = (steps - step) / steps, (steps - step - 1) / steps
            v = self(x, torch.full((x.shape[0],), t, device=x.device))
            x -= (t - t_next) * v
        return x.clamp_(-1.0, 1.0)


def build(kind, attention=False):
    if kind == "complete":
        return Complete()
    if kind == "vae":
        return VAE()
    if kind == "glo":
        return GLO(PRESETS["glo"]["glo_count"])
    if kind == "diffusion":
        return Diffusion(attention=attention)
    return Classifier()


def random_batch(kind, batch, size, gen):
    """Images in [-1, 1]; complete hides the bottom half (weight 1 there, 0.1 visible)."""
    target = torch.rand(batch, CHANNELS, size, size, generator=gen) * 2 - 1
    x = target.clone()
    weight = torch.ones_like(target)
    hole = torch.zeros(batch, 1, size, size)
    if kind == "complete":
        x[:, :, size // 2:, :] = 0.0
        weight[:, :, : size // 2, :] = VISIBLE_WEIGHT
        hole[:, :, size // 2:, :] = 1.0
    b = {
        "x": x,
        "target": target,
        "weight": weight,
        "hole": hole,
        "labels": torch.randint(0, CLASSES, (batch,), generator=gen),
        "index": torch.randint(0, PRESETS["glo"]["glo_count"], (batch,), generator=gen),
        "t": torch.rand(batch, generator=gen),
    }
    return b


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def deconv_params(binary, kind, extra=()):
    """'total trainable parameters' of `deconv info --model KIND --batch 1` at the bench sizes
    (extra: more model options)."""
    args = [binary, "info", "--model", kind, "--batch", "1", "--size", str(PRESETS[kind]["size"])]
    args += list(extra)
    if kind == "glo":
        args += ["--glo-count", str(PRESETS["glo"]["glo_count"])]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    m = re.search(r"total trainable parameters: (\d+)", out)
    return int(m.group(1)) if m else None


def sync(device):
    """Wait for queued GPU work, so a timer reads the work's end (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(kind, args):
    load_start = os.getloadavg()[0]
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(1234)
    p = PRESETS[kind]
    batch = args.batch or p["batch"]
    dev = torch.device(args.device)
    attention = kind == "diffusion" and args.attention
    model = build(kind, attention).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    data = random_batch(kind, batch, p["size"], gen)
    data = {k: v.to(dev) for k, v in data.items()}
    if kind == "classifier" and not args.no_input_grad:
        # deconv's classifier keeps d(loss)/d(pixels) for the explanation methods
        data["x"] = data["x"].requires_grad_(True)

    def train_step():
        loss = model.loss(data)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    def timed(fn):
        runs = []
        for _ in range(args.repeats):
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            sync(dev)
            runs.append(args.steps * batch / (time.perf_counter() - t0))
        return statistics.median(runs), runs

    model.train()
    for _ in range(args.warmup):
        loss = train_step()
    train_ips, train_runs = timed(train_step)
    loss = float(train_step())

    model.eval()
    with torch.no_grad():
        for _ in range(args.warmup):
            model.infer(data)
        infer_ips, infer_runs = timed(lambda: model.infer(data))

    r = dict(model=kind, batch=batch, size=p["size"], params=count_params(model),
             train_ips=train_ips, train_ips_runs=train_runs,
             infer_ips=infer_ips, infer_ips_runs=infer_runs, loss=loss,
             loadavg_1min=[load_start, os.getloadavg()[0]])
    if attention:
        r["attention"] = True
    if args.deconv:
        r["deconv_params"] = deconv_params(args.deconv, kind, ["--attention"] if attention else [])
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="complete,vae,glo,classifier,diffusion")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=0, help="override the presets' batch sizes")
    ap.add_argument("--deconv", help="deconv binary: compare parameter counts with `deconv info`")
    ap.add_argument("--attention", action="store_true",
                    help="diffusion: with the self-attention block after the middle ResBlock "
                         "(deconv train --attention)")
    ap.add_argument("--no-input-grad", action="store_true",
                    help="classifier: skip d(loss)/d(input), which deconv computes")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    ap.add_argument("--tf32", choices=["on", "off"], default="off",
                    help="cuda: TF32 tensor-core convolutions and matmuls (PyTorch's default "
                         "for cuDNN convolutions) or true FP32 (default here: off)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device_name = platform.processor() or "cpu"
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            sys.exit(f"torch_twin: --device {args.device}: this PyTorch has no CUDA device")
        torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
        torch.backends.cuda.matmul.allow_tf32 = args.tf32 == "on"
        torch.backends.cudnn.benchmark = True
        device_name = torch.cuda.get_device_name(torch.device(args.device))
    info = dict(torch=torch.__version__, threads=torch.get_num_threads(),
                mkldnn=torch.backends.mkldnn.is_available(), python=platform.python_version(),
                device=args.device, device_name=device_name,
                tf32=args.tf32 if args.device.startswith("cuda") else "n/a",
                warmup=args.warmup, repeats=args.repeats, steps=args.steps, results=[])
    where = (f"{device_name}, TF32 {args.tf32}" if args.device.startswith("cuda")
             else f"{info['threads']} threads, mkldnn {info['mkldnn']}")
    print(f"PyTorch {torch.__version__} on {args.device} ({where})")
    print(f"{'model':<11} {'batch':>5} {'train img/s':>11} {'infer img/s':>11} {'params':>9} {'deconv':>9}")
    mismatch = False
    for kind in args.models.split(","):
        if kind not in PRESETS:
            sys.exit(f"torch_twin: unknown model '{kind}' (use {', '.join(PRESETS)})")
        r = bench(kind, args)
        info["results"].append(r)
        dp = r.get("deconv_params")
        flag = "" if dp is None or dp == r["params"] else "  MISMATCH"
        mismatch |= bool(flag)
        print(f"{kind:<11} {r['batch']:>5} {r['train_ips']:>11.1f} {r['infer_ips']:>11.1f} "
              f"{r['params']:>9} {dp if dp is not None else '-':>9}{flag}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)
    if mismatch:
        sys.exit("torch_twin: parameter counts differ from deconv's: the twin is not the same network")


if __name__ == "__main__":
    main()
