/* deconv dream: the owner's "blank canvas" experiments through a trained decoder.
 *   dream_canvas.png  — blank (gray), white and black canvases with random codes
 *                       (complete/vae: through the whole encoder-decoder)
 *   dream_onehot.png  — one-hot latents e_i * scale through the decoder, one per latent
 *   dream_zero.png    — the zero latent and its neighbours +-scale along the first axes
 * A diffusion run dreams by SDEdit (dc_flow_edit): dream_canvas.png, rows per canvas
 * (grey, white, black, noise, then the images given), the canvas and then one column per
 * seed, each noised to t = --strength and integrated back to t = 0. */
#include <stdlib.h>
#include <string.h>

#include "cli/gen_common.h"

#define FLOW_CANVASES 4 /* grey, white, black, noise */
#define FLOW_STRENGTH                                                                              \
    0.8f /* enough noise for new shapes, little enough to keep the canvas's tone */
#define FLOW_SEEDS 8

/* SDEdit from the canvases (and the given images): row r, column 0 the canvas, column
 * 1 + j the dream of seed cfg->seed + j. */
static int dream_flow(dc_model *m, const dc_flow_config *cfg, float strength, int seeds,
                      char **images, int n_images, const char *path) {
    const int C = m->spec.channels, S = m->spec.size, rows = FLOW_CANVASES + n_images;
    const int cols = seeds + 1;
    const size_t isz = (size_t)C * S * S;
    float *canvas = malloc(sizeof(float) * rows * isz),
          *dreams = malloc(sizeof(float) * rows * isz);
    float *grid = malloc(sizeof(float) * (size_t)rows * cols * isz), *given = NULL;
    int rc = 1;
    dc_error err = {0};
    if (!canvas || !dreams || !grid) {
        dc_cli_fail("dream", "out of memory");
        goto done;
    }
    const float fills[3] = {0.0f, 1.0f, -1.0f};
    for (int r = 0; r < 3; r++)
        for (size_t k = 0; k < isz; k++)
            canvas[(size_t)r * isz + k] = fills[r];
    dc_rng rng; /* the noise canvas: uniform in [-1, 1], the same for every seed */
    dc_rng_seed(&rng, dc_seed_mix(cfg->seed, 0x6e6f697365ULL));
    for (size_t k = 0; k < isz; k++)
        canvas[3 * isz + k] = 2.0f * dc_rng_uniform(&rng) - 1.0f;
    if (n_images > 0) {
        if (gen_load_images("dream", m, images, n_images, &given)) goto done;
        memcpy(canvas + FLOW_CANVASES * isz, given, sizeof(float) * n_images * isz);
    }
    for (int r = 0; r < rows; r++)
        memcpy(grid + (size_t)r * cols * isz, canvas + (size_t)r * isz, sizeof(float) * isz);
    const double t0 = dc_cli_now_s();
    for (int j = 0; j < seeds; j++) {
        dc_flow_config c = *cfg;
        c.seed = cfg->seed + (uint64_t)j;
        if (dc_flow_edit(m, rows, &c, canvas, strength, dreams, &err) != DC_OK) {
            dc_cli_fail("dream", "%s", err.msg);
            goto done;
        }
        for (int r = 0; r < rows; r++)
            memcpy(grid + ((size_t)r * cols + 1 + j) * isz, dreams + (size_t)r * isz,
                   sizeof(float) * isz);
    }
    const double secs = dc_cli_now_s() - t0;
    if (gen_write_grid(path, grid, rows * cols, C, S, S, rows, cols, &err)) {
        dc_cli_fail("dream", "%s", err.msg);
        goto done;
    }
    printf("SDEdit: strength %g, %s sampler, %.3f s per image\n", (double)strength,
           dc_sampler_name(cfg->sampler), secs / ((double)rows * seeds));
    printf("wrote %s (rows: grey, white, black, noise canvas%s; columns: the canvas, then seeds "
           "%llu to %llu)\n",
           path, n_images ? ", the given images" : "", (unsigned long long)cfg->seed,
           (unsigned long long)(cfg->seed + (uint64_t)seeds - 1));
    rc = 0;
done:
    free(canvas), free(dreams), free(grid), free(given);
    return rc;
}

static const dc_option dream_options[] = {
    {"out", 'o', DC_OPT_TEXT, "DIR", "where the images go (created)", "RUN", "output dir"},
    {"scale", 0, DC_OPT_NUM, "S", "one-hot latents * S", "3", NULL},
    {"count", 0, DC_OPT_INT, "N", "one-hot latents (diffusion: seeds)", "32; diffusion 8", NULL},
    {"strength", 0, DC_OPT_NUM, "S", "diffusion: SDEdit noise level t in (0, 1]",
     "0.8", NULL},
    DC_OPT_END,
};

static void dream_notes(FILE *f) {
    fprintf(f,
            "Writes DIR/dream_canvas.png (blank/white/black inputs with random codes),\n"
            "DIR/dream_onehot.png (one-hot latents * S through the decoder, first N latents)\n"
            "and DIR/dream_zero.png.\n"
            "A diffusion run writes DIR/dream_canvas.png by SDEdit: each canvas (grey,\n"
            "white, black, uniform noise, then the IMAGEs) noised to t = --strength in\n"
            "(0, 1] (default %g) and integrated back to t = 0; rows: canvases; columns: the\n"
            "canvas, then N (default %d) seeds from --seed.\n",
            (double)FLOW_STRENGTH, FLOW_SEEDS);
}

static const dc_command dream_command = {
    .name = "dream",
    .synopsis = "RUN [--out DIR] [--scale S] [--count N] [--seed S] [--zoom N] [--device ...]\n"
                "RUN [IMAGE...] [--strength S] [--count N] [--steps N]\n"
                "[--sampler euler|heun|sde] [--churn C]   (diffusion runs)",
    .about = "Blank-canvas and one-hot-latent experiments through the decoder.\n",
    .options = dream_options,
    .shared = gen_flow_options,
    .notes = dream_notes,
    .max_positional = -1,
    .computes = 1,
};

int dc_cmd_dream(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &dream_command, argc, argv)) return a.status;
    if (a.n_positional < 1) return dc_cli_usage("dream", "give a RUN (deconv dream --help)");
    const char *run = a.positional[0];
    const char *dir = dc_args_str(&a, "out", run);
    float scale = dc_args_float(&a, "scale", 3.0f);
    const int count_given = dc_args_int(&a, "count", -1);
    int count = count_given > 0 ? count_given : 32;
    uint64_t seed = (uint64_t)dc_args_long(&a, "seed", 1);
    const float strength = dc_args_float(&a, "strength", FLOW_STRENGTH);
    dc_flow_config flow_cfg;
    int bad = gen_flow_config("dream", &a, &flow_cfg);
    if (bad) return bad;
    if (!(strength > 0.0f && strength <= 1.0f))
        return dc_cli_usage("dream", "--strength %g: use a value in (0, 1]", (double)strength);
    /* the longest of the three file names first: a folder too long for it is refused
     * before any work (never a cut path) */
    char path[1200];
    if (dc_cli_path("dream", path, sizeof path, "%s/dream_canvas.png", dir)) return 2;
    dc_backend *be = NULL;
    const int st = dc_cli_backend_last(&a, &be);
    if (st) return st;
    int rc = 1;
    dc_error err = {0};
    dc_model *m = NULL, *dec = NULL;
    float *x = NULL, *y = NULL, *z = NULL;
    const int per = 8;
    const int n_images = a.n_positional - 1;
    if (dc_cli_open_run("dream", run, be, per, &m, NULL)) goto done;
    if (dc_make_folders(dir, &err) != DC_OK) { /* --out DIR may be new */
        dc_cli_fail("dream", "--out %s: %s", dir, err.msg);
        goto done;
    }
    if (dc_model_kind_has(m->spec.kind, DC_KIND_FLOW)) {
        const int seeds = count_given > 0 ? count_given : FLOW_SEEDS;
        if (seeds > 64) {
            dc_cli_fail("dream", "--count %d: use 1 to 64 seeds", seeds);
            goto done;
        }
        rc = dream_flow(m, &flow_cfg, strength, seeds, a.positional + 1, n_images, path);
        goto done;
    }
    if (n_images > 0) {
        dc_cli_fail("dream", "images to dream from are for diffusion runs; %s is a %s", run,
                    dc_model_kind_name(m->spec.kind));
        goto done;
    }
    if (!dc_model_kind_has(m->spec.kind, DC_KIND_DECODER)) {
        dc_cli_fail("dream", "a %s has no decoder (try deconv visualize ascent)",
                    dc_model_kind_name(m->spec.kind));
        goto done;
    }
    const int C = m->spec.channels, S = m->spec.size, L = m->spec.latent;
    const size_t isz = (size_t)C * S * S;
    if (count > L) count = L;
    if (count < 1) count = 1;
    x = malloc(sizeof(float) * 3 * per * isz);
    y = malloc(sizeof(float) * 3 * per * isz);
    z = calloc((size_t)(count > per ? count : per) * L, sizeof(float));
    if (!x || !y || !z) goto done;
    if (m->x >= 0) {
        /* canvases: gray (the hidden-pixel fill), white, black; random codes / samples */
        const float fills[3] = {0.0f, 1.0f, -1.0f};
        for (int r = 0; r < 3; r++) {
            for (size_t k = 0; k < per * isz; k++) x[k] = fills[r];
            float std = m->spec.noise > 0 ? m->spec.noise : 1.0f;
            if (dc_model_kind_has(m->spec.kind, DC_KIND_SAMPLED_CODE)) {
                /* vae: sample z ~ q(z | canvas) by running the graph in training mode */
                dc_graph_set_train(m->g, 1);
                dc_graph_set_seed(m->g, dc_seed_mix(seed, (uint64_t)r));
                if (dc_graph_set_input(m->g, m->x, x) || dc_graph_forward(m->g, m->out) ||
                    dc_graph_read(m->g, m->out, y + (size_t)r * per * isz)) {
                    dc_cli_fail("dream", "%s", dc_graph_error(m->g)->msg);
                    goto done;
                }
            } else if (gen_forward_complete("dream", m, x, NULL, std, dc_seed_mix(seed, (uint64_t)r),
                                            y + (size_t)r * per * isz)) {
                goto done;
            }
        }
        snprintf(path, sizeof path, "%s/dream_canvas.png", dir);
        if (gen_write_grid(path, y, 3 * per, C, S, S, 3, per, &err)) {
            dc_cli_fail("dream", "%s", err.msg);
            goto done;
        }
        printf("wrote %s (rows: gray, white, black canvas; columns: random codes)\n", path);
    }
    /* one-hot latents through the decoder */
    if (dc_model_create_shared(m, count, 1, &dec, &err) != DC_OK) {
        dc_cli_fail("dream", "%s", err.msg);
        goto done;
    }
    float *imgs = malloc(sizeof(float) * count * isz);
    if (!imgs) goto done;
    memset(z, 0, sizeof(float) * count * L);
    for (int i = 0; i < count; i++) z[(size_t)i * L + i] = scale;
    if (gen_decode("dream", dec, z, imgs)) {
        free(imgs);
        goto done;
    }
    snprintf(path, sizeof path, "%s/dream_onehot.png", dir);
    if (gen_write_grid(path, imgs, count, C, S, S, 0, 0, &err)) {
        free(imgs);
        dc_cli_fail("dream", "%s", err.msg);
        goto done;
    }
    printf("wrote %s (latent i set to %g, the rest 0, for i < %d)\n", path, (double)scale, count);
    /* zero latent and +-scale along the first axes */
    memset(z, 0, sizeof(float) * count * L);
    for (int i = 1; i < count; i++) z[(size_t)i * L + (i - 1) / 2] = (i % 2 ? 1 : -1) * scale;
    if (gen_decode("dream", dec, z, imgs) == 0) {
        snprintf(path, sizeof path, "%s/dream_zero.png", dir);
        if (gen_write_grid(path, imgs, count, C, S, S, 0, 0, &err) == DC_OK)
            printf("wrote %s (z = 0, then +-%g along latent 0, 1, ...)\n", path, (double)scale);
    }
    free(imgs);
    rc = 0;
done:
    free(x), free(y), free(z);
    dc_model_free(dec);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}
