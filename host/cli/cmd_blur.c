/* deconv blur: convolve an image with a PSF and add seeded noise (test data for restore). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "deconv/restore.h"

static void blur_usage(FILE *f) {
    fprintf(f,
            "usage: deconv blur IMAGE -o OUT.png (--psf FILE | --gaussian SIGMA | --motion LEN,ANGLE)\n"
            "                   [--noise none|gaussian|poisson] [--noise-std S] [--seed N]\n"
            "                   [--save-psf PSF.txt]\n\n"
            "Blurs IMAGE with the PSF exactly like scipy.signal.convolve2d(image, psf, 'same')\n"
            "(zero boundaries; colour images channel by channel), adds noise, and writes an\n"
            "8-bit PNG (values clipped to [0, 1]).\n\n"
            "  --psf FILE          PSF from an image or a text matrix (.txt/.csv), normalised to sum 1\n"
            "  --gaussian SIGMA    Gaussian PSF, size 2*ceil(3*SIGMA)+1\n"
            "  --motion LEN,ANGLE  linear motion of LEN pixels at ANGLE degrees (counter-clockwise)\n"
            "  --noise KIND        none (default), gaussian: + S*N(0,1), poisson: shot noise with\n"
            "                      std S at intensity 1 (1/S^2 photons at full scale)\n"
            "  --noise-std S       noise level (default 0.01; giving it alone means gaussian)\n"
            "  --seed N            noise seed (default 1)\n"
            "  --save-psf FILE     also write the PSF used as a text matrix\n");
}

int dc_cmd_blur(int argc, char **argv) {
    static const char *const flags[] = {"help", NULL};
    dc_fimage *psf = NULL, *image = NULL, *blurred = NULL;
    dc_error err = {0};
    dc_args a;
    int rc = dc_args_parse(&a, "blur", argc, argv, flags);
    if (rc) goto out;
    if (dc_args_flag(&a, "help")) {
        blur_usage(stdout);
        goto out;
    }
    const char *output = dc_args_str(&a, "output", NULL);
    const char *noise_name = dc_args_str(&a, "noise", NULL);
    const char *noise_std_s = dc_args_str(&a, "noise-std", NULL);
    const float noise_std = dc_args_float(&a, "noise-std", 0.01f);
    const long seed = dc_args_long(&a, "seed", 1);
    const char *save_psf = dc_args_str(&a, "save-psf", NULL);
    if ((rc = dc_cli_psf(&a, &psf, NULL, 0))) goto out;
    if ((rc = dc_args_check_unused(&a))) goto out;
    if (a.n_positional != 1) {
        blur_usage(stderr);
        rc = 2;
        goto out;
    }
    if (!output) {
        rc = dc_cli_fail("blur", "no output: give -o OUT.png");
        goto out;
    }
    dc_noise_kind noise = noise_std_s ? DC_NOISE_GAUSSIAN : DC_NOISE_NONE;
    if (noise_name && dc_noise_kind_parse(noise_name, &noise, &err) != DC_OK) {
        rc = dc_cli_fail("blur", "--noise: %s", err.msg);
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
