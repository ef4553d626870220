/* deconv generate: new images from random latents (vae, glo), for the completion model
 * from a blank canvas with random codes (the owner's experiment), and for the diffusion
 * model by integrating its velocity from noise. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/gen_common.h"

/* What a glance at the samples tells: the share of mid-grey pixels (|v| < 0.5) and the
 * spread between samples (per-pixel std across them, averaged). A model that cannot
 * generate gives grey mush (a high share) or one image whatever the code (no spread). */
static void judge_samples(const dc_model *m, const float *img, int n, size_t isz) {
    double grey = 0, spread = 0;
    for (size_t p = 0; p < isz; p++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < n; i++) {
            const double v = img[(size_t)i * isz + p];
            s += v, s2 += v * v;
            grey += fabs(v) < 0.5;
        }
        const double mean = s / n, var = s2 / n - mean * mean;
        spread += var > 0 ? sqrt(var) : 0;
    }
    grey /= (double)n * (double)isz;
    spread /= (double)isz;
    printf("samples: %.1f %% mid-grey pixels (|v| < 0.5), spread between samples %.3f\n",
           100.0 * grey, spread);
    if (m->spec.kind == DC_MODEL_COMPLETE && m->spec.mask != DC_MASK_FULL &&
        m->spec.mask != DC_MASK_MIX)
        fprintf(stderr,
                "deconv generate: warning: this completion model was trained with --mask %s and "
                "never saw a blank canvas; these images are outside what it learned (train with "
                "--mask mix)\n",
                dc_mask_name(m->spec.mask));
    if (grey > 0.5)
        fprintf(stderr,
                "deconv generate: warning: %.0f %% of the pixels are mid-grey: this model does "
                "not generate usable images\n",
                100.0 * grey);
    if (n > 1 && spread < 0.05)
        fprintf(stderr,
                "deconv generate: warning: the samples barely differ (spread %.3f): the model "
                "ignores its random code and draws one image%s\n",
                spread,
                m->spec.kind == DC_MODEL_COMPLETE && m->spec.code == DC_CODE_NOISE
                    ? " (train with --code vae for codes that matter)"
                    : "");
}

static const dc_option generate_options[] = {
    {"count", 'n', DC_OPT_INT, "N", "how many images", "16", "n"},
    {"temperature", 0, DC_OPT_NUM, "T", "vae: z ~ N(0, T^2)", "1", NULL},
    {"noise", 0, DC_OPT_NUM, "STD", "complete: std of the random codes",
     "the trained --noise, or 1", NULL},
    {"out", 'o', DC_OPT_TEXT, "GRID.png", "the grid of all images", "RUN/generated.png", "output"},
    {"dir", 0, DC_OPT_TEXT, "FOLDER", "also each image as FOLDER/sample_NNNN.png", NULL, NULL},
    {"trajectory", 0, DC_OPT_TEXT, "GRID.png",
     "diffusion: the path of every sample (rows: t = 1 ... 0)", NULL, NULL},
    DC_OPT_END,
};

static void generate_notes(FILE *f) {
    fprintf(f,
            "New images: vae decodes z ~ N(0, T^2); glo decodes draws from a Gaussian fitted\n"
            "to its learned latents; complete feeds a blank canvas (everything hidden) with\n"
            "random codes of std --noise; diffusion integrates its velocity from noise at\n"
            "t = 1 to t = 0 in --steps (%d) steps of --sampler: euler or heun (the ODE), or\n"
            "sde (Euler-Maruyama of the reverse SDE, fresh noise of weight --churn at every\n"
            "step). A diffusion model trained on classes draws class K with --class K and\n"
            "classifier-free guidance --guidance W; without --class it samples\n"
            "unconditionally.\n",
            DC_FLOW_STEPS);
}

static const dc_command generate_command = {
    .name = "generate",
    .synopsis = "RUN [-n N] [--seed S] [--temperature T] [--noise STD]\n"
                "[--steps N] [--sampler euler|heun|sde] [--churn C]\n"
                "[--class K] [--guidance W] [--trajectory GRID.png]\n"
                "[-o GRID.png] [--dir FOLDER] [--zoom N] [--device ...]",
    .about = "New images from random latents (vae, glo), a blank canvas (complete) or noise\n"
             "(diffusion).\n",
    .options = generate_options,
    .shared = gen_flow_options,
    .notes = generate_notes,
    .max_positional = 1,
    .positional_what = "one RUN",
    .computes = 1,
};

int dc_cmd_generate(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &generate_command, argc, argv)) return a.status;
    if (a.n_positional < 1) return dc_cli_usage("generate", "give a RUN (deconv generate --help)");
    const char *run = a.positional[0];
    int n = dc_args_int(&a, "count", 16);
    dc_flow_config flow_cfg;
    int bad = gen_flow_config("generate", &a, &flow_cfg);
    if (bad) return bad;
    const uint64_t seed = flow_cfg.seed;
    float temp = dc_args_float(&a, "temperature", 1.0f);
    float noise = dc_args_float(&a, "noise", -1.0f);
    char def_out[1100];
    if (dc_cli_path("generate", def_out, sizeof def_out, "%s/generated.png", run)) return 2;
    const char *out = dc_args_str(&a, "out", def_out);
    const char *dir = dc_args_str(&a, "dir", NULL);
    const char *trajectory = dc_args_str(&a, "trajectory", NULL);
    if (n < 1 || n > 4096) return dc_cli_usage("generate", "--count (-n) %d: use 1 to 4096", n);
    char path[1200]; /* --dir/sample_NNNN.png: the longest name checked before any work */
    if (dir && dc_cli_path("generate", path, sizeof path, "%s/sample_%04d.png", dir, n - 1))
        return 2;
    dc_backend *be = NULL;
    const int st = dc_cli_backend_last(&a, &be);
    if (st) return st;
    int rc = 1;
    dc_model *m = NULL, *dec = NULL;
    float *img = NULL, *z = NULL;
    dc_error err = {0};
    /* a flow model samples in chunks of its batch: no need for a batch of thousands */
    if (dc_cli_open_run("generate", run, be, n < 64 ? n : 64, &m, NULL)) goto done;
    const int flow = dc_model_kind_has(m->spec.kind, DC_KIND_FLOW);
    if (flow_cfg.class_label >= 0 && !flow) {
        dc_cli_fail("generate",
                    "--class: %s is a %s model; only a diffusion model trained on "
                    "classes takes a class",
                    run, dc_model_kind_name(m->spec.kind));
        goto done;
    }
    if (!flow && n > m->batch) {
        dc_model_free(m);
        m = NULL;
        if (dc_cli_open_run("generate", run, be, n, &m, NULL)) goto done;
    }
    if (!flow && !dc_model_kind_has(m->spec.kind, DC_KIND_DECODER)) {
        dc_cli_fail("generate", "%s is a %s; use deconv visualize ascent for class images", run,
                    dc_model_kind_name(m->spec.kind));
        goto done;
    }
    const int C = m->spec.channels, S = m->spec.size;
    const size_t isz = (size_t)C * S * S;
    img = malloc(sizeof(float) * n * isz);
    if (!img) goto done;
    if (flow) {
        if (gen_flow_sample("generate", m, n, &flow_cfg, img, trajectory, a.quiet)) goto done;
    } else if (dc_model_kind_has(m->spec.kind, DC_KIND_CODE_NOISE)) {
        /* blank canvas: every pixel hidden (0 = the fill the model saw for hidden pixels) */
        float *x = calloc((size_t)n * isz, sizeof(float));
        float std = noise >= 0 ? noise : (m->spec.noise > 0 ? m->spec.noise : 1.0f);
        int r = x ? gen_forward_complete("generate", m, x, NULL, std * temp, dc_seed_mix(seed, 1), img) : 1;
        free(x);
        if (r) goto done;
    } else {
        z = malloc(sizeof(float) * n * m->spec.latent);
        if (!z || dc_model_create_shared(m, n, 1, &dec, &err) != DC_OK) {
            dc_cli_fail("generate", "%s", err.msg);
            goto done;
        }
        if (gen_sample_latents("generate", m, n, temp, seed, z) || gen_decode("generate", dec, z, img))
            goto done;
    }
    judge_samples(m, img, n, isz);
    if (gen_write_grid(out, img, n, C, S, S, 0, 0, &err) != DC_OK) {
        dc_cli_fail("generate", "%s", err.msg);
        goto done;
    }
    if (dir) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            dc_cli_fail("generate", "cannot create '%s': %s", dir, strerror(errno));
            goto done;
        }
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/sample_%04d.png", dir, i);
            if (dc_image_write_png(path, img + i * isz, C, S, S, DC_RANGE_PM1, &err) != DC_OK) {
                dc_cli_fail("generate", "%s", err.msg);
                goto done;
            }
        }
    }
    printf("wrote %d images to %s%s%s\n", n, out, dir ? " and " : "", dir ? dir : "");
    rc = 0;
done:
    free(img);
    free(z);
    dc_model_free(dec);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}
