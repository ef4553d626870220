/* deconv restore: Wiener or Richardson-Lucy deconvolution of a blurred image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "deconv/restore.h"

static const dc_option restore_options[] = {
    DC_OPT_PSF_ENTRIES,
    {"method", 0, DC_OPT_TEXT, "wiener|rl",
     "wiener (FFT on the host) or rl (Richardson-Lucy on --device)", "wiener", NULL},
    {"out", 'o', DC_OPT_TEXT, "FILE", "the restored image",
     "IMAGE's name with _wiener.png / _rl.png", "output"},
    {"balance", 0, DC_OPT_NUM, "B", "Wiener regularisation weight (larger: smoother)", "0.05",
     NULL},
    {"regularizer", 0, DC_OPT_TEXT, "laplacian|identity", "Wiener prior (laplacian as scikit-image)",
     "laplacian", NULL},
    {"iterations", 0, DC_OPT_INT, "N", "Richardson-Lucy iterations (as scikit-image)", "50", NULL},
    {"filter-epsilon", 0, DC_OPT_NUM, "E",
     "Richardson-Lucy: ratios where the blurred estimate < E become 0", NULL, NULL},
    {"clip", 0, DC_OPT_FLAG, NULL, "clip the result to [-1, 1] before writing (the default)", NULL,
     NULL},
    {"no-clip", 0, DC_OPT_FLAG, NULL, "do not clip", NULL, NULL},
    {"device", 0, DC_OPT_DEVICE, "cpu|opencl|opencl:P:D|auto",
     "backend for rl (auto: OpenCL if present, else CPU)", "auto", NULL},
    {"reference", 0, DC_OPT_TEXT, "FILE",
     "sharp image: print the PSNR of the input and of the result, over\nthe whole image and over "
     "the interior (a PSF-wide border left out)",
     NULL, NULL},
    DC_OPT_END,
};

static const dc_command restore_command = {
    .name = "restore",
    .synopsis = "IMAGE (--psf FILE | --gaussian SIGMA | --motion LEN,ANGLE)\n"
                "[--method wiener|rl] [-o OUT.png] [--balance B]\n"
                "[--regularizer laplacian|identity] [--iterations N]\n"
                "[--filter-epsilon E] [--clip|--no-clip]\n"
                "[--device cpu|opencl|opencl:P:D|auto] [--reference SHARP.png]",
    .about = "Deconvolves IMAGE as scikit-image 0.19's restoration.wiener / richardson_lucy do\n"
             "(colour images channel by channel) and writes an 8-bit PNG.\n",
    .options = restore_options,
    .max_positional = 1,
    .positional_what = "one IMAGE",
    .computes = 1,
};

int dc_cli_psf(dc_args *a, dc_fimage **psf, char *desc, size_t cap) {
    static const char *const names[] = {"psf", "gaussian", "motion"};
    const char *name = NULL, *value = NULL;
    for (int i = 0; i < 3; i++) {
        const char *v = dc_args_str(a, names[i], NULL);
        if (!v) continue;
        if (name)
            return dc_cli_usage(a->cmd, "give one of --psf, --gaussian, --motion, not --%s and --%s",
                                name, names[i]);
        name = names[i];
        value = v;
    }
    if (!name)
        return dc_cli_usage(a->cmd,
                            "no PSF: give --psf FILE, --gaussian SIGMA or --motion LEN,ANGLE");
    dc_error err = {0};
    const dc_status st = dc_psf_from_option(name, value, psf, &err);
    /* a bad --gaussian/--motion value is misuse (2); a PSF file that cannot be read is not */
    if (st == DC_ERR_ARG) return dc_cli_usage(a->cmd, "%s", err.msg);
    if (st != DC_OK) return dc_cli_fail(a->cmd, "%s", err.msg);
    if (desc) snprintf(desc, cap, "%s %s (%d x %d)", name, value, (*psf)->h, (*psf)->w);
    return 0;
}

static double now_seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dc_cmd_restore(int argc, char **argv) {
    dc_fimage *psf = NULL, *image = NULL, *result = NULL, *reference = NULL;
    dc_backend *be = NULL;
    char *default_out = NULL;
    dc_error err = {0};
    char psf_desc[600];
    dc_args a;
    int rc = 0;
    if (dc_args_parse(&a, &restore_command, argc, argv)) return a.status;
    const char *method = dc_args_str(&a, "method", "wiener");
    const char *output = dc_args_str(&a, "out", NULL);
    const char *reference_path = dc_args_str(&a, "reference", NULL);
    const char *reg_name = dc_args_str(&a, "regularizer", NULL);
    const int has_balance = dc_args_str(&a, "balance", NULL) != NULL;
    const int has_iters = dc_args_str(&a, "iterations", NULL) != NULL;
    const int has_feps = dc_args_str(&a, "filter-epsilon", NULL) != NULL;
    const int has_device = dc_args_str(&a, "device", NULL) != NULL;
    dc_wiener_options wo;
    dc_rl_options ro;
    dc_wiener_options_default(&wo);
    dc_rl_options_default(&ro);
    wo.balance = dc_args_float(&a, "balance", wo.balance);
    ro.iterations = dc_args_int(&a, "iterations", ro.iterations);
    ro.filter_epsilon = dc_args_float(&a, "filter-epsilon", ro.filter_epsilon);
    const int clip = dc_args_flag(&a, "clip"), no_clip = dc_args_flag(&a, "no-clip");
    if ((rc = dc_cli_psf(&a, &psf, psf_desc, sizeof psf_desc))) goto out;
    const int is_rl = !strcmp(method, "rl") || !strcmp(method, "richardson-lucy");
    if ((rc = dc_args_check_unused(&a))) goto out;
    if (a.n_positional != 1) {
        rc = dc_cli_usage("restore", "give one IMAGE to restore (deconv restore --help)");
        goto out;
    }
    if (!is_rl && strcmp(method, "wiener")) {
        rc = dc_cli_usage("restore", "unknown --method '%s' (use wiener or rl)", method);
        goto out;
    }
    if (clip && no_clip) {
        rc = dc_cli_usage("restore", "give --clip or --no-clip, not both");
        goto out;
    }
    wo.clip = ro.clip = !no_clip;
    if (is_rl && (has_balance || reg_name)) {
        rc = dc_cli_usage("restore", "--%s applies to --method wiener",
                         has_balance ? "balance" : "regularizer");
        goto out;
    }
    if (!is_rl && (has_iters || has_feps)) {
        rc = dc_cli_usage("restore", "--%s applies to --method rl",
                         has_iters ? "iterations" : "filter-epsilon");
        goto out;
    }
    if (reg_name) {
        if (!strcmp(reg_name, "laplacian")) wo.reg = DC_WIENER_REG_LAPLACIAN;
        else if (!strcmp(reg_name, "identity")) wo.reg = DC_WIENER_REG_IDENTITY;
        else {
            rc = dc_cli_usage("restore", "unknown --regularizer '%s' (use laplacian or identity)",
                             reg_name);
            goto out;
        }
    }
    const char *input = a.positional[0];
    if (!output) {
        /* IMAGE.png -> IMAGE_wiener.png */
        size_t n = strlen(input);
        const char *dot = strrchr(input, '.'), *slash = strrchr(input, '/');
        if (dot && (!slash || dot > slash)) n = (size_t)(dot - input);
        default_out = malloc(n + 16);
        if (!default_out) {
            rc = dc_cli_fail("restore", "out of memory");
            goto out;
        }
        snprintf(default_out, n + 16, "%.*s_%s.png", (int)n, input, is_rl ? "rl" : "wiener");
        output = default_out;
    }
    if (dc_fimage_load(input, &image, &err) != DC_OK) {
        rc = dc_cli_fail("restore", "%s", err.msg);
        goto out;
    }
    if (reference_path) {
        if (dc_fimage_load(reference_path, &reference, &err) != DC_OK) {
            rc = dc_cli_fail("restore", "--reference: %s", err.msg);
            goto out;
        }
        if (reference->h != image->h || reference->w != image->w || reference->c != image->c) {
            rc = dc_cli_fail("restore", "--reference %s is %d x %d x %d but %s is %d x %d x %d",
                             reference_path, reference->h, reference->w, reference->c, input,
                             image->h, image->w, image->c);
            goto out;
        }
    }
    if (is_rl && (rc = dc_cli_backend(&a, &be))) goto out;
    if (!is_rl && has_device)
        fprintf(stderr, "deconv restore: Wiener runs on the host (FFTW); --device is ignored\n");
    const double t0 = now_seconds();
    dc_status s = is_rl ? dc_richardson_lucy(be, image, psf, &ro, &result, &err)
                        : dc_wiener(image, psf, &wo, &result, &err);
    const double seconds = now_seconds() - t0;
    if (s != DC_OK) {
        rc = dc_cli_fail("restore", "%s: %s", input, err.msg);
        goto out;
    }
    if (dc_fimage_save_png(result, output, &err) != DC_OK) {
        rc = dc_cli_fail("restore", "%s", err.msg);
        goto out;
    }
    if (a.quiet)
        ; /* only the PSNR figures below, which are results */
    else if (is_rl)
        fprintf(stderr, "deconv restore: Richardson-Lucy, %d iterations%s, PSF %s, %s %d x %d x %d "
                        "in %.3f s -> %s\n",
                ro.iterations, ro.filter_epsilon > 0 ? " (filtered)" : "", psf_desc, input,
                image->h, image->w, image->c, seconds, output);
    else
        fprintf(stderr, "deconv restore: Wiener, balance %g, %s regulariser, PSF %s, %s %d x %d x %d "
                        "in %.3f s -> %s\n",
                (double)wo.balance, wo.reg == DC_WIENER_REG_LAPLACIAN ? "Laplacian" : "identity",
                psf_desc, input, image->h, image->w, image->c, seconds, output);
    if (reference) {
        /* The interior leaves out a border as wide as the PSF: a zero-boundary blur loses
         * what was there and every method has artefacts in it. */
        const int margin = psf->h > psf->w ? psf->h : psf->w;
        printf("PSNR input %.3f dB, restored %.3f dB; interior (margin %d): input %.3f dB, "
               "restored %.3f dB (reference %s)\n",
               dc_fimage_psnr(image, reference, 1.0, 0), dc_fimage_psnr(result, reference, 1.0, 0),
               margin, dc_fimage_psnr(image, reference, 1.0, margin),
               dc_fimage_psnr(result, reference, 1.0, margin), reference_path);
    }
out:
    dc_backend_free(be);
    dc_fimage_free(psf);
    dc_fimage_free(image);
    dc_fimage_free(result);
    dc_fimage_free(reference);
    free(default_out);
    return rc;
}
