/* Generative-model figures (deconv/eval.h) against independent oracles.
 *
 * numpy/scipy (tests/eval/oracle.py, run once per test group on fixed random inputs written
 * by this file): the Frechet distance through scipy.linalg.sqrtm (pytorch-fid's formula)
 * and through a general eigen-solver on S1 S2, numpy.cov, precision/recall and k nearest
 * neighbours from scipy's cdist, the class histogram (bincount, entropy), memorisation and
 * the silhouette figures. Cases with known answers need no python: identical sets, a
 * shifted mean, a sharp and a blurred silhouette, an all-grey image. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "deconv/eval.h"
#include "eval/eval_internal.h"

/* ------------------------------------------------------------------ inputs */
#define FD_DIM 40
#define FD_NA 600
#define FD_NB 500
#define FDR_DIM 48 /* more features than samples: singular covariances */
#define FDR_NA 30
#define FDR_NB 36
#define PR_DIM 16
#define PR_NREAL 700
#define PR_NFAKE 600
#define PRL_DIM 64 /* several distance blocks per set */
#define PRL_NREAL 2500
#define PRL_NFAKE 2300
#define N_LABELS 1000
#define N_CLASSES 10
#define MEM_NUMEL 576
#define MEM_NTRAIN 50
#define MEM_NSAMPLES 40
#define SIL_N 3
#define SIL_C 2
#define SIL_H 20
#define SIL_W 24

typedef struct fixture {
    char *dir;
    int have_oracle;
    char why[600];
    float *fd_a, *fd_b, *fdr_a, *fdr_b, *pr_real, *pr_fake, *prl_real, *prl_fake;
    float *mem_train, *mem_samples, *sil;
    int *labels;
} fixture;

static float *new_floats(size_t n) {
    float *x = malloc(sizeof(float) * n);
    assert_non_null(x);
    return x;
}

/* n rows of dim correlated Gaussian features: z L + offset, L (dim x dim) random from
 * mix_seed, so two sets drawn with the same mix_seed differ only by scale and offset. */
static float *gaussian_features(dc_rng *rng, uint64_t mix_seed, int n, int dim, float scale,
                                float offset) {
    float *l = new_floats((size_t)dim * dim), *x = new_floats((size_t)n * dim);
    dc_rng mix;
    dc_rng_seed(&mix, mix_seed);
    for (int i = 0; i < dim * dim; i++)
        l[i] = dc_rng_normal(&mix) * scale / sqrtf((float)dim);
    float *z = new_floats((size_t)dim);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < dim; j++)
            z[j] = dc_rng_normal(rng);
        for (int j = 0; j < dim; j++) {
            double s = offset * (1.0 + 0.1 * j);
            for (int t = 0; t < dim; t++)
                s += (double)z[t] * l[t * dim + j];
            x[(size_t)i * dim + j] = (float)s;
        }
    }
    free(l), free(z);
    return x;
}

static void write_input(fixture *f, const char *name, const void *data, int rows, int cols,
                        const char *dtype) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s.bin", f->dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 4, (size_t)rows * cols, fp), (size_t)rows * cols);
    fclose(fp);
    snprintf(path, sizeof path, "%s/manifest.txt", f->dir);
    fp = fopen(path, "a");
    assert_non_null(fp);
    fprintf(fp, "%s %d %d %s\n", name, rows, cols, dtype);
    fclose(fp);
}

/* The oracle's float64 result `name` (exactly n values), or fails the test. */
static double *oracle(const fixture *f, const char *name, size_t n) {
    if (!f->have_oracle) TU_SKIP_OR_FAIL("%s", f->why);
    char path[700];
    snprintf(path, sizeof path, "%s/%s.out", f->dir, name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    double *v = malloc(sizeof(double) * (n + 1));
    assert_non_null(v);
    size_t got = fread(v, sizeof(double), n + 1, fp);
    fclose(fp);
    if (got != n) fail_msg("oracle %s: %zu values, expected %zu", name, got, n);
    return v;
}

static int group_setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_tmpdir("eval");
    assert_non_null(f->dir);
    dc_rng rng;
    dc_rng_seed(&rng, 20190613);
    f->fd_a = gaussian_features(&rng, 1, FD_NA, FD_DIM, 1.0f, 0.0f);
    f->fd_b = gaussian_features(&rng, 2, FD_NB, FD_DIM, 1.4f, 0.3f);
    f->fdr_a = gaussian_features(&rng, 3, FDR_NA, FDR_DIM, 1.0f, 0.0f);
    f->fdr_b = gaussian_features(&rng, 4, FDR_NB, FDR_DIM, 0.8f, -0.2f);
    f->pr_real = gaussian_features(&rng, 5, PR_NREAL, PR_DIM, 1.0f, 0.0f);
    f->pr_fake = gaussian_features(&rng, 5, PR_NFAKE, PR_DIM, 1.3f, 0.15f);
    f->prl_real = gaussian_features(&rng, 6, PRL_NREAL, PRL_DIM, 1.0f, 0.0f);
    f->prl_fake = gaussian_features(&rng, 6, PRL_NFAKE, PRL_DIM, 1.2f, 0.05f);
    /* skewed labels: class c about (c + 1) times as often as class 0 */
    f->labels = malloc(sizeof(int) * N_LABELS);
    assert_non_null(f->labels);
    for (int i = 0; i < N_LABELS; i++) {
        int r = (int)dc_rng_below(&rng, 55), c = 0;
        while (r >= c + 1)
            r -= c + 1, c++;
        f->labels[i] = c;
    }
    /* memorisation: uniform training images; samples are 10 near-copies, 10 blends of two
     * training images and 20 new uniform images */
    f->mem_train = new_floats((size_t)MEM_NTRAIN * MEM_NUMEL);
    tu_fill_uniform(f->mem_train, (size_t)MEM_NTRAIN * MEM_NUMEL, &rng, -1.0f, 1.0f);
    f->mem_samples = new_floats((size_t)MEM_NSAMPLES * MEM_NUMEL);
    tu_fill_uniform(f->mem_samples, (size_t)MEM_NSAMPLES * MEM_NUMEL, &rng, -1.0f, 1.0f);
    for (int i = 0; i < 20; i++) {
        float *s = f->mem_samples + (size_t)i * MEM_NUMEL;
        const float *t1 = f->mem_train + (size_t)(3 * i % MEM_NTRAIN) * MEM_NUMEL;
        const float *t2 = f->mem_train + (size_t)((3 * i + 7) % MEM_NTRAIN) * MEM_NUMEL;
        for (int p = 0; p < MEM_NUMEL; p++)
            s[p] = i < 10 ? t1[p] + 0.01f * (dc_rng_uniform(&rng) - 0.5f) : 0.5f * (t1[p] + t2[p]);
    }
    /* silhouettes: a sharp disk, a soft-edged one, values beyond [-1, 1] */
    f->sil = new_floats((size_t)SIL_N * SIL_C * SIL_H * SIL_W);
    for (int n = 0; n < SIL_N; n++)
        for (int c = 0; c < SIL_C; c++)
            for (int y = 0; y < SIL_H; y++)
                for (int x = 0; x < SIL_W; x++) {
                    const float r = sqrtf((float)((y - 9) * (y - 9) + (x - 11 - c) * (x - 11 - c)));
                    float v = n == 0   ? (r < 6.5f ? 1.0f : -1.0f)
                              : n == 1 ? tanhf(6.5f - r)
                                       : 2.4f * dc_rng_uniform(&rng) - 1.2f;
                    f->sil[(((size_t)n * SIL_C + c) * SIL_H + y) * SIL_W + x] = v;
                }
    write_input(f, "fd_a", f->fd_a, FD_NA, FD_DIM, "f4");
    write_input(f, "fd_b", f->fd_b, FD_NB, FD_DIM, "f4");
    write_input(f, "fdr_a", f->fdr_a, FDR_NA, FDR_DIM, "f4");
    write_input(f, "fdr_b", f->fdr_b, FDR_NB, FDR_DIM, "f4");
    write_input(f, "pr_real", f->pr_real, PR_NREAL, PR_DIM, "f4");
    write_input(f, "pr_fake", f->pr_fake, PR_NFAKE, PR_DIM, "f4");
    write_input(f, "prl_real", f->prl_real, PRL_NREAL, PRL_DIM, "f4");
    write_input(f, "prl_fake", f->prl_fake, PRL_NFAKE, PRL_DIM, "f4");
    write_input(f, "labels", f->labels, N_LABELS, 1, "i4");
    write_input(f, "mem_train", f->mem_train, MEM_NTRAIN, MEM_NUMEL, "f4");
    write_input(f, "mem_samples", f->mem_samples, MEM_NSAMPLES, MEM_NUMEL, "f4");
    write_input(f, "sil", f->sil, SIL_N, SIL_C * SIL_H * SIL_W, "f4");
    const char *py = tu_python();
    if (!py) {
        snprintf(f->why, sizeof f->why, "no /usr/bin/python3 for the numpy/scipy references");
    } else {
        int rc = tu_system("'%s' '%s/tests/eval/oracle.py' '%s' > '%s/oracle.log' 2>&1", py,
                           tu_source_dir(), f->dir, f->dir);
        if (rc == 0)
            f->have_oracle = 1;
        else
            snprintf(f->why, sizeof f->why,
                     "python3 with numpy/scipy failed (exit %d, see %s/oracle.log)", rc, f->dir);
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state) {
    fixture *f = *state;
    if (f->have_oracle) tu_system("rm -rf '%s'", f->dir);
    free(f->dir);
    free(f->fd_a), free(f->fd_b), free(f->fdr_a), free(f->fdr_b);
    free(f->pr_real), free(f->pr_fake), free(f->prl_real), free(f->prl_fake);
    free(f->mem_train), free(f->mem_samples), free(f->sil), free(f->labels);
    free(f);
    return 0;
}

static void assert_close(double got, double want, double tol, const char *what) {
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.15g, expected %.15g (|diff| %.3g > %.3g)", what, got, want,
                 fabs(got - want), tol);
}

/* -------------------------------------------------------- Frechet distance */

static void test_eigen_decomposition(void **state) {
    (void)state;
    enum { N = 60 };
    dc_rng rng;
    dc_rng_seed(&rng, 7);
    double *a = malloc(sizeof(double) * N * N), *work = malloc(sizeof(double) * N * N);
    double *vec = malloc(sizeof(double) * N * N), val[N];
    assert_true(a && work && vec);
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++)
            a[i * N + j] = a[j * N + i] = dc_rng_normal(&rng);
    a[5 * N + 5] = a[6 * N + 6] = 3.0; /* a near-degenerate pair */
    memcpy(work, a, sizeof(double) * N * N);
    dc_error err = {0};
    int sweeps = 0;
    assert_int_equal(dc_eval_sym_eigen(N, work, val, vec, &sweeps, &err), DC_OK);
    assert_true(sweeps > 0 && sweeps < 20);
    double norm = 0;
    for (int i = 0; i < N * N; i++)
        norm += a[i] * a[i];
    norm = sqrt(norm);
    /* A v = l v, and the vectors orthonormal */
    for (int e = 0; e < N; e++) {
        const double *v = vec + e * N;
        for (int i = 0; i < N; i++) {
            double av = 0;
            for (int j = 0; j < N; j++)
                av += a[i * N + j] * v[j];
            assert_close(av, val[e] * v[i], 1e-13 * norm, "A v - l v");
        }
        for (int f = 0; f < N; f++) {
            double dot = 0;
            for (int j = 0; j < N; j++)
                dot += v[j] * vec[f * N + j];
            assert_close(dot, e == f ? 1.0 : 0.0, 1e-13, "V V^T - I");
        }
    }
    free(a), free(work), free(vec);
}

static void check_frechet_case(const fixture *f, const char *name, const float *a, int na,
                               const float *b, int nb, int dim, int full_rank) {
    double *ref = oracle(f, name, 4);
    char key[64];
    snprintf(key, sizeof key, "%s_mean", name);
    double *ref_mean = oracle(f, key, (size_t)dim);
    snprintf(key, sizeof key, "%s_cov", name);
    double *ref_cov = oracle(f, key, (size_t)dim * dim);
    double *mean = malloc(sizeof(double) * dim), *cov = malloc(sizeof(double) * dim * dim);
    assert_true(mean && cov);
    dc_error err = {0};
    assert_int_equal(dc_feature_stats(a, na, dim, mean, cov, &err), DC_OK);
    double scale = 0;
    for (int i = 0; i < dim * dim; i++)
        scale = fmax(scale, fabs(ref_cov[i]));
    for (int i = 0; i < dim; i++)
        assert_close(mean[i], ref_mean[i], 1e-13, "mean vs numpy");
    for (int i = 0; i < dim * dim; i++)
        assert_close(cov[i], ref_cov[i], 1e-13 * scale, "numpy.cov");
    dc_frechet_result r;
    assert_int_equal(dc_frechet_distance(a, na, b, nb, dim, &r, &err), DC_OK);
    print_message("%s: FD %.12g (scipy sqrtm %.12g, eigvals %.12g), %d sweeps, %d clamped, "
                  "most negative %.3g\n",
                  name, r.distance, ref[0], ref[3], r.sweeps, r.clamped, r.most_negative);
    assert_close(r.mean_term, ref[1], 1e-12 * ref[1], "mean term");
    assert_close(r.distance, r.mean_term + r.trace_term, 1e-12 * r.distance, "FD = sum of terms");
    if (full_rank) {
        /* well-conditioned: scipy's sqrtm is accurate to ~1e-12 here */
        assert_close(r.distance, ref[0], 1e-9 * ref[0], "FD vs scipy.linalg.sqrtm");
        assert_close(r.trace_term, ref[2], 1e-9 * ref[0], "trace term vs sqrtm");
        assert_int_equal(r.clamped, 0);
    } else {
        /* singular covariances: sqrtm of a singular product is unreliable; the general
         * eigen-solver's eigenvalues of S1 S2 are the oracle */
        assert_close(r.distance, ref[3], 1e-7 * ref[3], "FD vs eigvals(S1 S2)");
        assert_true(r.clamped > 0); /* rank < dim: zero eigenvalues, some rounded below 0 */
        assert_true(r.most_negative < 0 && r.most_negative > -1e-9 * scale);
    }
    /* the same from precomputed statistics */
    double *mean2 = malloc(sizeof(double) * dim), *cov2 = malloc(sizeof(double) * dim * dim);
    assert_true(mean2 && cov2);
    assert_int_equal(dc_feature_stats(b, nb, dim, mean2, cov2, &err), DC_OK);
    dc_frechet_result r2;
    assert_int_equal(dc_frechet_distance_stats(dim, mean, cov, mean2, cov2, &r2, &err), DC_OK);
    assert_true(r2.distance == r.distance);
    free(ref), free(ref_mean), free(ref_cov), free(mean), free(cov), free(mean2), free(cov2);
}

static void test_frechet_matches_scipy(void **state) {
    const fixture *f = *state;
    check_frechet_case(f, "fd", f->fd_a, FD_NA, f->fd_b, FD_NB, FD_DIM, 1);
    check_frechet_case(f, "fdr", f->fdr_a, FDR_NA, f->fdr_b, FDR_NB, FDR_DIM, 0);
}

static void test_frechet_known_answers(void **state) {
    (void)state;
    enum { N = 400, D = 24 };
    dc_rng rng;
    dc_rng_seed(&rng, 11);
    /* values on a 1/1024 grid in [-8, 8]: adding a shift on a 1/8 grid is exact in float, so
     * the shifted set has exactly the same covariance */
    float *a = new_floats((size_t)N * D), *b = new_floats((size_t)N * D);
    float shift[D];
    double want = 0;
    for (int j = 0; j < D; j++) {
        shift[j] = (float)((int)dc_rng_below(&rng, 33) - 16) / 8.0f;
        want += (double)shift[j] * shift[j];
    }
    for (int i = 0; i < N * D; i++) {
        float v = dc_rng_normal(&rng) * (1.0f + (float)(i % D) / D);
        v = fmaxf(-8.0f, fminf(8.0f, v));
        a[i] = roundf(v * 1024.0f) / 1024.0f;
        b[i] = a[i] + shift[i % D];
    }
    dc_error err = {0};
    dc_frechet_result r;
    assert_int_equal(dc_frechet_distance(a, N, a, N, D, &r, &err), DC_OK);
    double trace = 0;
    double mean[D], *cov = malloc(sizeof(double) * D * D);
    assert_non_null(cov);
    assert_int_equal(dc_feature_stats(a, N, D, mean, cov, &err), DC_OK);
    for (int j = 0; j < D; j++)
        trace += cov[j * D + j];
    assert_close(r.distance, 0.0, 1e-12 * trace, "FD(A, A)");
    assert_close(r.mean_term, 0.0, 0.0, "mean term of FD(A, A)");
    assert_int_equal(dc_frechet_distance(a, N, b, N, D, &r, &err), DC_OK);
    assert_close(r.mean_term, want, 1e-12 * want, "|d mu|^2");
    assert_close(r.distance, want, 1e-10 * trace, "FD(A, A + d) = |d|^2");
    /* a covariance with a clearly negative eigenvalue is refused */
    for (int i = 0; i < D; i++)
        cov[i * D + i] = i == 3 ? -1.0 : cov[i * D + i];
    dc_status s = dc_frechet_distance_stats(D, mean, cov, mean, cov, &r, &err);
    assert_int_equal(s, DC_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "covariance 1 is not positive semi-definite"));
    free(a), free(b), free(cov);
}

/* ------------------------------------------------------- nearest neighbours */

static void test_knn_matches_scipy(void **state) {
    const fixture *f = *state;
    double *ref_d = oracle(f, "knn_d", (size_t)PR_NFAKE * 3);
    double *ref_i = oracle(f, "knn_i", (size_t)PR_NFAKE * 3);
    double *ref_self = oracle(f, "knn_self", (size_t)PR_NREAL * 3);
    double *dist = malloc(sizeof(double) * PR_NREAL * 3);
    int *index = malloc(sizeof(int) * PR_NREAL * 3);
    assert_true(dist && index);
    dc_error err = {0};
    assert_int_equal(dc_knn_distances(f->pr_fake, PR_NFAKE, f->pr_real, PR_NREAL, PR_DIM, 3, 0,
                                      dist, index, &err),
                     DC_OK);
    for (int i = 0; i < PR_NFAKE * 3; i++) {
        assert_close(dist[i], ref_d[i], 1e-13 * ref_d[i], "k-NN distance vs cdist");
        assert_int_equal(index[i], (int)ref_i[i]);
    }
    assert_int_equal(dc_knn_distances(f->pr_real, PR_NREAL, f->pr_real, PR_NREAL, PR_DIM, 3, 1,
                                      dist, NULL, &err),
                     DC_OK);
    for (int i = 0; i < PR_NREAL * 3; i++)
        assert_close(dist[i], ref_self[i], 1e-13 * ref_self[i], "k-NN within a set vs cdist");
    /* within one set a row is not its own neighbour: at most n - 1 of them */
    assert_int_equal(dc_knn_distances(f->pr_real, 4, f->pr_real, 4, PR_DIM, 4, 1, dist, NULL, &err),
                     DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "k = 4 but the reference set offers 3 rows besides the query"));
    free(ref_d), free(ref_i), free(ref_self), free(dist), free(index);
}

static void test_precision_recall_matches_numpy(void **state) {
    const fixture *f = *state;
    double *k3 = oracle(f, "pr_k3", 2), *k5 = oracle(f, "pr_k5", 2);
    double *large = oracle(f, "prl_k3", 2);
    dc_error err = {0};
    dc_precision_recall pr;
    assert_int_equal(dc_precision_recall_compute(f->pr_real, PR_NREAL, f->pr_fake, PR_NFAKE, PR_DIM,
                                                 0, &pr, &err),
                     DC_OK);
    assert_int_equal(pr.k, DC_PRECISION_RECALL_K);
    print_message("k=3: precision %.4f recall %.4f (numpy %.4f %.4f)\n", pr.precision, pr.recall,
                  k3[0], k3[1]);
    assert_true(k3[0] > 0.2 && k3[0] < 0.98 && k3[1] > 0.2 && k3[1] < 0.98); /* not trivial */
    assert_close(pr.precision, k3[0], 1e-12, "precision k=3");
    assert_close(pr.recall, k3[1], 1e-12, "recall k=3");
    assert_int_equal(dc_precision_recall_compute(f->pr_real, PR_NREAL, f->pr_fake, PR_NFAKE, PR_DIM,
                                                 5, &pr, &err),
                     DC_OK);
    assert_close(pr.precision, k5[0], 1e-12, "precision k=5");
    assert_close(pr.recall, k5[1], 1e-12, "recall k=5");
    /* several distance blocks; once with OpenBLAS's threads, once split over OpenMP's */
    const int blas_threads = openblas_get_num_threads();
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) openblas_set_num_threads(1);
        assert_int_equal(dc_precision_recall_compute(f->prl_real, PRL_NREAL, f->prl_fake, PRL_NFAKE,
                                                     PRL_DIM, 3, &pr, &err),
                         DC_OK);
        assert_close(pr.precision, large[0], 1e-12, "precision, 2500 x 2300");
        assert_close(pr.recall, large[1], 1e-12, "recall, 2500 x 2300");
    }
    openblas_set_num_threads(blas_threads);
    free(k3), free(k5), free(large);
}

static void test_precision_recall_known_answers(void **state) {
    const fixture *f = *state;
    dc_error err = {0};
    dc_precision_recall pr;
    assert_int_equal(dc_precision_recall_compute(f->pr_real, PR_NREAL, f->pr_real, PR_NREAL, PR_DIM,
                                                 3, &pr, &err),
                     DC_OK);
    assert_true(pr.precision == 1.0 && pr.recall == 1.0);
    /* a far-away copy: nothing inside the other manifold */
    float *far = new_floats((size_t)PR_NREAL * PR_DIM);
    for (int i = 0; i < PR_NREAL * PR_DIM; i++)
        far[i] = f->pr_real[i] + 100.0f;
    assert_int_equal(
        dc_precision_recall_compute(f->pr_real, PR_NREAL, far, PR_NREAL, PR_DIM, 3, &pr, &err),
        DC_OK);
    assert_true(pr.precision == 0.0 && pr.recall == 0.0);
    /* errors name what is wrong */
    assert_int_equal(
        dc_precision_recall_compute(f->pr_real, 3, far, PR_NREAL, PR_DIM, 3, &pr, &err),
        DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "real 3"));
    far[5 * PR_DIM + 2] = NAN;
    assert_int_equal(
        dc_precision_recall_compute(f->pr_real, PR_NREAL, far, PR_NREAL, PR_DIM, 3, &pr, &err),
        DC_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "generated features: row 5, column 2"));
    free(far);
}

/* ---------------------------------------------------------- class histogram */

static void test_class_histogram(void **state) {
    const fixture *f = *state;
    double *ref = oracle(f, "hist", 3), *ref_counts = oracle(f, "hist_counts", N_CLASSES);
    int64_t counts[N_CLASSES];
    dc_class_histogram h;
    dc_error err = {0};
    assert_int_equal(dc_class_histogram_compute(f->labels, N_LABELS, N_CLASSES, counts, &h, &err),
                     DC_OK);
    for (int c = 0; c < N_CLASSES; c++)
        assert_int_equal(counts[c], (int64_t)ref_counts[c]);
    assert_close(h.entropy_bits, ref[0], 1e-12, "entropy (bits)");
    assert_close(h.top_share, ref[1], 1e-15, "top share");
    assert_int_equal(h.top_class, (int)ref[2]);
    assert_close(h.entropy_norm, ref[0] / log2(N_CLASSES), 1e-12, "normalised entropy");
    /* one class only: entropy 0, top share 1; argmax of scores picks it */
    float scores[4 * 3] = {0, 2, 1, -1, 5, 4, 0, 3, 3, 1, 9, 9};
    int labels[4];
    assert_int_equal(dc_argmax_rows(scores, 4, 3, labels, &err), DC_OK);
    assert_int_equal(labels[0], 1), assert_int_equal(labels[1], 1);
    assert_int_equal(labels[2], 1), assert_int_equal(labels[3], 1); /* ties: lowest index */
    assert_int_equal(dc_class_histogram_compute(labels, 4, 3, counts, &h, &err), DC_OK);
    assert_close(h.entropy_bits, 0.0, 0.0, "entropy of one class");
    assert_close(h.top_share, 1.0, 0.0, "top share of one class");
    labels[2] = 3;
    assert_int_equal(dc_class_histogram_compute(labels, 4, 3, counts, &h, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "label 3 of item 2"));
    free(ref), free(ref_counts);
}

/* --------------------------------------------------- memorisation / novelty */

static void test_memorisation_matches_numpy(void **state) {
    const fixture *f = *state;
    double *ref = oracle(f, "mem", 6), *ref_train = oracle(f, "memt", 6);
    double *ref_nearest = oracle(f, "mem_nearest", MEM_NSAMPLES);
    double *ref_second = oracle(f, "mem_second", MEM_NSAMPLES);
    double *ref_index = oracle(f, "mem_index", MEM_NSAMPLES);
    double nearest[MEM_NSAMPLES], second[MEM_NSAMPLES];
    int index[MEM_NSAMPLES];
    dc_memorisation m;
    dc_error err = {0};
    assert_int_equal(dc_memorisation_compute(f->mem_samples, MEM_NSAMPLES, f->mem_train, MEM_NTRAIN,
                                             MEM_NUMEL, nearest, second, index, &m, &err),
                     DC_OK);
    const double got[6] = {m.threshold,    m.share_memorised, m.mean_ratio,
                           m.mean_nearest, m.min_nearest,     m.rms_nearest};
    const char *names[6] = {"threshold",    "share memorised", "mean ratio",
                            "mean nearest", "min nearest",     "RMS nearest"};
    for (int i = 0; i < 6; i++)
        assert_close(got[i], ref[i], 1e-13, names[i]);
    /* near-copies and blends of two training images are both closer to a training image
     * than any two training images are to each other; a copy has one nearest, a blend two */
    for (int i = 0; i < 20; i++)
        assert_true(nearest[i] < m.threshold);
    for (int i = 0; i < 10; i++)
        assert_true(nearest[i] < 0.05 * second[i]);
    for (int i = 10; i < 20; i++)
        assert_true(nearest[i] > 0.95 * second[i]);
    for (int i = 0; i < MEM_NSAMPLES; i++) {
        assert_close(nearest[i], ref_nearest[i], 1e-13, "nearest distance");
        assert_close(second[i], ref_second[i], 1e-13, "2nd nearest distance");
        assert_int_equal(index[i], (int)ref_index[i]);
    }
    for (int i = 0; i < 10; i++)
        assert_int_equal(index[i], 3 * i % MEM_NTRAIN);
    assert_int_equal(dc_memorisation_train(f->mem_train, MEM_NTRAIN, MEM_NUMEL, &m, &err), DC_OK);
    const double got_train[6] = {m.threshold,    m.share_memorised, m.mean_ratio,
                                 m.mean_nearest, m.min_nearest,     m.rms_nearest};
    for (int i = 0; i < 6; i++)
        assert_close(got_train[i], ref_train[i], 1e-13, names[i]);
    assert_close(m.share_memorised, 0.0, 0.0, "the training set's own share");
    free(ref), free(ref_train), free(ref_nearest), free(ref_second), free(ref_index);
}

/* ------------------------------------------------------------ silhouettes */

static void test_silhouette_matches_numpy(void **state) {
    const fixture *f = *state;
    double *ref = oracle(f, "sil", 3);
    dc_silhouette_figures s;
    dc_error err = {0};
    assert_int_equal(dc_silhouette_figures_compute(f->sil, SIL_N, SIL_C, SIL_H, SIL_W, &s, &err),
                     DC_OK);
    assert_close(s.mid_grey_share, ref[0], 1e-15, "mid-grey share");
    assert_close(s.edge_sharpness, ref[1], 1e-13, "edge sharpness");
    assert_close(s.edge_pairs, ref[2], 1e-12, "edge pairs per image");
    free(ref);
}

/* Gaussian blur (sigma in pixels, zero-padded edges normalised away) of one plane. */
static void blur_plane(const float *src, float *dst, int h, int w, float sigma) {
    const int r = (int)ceilf(3 * sigma);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s = 0, ws = 0;
            for (int dy = -r; dy <= r; dy++)
                for (int dx = -r; dx <= r; dx++) {
                    const int yy = y + dy, xx = x + dx;
                    if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                    const double g = exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma));
                    s += g * src[yy * w + xx];
                    ws += g;
                }
            dst[y * w + x] = (float)(s / ws);
        }
}

static void test_silhouette_known_answers(void **state) {
    (void)state;
    enum { H = 32, W = 32 };
    float sharp[H * W], soft[H * W], softer[H * W], grey[H * W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            /* a gun-like shape: a barrel and a grip */
            const int in =
                (y >= 8 && y < 14 && x >= 3 && x < 29) || (y >= 14 && y < 26 && x >= 18 && x < 24);
            sharp[y * W + x] = in ? 1.0f : -1.0f;
            grey[y * W + x] = 0.0f;
        }
    blur_plane(sharp, soft, H, W, 0.7f);
    blur_plane(sharp, softer, H, W, 1.5f);
    dc_silhouette_figures s_sharp, s_soft, s_softer, s_grey;
    dc_error err = {0};
    assert_int_equal(dc_silhouette_figures_compute(sharp, 1, 1, H, W, &s_sharp, &err), DC_OK);
    assert_int_equal(dc_silhouette_figures_compute(soft, 1, 1, H, W, &s_soft, &err), DC_OK);
    assert_int_equal(dc_silhouette_figures_compute(softer, 1, 1, H, W, &s_softer, &err), DC_OK);
    assert_int_equal(dc_silhouette_figures_compute(grey, 1, 1, H, W, &s_grey, &err), DC_OK);
    print_message("sharpness: sharp %.3f, blur 0.7 %.3f, blur 1.5 %.3f; mid-grey %.3f %.3f %.3f\n",
                  s_sharp.edge_sharpness, s_soft.edge_sharpness, s_softer.edge_sharpness,
                  s_sharp.mid_grey_share, s_soft.mid_grey_share, s_softer.mid_grey_share);
    assert_close(s_sharp.edge_sharpness, 1.0, 0.0, "sharp silhouette");
    assert_close(s_sharp.mid_grey_share, 0.0, 0.0, "sharp silhouette mid-grey");
    /* the outline: barrel 2 * 26 + 2 * 6, grip 2 * 12 + 6, less the 6 shared pixels */
    assert_close(s_sharp.edge_pairs, 2 * 26 + 2 * 6 + 2 * 12 + 6 - 6, 0.0, "edge length");
    assert_true(s_soft.edge_sharpness < s_sharp.edge_sharpness);
    assert_true(s_softer.edge_sharpness < s_soft.edge_sharpness);
    assert_true(s_soft.mid_grey_share > 0 && s_softer.mid_grey_share > s_soft.mid_grey_share);
    assert_close(s_grey.mid_grey_share, 1.0, 0.0, "all-grey mid-grey share");
    assert_close(s_grey.edge_sharpness, 0.0, 0.0, "all-grey sharpness (no edge)");
    assert_close(s_grey.edge_pairs, 0.0, 0.0, "all-grey edges");
    grey[40] = INFINITY;
    assert_int_equal(dc_silhouette_figures_compute(grey, 1, 1, H, W, &s_grey, &err),
                     DC_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "image 0 has inf at value 40"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eigen_decomposition),
        cmocka_unit_test(test_frechet_matches_scipy),
        cmocka_unit_test(test_frechet_known_answers),
        cmocka_unit_test(test_knn_matches_scipy),
        cmocka_unit_test(test_precision_recall_matches_numpy),
        cmocka_unit_test(test_precision_recall_known_answers),
        cmocka_unit_test(test_class_histogram),
        cmocka_unit_test(test_memorisation_matches_numpy),
        cmocka_unit_test(test_silhouette_matches_numpy),
        cmocka_unit_test(test_silhouette_known_answers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
