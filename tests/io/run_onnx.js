// Runs deconv's exported ONNX model with onnxruntime-node (run by tests/test_io.c).
//
// usage: node run_onnx.js DIR
// DIR/io.json lists the inputs to feed (float32 or int64 files + shapes) and deconv's own outputs
// for them; every output must match within 1e-4 relative to the largest reference value.
// Exit status: 0 all good, 1 mismatch or error, 77 onnxruntime-node is not installed.
'use strict';
const fs = require('fs');
const path = require('path');

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  console.error('SKIP: onnxruntime-node not found (NODE_PATH=' + (process.env.NODE_PATH || '') + '): ' +
                e.message);
  process.exit(77);
}

const TOL = 1e-4;
const dir = process.argv[2];
const man = JSON.parse(fs.readFileSync(path.join(dir, 'io.json'), 'utf8'));

function readF32(file) {
  const b = fs.readFileSync(path.join(dir, file));
  const copy = new Uint8Array(b); // aligned copy
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

async function main() {
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
  const feeds = {};
  for (const i of man.inputs) {
    if (i.dtype === 'int64') {
      // class labels: int64, little-endian
      const b = new Uint8Array(fs.readFileSync(path.join(dir, i.file)));
      feeds[i.name] = new ort.Tensor('int64', new BigInt64Array(b.buffer, 0, b.byteLength / 8), i.shape);
    } else {
      feeds[i.name] = new ort.Tensor('float32', readF32(i.file), i.shape);
    }
  }
  const results = await session.run(feeds);
  let ok = true;
  for (const o of man.outputs) {
    const got = results[o.name];
    if (!got) {
      console.error('FAIL: no output ' + o.name + ' (have ' + Object.keys(results) + ')');
      ok = false;
      continue;
    }
    if (JSON.stringify(Array.from(got.dims)) !== JSON.stringify(o.shape)) {
      console.error('FAIL: ' + o.name + ' has shape ' + JSON.stringify(got.dims) + ', expected ' +
                    JSON.stringify(o.shape));
      ok = false;
      continue;
    }
    const ref = readF32(o.file);
    let scale = 1e-3, worst = 0;
    for (let j = 0; j < ref.length; j++) scale = Math.max(scale, Math.abs(ref[j]));
    for (let j = 0; j < ref.length; j++) {
      const d = Math.abs(got.data[j] - ref[j]);
      if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
    }
    const rel = worst / scale;
    console.log('onnxruntime-node ' + ort.env.versions.common + ': ' + o.name + ' matches deconv, max relative error ' +
                rel.toExponential(2));
    if (!(rel <= TOL)) {
      console.error('FAIL: ' + o.name + ' differs by ' + rel + ' (> ' + TOL + ')');
      ok = false;
    }
  }
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error('FAIL: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
