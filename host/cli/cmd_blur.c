/* deconv blur: convolve an image with a PSF and add seeded noise (test data for restore). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "deconv/restore.h"

static const dc_option blur_options[] = {
    {"out", 'o', DC_OPT_TEXT, "OUT.png", "the blurred image (required)", NULL, "output"},
    DC_OPT_PSF_ENTRIES,
    {"noise", 0, DC_OPT_TEXT, "none|gaussian|poisson",
     "gaussian: + S*N(0,1), poisson: shot noise with std S at\nintensity 1 (1/S^2 photons at full "
     "scale)",
     "none", NULL},
    {"noise-std", 0, DC_OPT_NUM, "S", "noise level (giving it alone means gaussian)", "0.01",
     NULL},
    {"seed", 0, DC_OPT_INT, "N", "noise seed", "1", NULL},
    {"save-psf", 0, DC_OPT_TEXT, "FILE", "also write the PSF used as a text matrix", NULL, NULL},
    DC_OPT_END,
};

static const dc_command blur_command = {
    .name = "blur",
    .synopsis = "IMAGE -o OUT.png (--psf FILE | --gaussian SIGMA | --motion LEN,ANGLE)\n"
                "[--noise none|gaussian|poisson] [--noise-std S] [--seed N] [--save-psf PSF.txt]",
    .about = "Blurs IMAGE with the PSF exactly like scipy.signal.convolve2d(image, psf, 'same')\n"
             "(zero boundaries; colour images channel by channel), adds noise, and writes an\n"
             "8-bit PNG (values clipped to [0, 1]).\n",
    .options = blur_options,
    .max_positional = 1,
    .positional_what = "one IMAGE",
    .computes = 1,
};

int dc_cmd_blur(int argc, char **argv) {
    dc_fimage *psf = NULL, *image = NULL, *blurred = NULL;
    dc_error err = {0};
    dc_args a;
    int rc = 0;
    if (dc_args_parse(&a, &blur_command, argc, argv)) return a.status;
    const char *output = dc_args_str(&a, "out", NULL);
    const char *noise_name = dc_args_str(&a, "noise", NULL);
    const char *noise_std_s = dc_args_str(&a, "noise-std", NULL);
    const float noise_std = dc_args_float(&a, "noise-std", 0.01f);
    const long seed = dc_args_long(&a, "seed", 1);
    const char *save_psf = dc_args_str(&a, "save-psf", NULL);
    if ((rc = dc_cli_psf(&a, &psf, NULL, 0))) goto out;
    if ((rc = dc_args_check_unused(&a))) goto out;
    if (a.n_positional != 1) {
        rc = dc_cli_usage("blur", "give one IMAGE to blur (deconv blur --help)");
        goto out;
    }
    if (!output) {
        rc = dc_cli_usage("blur", "no output: give -o OUT.png");
        goto out;
    }
    dc_noise_kind noise = noise_std_s ? DC_NOISE_GAUSSIAN : DC_NOISE_NONE;
    if (noise_name && dc_noise_kind_parse(noise_name, &noise, &err) != DC_OK) {
        rc = dc_cli_usage("blur", "--noise: %s", err.msg);
        goto out;
    }
    const char *input = a.positional[0];
    if (dc_fimage_load(input, &image, &err) != DC_OK ||
        dc_convolve_same(image, psf, &blurred, &err) != DC_OK) {
        rc = dc_cli_fail("blur", "%s: %s", input, err.msg);
        goto out;
    }
    dc_rng rng;
    dc_rng_seed(&rng, (uint64_t)seed);
    if (dc_add_noise(blurred, noise, noise_std, &rng, &err) != DC_OK ||
        dc_fimage_save_png(blurred, output, &err) != DC_OK ||
        (save_psf && dc_psf_save_text(psf, save_psf, &err) != DC_OK)) {
        rc = dc_cli_fail("blur", "%s", err.msg);
        goto out;
    }
    if (a.quiet) goto out;
    fprintf(stderr, "deconv blur: %s (%d x %d x %d) * PSF %d x %d", input, image->h, image->w,
            image->c, psf->h, psf->w);
    if (noise == DC_NOISE_GAUSSIAN) fprintf(stderr, " + gaussian noise std %g", (double)noise_std);
    if (noise == DC_NOISE_POISSON) fprintf(stderr, " + poisson noise std %g at 1", (double)noise_std);
    fprintf(stderr, " (seed %ld) -> %s\n", seed, output);
out:
    dc_fimage_free(psf);
    dc_fimage_free(image);
    dc_fimage_free(blurred);
    return rc;
}
