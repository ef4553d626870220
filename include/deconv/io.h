/* deconv — weights in and out: safetensors checkpoints (native), .npz and ONNX export. */
#ifndef DECONV_IO_H
#define DECONV_IO_H

#include "deconv/deconv.h"
#include "deconv/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* String key/value metadata stored in safetensors' "__metadata__". */
typedef struct dc_meta {
    int n;
    char key[32][48];
    char *value[32]; /* owned */
} dc_meta;
dc_status dc_meta_set(dc_meta *m, const char *key, const char *value);
const char *dc_meta_get(const dc_meta *m, const char *key);
void dc_meta_clear(dc_meta *m);

/* Write every parameter (name -> PyTorch layout, float32 little-endian) and, when `opt`
 * is given, its moments as "optim.m.<name>" / "optim.v.<name>" plus the step count in
 * metadata. Atomic: temp file in the same folder, fsync, rename. */
dc_status dc_checkpoint_save(const char *path, dc_params *params, dc_optim *opt,
                             const dc_meta *meta, dc_error *err);
/* Read metadata only (to rebuild the model before loading tensors). */
dc_status dc_checkpoint_read_meta(const char *path, dc_meta *meta, dc_error *err);
/* Load into already-built params (and optimizer state when `opt` is given and present).
 * Rejects with a message naming the problem: truncated file, header length past the end,
 * invalid JSON, overlapping or gapped offsets, dtype/shape/size mismatch, a missing
 * tensor, a tensor whose shape does not fit the model, a checkpoint of another model. */
dc_status dc_checkpoint_load(const char *path, dc_params *params, dc_optim *opt, dc_meta *meta,
                             dc_error *err);

/* Export formats. */
dc_status dc_export_npz(const char *path, dc_params *params, dc_error *err);
/* ONNX inference graph of a model (complete: image + noise inputs; vae/glo: decoder from
 * a latent input; classifier: softmax probabilities). */
dc_status dc_export_onnx(const char *path, dc_model *model, dc_error *err);

#ifdef __cplusplus
}
#endif
#endif
