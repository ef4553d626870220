/* deconv — classical restoration of blurred images: PSFs, blur + noise, Wiener and
 * Richardson-Lucy deconvolution.
 *
 * Both methods follow scikit-image 0.19 (skimage.restoration.wiener and
 * richardson_lucy) step for step, so results agree with it to float32 rounding:
 *  - Wiener: unitary real FFT (FFTW, single precision) of the image; transfer function of
 *    the PSF zero-padded to the image size and rolled so its centre (index k/2) sits at
 *    the origin; Laplacian regulariser by default;
 *    x = irfft( conj(H) / (|H|^2 + balance * |D|^2) * rfft(y) ).
 *  - Richardson-Lucy: estimate starts at 0.5; per iteration
 *    est *= conv(y / (conv(est, psf) + 1e-12), flip(psf)), where conv is
 *    scipy.signal.convolve(mode='same') with zero boundaries and ratios whose denominator
 *    is below filter_epsilon become 0. The convolutions and element-wise work run on a
 *    dc_backend (CPU or OpenCL) as im2col + gemm, in row strips so the column matrix
 *    stays under a memory budget.
 * Colour images are restored channel by channel with the same PSF (scikit-image would
 * treat a 3-D array as a 3-D signal instead).
 *
 * Images are float, planar (channel-major) and nominally in [0, 1]. Every function
 * returns dc_status and leaves a message in err naming the file, image or PSF at fault.
 * The PSF is used as given by the restore functions (like scikit-image); the PSF
 * constructors below return PSFs normalised to sum 1.
 *
 * Thread safety: FFTW's planner is process-global, so do not run dc_wiener() in two
 * threads at once. Everything else keeps its state in its arguments.
 */
#ifndef DECONV_RESTORE_H
#define DECONV_RESTORE_H

#include <stddef.h>

#include "deconv/deconv.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

/* ------------------------------------------------------------- float image */
typedef struct dc_fimage {
    int h, w, c;  /* height, width, channels (1 gray, 3 RGB; a PSF has c == 1) */
    float *data;  /* planar: data[((size_t)ch * h + y) * w + x] */
} dc_fimage;

/* Zero-filled h x w x c image. */
dc_status dc_fimage_create(int h, int w, int c, dc_fimage **out, dc_error *err);
void dc_fimage_free(dc_fimage *im);
dc_status dc_fimage_clone(const dc_fimage *src, dc_fimage **out, dc_error *err);
static inline size_t dc_fimage_numel(const dc_fimage *im) {
    return (size_t)im->h * (size_t)im->w * (size_t)im->c;
}
static inline float *dc_fimage_plane(const dc_fimage *im, int ch) {
    return im->data + (size_t)ch * im->h * im->w;
}
/* Read an image file (PNG, JPEG, BMP, PGM/PPM, ... through stb_image) scaled to [0, 1]:
 * gray and gray+alpha give 1 channel, RGB and RGBA give 3 (alpha is dropped). 16-bit
 * PNGs keep their precision. A file that cannot be opened or decoded is DC_ERR_IO. */
dc_status dc_fimage_load(const char *path, dc_fimage **out, dc_error *err);
/* Write an 8-bit PNG (1 or 3 channels) through dc_image_write_png (deconv/image.h): values
 * are clipped to [0, 1] and rounded; the file appears complete or not at all. */
dc_status dc_fimage_save_png(const dc_fimage *im, const char *path, dc_error *err);
/* DC_ERR_NUMERIC naming `what` and the first offending pixel if any value is NaN/Inf. */
dc_status dc_fimage_check_finite(const dc_fimage *im, const char *what, dc_error *err);
/* Peak signal-to-noise ratio in dB of `im` against `ref` (same shape) for the given data
 * range (1 for [0,1] images): 10 log10(range^2 / MSE), over the pixels at least `margin`
 * pixels away from every edge (0: the whole image). A zero-boundary blur darkens a border
 * about as wide as the PSF that no deconvolution can recover, so a margin of the PSF's
 * size measures the restoration itself. INFINITY when identical, NAN when the shapes
 * differ or the margin leaves no pixel. */
double dc_fimage_psnr(const dc_fimage *im, const dc_fimage *ref, double data_range, int margin);

/* -------------------------------------------------------------------- PSFs
 * All constructors return a single-channel image normalised to sum 1. */

/* Isotropic Gaussian, size 2*ceil(3*sigma)+1 square, sigma > 0. */
dc_status dc_psf_gaussian(float sigma, dc_fimage **out, dc_error *err);
/* Linear motion: the area a 1-pixel-wide segment of `length` pixels covers, centred and
 * rotated by angle_deg counter-clockwise from the +x axis (the image's y axis points
 * down), anti-aliased by 16x16 supersampling per pixel. A horizontal segment of odd
 * length L is exactly the 1 x L box. length >= 1. Odd sizes, centred. */
dc_status dc_psf_motion(float length, float angle_deg, dc_fimage **out, dc_error *err);
/* From a file: an image (PNG, ...; colour is converted to luminance), or a text matrix
 * (.txt/.csv/.tsv/.dat: numbers separated by spaces, tabs, commas or semicolons, one row
 * per line, '#' starts a comment). Normalised to sum 1; the sum must be positive. */
dc_status dc_psf_load(const char *path, dc_fimage **out, dc_error *err);
/* Write a PSF (or any 1-channel image) as a text matrix that dc_psf_load and numpy.loadtxt
 * read back: one row per line, values with 9 significant digits (float round trip). */
dc_status dc_psf_save_text(const dc_fimage *psf, const char *path, dc_error *err);
/* Build a PSF from a command-line style option: option "psf" (value: a file), "gaussian"
 * (value: SIGMA) or "motion" (value: "LEN,ANGLE"). */
dc_status dc_psf_from_option(const char *option, const char *value, dc_fimage **out,
                             dc_error *err);
/* Checks every restore function runs first: a single-channel PSF no larger than the image
 * in either dimension, finite, not all zero, and a finite image of at least 1 x 1. */
dc_status dc_psf_check(const dc_fimage *psf, const dc_fimage *image, dc_error *err);

/* --------------------------------------------------------------- blur + noise */

/* out = image convolved with psf, same size, zero boundaries: exactly
 * scipy.signal.convolve2d(image, psf, mode='same') per channel (the PSF entry at index
 * ((kh-1)/2, (kw-1)/2) is the centre, also for even sizes). Runs on the host, in double. */
dc_status dc_convolve_same(const dc_fimage *image, const dc_fimage *psf, dc_fimage **out,
                           dc_error *err);
/* The same convolution on a backend through im2col + gemm (the route Richardson-Lucy
 * uses). max_cols_bytes bounds the im2col column matrix, which the image is cut into row
 * strips to respect (0: 4 MiB on the CPU backend, where cache-sized strips are fastest,
 * 32 MiB on others). */
dc_status dc_convolve_same_backend(dc_backend *be, const dc_fimage *image, const dc_fimage *psf,
                                   size_t max_cols_bytes, dc_fimage **out, dc_error *err);

typedef enum dc_noise_kind {
    DC_NOISE_NONE = 0,
    DC_NOISE_GAUSSIAN, /* y = x + std * N(0, 1) */
    DC_NOISE_POISSON,  /* y = Poisson(x / std^2) * std^2: shot noise whose standard
                          deviation is `std` at intensity 1 (1/std^2 photons at full scale);
                          negative x count as 0 */
} dc_noise_kind;

/* Add noise in place with values drawn from rng (no clipping). std >= 0. */
dc_status dc_add_noise(dc_fimage *im, dc_noise_kind kind, float std, dc_rng *rng,
                       dc_error *err);
/* "none", "gaussian", "poisson" -> kind; DC_ERR_ARG for anything else. */
dc_status dc_noise_kind_parse(const char *name, dc_noise_kind *out, dc_error *err);

/* ------------------------------------------------------------------ Wiener */
typedef enum dc_wiener_reg {
    DC_WIENER_REG_LAPLACIAN = 0, /* scikit-image's default: 4-neighbour Laplacian */
    DC_WIENER_REG_IDENTITY,      /* |D|^2 = 1: the classic constant noise-to-signal ratio */
} dc_wiener_reg;

typedef struct dc_wiener_options {
    /* >= 0. scikit-image has no default; ours, 0.05, was at or near the best whole-image
     * PSNR for the camera image blurred by a sigma 1.5 Gaussian with noise std 0 to 0.01.
     * Smaller values sharpen more and amplify more noise. */
    float balance;
    dc_wiener_reg reg;
    int clip;               /* 1: clip the result to [-1, 1] as scikit-image does */
} dc_wiener_options;

void dc_wiener_options_default(dc_wiener_options *o);
/* Host-side (FFTW). The Fourier model treats the image as periodic, so a blur with zero
 * boundaries leaves ringing along the edges (as in scikit-image). DC_ERR_NUMERIC when the
 * filter divides by zero (balance 0 and a PSF whose transfer function vanishes somewhere). */
dc_status dc_wiener(const dc_fimage *image, const dc_fimage *psf, const dc_wiener_options *o,
                    dc_fimage **out, dc_error *err);

/* ---------------------------------------------------------- Richardson-Lucy */
typedef struct dc_rl_options {
    int iterations;         /* >= 0; default 50 as in scikit-image */
    float filter_epsilon;   /* > 0: ratios with a blurred estimate below it become 0 */
    int clip;               /* 1: clip the result to [-1, 1] */
    size_t max_cols_bytes;  /* im2col budget per strip (0: 4 MiB on CPU, 32 MiB elsewhere) */
} dc_rl_options;

void dc_rl_options_default(dc_rl_options *o);
/* Runs on `be`. Messages from the backend are wrapped with the step that failed. */
dc_status dc_richardson_lucy(dc_backend *be, const dc_fimage *image, const dc_fimage *psf,
                             const dc_rl_options *o, dc_fimage **out, dc_error *err);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
