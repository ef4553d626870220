#!/usr/bin/python3
"""Checks deconv's exported weights with other tools (run by tests/test_io.c).

usage: check_export.py DIR

DIR holds what the C test wrote:
  params.txt / params.f32   every parameter as deconv holds it: "name ndim d0 d1 ..." lines
                            and the float32 values concatenated in that order
  model.safetensors         dc_checkpoint_save
  model.npz                 dc_export_npz
  model.onnx                dc_export_onnx
  io.json                   the model spec, the ONNX inputs fed (files) and deconv's own
                            eval-mode outputs for them (files)

Checks, in order:
  1. a safetensors reader written here (struct + json + numpy.frombuffer) reads every
     tensor bit-for-bit equal to deconv's parameters, offsets tile the data exactly;
  2. numpy.load reads the .npz bit-for-bit equal;
  3. onnx.checker.check_model(full_check=True) accepts the ONNX file; its inputs,
     outputs and (for tied weights) shared initializers are as documented;
  4. PyTorch builds the same network from nn.Conv2d / nn.ConvTranspose2d / nn.Linear /
     nn.BatchNorm2d / nn.Embedding (the diffusion U-Net also from nn.GroupNorm, SiLU and
     its own sinusoidal time embedding), loads the .npz arrays by name with
     load_state_dict, and reproduces deconv's outputs within 1e-4 (relative to the
     largest output).

Exit status: 0 all good, 1 a check failed, 77 a required module is missing.
"""
import json
import os
import struct
import sys

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    print("SKIP: numpy missing:", e)
    sys.exit(77)

TOL = 1e-4


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def rel_err(a, ref):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        fail("shape %s != %s" % (a.shape, ref.shape))
    scale = max(1e-3, float(np.abs(ref).max()) if ref.size else 0.0)
    return float(np.abs(a - ref).max()) / scale if ref.size else 0.0


def same_bits(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def read_reference(d):
    raw = np.fromfile(os.path.join(d, "params.f32"), dtype="<f4")
    ref, order, off = {}, [], 0
    with open(os.path.join(d, "params.txt")) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            name, nd = parts[0], int(parts[1])
            shape = tuple(int(x) for x in parts[2:2 + nd])
            n = int(np.prod(shape))
            ref[name] = raw[off:off + n].reshape(shape)
            order.append(name)
            off += n
    if off != raw.size:
        fail("params.f32 holds %d values, params.txt describes %d" % (raw.size, off))
    return ref, order


def read_safetensors(path):
    """The format from its description: u64 header length, JSON header, raw data."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail("safetensors: file too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if n % 8:
        fail("safetensors: header length %d is not a multiple of 8" % n)
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    tensors, spans = {}, []
    for name, t in header.items():
        if t["dtype"] != "F32":
            fail("safetensors: %s has dtype %s" % (name, t["dtype"]))
        begin, end = t["data_offsets"]
        shape = tuple(t["shape"])
        if end - begin != 4 * int(np.prod(shape)):
            fail("safetensors: %s: size does not match its shape" % name)
        spans.append((begin, end, name))
        tensors[name] = np.frombuffer(data, dtype="<f4", count=(end - begin) // 4,
                                      offset=begin).reshape(shape)
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            fail("safetensors: %s starts at %d, previous tensor ends at %d" % (name, begin, pos))
        pos = end
    if pos != len(data):
        fail("safetensors: %d data bytes, tensors cover %d" % (len(data), pos))
    if data and (8 + n) % 8:
        fail("safetensors: data does not start 8-byte aligned")
    return tensors, meta


def check_safetensors(d, ref, spec):
    tensors, meta = read_safetensors(os.path.join(d, "model.safetensors"))
    if set(tensors) != set(ref):
        fail("safetensors names differ: extra %s, missing %s" %
             (sorted(set(tensors) - set(ref)), sorted(set(ref) - set(tensors))))
    for name, r in ref.items():
        if not same_bits(tensors[name], r):
            fail("safetensors: %s differs from deconv's parameter" % name)
    if meta.get("format") != "deconv" or "version" not in meta:
        fail("safetensors metadata lacks format/version: %s" % meta)
    if json.loads(meta["model"])["kind"] != spec["kind"]:
        fail("safetensors metadata model kind %s" % meta["model"])
    print("safetensors: %d tensors bit-exact, metadata %s" % (len(tensors), sorted(meta)))


def check_npz(d, ref):
    z = np.load(os.path.join(d, "model.npz"))
    if set(z.files) != set(ref):
        fail("npz names differ: %s vs %s" % (sorted(z.files), sorted(ref)))
    out = {}
    for name, r in ref.items():
        a = z[name]
        if a.dtype != np.float32 or not same_bits(a, r):
            fail("npz: %s differs (dtype %s, shape %s)" % (name, a.dtype, a.shape))
        out[name] = a
    print("npz: %d arrays bit-exact through numpy.load" % len(out))
    return out


def check_onnx(d, man, ref):
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        print("SKIP: onnx missing:", e)
        sys.exit(77)
    path = os.path.join(d, "model.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    ops = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if model.ir_version < 7 or not ops or ops[0].version != 13 or model.producer_name != "deconv":
        fail("onnx: ir %d opset %s producer %s" % (model.ir_version, ops, model.producer_name))
    g = model.graph
    ins = [i.name for i in g.input]
    outs = [o.name for o in g.output]
    want_in = [i["name"] for i in man["inputs"]]
    want_out = [o["name"] for o in man["outputs"]]
    if ins != want_in or outs != want_out:
        fail("onnx: inputs %s outputs %s, expected %s %s" % (ins, outs, want_in, want_out))
    for vi, want in zip(list(g.input) + list(g.output), man["inputs"] + man["outputs"]):
        elem = vi.type.tensor_type.elem_type
        want_elem = onnx.TensorProto.INT64 if want.get("dtype") == "int64" else onnx.TensorProto.FLOAT
        if elem != want_elem:
            fail("onnx: %s has element type %d, expected %d" % (vi.name, elem, want_elem))
        dims = vi.type.tensor_type.shape.dim
        if dims[0].dim_param != "N" or [x.dim_value for x in dims[1:]] != want["shape"][1:]:
            fail("onnx: %s has shape %s" % (vi.name, dims))
    inits = {t.name: t for t in g.initializer}
    for name, t in inits.items():
        if name in ref:
            a = numpy_helper.to_array(t)
            if not same_bits(a, ref[name]):
                fail("onnx: initializer %s differs" % name)
    spec = man["spec"]
    if spec.get("tied"):
        blocks = spec["blocks"]
        for i in range(1, blocks + 1):
            if "dec%d.weight" % i in inits:
                fail("onnx: tied model has its own dec%d.weight" % i)
        users = {}
        for n in g.node:
            for x in n.input:
                users.setdefault(x, []).append(n.op_type)
        for b in range(1, blocks + 1):
            u = users.get("enc%d.weight" % b, [])
            if kind_of(spec) == "complete" and sorted(u) != ["Conv", "ConvTranspose"]:
                fail("onnx: enc%d.weight used by %s, expected Conv and ConvTranspose" % (b, u))
    print("onnx: checker passed (full_check), %d nodes, %d initializers, inputs %s, outputs %s" %
          (len(g.node), len(inits), ins, outs))


def kind_of(spec):
    return spec["kind"]


def build_torch_unet(spec, spec_aug_dim):
    """The diffusion kind's U-Net as README's diffusion section describes it, written with
    PyTorch's own layers; module names are deconv's parameter prefixes."""
    import math
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    C, base, L, k = spec["channels"], spec["base"], spec["blocks"], spec["kernel"]
    classes = spec.get("cond_classes", 0)
    # the mask-conditioned denoiser: the known pixels and the mask beside the noised image
    cond = spec.get("cond_mask", 0) > 0
    # a self-attention block after the middle ResBlock
    attention = spec.get("attention", 0) != 0
    tdim, sin_dim = 4 * base, base + (base & 1)
    aug_dim = spec_aug_dim

    def groups(ch):  # the largest count <= 8 that divides ch
        g = 8
        while ch % g:
            g -= 1
        return g

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.time_fc1 = nn.Linear(sin_dim, tdim)
            self.time_fc2 = nn.Linear(tdim, tdim)
            self.aug_fc = nn.Linear(aug_dim, tdim)  # the augmentation parameters (zeros: none)
            if classes > 0:
                self.class_embed = nn.Embedding(classes + 1, tdim)  # + the null class
            self.stem = nn.Conv2d(2 * C + 1 if cond else C, base, k, 1, k // 2)
            ch = base
            for l in range(L):
                out = base << l
                self.res("down%d" % (l + 1), ch, out)
                ch = out
                if l + 1 < L:
                    setattr(self, "down%d_pool" % (l + 1), nn.Conv2d(ch, ch, 3, 2, 1))
            self.res("mid", ch, ch)
            if attention:
                self.mid_attn_norm = nn.GroupNorm(groups(ch), ch, eps=1e-5)
                self.mid_attn_qkv = nn.Conv2d(ch, 3 * ch, 1)
                self.mid_attn_proj = nn.Conv2d(ch, ch, 1)
            for l in range(L - 1, -1, -1):
                out = base << l
                self.res("up%d" % (l + 1), ch + out, out)
                ch = out
                if l > 0:
                    setattr(self, "up%d_deconv" % (l + 1),
                            nn.ConvTranspose2d(ch, base << (l - 1), 4, 2, 1))
                    ch = base << (l - 1)
            self.out_norm = nn.GroupNorm(groups(ch), ch, eps=1e-5)
            self.out = nn.Conv2d(ch, C, k, 1, k // 2)

        def res(self, p, cin, cout):
            setattr(self, p + "_norm1", nn.GroupNorm(groups(cin), cin, eps=1e-5))
            setattr(self, p + "_conv1", nn.Conv2d(cin, cout, k, 1, k // 2))
            setattr(self, p + "_time", nn.Linear(tdim, cout))
            setattr(self, p + "_norm2", nn.GroupNorm(groups(cout), cout, eps=1e-5))
            setattr(self, p + "_conv2", nn.Conv2d(cout, cout, k, 1, k // 2))
            if cin != cout:
                setattr(self, p + "_skip", nn.Conv2d(cin, cout, 1))

        def run_res(self, p, x, temb):
            m = lambda s: getattr(self, p + s)
            h = m("_conv1")(F.silu(m("_norm1")(x)))
            h = F.silu(m("_norm2")(h) + m("_time")(temb)[:, :, None, None])
            h = m("_conv2")(h)
            return h + (m("_skip")(x) if hasattr(self, p + "_skip") else x)

        def run_attention(self, x):
            # single head over the H*W positions: softmax_j(q_p . k_j / sqrt(C)) v_j
            n, ch, hh, ww = x.shape
            qkv = self.mid_attn_qkv(self.mid_attn_norm(x)).reshape(n, 3, ch, hh * ww)
            q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
            a = torch.softmax(torch.bmm(q.transpose(1, 2), k) * (1.0 / math.sqrt(ch)), dim=-1)
            return x + self.mid_attn_proj(torch.bmm(v, a.transpose(1, 2)).reshape(n, ch, hh, ww))

        def forward(self, x, t, aug, cls=None, known=None):
            half = sin_dim // 2
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
            a = (1000.0 * t.reshape(-1, 1)) * freqs[None, :]
            temb = self.time_fc2(F.silu(self.time_fc1(torch.cat([torch.sin(a), torch.cos(a)], 1))))
            temb = temb + self.aug_fc(aug)
            if classes > 0:
                temb = temb + self.class_embed(cls)
            temb = F.silu(temb)
            h, skips = self.stem(torch.cat([x, known], 1) if cond else x), []
            for l in range(L):
                h = self.run_res("down%d" % (l + 1), h, temb)
                skips.append(h)
                if l + 1 < L:
                    h = getattr(self, "down%d_pool" % (l + 1))(h)
            h = self.run_res("mid", h, temb)
            if attention:
                h = self.run_attention(h)
            for l in range(L - 1, -1, -1):
                h = self.run_res("up%d" % (l + 1), torch.cat([h, skips[l]], 1), temb)
                if l > 0:
                    h = getattr(self, "up%d_deconv" % (l + 1))(h)
            return self.out(F.silu(self.out_norm(h)))

    return UNet()


def build_torch(spec, names):
    import torch
    import torch.nn as nn

    if spec["kind"] == "diffusion":
        aug_dim = names["aug_fc.weight"].shape[1]
        return build_torch_unet(spec, aug_dim)

    kind, C, S, base, blocks, k = (spec["kind"], spec["channels"], spec["size"], spec["base"],
                                   spec["blocks"], spec["kernel"])

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            if kind == "classifier":
                cin, ch = C, base
                for b in range(blocks):
                    for j in range(2):
                        name = "conv%d_%d" % (b + 1, j + 1)
                        setattr(self, name, nn.Conv2d(cin, ch, k, 1, k // 2,
                                                      bias=name + ".bias" in names))
                        if spec["batchnorm"]:
                            setattr(self, "bn%d_%d" % (b + 1, j + 1),
                                    nn.BatchNorm2d(ch, eps=1e-5, momentum=0.1))
                        cin = ch
                    ch *= 2
                self.fc = nn.Linear(cin, spec["classes"])
                return
            if kind in ("complete", "vae"):  # glo has no encoder: a learned latent per image
                # the hole input: one convolution over [image, mask] (enc1.weight with
                # C + 1 input channels; tied: enc1.weight, which the decoder reuses, and
                # enc1_hole.weight concatenated along the input channels)
                cin, ch = C + (1 if spec.get("hole_input") else 0), base
                for b in range(blocks):
                    setattr(self, "enc%d" % (b + 1), nn.Conv2d(cin, ch, k, 1, k // 2))
                    cin, ch = ch, ch * 2
            self.top, self.side = base << (blocks - 1), S >> blocks
            flat = self.top * self.side * self.side
            L = spec["latent"]
            if kind == "complete":
                self.enc_fc = nn.Linear(flat, L)
            elif kind == "vae":
                self.enc_mu = nn.Linear(flat, L)
                self.enc_logvar = nn.Linear(flat, L)
            elif kind == "glo":
                self.latents = nn.Embedding(spec["glo_count"], L)
            self.dec_fc = nn.Linear(L, flat)
            for i, b in enumerate(range(blocks - 1, -1, -1), start=1):
                cin = base << b
                if spec.get("skips") and b < blocks - 1:
                    cin += base << (b + 1)  # the skip from encoder block b + 1
                out = C if b == 0 else base << (b - 1)
                setattr(self, "dec%d" % i,
                        nn.ConvTranspose2d(cin, out, k, 2, k // 2, output_padding=1))

        def encode(self, x, hole=None):
            h, self.acts = x if hole is None else torch.cat([x, hole], 1), []
            for b in range(blocks):
                h = torch.relu(getattr(self, "enc%d" % (b + 1))(h))
                self.acts.append(h)  # before the pool: the skips' sources
                h = torch.max_pool2d(h, 2, 2)
            return h.flatten(1)

        def decode(self, z):
            h = torch.relu(self.dec_fc(z)).view(-1, self.top, self.side, self.side)
            for i, b in enumerate(range(blocks - 1, -1, -1), start=1):
                h = getattr(self, "dec%d" % i)(h)
                if b > 0:
                    h = torch.relu(h)
                    if spec.get("skips"):  # U-Net skip: the encoder's map of this size
                        h = torch.cat([h, self.acts[b]], 1)
            return torch.tanh(h)

        def classify(self, x):
            h = x
            for b in range(blocks):
                for j in range(2):
                    h = getattr(self, "conv%d_%d" % (b + 1, j + 1))(h)
                    if spec["batchnorm"]:
                        h = getattr(self, "bn%d_%d" % (b + 1, j + 1))(h)
                    h = torch.relu(h)
                if b + 1 < blocks:
                    h = torch.max_pool2d(h, 2, 2)
            logits = self.fc(h.mean(dim=(2, 3)))
            return torch.softmax(logits, dim=1), logits

    return Net()


def check_torch(d, man, weights):
    try:
        import torch
    except ImportError as e:
        print("SKIP: torch missing:", e)
        sys.exit(77)
    spec = man["spec"]
    net = build_torch(spec, weights)
    state = {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}
    if spec.get("tied"):
        # the documented tying: decoder block i uses the mirrored encoder conv's kernel
        for i, b in enumerate(range(spec["blocks"] - 1, -1, -1), start=1):
            state["dec%d.weight" % i] = state["enc%d.weight" % (b + 1)]
    if spec.get("hole_input") and spec.get("tied"):
        state["enc1.weight"] = torch.cat([state["enc1.weight"], state.pop("enc1_hole.weight")], 1)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not m.endswith("num_batches_tracked") for m in missing):
        fail("torch: unexpected %s, missing %s" % (unexpected, missing))
    net.eval()
    feeds = {}
    for i in man["inputs"]:
        dtype = "<i8" if i.get("dtype") == "int64" else "<f4"
        a = np.fromfile(os.path.join(d, i["file"]), dtype=dtype).reshape(i["shape"])
        feeds[i["name"]] = torch.from_numpy(a)
    with torch.no_grad():
        kind = spec["kind"]
        if kind == "classifier":
            prob, logits = net.classify(feeds["image"])
            got = {"probabilities": prob, "logits": logits}
        elif kind == "diffusion":
            got = {"velocity": net(feeds["x"], feeds["t"], feeds["aug"], feeds.get("class"),
                                   feeds.get("cond"))}
        elif kind == "complete":
            code = net.enc_fc(net.encode(feeds["image"], feeds.get("hole")))
            got = {"output": net.decode(code + feeds["noise"])}
        else:
            got = {"output": net.decode(feeds["z"])}
    for o in man["outputs"]:
        ref = np.fromfile(os.path.join(d, o["file"]), dtype="<f4").reshape(o["shape"])
        e = rel_err(got[o["name"]].numpy(), ref)
        print("torch: %s matches deconv, max relative error %.2e" % (o["name"], e))
        if not e <= TOL:
            fail("torch: %s differs from deconv by %.3e (> %g)" % (o["name"], e, TOL))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    d = sys.argv[1]
    with open(os.path.join(d, "io.json")) as f:
        man = json.load(f)
    ref, _ = read_reference(d)
    check_safetensors(d, ref, man["spec"])
    weights = check_npz(d, ref)
    check_onnx(d, man, ref)
    check_torch(d, man, weights)
    print("OK")


if __name__ == "__main__":
    main()
