/* deconv — weights in and out: safetensors checkpoints (native), .npz and ONNX export. */
#ifndef DECONV_IO_H
#define DECONV_IO_H

#include "deconv/deconv.h"
#include "deconv/model.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

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

/* Run folders. A training takes the folder's lock for as long as it runs: an advisory
 * flock() on FOLDER/.lock that the system releases when the process ends, however it ends.
 * acquire creates the folder (and its parents) when missing; a folder locked by a live
 * process is DC_ERR_STATE naming that process's id. */
typedef struct dc_run_lock dc_run_lock;
/* mkdir -p: the folder and any missing parents (0755); an existing folder is fine. */
dc_status dc_make_folders(const char *path, dc_error *err);
dc_status dc_run_lock_acquire(const char *folder, dc_run_lock **out, dc_error *err);
void dc_run_lock_release(dc_run_lock *lock); /* NULL-safe */
/* Remove the temp files ("NAME.tmp.PID...", see the atomic writes) that processes no longer
 * alive left in folder and folder/samples; returns how many. Live writers' files stay. */
int dc_run_clean_temp(const char *folder);
/* DC_OK when folder is missing or holds nothing but its lock file; else DC_ERR_STATE
 * naming an entry and the ways out (--resume, another folder, --force). */
dc_status dc_run_folder_check_empty(const char *folder, dc_error *err);
/* Remove the files a training run owns: model.safetensors, model.best.safetensors,
 * loss.csv, val_accuracy.csv, loss.png, report.html, config.json, samples/epoch_NNNN.png and the
 * report's samples/val_NN.png, train_NN.png (samples/ itself when that empties it). Other
 * files stay. Call it holding the folder's lock. */
dc_status dc_run_folder_clear(const char *folder, dc_error *err);

/* Export formats. */
dc_status dc_export_npz(const char *path, dc_params *params, dc_error *err);
/* ONNX inference graph of a model (complete: image + noise inputs; vae/glo: decoder from
 * a latent input; classifier: softmax probabilities). */
dc_status dc_export_onnx(const char *path, dc_model *model, dc_error *err);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
