/* deconv complete: fill the hidden part of given images; --passes k feeds the output back
 * k times (the owner's iterative refinement: the known pixels are restored each pass,
 * the model's guess stays in the hidden region). A diffusion run inpaints instead
 * (dc_flow_inpaint): --variants different completions per image. */
#include <stdlib.h>
#include <string.h>

#include "cli/gen_common.h"
#include "deconv/complete.h"

/* Images per forward pass: the model is built for this batch, more images run in chunks. */
#define COMPLETE_BATCH 32
/* Columns of the grid: more images continue in further blocks of rows. */
#define GRID_COLUMNS 16
/* Diffusion: completions per image, and repeats of each step (RePaint's resampling) */
#define FLOW_VARIANTS 4

/* Diffusion inpainting: `variants` completions of each of the n images, all with the one
 * mask; grid rows per image: the input with its hole (mid-grey), the variants, the
 * original. */
static int complete_flow(dc_model *m, const float *orig, int n, const float *mask,
                         const dc_flow_config *cfg, int variants, int resample,
                         const char *mask_name, const char *out) {
    const int C = m->spec.channels, S = m->spec.size, cols = variants + 2;
    const size_t isz = (size_t)C * S * S, plane = (size_t)S * S, total = (size_t)n * variants;
    float *known = malloc(sizeof(float) * total * isz),
          *masks = malloc(sizeof(float) * total * plane);
    float *filled = malloc(sizeof(float) * total * isz);
    float *grid = malloc(sizeof(float) * (size_t)n * cols * isz);
    int rc = 1;
    dc_error err = {0};
    if (!known || !masks || !filled || !grid) {
        dc_cli_fail("complete", "out of memory for %d images x %d variants", n, variants);
        goto done;
    }
    /* sample i * variants + v: image i; the variants differ by their sample index */
    for (size_t k = 0; k < total; k++) {
        memcpy(known + k * isz, orig + (k / variants) * isz, sizeof(float) * isz);
        memcpy(masks + k * plane, mask, sizeof(float) * plane);
    }
    const double t0 = dc_cli_now_s();
    if (dc_flow_inpaint(m, (int)total, cfg, known, masks, resample, filled, &err) != DC_OK) {
        dc_cli_fail("complete", "%s", err.msg);
        goto done;
    }
    const double secs = dc_cli_now_s() - t0;
    for (int i = 0; i < n; i++) {
        float *row = grid + (size_t)i * cols * isz;
        dc_mask_apply(orig + (size_t)i * isz, mask, C, S, S, 0.0f, 1.0f, 1, row, NULL);
        memcpy(row + isz, filled + (size_t)i * variants * isz, sizeof(float) * variants * isz);
        memcpy(row + (size_t)(cols - 1) * isz, orig + (size_t)i * isz, sizeof(float) * isz);
    }
    if (gen_write_grid(out, grid, n * cols, C, S, S, n, cols, &err) != DC_OK) {
        dc_cli_fail("complete", "%s", err.msg);
        goto done;
    }
    printf("inpainting: %d %s steps x %d resamples, %.3f s per completion\n", cfg->steps,
           dc_sampler_name(cfg->sampler), resample, secs / (double)total);
    printf("wrote %s (%d images x %d variants, mask %s; rows: images; columns: input with the "
           "hole, variants, original)\n",
           out, n, variants, mask_name);
    rc = 0;
done:
    free(known), free(masks), free(filled), free(grid);
    return rc;
}

static const dc_option complete_options[] = {
    {"mask", 0, DC_OPT_TEXT, "KIND", "what is hidden (the model's own mask)", NULL, NULL},
    {"passes", 0, DC_OPT_INT, "K", "refinement passes (1 to 64)", "1", NULL},
    {"noise", 0, DC_OPT_NUM, "STD", "std of the random code (0: the deterministic completion)",
     "0", NULL},
    {"out", 'o', DC_OPT_TEXT, "GRID.png", "the grid", "RUN/completed.png", "output"},
    {"variants", 0, DC_OPT_INT, "N", "diffusion: completions per image",
     DC_CLI_STR(FLOW_VARIANTS), NULL},
    {"resample", 0, DC_OPT_INT, "R", "diffusion: RePaint resampling per step",
     "3; 1 for a mask-conditioned model", NULL},
    DC_OPT_END,
};

static void complete_notes(FILE *f) {
    fprintf(f,
            "Any number of images. Rows of the grid: the masked input, then one row per\n"
            "pass, then the original; more than %d images continue in further blocks of\n"
            "rows.\n"
            "A diffusion run inpaints: --variants completions per image from different\n"
            "noises; before every step the known pixels are set to the image noised to that\n"
            "t, and every step but the last runs --resample times, re-noised back in\n"
            "between (RePaint; default 3, or 1 for a mask-conditioned model, which sees the\n"
            "known pixels and the mask as inputs and has learned to complete). Grid rows: images; columns: the input with its hole, the\n"
            "variants, the original.\n",
            GRID_COLUMNS);
}

static const dc_command complete_command = {
    .name = "complete",
    .synopsis = "RUN IMAGE... [--mask KIND] [--passes K] [--noise STD]\n"
                "[--seed S] [-o GRID.png] [--zoom N] [--device ...]\n"
                "diffusion runs: [--variants N] [--resample R] [--steps N]\n"
                "[--sampler euler|heun|sde] [--churn C]",
    .about = "Fills the hidden part of images with a completion, vae or diffusion run.\n",
    .options = complete_options,
    .shared = gen_flow_options,
    .notes = complete_notes,
    .max_positional = -1,
    .computes = 1,
};

int dc_cmd_complete(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &complete_command, argc, argv)) return a.status;
    if (a.n_positional < 2)
        return dc_cli_usage("complete", "give a RUN and at least one IMAGE (deconv complete --help)");
    const char *run = a.positional[0];
    const int n = a.n_positional - 1;
    int passes = dc_args_int(&a, "passes", 1);
    float noise = dc_args_float(&a, "noise", 0.0f);
    uint64_t seed = (uint64_t)dc_args_long(&a, "seed", 1);
    const char *mask_name = dc_args_str(&a, "mask", NULL);
    char def_out[1100];
    if (dc_cli_path("complete", def_out, sizeof def_out, "%s/completed.png", run)) return 2;
    const char *out = dc_args_str(&a, "out", def_out);
    const int variants = dc_args_int(&a, "variants", FLOW_VARIANTS);
    /* 0: the model's own default (dc_flow_default_resample), once it is open */
    int resample = dc_args_int(&a, "resample", 0);
    dc_flow_config flow_cfg;
    int bad = gen_flow_config("complete", &a, &flow_cfg);
    if (bad) return bad;
    if (variants < 1 || variants > 64)
        return dc_cli_usage("complete", "--variants %d: use 1 to 64", variants);
    if (dc_args_str(&a, "resample", NULL) && (resample < 1 || resample > 100))
        return dc_cli_usage("complete", "--resample %d: use 1 to 100", resample);
    if (passes < 1 || passes > 64) return dc_cli_usage("complete", "--passes %d: use 1 to 64", passes);
    dc_error err = {0};
    dc_backend *be = NULL;
    const int st = dc_cli_backend_last(&a, &be);
    if (st) return st;
    int rc = 1;
    dc_model *m = NULL;
    float *orig = NULL, *x = NULL, *y = NULL, *rows = NULL, *grid = NULL, *mask = NULL;
    const int batch = n < COMPLETE_BATCH ? n : COMPLETE_BATCH;
    if (dc_cli_open_run("complete", run, be, batch, &m, NULL)) goto done;
    const int flow = dc_model_kind_has(m->spec.kind, DC_KIND_FLOW);
    if (flow && n * variants > batch) {
        /* the variants run together: a batch of up to COMPLETE_BATCH of them */
        dc_model_free(m);
        m = NULL;
        const int fb = n * variants < COMPLETE_BATCH ? n * variants : COMPLETE_BATCH;
        if (dc_cli_open_run("complete", run, be, fb, &m, NULL)) goto done;
    }
    if (!flow &&
        (m->x < 0 || !dc_model_kind_has(m->spec.kind, DC_KIND_ENCODER | DC_KIND_DECODER))) {
        dc_cli_fail("complete",
                    "a '%s' model has no image input to complete (use complete, vae or "
                    "diffusion)",
                    dc_model_kind_name(m->spec.kind));
        goto done;
    }
    dc_mask_kind mk = gen_mask_kind(m);
    if (mask_name && dc_mask_parse(mask_name, &mk, &err) != DC_OK) {
        dc_cli_fail("complete", "--mask: %s", err.msg);
        goto done;
    }
    if (mk == DC_MASK_NONE) mk = DC_MASK_BOTTOM;
    const int C = m->spec.channels, S = m->spec.size, R = passes + 2;
    const size_t isz = (size_t)C * S * S;
    if (gen_load_images("complete", m, a.positional + 1, n, &orig)) goto done;
    x = malloc(sizeof(float) * batch * isz);
    y = malloc(sizeof(float) * batch * isz);
    mask = malloc(sizeof(float) * S * S);
    rows = malloc(sizeof(float) * (size_t)R * n * isz); /* row r, image i at (r * n + i) */
    if (!x || !y || !mask || !rows) {
        dc_cli_fail("complete", "out of memory for %d images", n);
        goto done;
    }
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    dc_mask_make(mk, S, S, &rng, mask);
    if (flow) {
        if (resample == 0) resample = dc_flow_default_resample(m);
        rc = complete_flow(m, orig, n, mask, &flow_cfg, variants, resample, dc_mask_name(mk), out);
        goto done;
    }
#define ROW_IMAGE(r, i) (rows + ((size_t)(r) * n + (i)) * isz)
    if (dc_model_set_hole(m, mask, 0, &err) != DC_OK) {
        dc_cli_fail("complete", "%s", err.msg);
        goto done;
    }
    for (int first = 0; first < n; first += batch) {
        const int count = n - first < batch ? n - first : batch;
        /* a short last chunk repeats its images to fill the model's batch */
        for (int i = 0; i < batch; i++)
            dc_mask_apply(orig + (first + i % count) * isz, mask, C, S, S, 0.0f, 1.0f, 1,
                          x + i * isz, NULL);
        memcpy(ROW_IMAGE(0, first), x, sizeof(float) * count * isz);
        for (int p = 0; p < passes; p++) {
            if (dc_complete_pass(m, x, noise, dc_seed_mix(seed, (uint64_t)p + 1), y, &err) !=
                DC_OK) {
                dc_cli_fail("complete", "%s", err.msg);
                goto done;
            }
            /* keep the known pixels, take the model's guess where hidden: the next input
             * (training's self-feedback builds its inputs the same way) */
            for (int i = 0; i < batch; i++)
                dc_complete_feed_back(x + i * isz, y + i * isz, mask, C, S * S, x + i * isz);
            memcpy(ROW_IMAGE(p + 1, first), x, sizeof(float) * count * isz);
        }
        memcpy(ROW_IMAGE(R - 1, first), orig + first * isz, sizeof(float) * count * isz);
    }
    /* blocks of GRID_COLUMNS images, each block R rows; a short last block stays blank */
    const int cols = n < GRID_COLUMNS ? n : GRID_COLUMNS, blocks = (n + cols - 1) / cols;
    grid = calloc((size_t)blocks * R * cols * isz, sizeof(float));
    if (!grid) {
        dc_cli_fail("complete", "out of memory for %d images", n);
        goto done;
    }
    for (int b = 0; b < blocks; b++)
        for (int r = 0; r < R; r++)
            for (int c = 0; c < cols && b * cols + c < n; c++)
                memcpy(grid + (((size_t)b * R + r) * cols + c) * isz, ROW_IMAGE(r, b * cols + c),
                       sizeof(float) * isz);
#undef ROW_IMAGE
    if (gen_write_grid(out, grid, blocks * R * cols, C, S, S, blocks * R, cols, &err)) {
        dc_cli_fail("complete", "%s", err.msg);
        goto done;
    }
    printf("wrote %s (%d images, mask %s, %d pass%s)\n", out, n, dc_mask_name(mk), passes,
           passes > 1 ? "es" : "");
    rc = 0;
done:
    free(orig), free(x), free(y), free(rows), free(grid), free(mask);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}
