/* Classical restoration: PSFs, blur, Wiener and Richardson-Lucy.
 *
 * Oracles: a naive-loop 'same' convolution (odd and even PSFs) against the host blur and
 * the backend im2col + gemm route; delta PSFs that must give the input back; and
 * scikit-image 0.19 itself (Debian's python3), which writes the camera image, a blurred
 * noisy copy and its restoration.wiener / richardson_lucy results as raw float32 files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "deconv/backend.h"
#include "deconv/restore.h"

#define CAM 512                /* skimage.data.camera() is 512 x 512 */
#define CROP_H 128
#define CROP_W 160
#define WIENER_BALANCE 0.05f   /* the Wiener balance the reference used */
#define CROP_BALANCE 0.02f

/* Writes the references into argv[1]; exit 3 when skimage/scipy are missing. */
static const char *reference_script =
    "import sys\n"
    "try:\n"
    "    import numpy as np\n"
    "    from scipy.signal import convolve2d\n"
    "    from skimage import data, restoration\n"
    "except ImportError as e:\n"
    "    print(e); sys.exit(3)\n"
    "out = sys.argv[1]\n"
    "def save(name, a):\n"
    "    np.asarray(a, dtype='<f4').tofile(out + '/' + name + '.bin')\n"
    "def f32(a):\n"
    "    return np.asarray(a, dtype=np.float32).astype(np.float64)\n"
    "sharp = data.camera().astype(np.float64) / 255.0\n"
    "sigma = 1.5\n"
    "r = int(np.ceil(3 * sigma))\n"
    "y, x = np.mgrid[-r:r + 1, -r:r + 1]\n"
    "psf = np.exp(-(x * x + y * y) / (2 * sigma * sigma))\n"
    "psf = f32(psf / psf.sum())\n"
    "rng = np.random.default_rng(0)\n"
    "blurred = f32(convolve2d(sharp, psf, 'same') + 0.01 * rng.standard_normal(sharp.shape))\n"
    "save('sharp', sharp); save('psf', psf); save('blurred', blurred)\n"
    "save('wiener', restoration.wiener(blurred, psf, 0.05))\n"
    "save('rl10', restoration.richardson_lucy(blurred, psf, num_iter=10))\n"
    "save('rl30', restoration.richardson_lucy(blurred, psf, num_iter=30))\n"
    "crop = blurred[100:228, 200:360]\n"
    "epsf = rng.uniform(0.2, 1.0, (4, 6))\n"
    "epsf = f32(epsf / epsf.sum())\n"
    "save('crop', crop); save('epsf', epsf)\n"
    "save('crop_conv', convolve2d(crop, epsf, 'same'))\n"
    "save('crop_wiener', restoration.wiener(crop, epsf, 0.02))\n"
    "save('crop_rl', restoration.richardson_lucy(crop, epsf, num_iter=10))\n"
    "save('crop_rl_feps', restoration.richardson_lucy(crop, epsf, num_iter=10,\n"
    "                                                 filter_epsilon=0.3))\n";

typedef struct fixture {
    char *dir;
    int have_reference;
    char why[512];
    dc_backend *cpu;
} fixture;

static int group_setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(0, &f->cpu, &err), DC_OK);
    f->dir = tu_tmpdir("restore");
    assert_non_null(f->dir);
    const char *py = tu_python();
    if (!py) {
        snprintf(f->why, sizeof f->why, "no /usr/bin/python3 for the scikit-image references");
    } else {
        char path[600];
        snprintf(path, sizeof path, "%s/reference.py", f->dir);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(reference_script, fp);
        fclose(fp);
        int rc = tu_system("'%s' '%s' '%s' > '%s/reference.log' 2>&1", py, path, f->dir, f->dir);
        if (rc == 0)
            f->have_reference = 1;
        else
            snprintf(f->why, sizeof f->why,
                     "python3 with numpy/scipy/scikit-image failed (exit %d, see %s/reference.log)",
                     rc, f->dir);
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state) {
    fixture *f = *state;
    dc_backend_free(f->cpu);
    tu_system("rm -rf '%s'", f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static dc_fimage *new_image(int h, int w, int c) {
    dc_fimage *im = NULL;
    dc_error err = {0};
    assert_int_equal(dc_fimage_create(h, w, c, &im, &err), DC_OK);
    return im;
}

static dc_fimage *random_image(int h, int w, int c, uint64_t seed) {
    dc_fimage *im = new_image(h, w, c);
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    tu_fill_uniform(im->data, dc_fimage_numel(im), &rng, 0.05f, 1.0f);
    return im;
}

/* A raw float32 reference file of exactly h x w values. */
static dc_fimage *load_bin(const fixture *f, const char *name, int h, int w) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s.bin", f->dir, name);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("missing reference %s", path);
    dc_fimage *im = new_image(h, w, 1);
    size_t n = fread(im->data, sizeof(float), (size_t)h * w + 1, fp);
    fclose(fp);
    if (n != (size_t)h * w) fail_msg("%s: %zu values, expected %d x %d", path, n, h, w);
    return im;
}

static double mean_abs_diff(const dc_fimage *a, const dc_fimage *b) {
    assert_int_equal(dc_fimage_numel(a), dc_fimage_numel(b));
    double s = 0;
    for (size_t i = 0, n = dc_fimage_numel(a); i < n; i++) s += fabs((double)a->data[i] - b->data[i]);
    return s / (double)dc_fimage_numel(a);
}

/* Independent oracle: scipy.signal.convolve2d(mode='same') by its definition, the PSF
 * entry ((kh-1)/2, (kw-1)/2) on the output pixel, zero outside. */
static void naive_convolve_same(const dc_fimage *im, const dc_fimage *psf, float *out) {
    const int ci = (psf->h - 1) / 2, cj = (psf->w - 1) / 2;
    for (int c = 0; c < im->c; c++)
        for (int y = 0; y < im->h; y++)
            for (int x = 0; x < im->w; x++) {
                double s = 0;
                for (int i = 0; i < psf->h; i++)
                    for (int j = 0; j < psf->w; j++) {
                        int sy = y + ci - i, sx = x + cj - j;
                        if (sy < 0 || sy >= im->h || sx < 0 || sx >= im->w) continue;
                        s += (double)psf->data[i * psf->w + j] *
                             dc_fimage_plane(im, c)[sy * im->w + sx];
                    }
                out[((size_t)c * im->h + y) * im->w + x] = (float)s;
            }
}

static void assert_msg_contains(const dc_error *err, const char *word) {
    if (!strstr(err->msg, word)) fail_msg("message '%s' does not mention '%s'", err->msg, word);
}

/* ------------------------------------------------------------------- PSFs */

static void test_psf_constructors(void **state) {
    (void)state;
    dc_error err = {0};
    dc_fimage *g = NULL, *m = NULL;
    assert_int_equal(dc_psf_gaussian(1.5f, &g, &err), DC_OK);
    assert_int_equal(g->h, 11);
    assert_int_equal(g->w, 11);
    double sum = 0;
    for (int i = 0; i < 121; i++) sum += g->data[i];
    assert_true(fabs(sum - 1.0) < 1e-6);
    assert_true(g->data[60] > g->data[59] && g->data[59] == g->data[61]);
    assert_true(g->data[0] == g->data[120] && g->data[10] == g->data[110]);
    dc_fimage_free(g);

    /* Horizontal motion of odd length L is the 1 x L box. */
    assert_int_equal(dc_psf_motion(9.0f, 0.0f, &m, &err), DC_OK);
    assert_int_equal(m->h, 1);
    assert_int_equal(m->w, 9);
    for (int i = 0; i < 9; i++) assert_true(fabs(m->data[i] - 1.0 / 9) < 1e-7);
    dc_fimage_free(m);
    assert_int_equal(dc_psf_motion(7.0f, 90.0f, &m, &err), DC_OK);
    assert_int_equal(m->h, 7);
    assert_int_equal(m->w, 1);
    dc_fimage_free(m);
    /* 30 degrees: point-symmetric about the centre, sums to 1, rises to the upper right. */
    assert_int_equal(dc_psf_motion(15.0f, 30.0f, &m, &err), DC_OK);
    assert_true(m->h % 2 == 1 && m->w % 2 == 1 && m->w > m->h);
    sum = 0;
    const int n = m->h * m->w;
    for (int i = 0; i < n; i++) {
        sum += m->data[i];
        assert_true(fabs(m->data[i] - m->data[n - 1 - i]) < 1e-6);
    }
    assert_true(fabs(sum - 1.0) < 1e-6);
    assert_true(m->data[0 * m->w + m->w - 1] > 0.0f);      /* top right corner */
    assert_true(m->data[(m->h - 1) * m->w + m->w - 1] == 0.0f); /* bottom right */
    dc_fimage_free(m);

    assert_int_equal(dc_psf_gaussian(0.0f, &g, &err), DC_ERR_ARG);
    assert_null(g);
    assert_int_equal(dc_psf_gaussian(NAN, &g, &err), DC_ERR_ARG);
    assert_int_equal(dc_psf_motion(0.5f, 0.0f, &m, &err), DC_ERR_ARG);
    assert_int_equal(dc_psf_motion(5.0f, INFINITY, &m, &err), DC_ERR_ARG);
    assert_int_equal(dc_psf_from_option("motion", "9,abc", &m, &err), DC_ERR_ARG);
    assert_msg_contains(&err, "LEN,ANGLE");
    assert_int_equal(dc_psf_from_option("gaussian", "x", &m, &err), DC_ERR_ARG);
    assert_int_equal(dc_psf_from_option("motion", "5,45", &m, &err), DC_OK);
    dc_fimage_free(m);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_psf_files(void **state) {
    fixture *f = *state;
    char path[700];
    dc_error err = {0};
    dc_fimage *p = NULL;

    snprintf(path, sizeof path, "%s/k.txt", f->dir);
    write_text(path, "# binomial\n1 2 1\n2 4 2\n\n1 2 1\n");
    assert_int_equal(dc_psf_load(path, &p, &err), DC_OK);
    assert_int_equal(p->h, 3);
    assert_int_equal(p->w, 3);
    assert_true(fabs(p->data[4] - 0.25) < 1e-7 && fabs(p->data[0] - 1.0 / 16) < 1e-7);
    /* save_text round trip */
    snprintf(path, sizeof path, "%s/k2.txt", f->dir);
    assert_int_equal(dc_psf_save_text(p, path, &err), DC_OK);
    dc_fimage *q = NULL;
    assert_int_equal(dc_psf_load(path, &q, &err), DC_OK);
    assert_true(tu_max_abs_err(q->data, p->data, 9) < 1e-8);
    dc_fimage_free(q);
    /* as a PNG: 8-bit, so only approximately the same after normalising */
    snprintf(path, sizeof path, "%s/k.png", f->dir);
    dc_fimage *scaled = NULL;
    assert_int_equal(dc_fimage_clone(p, &scaled, &err), DC_OK);
    for (int i = 0; i < 9; i++) scaled->data[i] *= 4.0f; /* peak 1 */
    assert_int_equal(dc_fimage_save_png(scaled, path, &err), DC_OK);
    assert_int_equal(dc_psf_load(path, &q, &err), DC_OK);
    assert_true(tu_max_abs_err(q->data, p->data, 9) < 2e-3);
    dc_fimage_free(q);
    dc_fimage_free(scaled);
    dc_fimage_free(p);

    snprintf(path, sizeof path, "%s/k.csv", f->dir);
    write_text(path, "0,1,0\r\n1,1,1\r\n0,1,0\r\n");
    assert_int_equal(dc_psf_load(path, &p, &err), DC_OK);
    assert_true(fabs(p->data[1] - 0.2) < 1e-7);
    dc_fimage_free(p);

    write_text(path, "1,2,3\n4,5\n");
    assert_int_equal(dc_psf_load(path, &p, &err), DC_ERR_FORMAT);
    assert_null(p);
    assert_msg_contains(&err, "line 2");
    write_text(path, "1,x,3\n");
    assert_int_equal(dc_psf_load(path, &p, &err), DC_ERR_FORMAT);
    assert_msg_contains(&err, "'x'");
    write_text(path, "0 0\n0 0\n");
    assert_int_equal(dc_psf_load(path, &p, &err), DC_ERR_ARG);
    assert_msg_contains(&err, "PSF");
    assert_msg_contains(&err, "zero");
    write_text(path, "1 nan\n0 1\n");
    assert_int_equal(dc_psf_load(path, &p, &err), DC_ERR_NUMERIC);
    assert_msg_contains(&err, "PSF");
    snprintf(path, sizeof path, "%s/missing.png", f->dir);
    assert_int_equal(dc_psf_load(path, &p, &err), DC_ERR_IO);
    assert_msg_contains(&err, "missing.png");
    /* a file that is not an image */
    snprintf(path, sizeof path, "%s/not_an_image.png", f->dir);
    write_text(path, "hello\n");
    dc_fimage *im = NULL;
    assert_int_equal(dc_fimage_load(path, &im, &err), DC_ERR_IO);
    assert_null(im);
    assert_msg_contains(&err, "not_an_image.png");
}

/* ------------------------------------------------------ convolution routes */

static void check_conv(dc_backend *be, int h, int w, int c, int kh, int kw, size_t budget,
                       uint64_t seed) {
    dc_error err = {0};
    dc_fimage *im = random_image(h, w, c, seed);
    dc_fimage *psf = random_image(kh, kw, 1, seed + 1);
    float *ref = malloc(dc_fimage_numel(im) * sizeof(float));
    assert_non_null(ref);
    naive_convolve_same(im, psf, ref);
    dc_fimage *host = NULL, *dev = NULL;
    assert_int_equal(dc_convolve_same(im, psf, &host, &err), DC_OK);
    if (dc_convolve_same_backend(be, im, psf, budget, &dev, &err) != DC_OK)
        fail_msg("backend convolution: %s", err.msg);
    double e_host = tu_max_rel_err(host->data, ref, dc_fimage_numel(im));
    double e_dev = tu_max_rel_err(dev->data, ref, dc_fimage_numel(im));
    if (e_host > 1e-6 || e_dev > 1e-5)
        fail_msg("%dx%dx%d image, %dx%d PSF, budget %zu: host err %g, backend err %g", h, w, c,
                 kh, kw, budget, e_host, e_dev);
    dc_fimage_free(host);
    dc_fimage_free(dev);
    dc_fimage_free(psf);
    dc_fimage_free(im);
    free(ref);
}

static void test_convolution_routes(void **state) {
    fixture *f = *state;
    static const int sizes[][2] = {{1, 1}, {3, 3}, {5, 5}, {4, 4}, {2, 6}, {6, 3}, {1, 4}, {7, 2}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const int kh = sizes[i][0], kw = sizes[i][1];
        check_conv(f->cpu, 23, 31, 1, kh, kw, 0, 10 + i);
        /* strips of 3 output rows: interior strips read in place, edge strips staged */
        check_conv(f->cpu, 23, 31, 2, kh, kw, (size_t)(kh | 1) * (kw | 1) * 31 * 4 * 3, 20 + i);
        /* one row per strip */
        check_conv(f->cpu, 9, 7, 1, kh, kw, 1, 30 + i);
    }
    /* PSF as large as the image */
    check_conv(f->cpu, 6, 5, 1, 6, 5, 0, 40);
}

static void test_delta_psf_returns_input(void **state) {
    fixture *f = *state;
    dc_error err = {0};
    dc_fimage *im = random_image(37, 29, 3, 7);
    for (int k = 1; k <= 3; k += 2) {
        dc_fimage *delta = new_image(k, k, 1);
        delta->data[(k * k) / 2] = 1.0f;
        dc_rl_options ro;
        dc_rl_options_default(&ro);
        ro.iterations = 5;
        dc_fimage *rl = NULL;
        if (dc_richardson_lucy(f->cpu, im, delta, &ro, &rl, &err) != DC_OK) fail_msg("%s", err.msg);
        assert_true(tu_max_rel_err(rl->data, im->data, dc_fimage_numel(im)) < 1e-6);
        dc_fimage_free(rl);

        dc_wiener_options wo;
        dc_wiener_options_default(&wo);
        wo.balance = 0.0f;
        for (int reg = 0; reg < 2; reg++) {
            wo.reg = reg ? DC_WIENER_REG_IDENTITY : DC_WIENER_REG_LAPLACIAN;
            dc_fimage *wi = NULL;
            if (dc_wiener(im, delta, &wo, &wi, &err) != DC_OK) fail_msg("%s", err.msg);
            assert_true(tu_max_abs_err(wi->data, im->data, dc_fimage_numel(im)) < 1e-5);
            dc_fimage_free(wi);
        }
        dc_fimage_free(delta);
    }
    /* Zero iterations: the starting estimate 0.5. */
    dc_rl_options ro;
    dc_rl_options_default(&ro);
    ro.iterations = 0;
    dc_fimage *psf = NULL, *rl = NULL;
    assert_int_equal(dc_psf_gaussian(1.0f, &psf, &err), DC_OK);
    assert_int_equal(dc_richardson_lucy(f->cpu, im, psf, &ro, &rl, &err), DC_OK);
    for (size_t i = 0; i < dc_fimage_numel(rl); i++) assert_true(rl->data[i] == 0.5f);
    dc_fimage_free(rl);
    dc_fimage_free(psf);
    dc_fimage_free(im);
}

static void test_bad_inputs(void **state) {
    fixture *f = *state;
    dc_error err = {0};
    dc_fimage *im = random_image(8, 10, 1, 3), *out = NULL;
    dc_fimage *big = random_image(9, 3, 1, 4), *zero = new_image(3, 3, 1);
    dc_fimage *nan_psf = random_image(3, 3, 1, 5);
    nan_psf->data[4] = NAN;
    dc_wiener_options wo;
    dc_rl_options ro;
    dc_wiener_options_default(&wo);
    dc_rl_options_default(&ro);
    ro.iterations = 2;

    for (int method = 0; method < 3; method++) {
#define RUN(img, psf)                                                           \
    (method == 0   ? dc_wiener((img), (psf), &wo, &out, &err)                   \
     : method == 1 ? dc_richardson_lucy(f->cpu, (img), (psf), &ro, &out, &err) \
                   : dc_convolve_same((img), (psf), &out, &err))
        assert_int_equal(RUN(im, big), DC_ERR_SHAPE);
        assert_null(out);
        assert_msg_contains(&err, "PSF 9 x 3 is larger than the image 8 x 10");
        assert_int_equal(RUN(im, zero), DC_ERR_ARG);
        assert_msg_contains(&err, "PSF is all zero");
        assert_int_equal(RUN(im, nan_psf), DC_ERR_NUMERIC);
        assert_msg_contains(&err, "PSF");
        assert_msg_contains(&err, "row 1, column 1");
        im->data[13] = INFINITY;
        assert_int_equal(RUN(im, zero), DC_ERR_ARG); /* the PSF is checked first */
        dc_fimage *ok_psf = random_image(3, 3, 1, 6);
        assert_int_equal(RUN(im, ok_psf), DC_ERR_NUMERIC);
        assert_msg_contains(&err, "image has a non-finite value");
        im->data[13] = 0.5f;
        dc_fimage_free(ok_psf);
#undef RUN
    }
    ro.iterations = -1;
    assert_int_equal(dc_richardson_lucy(f->cpu, im, zero, &ro, &out, &err), DC_ERR_ARG);
    dc_fimage *psf = random_image(3, 3, 1, 9);
    assert_int_equal(dc_richardson_lucy(f->cpu, im, psf, &ro, &out, &err), DC_ERR_ARG);
    assert_msg_contains(&err, "iterations");
    wo.balance = -1.0f;
    assert_int_equal(dc_wiener(im, psf, &wo, &out, &err), DC_ERR_ARG);
    assert_msg_contains(&err, "balance");
    /* balance 0 with a PSF whose transfer function has zeros: division by zero */
    dc_fimage *box = new_image(1, 2, 1);
    box->data[0] = box->data[1] = 0.5f; /* H = 0 at the Nyquist frequency (width 10) */
    wo.balance = 0.0f;
    assert_int_equal(dc_wiener(im, box, &wo, &out, &err), DC_ERR_NUMERIC);
    assert_msg_contains(&err, "balance");
    dc_fimage_free(box);

    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.png", f->dir);
    assert_int_equal(dc_fimage_load(path, &out, &err), DC_ERR_IO);
    assert_msg_contains(&err, "does-not-exist.png");

    dc_fimage_free(psf);
    dc_fimage_free(nan_psf);
    dc_fimage_free(zero);
    dc_fimage_free(big);
    dc_fimage_free(im);
}

static void test_noise(void **state) {
    (void)state;
    dc_error err = {0};
    const int n = 200000;
    static const float stds[] = {0.05f, 0.5f}; /* Poisson: 200 photons (PTRS), 2 (direct) */
    for (int kind = DC_NOISE_GAUSSIAN; kind <= DC_NOISE_POISSON; kind++)
        for (int s = 0; s < 2; s++) {
            dc_fimage *a = new_image(1, n, 1), *b = new_image(1, n, 1);
            for (int i = 0; i < n; i++) a->data[i] = b->data[i] = 0.5f;
            dc_rng r1, r2;
            dc_rng_seed(&r1, 42);
            dc_rng_seed(&r2, 42);
            assert_int_equal(dc_add_noise(a, kind, stds[s], &r1, &err), DC_OK);
            assert_int_equal(dc_add_noise(b, kind, stds[s], &r2, &err), DC_OK);
            assert_memory_equal(a->data, b->data, sizeof(float) * n); /* seeded */
            double m = 0, v = 0;
            for (int i = 0; i < n; i++) m += a->data[i];
            m /= n;
            for (int i = 0; i < n; i++) v += (a->data[i] - m) * (a->data[i] - m);
            double sd = sqrt(v / (n - 1));
            /* Poisson: variance x * std^2 at intensity x = 0.5 */
            double want = kind == DC_NOISE_GAUSSIAN ? stds[s] : stds[s] * sqrt(0.5);
            if (fabs(m - 0.5) > 4 * want / sqrt(n) + 1e-6 || fabs(sd / want - 1) > 0.02)
                fail_msg("noise %d std %g: mean %g, std %g (want %g)", kind, (double)stds[s], m,
                         sd, want);
            dc_fimage_free(a);
            dc_fimage_free(b);
        }
    dc_noise_kind k;
    assert_int_equal(dc_noise_kind_parse("speckle", &k, &err), DC_ERR_ARG);
}

/* ------------------------------------------------------------ scikit-image */

#define NEED_REFERENCE(f) \
    do { if (!(f)->have_reference) TU_SKIP_OR_FAIL("%s", (f)->why); } while (0)

/* Compare with a skimage result: mean |diff| and the PSNR gain over the blurred input,
 * over the whole image and over the interior (the 11-pixel border where the zero-boundary
 * blur lost information left out). Over the whole image Richardson-Lucy loses PSNR in
 * scikit-image too: its border estimate shrinks because the adjoint of a zero-padded
 * convolution does not sum to 1 there. */
static void compare_with_skimage(const char *what, const dc_fimage *ours, const dc_fimage *ref,
                                 const dc_fimage *blurred, const dc_fimage *sharp) {
    double mad = mean_abs_diff(ours, ref);
    print_message("  %-18s mean |deconv - skimage| %.2e\n", what, mad);
    if (!(mad < 1e-3)) fail_msg("%s: mean abs difference %g >= 1e-3", what, mad);
    for (int margin = 0; margin <= 11; margin += 11) {
        double base = dc_fimage_psnr(blurred, sharp, 1.0, margin);
        double gain_ours = dc_fimage_psnr(ours, sharp, 1.0, margin) - base;
        double gain_ref = dc_fimage_psnr(ref, sharp, 1.0, margin) - base;
        print_message("    margin %2d: PSNR blurred %.3f dB, gain deconv %+.3f dB, skimage %+.3f dB\n",
                      margin, base, gain_ours, gain_ref);
        if (!(fabs(gain_ours - gain_ref) < 0.05))
            fail_msg("%s: PSNR gain %g dB vs skimage %g dB (margin %d)", what, gain_ours, gain_ref,
                     margin);
        if (margin && !(gain_ours > 1.0))
            fail_msg("%s: interior PSNR gain only %g dB", what, gain_ours);
    }
}

static void test_gaussian_psf_matches_reference(void **state) {
    fixture *f = *state;
    NEED_REFERENCE(f);
    dc_error err = {0};
    dc_fimage *ref = load_bin(f, "psf", 11, 11), *g = NULL;
    assert_int_equal(dc_psf_gaussian(1.5f, &g, &err), DC_OK);
    assert_true(tu_max_abs_err(g->data, ref->data, 121) < 1e-8);
    dc_fimage_free(g);
    dc_fimage_free(ref);
}

static void test_wiener_vs_skimage(void **state) {
    fixture *f = *state;
    NEED_REFERENCE(f);
    dc_error err = {0};
    dc_fimage *sharp = load_bin(f, "sharp", CAM, CAM), *blurred = load_bin(f, "blurred", CAM, CAM);
    dc_fimage *psf = load_bin(f, "psf", 11, 11), *ref = load_bin(f, "wiener", CAM, CAM), *out = NULL;
    dc_wiener_options wo;
    dc_wiener_options_default(&wo);
    wo.balance = WIENER_BALANCE;
    if (dc_wiener(blurred, psf, &wo, &out, &err) != DC_OK) fail_msg("%s", err.msg);
    compare_with_skimage("wiener", out, ref, blurred, sharp);
    assert_true(tu_max_abs_err(out->data, ref->data, dc_fimage_numel(ref)) < 1e-3);
    dc_fimage_free(out);
    dc_fimage_free(ref);
    dc_fimage_free(psf);
    dc_fimage_free(blurred);
    dc_fimage_free(sharp);
}

static void test_rl_vs_skimage(void **state) {
    fixture *f = *state;
    NEED_REFERENCE(f);
    dc_error err = {0};
    dc_fimage *sharp = load_bin(f, "sharp", CAM, CAM), *blurred = load_bin(f, "blurred", CAM, CAM);
    dc_fimage *psf = load_bin(f, "psf", 11, 11);
    static const int iters[] = {10, 30};
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "rl%d", iters[i]);
        dc_fimage *ref = load_bin(f, name, CAM, CAM), *out = NULL;
        dc_rl_options ro;
        dc_rl_options_default(&ro);
        ro.iterations = iters[i];
        if (dc_richardson_lucy(f->cpu, blurred, psf, &ro, &out, &err) != DC_OK)
            fail_msg("%s", err.msg);
        snprintf(name, sizeof name, "rl %d iterations", iters[i]);
        compare_with_skimage(name, out, ref, blurred, sharp);
        dc_fimage_free(out);
        dc_fimage_free(ref);
    }
    dc_fimage_free(psf);
    dc_fimage_free(blurred);
    dc_fimage_free(sharp);
}

/* Even, rectangular PSF on a non-square crop: the centring conventions of scipy's
 * 'same' and skimage's ir2tf roll, and the strip path of RL. */
static void test_even_psf_vs_skimage(void **state) {
    fixture *f = *state;
    NEED_REFERENCE(f);
    dc_error err = {0};
    dc_fimage *crop = load_bin(f, "crop", CROP_H, CROP_W), *psf = load_bin(f, "epsf", 4, 6);
    dc_fimage *ref, *out = NULL;

    ref = load_bin(f, "crop_conv", CROP_H, CROP_W);
    assert_int_equal(dc_convolve_same(crop, psf, &out, &err), DC_OK);
    assert_true(tu_max_rel_err(out->data, ref->data, dc_fimage_numel(ref)) < 1e-5);
    dc_fimage_free(out);
    assert_int_equal(dc_convolve_same_backend(f->cpu, crop, psf, 0, &out, &err), DC_OK);
    assert_true(tu_max_rel_err(out->data, ref->data, dc_fimage_numel(ref)) < 1e-5);
    dc_fimage_free(out);
    dc_fimage_free(ref);

    dc_wiener_options wo;
    dc_wiener_options_default(&wo);
    wo.balance = CROP_BALANCE;
    ref = load_bin(f, "crop_wiener", CROP_H, CROP_W);
    assert_int_equal(dc_wiener(crop, psf, &wo, &out, &err), DC_OK);
    assert_true(mean_abs_diff(out, ref) < 1e-4);
    assert_true(tu_max_abs_err(out->data, ref->data, dc_fimage_numel(ref)) < 1e-3);
    dc_fimage_free(out);
    dc_fimage_free(ref);

    dc_rl_options ro;
    dc_rl_options_default(&ro);
    ro.iterations = 10;
    ref = load_bin(f, "crop_rl", CROP_H, CROP_W);
    for (int strips = 0; strips < 2; strips++) {
        ro.max_cols_bytes = strips ? (size_t)5 * 7 * CROP_W * 4 * 13 : 0; /* 13-row strips */
        assert_int_equal(dc_richardson_lucy(f->cpu, crop, psf, &ro, &out, &err), DC_OK);
        double mad = mean_abs_diff(out, ref);
        if (!(mad < 1e-4)) fail_msg("even-PSF RL (strips %d): mean abs diff %g", strips, mad);
        dc_fimage_free(out);
    }
    dc_fimage_free(ref);
    ro.max_cols_bytes = 0;
    ro.filter_epsilon = 0.3f;
    ref = load_bin(f, "crop_rl_feps", CROP_H, CROP_W);
    assert_int_equal(dc_richardson_lucy(f->cpu, crop, psf, &ro, &out, &err), DC_OK);
    assert_true(mean_abs_diff(out, ref) < 1e-4);
    dc_fimage_free(out);
    dc_fimage_free(ref);
    dc_fimage_free(psf);
    dc_fimage_free(crop);
}

/* ------------------------------------------------------------------ OpenCL */

static void test_rl_opencl_matches_cpu(void **state) {
    fixture *f = *state;
#ifndef DECONV_HAVE_OPENCL
    /* Built with -DDECONV_OPENCL=OFF on purpose (the sanitizer build): nothing to compare. */
    print_message("[  SKIP    ] built without OpenCL: RL parity not run\n");
    skip();
#endif
    if (!dc_opencl_available()) TU_SKIP_OR_FAIL("no OpenCL device: RL parity with the CPU not run");
    dc_error err = {0};
    dc_backend *cl = NULL;
    if (dc_backend_create_opencl(-1, -1, &cl, &err) != DC_OK)
        fail_msg("OpenCL is available but the backend failed: %s", err.msg);
    print_message("  OpenCL device: %s\n", dc_backend_device(cl));
    dc_fimage *im = random_image(96, 80, 3, 11), *psf = NULL;
    assert_int_equal(dc_psf_gaussian(1.5f, &psf, &err), DC_OK);
    dc_fimage *even = random_image(4, 6, 1, 12);
    dc_rl_options ro;
    dc_rl_options_default(&ro);
    ro.iterations = 15;
    for (int k = 0; k < 2; k++) {
        for (int strips = 0; strips < 2; strips++) {
            const dc_fimage *p = k ? even : psf;
            ro.max_cols_bytes = strips ? (size_t)13 * 13 * 80 * 4 * 7 : 0;
            dc_fimage *a = NULL, *b = NULL;
            if (dc_richardson_lucy(f->cpu, im, p, &ro, &a, &err) != DC_OK) fail_msg("%s", err.msg);
            if (dc_richardson_lucy(cl, im, p, &ro, &b, &err) != DC_OK) fail_msg("%s", err.msg);
            double rel = tu_max_rel_err(b->data, a->data, dc_fimage_numel(a));
            if (!(rel < 1e-4)) fail_msg("OpenCL vs CPU RL (psf %d, strips %d): rel err %g", k, strips, rel);
            dc_fimage_free(a);
            dc_fimage_free(b);
        }
    }
    dc_fimage_free(even);
    dc_fimage_free(psf);
    dc_fimage_free(im);
    dc_backend_free(cl);
}

/* -------------------------------------------------------------------- CLI */

/* A synthetic scene with edges at several scales (no python needed). */
static dc_fimage *test_scene(int h, int w, int c) {
    dc_fimage *im = new_image(h, w, c);
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float v = 0.2f + 0.1f * ch;
                if ((x / 8 + y / 8) % 2 == 0 && x < w / 2) v = 0.8f;
                double dx = x - 0.7 * w, dy = y - 0.4 * h;
                if (dx * dx + dy * dy < 0.04 * w * w) v = 0.95f - 0.2f * ch;
                if (y > 0.75 * h) v = (float)x / w;
                dc_fimage_plane(im, ch)[y * w + x] = v;
            }
    return im;
}

static void test_cli_blur_restore(void **state) {
    fixture *f = *state;
    const char *cli = tu_cli_path();
    dc_error err = {0};
    for (int c = 1; c <= 3; c += 2) {
        const int h = 72, w = 88;
        dc_fimage *sharp = test_scene(h, w, c);
        char d[600], in[700];
        snprintf(d, sizeof d, "%s/cli%d", f->dir, c);
        assert_int_equal(tu_system("mkdir -p '%s'", d), 0);
        snprintf(in, sizeof in, "%s/sharp.png", d);
        assert_int_equal(dc_fimage_save_png(sharp, in, &err), DC_OK);
        dc_fimage_free(sharp);
        assert_int_equal(dc_fimage_load(in, &sharp, &err), DC_OK); /* 8-bit as on disk */
        int rc = tu_system("'%s' blur '%s' -o '%s/blurred.png' --gaussian 1.2 --noise gaussian "
                           "--noise-std 0.005 --seed 3 --save-psf '%s/psf.txt' 2>'%s/blur.log'",
                           cli, in, d, d, d);
        if (rc != 0) fail_msg("deconv blur exited %d (see %s/blur.log)", rc, d);
        /* a bad PSF value is misuse (exit 2); a PSF file that is not there is a failure (1) */
        assert_int_equal(tu_system("'%s' blur '%s' -o '%s/x.png' --gaussian -1 2>'%s/bad.log'; "
                                   "test $? -eq 2 && grep -q 'sigma' '%s/bad.log'",
                                   cli, in, d, d, d),
                         0);
        assert_int_equal(tu_system("'%s' restore '%s' --psf '%s/none.txt' 2>/dev/null; test $? -eq 1",
                                   cli, in, d),
                         0);
        char path[800];
        snprintf(path, sizeof path, "%s/blurred.png", d);
        dc_fimage *blurred = NULL;
        assert_int_equal(dc_fimage_load(path, &blurred, &err), DC_OK);
        const double psnr_blurred = dc_fimage_psnr(blurred, sharp, 1.0, 9); /* PSF 9 x 9 */
        static const char *const methods[] = {
            "--method wiener --balance 0.02",
            "--method rl --iterations 30 --device cpu",
            "--method rl --iterations 10 --device cpu --no-clip --psf", /* PSF from the file */
        };
        for (int m = 0; m < 3; m++) {
            rc = tu_system("'%s' restore '%s/blurred.png' %s %s%s -o '%s/out%d.png' "
                           "--reference '%s' > '%s/restore%d.out' 2>'%s/restore%d.log'",
                           cli, d, methods[m], m == 2 ? d : "--gaussian 1.2",
                           m == 2 ? "/psf.txt" : "", d, m, in, d, m, d, m);
            if (rc != 0) fail_msg("deconv restore %s exited %d (see %s/restore%d.log)", methods[m], rc, d, m);
            snprintf(path, sizeof path, "%s/out%d.png", d, m);
            dc_fimage *out = NULL;
            if (dc_fimage_load(path, &out, &err) != DC_OK) fail_msg("%s", err.msg);
            assert_int_equal(out->h, h);
            assert_int_equal(out->w, w);
            assert_int_equal(out->c, c);
            double psnr = dc_fimage_psnr(out, sharp, 1.0, 9);
            print_message("  CLI %d channel(s), %-56s interior PSNR %.2f -> %.2f dB\n", c, methods[m],
                          psnr_blurred, psnr);
            if (!(psnr > psnr_blurred + 0.5))
                fail_msg("%s: PSNR %g dB is not above the blurred %g dB", methods[m], psnr, psnr_blurred);
            dc_fimage_free(out);
        }
        /* errors: exit 1 with the reason on stderr */
        rc = tu_system("'%s' restore '%s/nope.png' --gaussian 1 2>'%s/err.log'", cli, d, d);
        assert_int_equal(rc, 1);
        assert_int_equal(tu_system("grep -q 'nope.png' '%s/err.log'", d), 0);
        rc = tu_system("'%s' restore '%s/blurred.png' --gaussian 60 -o '%s/x.png' 2>'%s/err.log'",
                       cli, d, d, d);
        assert_int_equal(rc, 1);
        assert_int_equal(tu_system("grep -q 'PSF 361 x 361 is larger than the image' '%s/err.log'", d), 0);
        /* an option of the other method is a usage error: exit 2 */
        rc = tu_system("'%s' restore '%s/blurred.png' --method rl --balance 1 --gaussian 1 "
                       "2>'%s/err.log'", cli, d, d);
        assert_int_equal(rc, 2);
        assert_int_equal(tu_system("grep -q -- '--balance applies to --method wiener' '%s/err.log'",
                                   d),
                         0);
        dc_fimage_free(blurred);
        dc_fimage_free(sharp);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_psf_constructors),
        cmocka_unit_test(test_psf_files),
        cmocka_unit_test(test_convolution_routes),
        cmocka_unit_test(test_delta_psf_returns_input),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_noise),
        cmocka_unit_test(test_gaussian_psf_matches_reference),
        cmocka_unit_test(test_wiener_vs_skimage),
        cmocka_unit_test(test_rl_vs_skimage),
        cmocka_unit_test(test_even_psf_vs_skimage),
        cmocka_unit_test(test_rl_opencl_matches_cpu),
        cmocka_unit_test(test_cli_blur_restore),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
