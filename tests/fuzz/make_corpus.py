#!/usr/bin/python3
"""Writes the seed corpus of ci/fuzz (tests/fuzz/corpus/): checkpoints of the fuzz target's
fixed model (tests/fuzz/fuzz_checkpoint.c), valid ones and a few broken ones. The files
are committed; run this again only when the fuzz model changes."""
import json
import os
import struct

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
PARAMS = [("enc1.weight", [2, 1, 3, 3], True), ("enc1.bias", [2], True),
          ("bn1.running_var", [2], False), ("fc.weight", [3, 8], True), ("fc.bias", [3], True)]
rng = np.random.default_rng(7)


def safetensors(tensors, meta, edit=None):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, arr in tensors:
        b = np.asarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(arr)), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if edit:
        edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


weights = [(n, rng.standard_normal(s).astype(np.float32)) for n, s, _ in PARAMS]
meta = {"format": "deconv", "version": "0.1.0", "model": json.dumps({"kind": "complete"})}
os.makedirs(HERE, exist_ok=True)
write("valid", safetensors(weights, meta))
moments = [("optim.%s.%s" % (w, n), np.abs(rng.standard_normal(s)).astype(np.float32))
           for w in "mv" for n, s, t in PARAMS if t]
write("valid_optim", safetensors(weights + moments, dict(meta, **{"optim.step": "12", "optim.kind": "adam"})))
good = safetensors(weights, meta)
write("short", good[:5])
write("past_end", struct.pack("<Q", len(good)) + good[8:])
write("bad_json", good[:8] + b"{\"enc1.weight\":[" + good[24:])
write("overlap", safetensors(weights, meta, lambda h: h["enc1.bias"].update(data_offsets=[64, 72])))
write("dtype", safetensors(weights, meta, lambda h: h["fc.bias"].update(dtype="F16")))
write("missing", safetensors(weights[:-1], meta))
write("other_kind", safetensors(weights, dict(meta, model=json.dumps({"kind": "vae"}))))
write("shape", safetensors([(n, a.reshape(-1)) for n, a in weights], meta))
