/* deconv generate: new images from random latents (vae, glo) or, for the completion
 * model, from a blank canvas with random codes (the owner's experiment). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/gen_common.h"

int dc_cmd_generate(int argc, char **argv) {
    static const char *const flags[] = {"help", NULL};
    dc_args a;
    if (dc_args_parse(&a, "generate", argc, argv, flags)) return 2;
    if (dc_args_flag(&a, "help") || a.n_positional < 1) {
        printf("usage: deconv generate RUN [-n N] [--seed S] [--temperature T] [--noise STD]\n"
               "                       [-o GRID.png] [--dir FOLDER] [--device ...]\n"
               "New images: vae decodes z ~ N(0, T^2); glo decodes draws from a Gaussian fitted\n"
               "to its learned latents; complete feeds a blank canvas (everything hidden) with\n"
               "random codes of std --noise (default: the trained --noise, or 1).\n");
        return a.n_positional < 1 && !dc_args_flag(&a, "help") ? 2 : 0;
    }
    const char *run = a.positional[0];
    int n = dc_args_int(&a, "n", 16);
    uint64_t seed = (uint64_t)dc_args_long(&a, "seed", 1);
    float temp = dc_args_float(&a, "temperature", 1.0f);
    float noise = dc_args_float(&a, "noise", -1.0f);
    char def_out[1100];
    snprintf(def_out, sizeof def_out, "%s/generated.png", run);
    const char *out = dc_args_str(&a, "output", def_out);
    const char *dir = dc_args_str(&a, "dir", NULL);
    if (n < 1 || n > 4096) return dc_cli_fail("generate", "-n %d: use 1 to 4096", n);
    dc_backend *be = NULL;
    const int st = dc_cli_backend_last(&a, &be);
    if (st) return st;
    int rc = 1;
    dc_model *m = NULL, *dec = NULL;
    float *img = NULL, *z = NULL;
    dc_error err = {0};
    if (dc_cli_open_run("generate", run, be, n, &m, NULL)) goto done;
    if (!dc_model_kind_has(m->spec.kind, DC_KIND_DECODER)) {
        dc_cli_fail("generate", "%s is a %s; use deconv visualize ascent for class images", run,
                    dc_model_kind_name(m->spec.kind));
        goto done;
    }
    const int C = m->spec.channels, S = m->spec.size;
    const size_t isz = (size_t)C * S * S;
    img = malloc(sizeof(float) * n * isz);
    if (!img) goto done;
    if (dc_model_kind_has(m->spec.kind, DC_KIND_CODE_NOISE)) {
        /* blank canvas: every pixel hidden (0 = the fill the model saw for hidden pixels) */
        float *x = calloc((size_t)n * isz, sizeof(float));
        float std = noise >= 0 ? noise : (m->spec.noise > 0 ? m->spec.noise : 1.0f);
        int r = x ? gen_forward_complete("generate", m, x, std * temp, dc_seed_mix(seed, 1), img) : 1;
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
    if (dc_image_write_grid(out, img, n, C, S, S, 0, 0, DC_RANGE_PM1, &err) != DC_OK) {
        dc_cli_fail("generate", "%s", err.msg);
        goto done;
    }
    if (dir) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            dc_cli_fail("generate", "cannot create '%s': %s", dir, strerror(errno));
            goto done;
        }
        for (int i = 0; i < n; i++) {
            char path[1200];
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
