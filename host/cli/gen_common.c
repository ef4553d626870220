/* Encode, decode and sample for the generative commands. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/gen_common.h"
#include "deconv/complete.h"
#include "deconv/train.h"

dc_mask_kind gen_mask_kind(const dc_model *m) {
    /* one fixed region for the drawn kinds: the centred box for random holes, the bottom
     * half (the classic completion task) for the mix */
    if (m->spec.mask == DC_MASK_MIX) return DC_MASK_BOTTOM;
    return m->spec.mask == DC_MASK_RANDOM ? DC_MASK_BOX : m->spec.mask;
}

int gen_load_images(const char *cmd, const dc_model *m, char **paths, int n, float **out) {
    const int C = m->spec.channels, S = m->spec.size;
    float *buf = malloc(sizeof(float) * (size_t)n * C * S * S);
    if (!buf) return dc_cli_fail(cmd, "out of memory");
    for (int i = 0; i < n; i++) {
        dc_error err = {0};
        if (dc_image_read(paths[i], S, C, buf + (size_t)i * C * S * S, &err) != DC_OK) {
            free(buf);
            return dc_cli_fail(cmd, "%s", err.msg);
        }
    }
    *out = buf;
    return 0;
}

static int graph_fail(const char *cmd, dc_graph *g) { return dc_cli_fail(cmd, "%s", dc_graph_error(g)->msg); }

int gen_encode(const char *cmd, dc_model *m, const float *images, int count, float *codes) {
    const int C = m->spec.channels, S = m->spec.size, L = m->spec.latent;
    const size_t img = (size_t)C * S * S;
    if (m->code < 0 || m->x < 0) return dc_cli_fail(cmd, "a '%s' model has no encoder", dc_model_kind_name(m->spec.kind));
    float *x = calloc((size_t)m->batch * img, sizeof(float)), *mask = malloc(sizeof(float) * S * S);
    float *all = malloc(sizeof(float) * (size_t)m->batch * L);
    if (!x || !mask || !all) {
        free(x), free(mask), free(all);
        return dc_cli_fail(cmd, "out of memory");
    }
    dc_mask_make(gen_mask_kind(m), S, S, NULL, mask);
    for (int i = 0; i < m->batch; i++)
        dc_mask_apply(images + (size_t)(i % count) * img, mask, C, S, S, 0.0f, 1.0f, 1,
                      x + (size_t)i * img, NULL);
    dc_graph_set_train(m->g, 0);
    int rc = 0;
    dc_error err = {0};
    if (dc_model_set_hole(m, mask, 0, &err) != DC_OK)
        rc = dc_cli_fail(cmd, "%s", err.msg);
    else if (dc_graph_set_input(m->g, m->x, x) || dc_graph_forward(m->g, m->code) ||
        dc_graph_read(m->g, m->code, all))
        rc = graph_fail(cmd, m->g);
    else
        memcpy(codes, all, sizeof(float) * count * L);
    free(x), free(mask), free(all);
    return rc;
}

int gen_decode(const char *cmd, dc_model *dec, const float *z, float *images) {
    dc_graph_set_train(dec->g, 0);
    if (dc_graph_set_input(dec->g, dec->z_in, z) || dc_graph_forward(dec->g, -1) ||
        dc_graph_read(dec->g, dec->out, images))
        return graph_fail(cmd, dec->g);
    return 0;
}

int gen_sample_latents(const char *cmd, dc_model *m, int n, float t, uint64_t seed, float *z) {
    dc_error err = {0};
    if (dc_model_sample_latents(m, n, t, seed, z, &err) != DC_OK) return dc_cli_fail(cmd, "%s", err.msg);
    return 0;
}

int gen_forward_complete(const char *cmd, dc_model *m, const float *x, const float *mask,
                         float noise_std, uint64_t seed, float *out) {
    dc_error err = {0};
    if (dc_model_set_hole(m, mask, 0, &err) != DC_OK) return dc_cli_fail(cmd, "%s", err.msg);
    dc_graph_set_train(m->g, 0);
    if (m->noise >= 0) dc_graph_set_noise_std(m->g, m->noise, noise_std);
    dc_graph_set_seed(m->g, seed);
    int rc = 0;
    if (dc_graph_set_input(m->g, m->x, x) || dc_graph_forward(m->g, m->out) ||
        dc_graph_read(m->g, m->out, out))
        rc = graph_fail(cmd, m->g);
    if (m->noise >= 0) dc_graph_set_noise_std(m->g, m->noise, m->spec.noise);
    return rc;
}

int gen_run_split(const char *cmd, const dc_meta *meta, const dc_model *m, dc_dataset **train,
                  dc_dataset **val) {
    const char *tj = dc_meta_get(meta, "train"), *seed = dc_meta_get(meta, "seed");
    dc_train_config c;
    dc_train_config_default(&c);
    dc_error err = {0};
    if (!tj || dc_train_config_from_json(tj, &c, &err) != DC_OK || !c.data[0])
        return dc_cli_fail(cmd, "the checkpoint does not record its training data (key 'train')");
    /* a run from before split_seed split by its seed: the exact digits of the metadata */
    if (seed && !strstr(tj, "\"split_seed\"")) c.split_seed = strtoull(seed, NULL, 10);
    if (dc_train_load_data(&c, m->spec.size, m->spec.channels, train, val, &err) != DC_OK)
        return dc_cli_fail(cmd, "training data %s: %s", c.data, err.msg);
    return 0;
}

int gen_flow_sample(const char *cmd, dc_model *m, int n, const dc_flow_config *cfg, float *images,
                    const char *trajectory_png, int quiet) {
    enum { SNAPSHOTS = 9 };
    const int C = m->spec.channels, S = m->spec.size;
    float *traj = NULL;
    if (trajectory_png && !(traj = malloc(sizeof(float) * SNAPSHOTS * (size_t)n * C * S * S)))
        return dc_cli_fail(cmd, "out of memory");
    dc_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dc_status st = dc_flow_generate(m, n, cfg, NULL, images, traj, traj ? SNAPSHOTS : 0, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st != DC_OK) {
        free(traj);
        return dc_cli_fail(cmd, "%s", err.msg);
    }
    const double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    const int evals = dc_sampler_evaluations(cfg->sampler, cfg->steps);
    /* guidance other than 0 or 1 runs the class and the null class: two passes per step */
    const int guided = cfg->class_label >= 0 && cfg->guidance != 0.0f && cfg->guidance != 1.0f;
    const int passes = evals * (guided ? 2 : 1);
    if (cfg->class_label >= 0 && !quiet)
        printf("class %d, classifier-free guidance %g\n", cfg->class_label, (double)cfg->guidance);
    if (!quiet)
        printf("sampling: %d %s steps (%d network evaluations), %.3f s per image, %.2f ms per image "
           "and evaluation\n",
           cfg->steps, dc_sampler_name(cfg->sampler), passes, secs / n, 1e3 * secs / n / passes);
    if (traj) {
        /* rows: the snapshots from noise to image; columns: the samples */
        st = gen_write_grid(trajectory_png, traj, SNAPSHOTS * n, C, S, S, SNAPSHOTS, n, &err);
        free(traj);
        if (st != DC_OK) return dc_cli_fail(cmd, "%s", err.msg);
        printf("wrote the sampling trajectory (rows t = 1 ... 0) to %s\n", trajectory_png);
    }
    return 0;
}

const dc_option gen_flow_options[] = {
    {"seed", 0, DC_OPT_INT, "S", "random seed", "1", NULL},
    {"steps", 0, DC_OPT_INT, "N", "diffusion: integration steps", DC_CLI_STR(DC_FLOW_STEPS), NULL},
    {"sampler", 0, DC_OPT_TEXT, "euler|heun|sde", "diffusion: the sampler", "euler", NULL},
    {"churn", 0, DC_OPT_NUM, "C", "diffusion: weight of fresh noise per sde step",
     "1", NULL},
    {"class", 0, DC_OPT_INT, "K", "diffusion trained on classes: draw class K", NULL, NULL},
    {"guidance", 0, DC_OPT_NUM, "W",
     "classifier-free guidance with --class (1: plain conditional,\n0: unconditional, above 1: "
     "more class-like)",
     "1", NULL},
    {"zoom", 0, DC_OPT_INT, "N",
     "draw every pixel of the written grids as an N x N block\n(nearest neighbour, 1 to 16; the "
     "images are computed at the model's size)",
     "1", NULL},
    DC_OPT_DEVICE_ENTRY,
    {NULL, 0, 0, NULL, NULL, NULL, NULL},
};

/* --zoom of this process's command (gen_flow_config reads it) */
static int g_zoom = 1;

dc_status gen_write_grid(const char *path, const float *nchw, int n, int c, int h, int w, int rows,
                         int cols, dc_error *err) {
    const int z = g_zoom;
    if (z <= 1) return dc_image_write_grid(path, nchw, n, c, h, w, rows, cols, DC_RANGE_PM1, err);
    const size_t zh = (size_t)h * z, zw = (size_t)w * z;
    /* refuse a zoomed grid of more than 2^28 pixels (1 GiB of floats per channel) before
     * allocating it; dc_image_write_grid refuses sides over 32768 pixels anyway */
    if (n <= 0 || (size_t)n * zh * zw > ((size_t)1 << 28))
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: %d images of %zux%zu pixels (--zoom %d) do not fit one PNG grid; "
                            "use a smaller --zoom or fewer images",
                            path, n, zh, zw, z);
    float *big = malloc(sizeof(float) * (size_t)n * c * zh * zw);
    if (!big) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory for a %dx zoomed grid", path, z);
    for (size_t plane = 0; plane < (size_t)n * c; plane++) {
        const float *src = nchw + plane * h * w;
        float *dst = big + plane * zh * zw;
        for (size_t y = 0; y < zh; y++)
            for (size_t x = 0; x < zw; x++) dst[y * zw + x] = src[(y / z) * w + x / z];
    }
    dc_status s = dc_image_write_grid(path, big, n, c, (int)zh, (int)zw, rows, cols, DC_RANGE_PM1, err);
    free(big);
    return s;
}

int gen_flow_config(const char *cmd, dc_args *a, dc_flow_config *cfg) {
    dc_flow_config_default(cfg);
    cfg->steps = dc_args_int(a, "steps", DC_FLOW_STEPS);
    cfg->seed = (uint64_t)dc_args_long(a, "seed", 1);
    cfg->churn = dc_args_float(a, "churn", DC_FLOW_CHURN);
    cfg->class_label = dc_args_int(a, "class", -1);
    /* with a class: the plain conditional model unless told otherwise */
    cfg->guidance = dc_args_float(a, "guidance", cfg->class_label >= 0 ? 1.0f : 0.0f);
    const char *sampler = dc_args_str(a, "sampler", "euler");
    g_zoom = dc_args_int(a, "zoom", 1);
    if (g_zoom < 1 || g_zoom > 16) return dc_cli_usage(cmd, "--zoom %d: use 1 to 16", g_zoom);
    if (cfg->steps < 1 || cfg->steps > 10000)
        return dc_cli_usage(cmd, "--steps %d: use 1 to 10000", cfg->steps);
    if (cfg->churn < 0.0f || cfg->churn > 100.0f)
        return dc_cli_usage(cmd, "--churn %g: use 0 to 100", (double)cfg->churn);
    if (cfg->class_label < -1)
        return dc_cli_usage(cmd, "--class %d: use a class index >= 0", cfg->class_label);
    if (dc_args_str(a, "guidance", NULL) && cfg->class_label < 0)
        return dc_cli_usage(cmd, "--guidance needs --class K (the class to guide towards)");
    dc_error err = {0};
    if (dc_sampler_parse(sampler, &cfg->sampler, &err) != DC_OK)
        return dc_cli_usage(cmd, "--sampler: %s", err.msg);
    return 0;
}
