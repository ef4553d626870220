/* deconv interpolate: decode the line between two images' latents. */
#include <stdlib.h>
#include <string.h>

#include "cli/gen_common.h"

int dc_cmd_interpolate(int argc, char **argv) {
    static const char *const flags[] = {"help", NULL};
    dc_args a;
    if (dc_args_parse(&a, "interpolate", argc, argv, flags)) return 2;
    if (dc_args_flag(&a, "help") || a.n_positional != 3) {
        printf("usage: deconv interpolate RUN IMAGE_A IMAGE_B [--steps N] [-o GRID.png] [--device ...]\n"
               "Encodes both images (complete: the code before noise; vae: the mean; glo: the\n"
               "learned latents of training items --index-a/--index-b instead of images) and\n"
               "decodes N points on the line between them.\n");
        return dc_args_flag(&a, "help") ? 0 : 2;
    }
    const char *run = a.positional[0];
    int steps = dc_args_int(&a, "steps", 8);
    int ia = dc_args_int(&a, "index-a", -1), ib = dc_args_int(&a, "index-b", -1);
    char def_out[1100];
    snprintf(def_out, sizeof def_out, "%s/interpolation.png", run);
    const char *out = dc_args_str(&a, "output", def_out);
    if (steps < 2 || steps > 256) return dc_cli_fail("interpolate", "--steps %d: use 2 to 256", steps);
    dc_backend *be = NULL;
    const int st = dc_cli_backend_last(&a, &be);
    if (st) return st;
    int rc = 1;
    dc_error err = {0};
    dc_model *m = NULL, *dec = NULL;
    float *img = NULL, *codes = NULL, *z = NULL, *outimg = NULL;
    if (dc_cli_open_run("interpolate", run, be, 2, &m, NULL)) goto done;
    const int L = m->spec.latent, C = m->spec.channels, S = m->spec.size;
    codes = malloc(sizeof(float) * 2 * L);
    if (!codes) goto done;
    if (dc_model_kind_has(m->spec.kind, DC_KIND_LEARNED_LATENTS)) {
        int pi = dc_params_find(m->params, "latents.weight");
        dc_param *q = dc_params_get(m->params, pi);
        if (ia < 0 || ib < 0 || ia >= q->shape[0] || ib >= q->shape[0]) {
            dc_cli_fail("interpolate", "glo: give --index-a and --index-b in [0, %d)", q->shape[0]);
            goto done;
        }
        float *tab = malloc(sizeof(float) * q->numel);
        if (!tab || dc_params_read(m->params, pi, tab)) {
            free(tab);
            goto done;
        }
        memcpy(codes, tab + (size_t)ia * L, sizeof(float) * L);
        memcpy(codes + L, tab + (size_t)ib * L, sizeof(float) * L);
        free(tab);
    } else {
        if (gen_load_images("interpolate", m, a.positional + 1, 2, &img)) goto done;
        if (gen_encode("interpolate", m, img, 2, codes)) goto done;
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
    if (dc_image_write_grid(out, outimg, steps, C, S, S, 1, steps, DC_RANGE_PM1, &err)) {
        dc_cli_fail("interpolate", "%s", err.msg);
        goto done;
    }
    printf("wrote %s (%d steps)\n", out, steps);
    rc = 0;
done:
    free(img), free(codes), free(z), free(outimg);
    dc_model_free(dec);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}
