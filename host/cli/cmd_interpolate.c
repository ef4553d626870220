/* deconv interpolate: decode the line between two images' latents; for a diffusion run,
 * integrate the points of the great circle between two seeds' starting noises. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/gen_common.h"

/* The training item a command-line word names: its index in the training split, or its
 * file name (with or without the folder and the extension). -1 if none. */
static int training_item(const dc_dataset *train, const char *word) {
    char *end;
    long v = strtol(word, &end, 10);
    if (*word && !*end && isdigit((unsigned char)word[0])) return v >= 0 && v < train->n ? (int)v : -1;
    const char *base = strrchr(word, '/');
    base = base ? base + 1 : word;
    for (int i = 0; train->names && i < train->n; i++) {
        const char *name = train->names[i];
        const char *nb = strrchr(name, '/');
        nb = nb ? nb + 1 : name;
        const char *dot = strrchr(nb, '.');
        size_t stem = dot ? (size_t)(dot - nb) : strlen(nb);
        if (!strcmp(word, name) || !strcmp(base, nb) || (strlen(base) == stem && !strncmp(base, nb, stem)))
            return i;
    }
    return -1;
}

static void list_split(const dc_dataset *train, const dc_dataset *val) {
    printf("training split (%d images; glo: index = learned latent):\n", train->n);
    for (int i = 0; i < train->n; i++)
        printf("%5d  %s\n", i, train->names ? train->names[i] : "(unnamed)");
    printf("held out for validation (%d images, not in the training split):\n", val->n);
    for (int i = 0; i < val->n; i++) printf("    -  %s\n", val->names ? val->names[i] : "(unnamed)");
}

/* Spherical interpolation between a and b at u in [0, 1]: along the great circle, so every
 * frame's norm stays that of a Gaussian draw (a straight line passes through low-norm
 * points that the flow never starts from). Nearly parallel ends: the straight line. */
static void slerp(const float *a, const float *b, size_t n, double u, float *out) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++)
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    const double cosine = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
    const double theta = acos(cosine < -1 ? -1 : cosine > 1 ? 1 : cosine), s = sin(theta);
    const double wa = s > 1e-6 ? sin((1 - u) * theta) / s : 1 - u;
    const double wb = s > 1e-6 ? sin(u * theta) / s : u;
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(wa * a[i] + wb * b[i]);
}

/* The frames between the noises of seeds `from` and `to`, each integrated by the ODE: a
 * one-row strip. */
static int interpolate_flow(dc_model *m, const dc_flow_config *cfg, uint64_t from, uint64_t to,
                            int frames, const char *out) {
    const int C = m->spec.channels, S = m->spec.size;
    const size_t isz = (size_t)C * S * S;
    float *ends = malloc(sizeof(float) * 2 * isz), *noise = malloc(sizeof(float) * frames * isz);
    float *img = malloc(sizeof(float) * frames * isz);
    int rc = 1;
    dc_error err = {0};
    if (!ends || !noise || !img) {
        dc_cli_fail("interpolate", "out of memory");
        goto done;
    }
    /* sample 0 of each seed: the image deconv generate --seed draws first */
    dc_flow_noise(m, 1, from, ends);
    dc_flow_noise(m, 1, to, ends + isz);
    for (int f = 0; f < frames; f++)
        slerp(ends, ends + isz, isz, (double)f / (frames - 1), noise + (size_t)f * isz);
    if (dc_flow_generate(m, frames, cfg, noise, img, NULL, 0, &err) != DC_OK ||
        gen_write_grid(out, img, frames, C, S, S, 1, frames, &err) != DC_OK) {
        dc_cli_fail("interpolate", "%s", err.msg);
        goto done;
    }
    printf("wrote %s (%d frames from the noise of seed %llu to that of seed %llu, slerp; %d %s "
           "steps)\n",
           out, frames, (unsigned long long)from, (unsigned long long)to, cfg->steps,
           dc_sampler_name(cfg->sampler));
    rc = 0;
done:
    free(ends), free(noise), free(img);
    return rc;
}

static const dc_option interpolate_options[] = {
    {"out", 'o', DC_OPT_TEXT, "GRID.png", "the strip", "RUN/interpolation.png", "output"},
    {"list", 0, DC_OPT_FLAG, NULL, "glo: print the training split with indices and file names",
     NULL, NULL},
    {"frames", 0, DC_OPT_INT, "K", "points on the line (2 to 256)", "8", NULL},
    {"from", 0, DC_OPT_INT, "S", "diffusion: the seed of the first noise", "1", NULL},
    {"to", 0, DC_OPT_INT, "S", "diffusion: the seed of the last noise", "2", NULL},
    DC_OPT_END,
};

static void interpolate_notes(FILE *f) {
    fprintf(f,
            "Decodes N points on the line between the latents of A and B. complete, vae: A\n"
            "and B are image files, encoded (complete: the code before noise; vae: the mean).\n"
            "glo: A and B are training images, by index or file name; --list prints the\n"
            "run's training split with indices and file names. --steps N gives the points\n"
            "for these kinds (as --frames).\n"
            "diffusion: K points on the great circle (slerp) between the starting noises of\n"
            "seeds --from and --to, each integrated by the ODE in --steps (%d) steps: a\n"
            "one-row strip.\n",
            DC_FLOW_STEPS);
}

static const dc_command interpolate_command = {
    .name = "interpolate",
    .synopsis = "RUN A B [--steps N] [-o GRID.png] [--zoom N] [--device ...]\n"
                "RUN --list\n"
                "RUN [--from S] [--to S] [--frames K] [--steps N]\n"
                "[--sampler euler|heun]   (diffusion runs)",
    .about = "Decodes the line between two images' latents.\n",
    .options = interpolate_options,
    .shared = gen_flow_options,
    .notes = interpolate_notes,
    .max_positional = 3,
    .positional_what = "RUN A B",
    .computes = 1,
};

int dc_cmd_interpolate(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &interpolate_command, argc, argv)) return a.status;
    const int list = dc_args_flag(&a, "list");
    if (a.n_positional != 1 && a.n_positional != (list ? 1 : 3))
        return dc_cli_usage("interpolate",
                            "give RUN A B, RUN --list, or a diffusion RUN (deconv interpolate "
                            "--help)");
    const char *run = a.positional[0];
    /* --steps: the points for the latent kinds (as --frames), the sampler's steps for
     * diffusion */
    const int steps_given = dc_args_int(&a, "steps", -1), frames = dc_args_int(&a, "frames", 8);
    int steps = dc_args_int(&a, "frames", steps_given > 0 ? steps_given : 8);
    const uint64_t from = (uint64_t)dc_args_long(&a, "from", 1);
    const uint64_t to = (uint64_t)dc_args_long(&a, "to", 2);
    dc_flow_config flow_cfg;
    int bad = gen_flow_config("interpolate", &a, &flow_cfg);
    if (bad) return bad;
    char def_out[1100];
    if (dc_cli_path("interpolate", def_out, sizeof def_out, "%s/interpolation.png", run)) return 2;
    const char *out = dc_args_str(&a, "out", def_out);
    if (frames < 2 || frames > 256)
        return dc_cli_usage("interpolate", "--frames %d: use 2 to 256", frames);
    dc_backend *be = NULL;
    const int st = dc_cli_backend_last(&a, &be);
    if (st) return st;
    int rc = 1;
    dc_error err = {0};
    dc_meta meta = {0};
    dc_model *m = NULL, *dec = NULL;
    dc_dataset *train = NULL, *val = NULL;
    float *img = NULL, *codes = NULL, *z = NULL, *outimg = NULL;
    if (dc_cli_open_run("interpolate", run, be, 2, &m, &meta)) goto done;
    if (dc_model_kind_has(m->spec.kind, DC_KIND_FLOW) && !list) {
        if (a.n_positional != 1) {
            dc_cli_fail("interpolate", "a diffusion run interpolates between the noises of two "
                                       "seeds (--from S --to S), not between images");
            goto done;
        }
        if (flow_cfg.sampler == DC_SAMPLER_SDE) {
            dc_cli_fail("interpolate", "--sampler sde: the frames need the deterministic ODE "
                                       "(euler or heun) to vary smoothly");
            goto done;
        }
        dc_model_free(m);
        m = NULL; /* the frames run in batches of up to 32 */
        if (dc_cli_open_run("interpolate", run, be, frames < 32 ? frames : 32, &m, NULL)) goto done;
        rc = interpolate_flow(m, &flow_cfg, from, to, frames, out);
        goto done;
    }
    if (steps < 2 || steps > 256) {
        dc_cli_fail("interpolate", "%d points: use 2 to 256", steps);
        goto done;
    }
    if (a.n_positional != (list ? 1 : 3)) {
        dc_cli_fail("interpolate",
                    "a %s run interpolates between two images: deconv interpolate "
                    "RUN A B",
                    dc_model_kind_name(m->spec.kind));
        goto done;
    }
    const int glo = dc_model_kind_has(m->spec.kind, DC_KIND_LEARNED_LATENTS);
    if ((list || glo) && gen_run_split("interpolate", &meta, m, &train, &val)) goto done;
    if (list) {
        list_split(train, val);
        rc = 0;
        goto done;
    }
    const int L = m->spec.latent, C = m->spec.channels, S = m->spec.size;
    codes = malloc(sizeof(float) * 2 * L);
    if (!codes) goto done;
    if (glo) {
        int pi = dc_params_find(m->params, "latents.weight");
        dc_param *q = pi >= 0 ? dc_params_get(m->params, pi) : NULL;
        if (!q || q->shape[0] != train->n) {
            dc_cli_fail("interpolate", "%s: %d learned latents, but the run's training split has %d "
                        "images", run, q ? q->shape[0] : 0, train->n);
            goto done;
        }
        int item[2];
        for (int k = 0; k < 2; k++) {
            item[k] = training_item(train, a.positional[1 + k]);
            if (item[k] < 0) {
                dc_cli_fail("interpolate", "glo: '%s' is not a training image (an index in [0, %d) "
                            "or a file name; see deconv interpolate %s --list)",
                            a.positional[1 + k], train->n, run);
                goto done;
            }
        }
        float *tab = malloc(sizeof(float) * q->numel);
        if (!tab || dc_params_read(m->params, pi, tab)) {
            free(tab);
            goto done;
        }
        memcpy(codes, tab + (size_t)item[0] * L, sizeof(float) * L);
        memcpy(codes + L, tab + (size_t)item[1] * L, sizeof(float) * L);
        free(tab);
    } else {
        if (gen_load_images("interpolate", m, a.positional + 1, 2, &img)) goto done;
        if (gen_encode("interpolate", m, img, 2, codes)) goto done;
        if (m->spec.skips)
            fprintf(stderr,
                    "deconv interpolate: note: this model has skip connections; the line is "
                    "decoded with the skips of the blank canvas, so it shows what the codes "
                    "alone carry (the ends are not the images' own completions)\n");
    }
    z = malloc(sizeof(float) * steps * L);
    outimg = malloc(sizeof(float) * steps * C * S * S);
    if (!z || !outimg || dc_model_create_shared(m, steps, 1, &dec, &err) != DC_OK) {
        dc_cli_fail("interpolate", "%s", err.msg[0] ? err.msg : "out of memory");
        goto done;
    }
    for (int s = 0; s < steps; s++) {
        float t = (float)s / (float)(steps - 1);
        for (int d = 0; d < L; d++) z[s * L + d] = (1 - t) * codes[d] + t * codes[L + d];
    }
    if (gen_decode("interpolate", dec, z, outimg)) goto done;
    if (gen_write_grid(out, outimg, steps, C, S, S, 1, steps, &err)) {
        dc_cli_fail("interpolate", "%s", err.msg);
        goto done;
    }
    printf("wrote %s (%d steps)\n", out, steps);
    rc = 0;
done:
    free(img), free(codes), free(z), free(outimg);
    dc_dataset_free(train);
    dc_dataset_free(val);
    dc_meta_clear(&meta);
    dc_model_free(dec);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}
