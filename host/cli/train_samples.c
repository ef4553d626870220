/* Fixed sample grids of a training run (deconv train writes one every --sample-every
 * epochs through the trainer's epoch_end callback). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/train_common.h"
#include "deconv/image.h"
#include "deconv/report.h"
#include "internal.h"

void dc_cli_default_data(char *buf, size_t cap) {
    const char *env = getenv("DECONV_DATA");
    if (env && *env) {
        snprintf(buf, cap, "%s", env);
        return;
    }
#ifdef DECONV_ASSETS_DIR
    char p[1024];
    snprintf(p, sizeof p, "%s/guns", DECONV_ASSETS_DIR);
    if (access(p, R_OK) == 0) {
        snprintf(buf, cap, "%s", p);
        return;
    }
#endif
    snprintf(buf, cap, "assets/guns");
}

static int has(const dc_model *m, unsigned flags) { return dc_model_kind_has(m->spec.kind, flags); }

/* The grid's column labels: which columns are held-out images the model never trained on. */
static void column_names(const train_samples *s, int n, char names[][32], const char **cols) {
    /* a label gets one tile's width: about 6 pixels per character, so narrow tiles (32x32
     * diffusion grids) get the short form, "val1" / "tr1" */
    const int narrow = s->m->spec.size < 48;
    for (int i = 0; i < n; i++) {
        if (i < s->nval)
            snprintf(names[i], 32, narrow ? "val%d" : "val %d", i + 1);
        else
            snprintf(names[i], 32, narrow ? "tr%d" : "train %d", i - s->nval + 1);
        cols[i] = names[i];
    }
}

dc_status train_samples_init(train_samples *s, dc_trainer *trainer, const dc_dataset *train,
                             const dc_dataset *val, dc_error *err) {
    memset(s, 0, sizeof *s);
    dc_model *m = dc_trainer_model(trainer);
    const char *run_dir = dc_trainer_config(trainer)->out;
    const uint64_t seed = dc_trainer_config(trainer)->seed;
    s->trainer = trainer;
    s->m = m;
    s->train = train;
    s->val = val;
    s->seed = seed;
    snprintf(s->dir, sizeof s->dir, "%s/samples", run_dir);
    if (mkdir(s->dir, 0755) != 0 && errno != EEXIST)
        return dc_set_error(err, DC_ERR_IO, "cannot create '%s': %s", s->dir, strerror(errno));
    /* validation images first (unseen: generalisation), then training images (what was
     * learned); glo has latents only for training images, so it shows those */
    const int nval = has(m, DC_KIND_LEARNED_LATENTS) ? 0 : val->n;
    s->n = nval + train->n < TRAIN_SAMPLES_MAX ? nval + train->n : TRAIN_SAMPLES_MAX;
    if (s->n > m->batch) s->n = m->batch;
    DC_TRY(dc_dataset_create(s->n, train->c, train->h, train->w, 0, &s->src, err));
    /* a lazily loaded training set: the few shown are decoded in a copy of their own, so
     * that the trainer's decoded share stays as it is */
    dc_dataset *shown = NULL;
    const int ntrain = s->n - (nval < s->n ? nval : s->n);
    if (train->lazy && ntrain > 0) {
        int32_t first[TRAIN_SAMPLES_MAX];
        for (int i = 0; i < ntrain; i++)
            first[i] = i;
        DC_TRY(dc_dataset_subset(train, first, ntrain, &shown, err));
        dc_status ds = dc_dataset_decode_all(shown, err);
        if (ds != DC_OK) {
            dc_dataset_free(shown);
            return ds;
        }
    }
    for (int i = 0; i < s->n; i++) {
        const float *from =
            i < nval ? dc_dataset_image(val, i) : dc_dataset_image(shown ? shown : train, i - nval);
        memcpy(dc_dataset_image(s->src, i), from, sizeof(float) * dc_dataset_image_numel(train));
        s->idx[i] = i;
    }
    dc_dataset_free(shown);
    snprintf(s->src->source, sizeof s->src->source, "samples of %.400s", train->source);
    DC_TRY(dc_batch_alloc(m, &s->batch, err));
    if (has(m, DC_KIND_DECODER)) {
        DC_TRY(dc_model_create_shared(m, 2 * s->n, 1, &s->dec, err));
        s->z = malloc(sizeof(float) * 2 * s->n * m->spec.latent);
        if (!s->z) return dc_set_error(err, DC_ERR_OOM, "samples: out of memory");
    }
    s->nval = nval < s->n ? nval : s->n;
    return DC_OK;
}

void train_samples_free(train_samples *s) {
    dc_dataset_free(s->src);
    dc_model_free(s->dec);
    free(s->z);
    dc_batch_free(&s->batch);
    memset(s, 0, sizeof *s);
}

/* Forward the training graph in eval mode on items idx[0..count) of ds. For the
 * completion model the random code is off (std 0) unless `noise_seed` is nonzero. */
static dc_status eval_forward(train_samples *s, const dc_dataset *ds, const int32_t *idx, int count,
                              uint64_t noise_seed, dc_error *err) {
    return dc_trainer_forward_eval(s->trainer, ds, idx, count, noise_seed, &s->batch, err);
}

static dc_status decode(train_samples *s, const float *z, float *dst, dc_error *err) {
    dc_graph *g = s->dec->g;
    dc_graph_set_train(g, 0);
    dc_status st;
    if ((st = dc_graph_set_input(g, s->dec->z_in, z)) || (st = dc_graph_forward(g, -1)) ||
        (st = dc_graph_read(g, s->dec->out, dst)))
        return dc_set_error(err, st, "%s", dc_graph_error(g)->msg);
    return DC_OK;
}

/* The completed image: the known pixels, and the model's output where they were hidden. */
static void composite(const train_samples *s, const float *out, int n, float *dst) {
    const int C = s->m->spec.channels, HW = s->m->spec.size * s->m->spec.size;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            for (int q = 0; q < HW; q++) {
                const size_t k = ((size_t)i * C + c) * HW + q;
                dst[k] = s->batch.mask[(size_t)i * HW + q] > 0.5f ? out[k] : s->batch.target[k];
            }
}

/* Diffusion: originals | (a mask-conditioned model: each original with its bottom half
 * inpainted) | new samples from two rows of fixed noises (the same every epoch) | the first
 * sample's path from noise (left) to image (right). */
static dc_status flow_samples_write(train_samples *s, int epoch, dc_error *err) {
    dc_model *m = s->m;
    const int n = s->n, C = m->spec.channels, S = m->spec.size;
    const size_t img = (size_t)C * S * S, plane = (size_t)S * S;
    const int snaps = n >= 2 ? n : 2, completes = m->cond >= 0, R = 4 + completes;
    float *grid = calloc((size_t)R * n * img, sizeof(float));
    float *traj = malloc(sizeof(float) * (size_t)snaps * 2 * n * img);
    float *out = malloc(sizeof(float) * 2 * (size_t)n * img);
    float *masks = completes ? malloc(sizeof(float) * (size_t)n * plane) : NULL;
    dc_status st = DC_OK;
    if (!grid || !traj || !out || (completes && !masks)) {
        st = dc_set_error(err, DC_ERR_OOM, "samples: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        memcpy(grid + (size_t)i * img, dc_dataset_image(s->src, i), sizeof(float) * img);
    for (int i = 0; completes && i < n; i++)
        dc_mask_make(DC_MASK_BOTTOM, S, S, NULL, masks + (size_t)i * plane);
    /* with the EMA weights when the run keeps them: those are what generate samples with */
    const int ema = dc_params_has_ema(m->params);
    if (ema && (st = dc_params_swap_ema(m->params)))
        goto out;
    st = dc_flow_sample(m, 2 * n, DC_FLOW_STEPS, DC_SAMPLER_EULER, dc_seed_mix(s->seed, 0x5a3d1e),
                        NULL, out, traj, snaps, err);
    if (!st && completes) {
        dc_flow_config cfg;
        dc_flow_config_default(&cfg);
        cfg.seed = dc_seed_mix(s->seed, 0x636f6d70);
        st = dc_flow_inpaint(m, n, &cfg, grid, masks, dc_flow_default_resample(m),
                             grid + (size_t)n * img, err);
    }
    if (ema) {
        const dc_status back = dc_params_swap_ema(m->params);
        if (back && !st) st = dc_set_error(err, back, "%s", dc_params_error(m->params)->msg);
    }
    if (st) goto out;
    memcpy(grid + (size_t)(1 + completes) * n * img, out, sizeof(float) * 2 * n * img);
    for (int k = 0; k < n; k++) /* snapshot k of sample 0 */
        memcpy(grid + ((size_t)(3 + completes) * n + k) * img, traj + (size_t)k * 2 * n * img,
               sizeof(float) * img);
    snprintf(s->latest, sizeof s->latest, "%s/epoch_%04d.png", s->dir, epoch);
    char names[TRAIN_SAMPLES_MAX][32];
    const char *cols[TRAIN_SAMPLES_MAX];
    column_names(s, n, names, cols);
    static const char *const rows[] = {"original", "new samples", "new samples",
                                       "path of the first, noise to image"};
    static const char *const rows_completes[] = {"original", "bottom half inpainted",
                                                 "new samples", "new samples",
                                                 "path of the first, noise to image"};
    char title[160];
    snprintf(title, sizeof title, "epoch %d: %d Euler steps from fixed noises%s", epoch,
             DC_FLOW_STEPS, ema ? " (EMA weights)" : "");
    st = dc_report_write_labelled_grid(s->latest, grid, C, S, S, R, n, title,
                                       completes ? rows_completes : rows, cols, err);
out:
    free(grid);
    free(traj);
    free(out);
    free(masks);
    return st;
}

dc_status train_samples_write(train_samples *s, int epoch, dc_error *err) {
    dc_model *m = s->m;
    if (has(m, DC_KIND_FLOW) && s->n > 0) return flow_samples_write(s, epoch, err);
    if (!has(m, DC_KIND_DECODER) || s->n == 0) return DC_OK;
    const int n = s->n, C = m->spec.channels, S = m->spec.size;
    const size_t img = (size_t)C * S * S;
    const int rows = 5;
    float *grid = calloc((size_t)rows * n * img, sizeof(float));
    float *out = malloc(sizeof(float) * (size_t)m->batch * img);
    float *dec = malloc(sizeof(float) * 2 * (size_t)n * img);
    if (!grid || !out || !dec) {
        free(grid);
        free(out);
        free(dec);
        return dc_set_error(err, DC_ERR_OOM, "samples: out of memory");
    }
    dc_status st = DC_OK;
#define ROW(r) (grid + (size_t)(r) * n * img)
    if (has(m, DC_KIND_CODE_NOISE)) {
        /* masked input | completion without code | two fixed random codes | original;
         * completions show the known pixels with the model's guess in the hidden region */
        if ((st = eval_forward(s, s->src, s->idx, n, 0, err))) goto out;
        memcpy(ROW(0), s->batch.x, sizeof(float) * n * img);
        memcpy(ROW(4), s->batch.target, sizeof(float) * n * img);
        dc_graph_read(m->g, m->out, out);
        composite(s, out, n, ROW(1));
        for (int r = 0; r < 2; r++) {
            if ((st = eval_forward(s, s->src, s->idx, n, dc_seed_mix(s->seed, 1000 + r), err))) goto out;
            dc_graph_read(m->g, m->out, out);
            composite(s, out, n, ROW(2 + r));
        }
    } else {
        /* originals | reconstructions | two rows decoded from fixed latents */
        if ((st = eval_forward(s, s->src, s->idx, n, 0, err))) goto out;
        memcpy(ROW(0), s->batch.target, sizeof(float) * n * img);
        dc_graph_read(m->g, m->out, out);
        memcpy(ROW(1), out, sizeof(float) * n * img);
        /* new samples as deconv generate draws them (glo: the full-covariance Gaussian
         * fitted to the learned latents), from the same draws every epoch */
        float *z = s->z;
        if ((st = dc_model_sample_latents(m, 2 * n, 1.0f, dc_seed_mix(s->seed, 0x5a3d1e), z,
                                          err)))
            goto out;
        if ((st = decode(s, z, dec, err))) goto out;
        memcpy(ROW(2), dec, sizeof(float) * 2 * n * img);
    }
#undef ROW
    snprintf(s->latest, sizeof s->latest, "%s/epoch_%04d.png", s->dir, epoch);
    {
        char names[TRAIN_SAMPLES_MAX][32];
        const char *cols[TRAIN_SAMPLES_MAX];
        column_names(s, n, names, cols);
        static const char *const complete_rows[] = {"masked input", "completion, code 0",
                                                    "completion, code A", "completion, code B",
                                                    "original"};
        static const char *const decoder_rows[] = {"original", "reconstruction", "new samples",
                                                   "new samples"};
        const int code_noise = has(m, DC_KIND_CODE_NOISE);
        char title[160];
        snprintf(title, sizeof title, "epoch %d: %s", epoch,
                 s->nval ? "val = held out (unseen), train = training images"
                         : "columns: training images; new samples are not the column's image");
        st = dc_report_write_labelled_grid(s->latest, grid, C, S, S, code_noise ? 5 : 4, n, title,
                                           code_noise ? complete_rows : decoder_rows, cols, err);
    }
out:
    free(grid);
    free(out);
    free(dec);
    return st;
}
