/* deconv eval for generative runs: the verdicts on constructed sample sets (noise, grey,
 * speckle, blank, copies of the training images, a jittered training set, and new shapes
 * from the training images' own distribution), the --json report read back and checked
 * against figures recomputed here, the pinned Fashion-MNIST classifier's hash, and the
 * command end to end on tiny trained runs. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "deconv/data.h"
#include "deconv/image.h"
#include "deconv/io.h"
#include "deconv/model.h"
#include "testutil.h"

/* The report and the small-data block are the CLI's own code (host/cli/eval_report.c),
 * compiled into this test so that the verdicts are checked on inputs built here. */
#include "cli/eval_report.c"

#define S 32
#define N_TRAIN 30

/* A silhouette: black (-1) rectangle and disk at random places on white (+1). */
static void shape(dc_rng *rng, float *img) {
    const int x0 = 2 + (int)dc_rng_below(rng, 12), y0 = 2 + (int)dc_rng_below(rng, 12);
    const int w = 6 + (int)dc_rng_below(rng, 14), h = 3 + (int)dc_rng_below(rng, 8);
    const float cx = 6 + 20 * dc_rng_uniform(rng), cy = 6 + 20 * dc_rng_uniform(rng);
    const float r = 2 + 5 * dc_rng_uniform(rng);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            const int in_rect = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
            const int in_disk = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
            img[y * S + x] = in_rect || in_disk ? -1.0f : 1.0f;
        }
}

static float *shapes(int n, uint64_t seed) {
    float *x = malloc(sizeof(float) * n * S * S);
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) shape(&rng, x + (size_t)i * S * S);
    return x;
}

/* Run the small-data block on samples against N_TRAIN training shapes; the report is
 * returned (text to /dev/null). */
static ev_report judge(const float *samples, int n, const float *train) {
    ev_report r;
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    assert_int_equal(ev_report_init(&r, devnull), 0);
    dc_error err = {0};
    if (ev_small_data(&r, samples, n, train, N_TRAIN, 1, S, S, &err)) fail_msg("%s", err.msg);
    ev_report_finish(&r);
    fclose(devnull);
    r.text = NULL;
    return r;
}

/* The verdict on `figure` (it must be there). */
static int verdict(const cJSON *root, const char *figure) {
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(root, "verdicts")) {
        const cJSON *f = cJSON_GetObjectItem(v, "figure");
        if (cJSON_IsString(f) && strcmp(f->valuestring, figure) == 0) {
            const cJSON *p = cJSON_GetObjectItem(v, "pass");
            assert_true(cJSON_IsBool(p));
            assert_true(cJSON_IsString(cJSON_GetObjectItem(v, "text")));
            return cJSON_IsTrue(p);
        }
    }
    fail_msg("no verdict on '%s'", figure);
    return -1;
}

static int overall(const cJSON *root) {
    const cJSON *p = cJSON_GetObjectItem(root, "pass");
    assert_true(cJSON_IsBool(p));
    return cJSON_IsTrue(p);
}

static void test_noise_and_grey_fail_realism(void **state) {
    (void)state;
    float *train = shapes(N_TRAIN, 1);
    const int n = 24;
    float *x = malloc(sizeof(float) * n * S * S);
    dc_rng rng;
    dc_rng_seed(&rng, 7);
    /* uniform noise in [-1, 1]: half its pixels are mid-grey, and it is far from everything */
    for (int i = 0; i < n * S * S; i++) x[i] = 2 * dc_rng_uniform(&rng) - 1;
    ev_report r = judge(x, n, train);
    assert_false(verdict(r.root, "realism (mid-grey)"));
    assert_false(verdict(r.root, "novelty"));
    assert_false(overall(r.root));
    ev_report_free(&r);
    /* Gaussian noise, std 1 */
    for (int i = 0; i < n * S * S; i++) x[i] = dc_rng_normal(&rng);
    r = judge(x, n, train);
    assert_false(verdict(r.root, "realism (mid-grey)"));
    assert_false(verdict(r.root, "novelty"));
    assert_false(overall(r.root));
    ev_report_free(&r);
    /* all grey (MSE's optimum on silhouettes it cannot place): no edges, no spread */
    for (int i = 0; i < n * S * S; i++) x[i] = 0.0f;
    r = judge(x, n, train);
    assert_false(verdict(r.root, "realism (mid-grey)"));
    assert_false(verdict(r.root, "realism (edges)"));
    assert_false(verdict(r.root, "novelty"));
    assert_false(verdict(r.root, "diversity"));
    assert_false(overall(r.root));
    ev_report_free(&r);
    /* grey mush with a faint checkerboard */
    for (int i = 0; i < n * S * S; i++) x[i] = 0.1f * (float)(((i % S) + (i / S)) % 2 ? 1 : -1);
    r = judge(x, n, train);
    assert_false(verdict(r.root, "realism (mid-grey)"));
    assert_false(verdict(r.root, "novelty"));
    ev_report_free(&r);
    /* black-and-white speckle: no mid-grey at all, but edges everywhere */
    for (int i = 0; i < n * S * S; i++) x[i] = dc_rng_uniform(&rng) < 0.5f ? -1.0f : 1.0f;
    r = judge(x, n, train);
    assert_true(verdict(r.root, "realism (mid-grey)"));
    assert_false(verdict(r.root, "realism (edges)"));
    assert_false(verdict(r.root, "novelty"));
    assert_false(overall(r.root));
    ev_report_free(&r);
    /* blank white canvases: no edges */
    for (int i = 0; i < n * S * S; i++) x[i] = 1.0f;
    r = judge(x, n, train);
    assert_false(verdict(r.root, "realism (edges)"));
    assert_false(verdict(r.root, "novelty"));
    assert_false(overall(r.root));
    ev_report_free(&r);
    free(x);
    free(train);
}

static void test_copies_fail_memorisation(void **state) {
    (void)state;
    float *train = shapes(N_TRAIN, 1);
    /* the training images themselves: realistic, but every one a copy */
    ev_report r = judge(train, N_TRAIN, train);
    assert_true(verdict(r.root, "realism (mid-grey)"));
    assert_true(verdict(r.root, "realism (edges)"));
    assert_false(verdict(r.root, "memorisation"));
    assert_false(verdict(r.root, "novelty"));
    assert_false(overall(r.root));
    const cJSON *sd = cJSON_GetObjectItem(r.root, "small_data");
    assert_float_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(sd, "samples"), "memorised_share")->valuedouble,
                       1.0, 0.0);
    ev_report_free(&r);
    /* a jittered training set: each training image with small pixel noise (std 0.05) */
    float *j = malloc(sizeof(float) * N_TRAIN * S * S);
    dc_rng rng;
    dc_rng_seed(&rng, 11);
    for (int i = 0; i < N_TRAIN * S * S; i++) j[i] = train[i] + 0.05f * dc_rng_normal(&rng);
    r = judge(j, N_TRAIN, train);
    assert_true(verdict(r.root, "realism (mid-grey)"));
    assert_false(verdict(r.root, "memorisation"));
    assert_false(verdict(r.root, "novelty"));
    assert_false(overall(r.root));
    ev_report_free(&r);
    free(j);
    free(train);
}

/* New shapes from the training images' own distribution pass: the verdicts are not a
 * blanket FAIL. */
static void test_new_shapes_pass(void **state) {
    (void)state;
    float *train = shapes(N_TRAIN, 1);
    float *fresh = shapes(24, 2);
    ev_report r = judge(fresh, 24, train);
    assert_true(verdict(r.root, "realism (mid-grey)"));
    assert_true(verdict(r.root, "realism (edges)"));
    assert_true(verdict(r.root, "memorisation"));
    assert_true(verdict(r.root, "novelty"));
    assert_true(verdict(r.root, "diversity"));
    assert_true(overall(r.root));
    ev_report_free(&r);
    free(fresh);
    free(train);
}

/* ----------------------------------------------------------------- end to end */
static char *g_dir;

static int setup(void **state) {
    (void)state;
    g_dir = tu_tmpdir("evalcli");
    if (!g_dir) return -1;
    char data[1024];
    snprintf(data, sizeof data, "%s/data", g_dir);
    mkdir(data, 0755);
    dc_rng rng;
    dc_rng_seed(&rng, 5);
    dc_error err = {0};
    for (int i = 0; i < 16; i++) {
        float img[S * S];
        shape(&rng, img);
        char p[1200];
        snprintf(p, sizeof p, "%s/s%02d.png", data, i);
        if (dc_image_write_png(p, img, 1, S, S, DC_RANGE_PM1, &err) != DC_OK) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tu_system("rm -rf '%s'", g_dir);
    free(g_dir);
    return 0;
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(s);
    if (!j) fail_msg("%s is not JSON: %.200s", path, s);
    free(s);
    return j;
}

static double num(const cJSON *o, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItem(o, a);
    if (b) x = cJSON_GetObjectItem(x, b);
    if (!cJSON_IsNumber(x)) fail_msg("%s.%s is not a number", a, b ? b : "");
    return x->valuedouble;
}

#define TINY "--size 32 --base 4 --blocks 2 --latent 8 --batch 4 --device cpu --quiet --threads 1"

static void test_eval_json_end_to_end(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    char run[1200];
    snprintf(run, sizeof run, "%s/run_complete", g_dir);
    /* --val 0: the training split is the whole folder, so its figures can be recomputed here */
    assert_int_equal(tu_system("%s train --model complete --data %s/data --val 0 --epochs 2 --out %s " TINY
                               " --sample-every 100",
                               bin, g_dir, run),
                     0);
    assert_int_equal(tu_system("%s eval %s --device cpu --samples 8 --draws 4 --json %s/eval.json > %s/eval.txt",
                               bin, run, run, run),
                     0);
    char path[1300];
    snprintf(path, sizeof path, "%s/eval.json", run);
    cJSON *j = read_json(path);
    /* every verdict line of the text is in the JSON, and the overall pass agrees with them */
    const char *figures[] = {"completion", "refinement", "code matters", "realism (mid-grey)",
                             "realism (edges)", "memorisation", "novelty", "diversity"};
    int all = 1;
    for (size_t k = 0; k < sizeof figures / sizeof *figures; k++) {
        all &= verdict(j, figures[k]);
        assert_int_equal(tu_system("grep -q '  %s: \\(PASS\\|FAIL\\) ' %s/eval.txt", figures[k], run), 0);
    }
    assert_int_equal(overall(j), all);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "verdicts")), 8);
    assert_int_equal((int)num(j, "n_samples", NULL), 8);
    assert_int_equal((int)num(j, "n_train", NULL), 16);
    assert_string_equal(cJSON_GetObjectItem(j, "kind")->valuestring, "complete");
    const cJSON *sd = cJSON_GetObjectItem(j, "small_data");
    assert_int_equal((int)num(sd, "n_samples", NULL), 8);
    assert_int_equal((int)num(sd, "n_train", NULL), 16);
    /* the training images' floor, recomputed here from the folder: mid-grey share by a plain
     * loop, nearest distances by brute force */
    dc_dataset *ds = NULL;
    dc_error err = {0};
    char data[1200];
    snprintf(data, sizeof data, "%s/data", g_dir);
    assert_int_equal(dc_dataset_load_folder(data, S, 1, &ds, &err), DC_OK);
    long grey = 0;
    double mean_nearest = 0, min_nearest = INFINITY;
    for (int i = 0; i < ds->n; i++) {
        const float *a = dc_dataset_image(ds, i);
        for (int p = 0; p < S * S; p++) grey += fabsf(a[p]) < 0.5f;
        double best = INFINITY;
        for (int k = 0; k < ds->n; k++) {
            if (k == i) continue;
            const float *b = dc_dataset_image(ds, k);
            double s = 0;
            for (int p = 0; p < S * S; p++) s += ((double)a[p] - b[p]) * ((double)a[p] - b[p]);
            best = fmin(best, sqrt(s / (S * S)));
        }
        mean_nearest += best / ds->n;
        min_nearest = fmin(min_nearest, best);
    }
    const cJSON *tr = cJSON_GetObjectItem(sd, "training");
    assert_float_equal(num(tr, "mid_grey_share", NULL), (double)grey / (ds->n * S * S), 1e-12);
    assert_float_equal(num(tr, "mean_nearest", NULL), mean_nearest, 1e-6);
    assert_float_equal(num(tr, "min_nearest", NULL), min_nearest, 1e-6);
    assert_float_equal(num(sd, "copy_threshold", NULL), min_nearest, 1e-6);
    const double share = num(cJSON_GetObjectItem(sd, "samples"), "mid_grey_share", NULL);
    assert_true(share >= 0 && share <= 1);
    /* completion: the model and both baselines */
    const cJSON *c = cJSON_GetObjectItem(j, "completion");
    assert_float_equal(num(c, "model_psnr", NULL), 10 * log10(4 / num(c, "model_mse", NULL)), 1e-9);
    /* refinement (--passes): three passes, its verdict says whether they beat one */
    assert_int_equal((int)num(c, "refine_passes", NULL), 3);
    assert_float_equal(num(c, "refined_psnr", NULL), 10 * log10(4 / num(c, "refined_mse", NULL)),
                       1e-9);
    assert_int_equal(verdict(j, "refinement"), num(c, "refined_mse", NULL) <= num(c, "model_mse", NULL));
    assert_true(num(c, "nearest_baseline_mse", NULL) >= 0);
    assert_true(num(c, "mean_baseline_mse", NULL) > 0);
    /* not Fashion-MNIST: the Frechet block says why it is absent */
    assert_true(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "fashion_mnist"), "skipped")));
    assert_int_equal(tu_system("grep -q 'Frechet distance / precision / recall: not computed' %s/eval.txt", run), 0);
    dc_dataset_free(ds);
    /* --json -: stdout is the JSON alone (the text goes to stderr), the same report */
    assert_int_equal(tu_system("%s eval %s --device cpu --samples 8 --draws 4 --json - > %s/stdout.json "
                               "2> %s/stderr.txt",
                               bin, run, run, run),
                     0);
    snprintf(path, sizeof path, "%s/stdout.json", run);
    cJSON *j2 = read_json(path);
    assert_int_equal(overall(j2), overall(j));
    assert_float_equal(num(cJSON_GetObjectItem(cJSON_GetObjectItem(j2, "small_data"), "samples"),
                           "mean_nearest", NULL),
                       num(cJSON_GetObjectItem(sd, "samples"), "mean_nearest", NULL), 0);
    assert_int_equal(tu_system("grep -q 'realism (mid-grey): ' %s/stderr.txt", run), 0);
    cJSON_Delete(j2);
    cJSON_Delete(j);
    /* a vae and a glo run: the same report, without completion for glo */
    const char *kinds[] = {"vae", "glo"};
    for (int k = 0; k < 2; k++) {
        snprintf(run, sizeof run, "%s/run_%s", g_dir, kinds[k]);
        assert_int_equal(tu_system("%s train --model %s --data %s/data --epochs 2 --out %s " TINY
                                   " --sample-every 100",
                                   bin, kinds[k], g_dir, run),
                         0);
        assert_int_equal(tu_system("%s eval %s --device cpu --samples 6 --draws 3 --json %s/e.json >/dev/null",
                                   bin, run, run),
                         0);
        snprintf(path, sizeof path, "%s/e.json", run);
        j = read_json(path);
        verdict(j, "realism (mid-grey)");
        verdict(j, "novelty");
        assert_int_equal(cJSON_GetObjectItem(j, "completion") != NULL, k == 0);
        cJSON_Delete(j);
    }
    /* bad options are refused with the option named */
    assert_int_equal(tu_system("%s eval %s --device cpu --samples 0 2>%s/err.txt", bin, run, g_dir), 2);
    assert_int_equal(tu_system("grep -q -- '--samples' %s/err.txt", g_dir), 0);
    assert_int_equal(tu_system("%s eval %s --device cpu --samples 4 --json %s/no/such/dir/x.json "
                               ">/dev/null 2>%s/err.txt",
                               bin, run, g_dir, g_dir),
                     1);
    assert_int_equal(tu_system("grep -q -- '--json' %s/err.txt", g_dir), 0);
}

/* The pinned classifier's file is the one its recorded SHA-256 names (a retrained or
 * damaged file is noticed), and it is a 32x32 grey Fashion-MNIST classifier with the 128-d
 * 'gap' node whose features the Frechet distance uses. */
static void test_pinned_classifier(void **state) {
    (void)state;
    char path[2048], out[1200];
    snprintf(path, sizeof path, "%s/assets/fm32_classifier.safetensors", tu_source_dir());
    snprintf(out, sizeof out, "%s/sha.txt", g_dir);
    assert_int_equal(tu_system("sha256sum '%s' | cut -c1-64 > %s", path, out), 0);
    assert_int_equal(tu_system("diff -q %s '%s.sha256' >/dev/null || "
                               "{ echo \"SHA-256 of %s differs from the recorded one\"; exit 1; }",
                               out, path, path),
                     0);
    dc_meta meta = {0};
    dc_error err = {0};
    if (dc_checkpoint_read_meta(path, &meta, &err) != DC_OK) fail_msg("%s", err.msg);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_from_json(dc_meta_get(&meta, "model"), &spec, &err), DC_OK);
    assert_true(dc_model_kind_has(spec.kind, DC_KIND_CLASSIFIES));
    assert_int_equal(spec.size, 32);
    assert_int_equal(spec.channels, 1);
    assert_int_equal(spec.classes, 10);
    dc_backend *be = NULL;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model *m = NULL;
    assert_int_equal(dc_model_create(be, &spec, 2, &m, &err), DC_OK);
    if (dc_checkpoint_load(path, m->params, NULL, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    const int gap = dc_graph_find(m->g, "gap");
    assert_true(gap >= 0);
    int shape[DC_MAX_DIMS];
    const int nd = dc_graph_node_shape(m->g, gap, shape);
    int dim = 1;
    for (int d = 1; d < nd; d++) dim *= shape[d];
    assert_int_equal(dim, 128);
    dc_model_free(m);
    dc_backend_free(be);
    dc_meta_clear(&meta);
}

/* A Fashion-MNIST 32x32 run (trained on 2% of the training set for speed): the Frechet
 * block is there with its floor; the class histogram counts every sample. */
static void test_fashion_mnist_end_to_end(void **state) {
    (void)state;
    struct stat st;
    if (stat(DC_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", &st) != 0)
        TU_SKIP_OR_FAIL("Fashion-MNIST is not installed in " DC_FASHION_MNIST_DIR);
    const char *bin = tu_cli_path();
    char run[1200], path[1300];
    snprintf(run, sizeof run, "%s/run_fm", g_dir);
    assert_int_equal(tu_system("%s train --model vae --data fashion-mnist --val 0.98 --epochs 1 --out %s "
                               "--size 32 --base 4 --blocks 2 --latent 8 --batch 32 --device cpu --quiet "
                               "--threads 1 --sample-every 100",
                               bin, run),
                     0);
    const int n = 300;
    /* the first eval fills the cache (in the test's folder), the second reads it: the same figures */
    for (int k = 0; k < 2; k++)
        assert_int_equal(tu_system("DECONV_CACHE=%s/cache %s eval %s --device cpu --samples %d --draws 2 "
                                   "--limit 50 --json %s/e%d.json > %s/e.txt",
                                   g_dir, bin, run, n, run, k, run),
                         0);
    assert_int_equal(tu_system("grep -q 'from the cache' %s/e.txt", run), 0);
    snprintf(path, sizeof path, "%s/e0.json", run);
    cJSON *first = read_json(path);
    snprintf(path, sizeof path, "%s/e1.json", run);
    cJSON *j = read_json(path);
    const cJSON *fm = cJSON_GetObjectItem(j, "fashion_mnist");
    assert_true(cJSON_Compare(cJSON_GetObjectItem(first, "fashion_mnist"), fm, 1));
    cJSON_Delete(first);
    assert_null(cJSON_GetObjectItem(fm, "skipped"));
    assert_int_equal((int)num(fm, "feature_dim", NULL), 128);
    assert_int_equal((int)num(fm, "k", NULL), 3);
    assert_int_equal((int)num(fm, "n_test", NULL), 10000);
    const cJSON *s = cJSON_GetObjectItem(fm, "samples"), *fl = cJSON_GetObjectItem(fm, "floor_train_vs_test");
    assert_int_equal((int)num(s, "n", NULL), n);
    assert_int_equal((int)num(fl, "n", NULL), n);
    /* real training images are closer to the test set than a 1-epoch tiny model's samples */
    assert_true(num(fl, "frechet_distance", NULL) < num(s, "frechet_distance", NULL));
    assert_float_equal(num(s, "frechet_distance", NULL),
                       num(s, "frechet_mean_term", NULL) + num(s, "frechet_trace_term", NULL), 1e-9);
    const cJSON *h = cJSON_GetObjectItem(s, "class_counts");
    assert_int_equal(cJSON_GetArraySize(h), 10);
    double total = 0, top = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, h) {
        total += e->valuedouble;
        top = fmax(top, e->valuedouble);
    }
    assert_float_equal(total, n, 0);
    assert_float_equal(num(s, "top_class_share", NULL), top / n, 1e-12);
    for (int k = 0; k < 2; k++) {
        const cJSON *o = k ? fl : s;
        assert_true(num(o, "precision", NULL) >= 0 && num(o, "precision", NULL) <= 1);
        assert_true(num(o, "recall", NULL) >= 0 && num(o, "recall", NULL) <= 1);
    }
    verdict(j, "realism (Frechet distance)");
    verdict(j, "realism (precision)");
    verdict(j, "coverage (recall)");
    verdict(j, "class balance");
    assert_int_equal(tu_system("grep -q 'Frechet distance to the test set' %s/e.txt", run), 0);
    cJSON_Delete(j);
    /* a Fashion-MNIST run at 16x16: the block says why it is skipped, the rest is there */
    snprintf(run, sizeof run, "%s/run_fm16", g_dir);
    assert_int_equal(tu_system("%s train --model glo --data fashion-mnist --val 0.98 --epochs 1 --out %s "
                               "--size 16 --base 4 --blocks 2 --latent 8 --batch 32 --device cpu --quiet "
                               "--threads 1 --sample-every 100",
                               bin, run),
                     0);
    assert_int_equal(tu_system("%s eval %s --device cpu --samples 20 --json %s/e.json > %s/e.txt", bin, run,
                               run, run),
                     0);
    assert_int_equal(tu_system("grep -q 'needs 32x32 grey images' %s/e.txt", run), 0);
    snprintf(path, sizeof path, "%s/e.json", run);
    j = read_json(path);
    const cJSON *skipped = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "fashion_mnist"), "skipped");
    assert_true(cJSON_IsString(skipped));
    assert_non_null(strstr(skipped->valuestring, "32x32"));
    verdict(j, "realism (mid-grey)");
    cJSON_Delete(j);
}

/* A little-endian float32 .npy of `count` values in the given shape (what numpy.save writes). */
static void write_npy(const char *path, const float *v, size_t count, const char *shape,
                      const char *descr) {
    char header[128];
    int len = snprintf(header, sizeof header,
                       "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    /* pad with spaces so that magic + version + length + header ends on a 64-byte boundary */
    const int total = (10 + len + 1 + 63) / 64 * 64;
    while (10 + len + 1 < total)
        header[len++] = ' ';
    header[len++] = '\n';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    const unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 255), (unsigned char)(len >> 8)};
    assert_int_equal(fwrite(pre, 1, 10, f), 10);
    assert_int_equal(fwrite(header, 1, (size_t)len, f), (size_t)len);
    assert_int_equal(fwrite(v, sizeof(float), count, f), count);
    assert_int_equal(fclose(f), 0);
}

/* deconv eval --images: the Fashion-MNIST test set scored against itself sits at the
 * bottom of every figure (FD ~0, precision and recall 1); files of the wrong shape, type or
 * format, and a run given with --images, are refused with a message naming the problem. */
static void test_eval_images(void **state) {
    (void)state;
    struct stat st;
    if (stat(DC_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", &st) != 0)
        TU_SKIP_OR_FAIL("Fashion-MNIST is not installed in " DC_FASHION_MNIST_DIR);
    const char *bin = tu_cli_path();
    dc_dataset *test = NULL;
    dc_error err = {0};
    if (dc_dataset_load_path("fashion-mnist:test", 32, 1, &test, &err) != DC_OK)
        fail_msg("%s", err.msg);
    char path[1200], shape[64];
    snprintf(path, sizeof path, "%s/test_set.npy", g_dir);
    snprintf(shape, sizeof shape, "%d, 1, 32, 32", test->n);
    write_npy(path, dc_dataset_image(test, 0), (size_t)test->n * 32 * 32, shape, "<f4");
    assert_int_equal(
        tu_system("DECONV_CACHE=%s/cache %s eval --images %s --data fashion-mnist --device cpu "
                  "--json %s/images.json > %s/images.txt",
                  g_dir, bin, path, g_dir, g_dir),
        0);
    snprintf(path, sizeof path, "%s/images.json", g_dir);
    cJSON *j = read_json(path);
    assert_int_equal((int)num(j, "n_samples", NULL), test->n);
    const cJSON *fm = cJSON_GetObjectItem(j, "fashion_mnist");
    const cJSON *s = cJSON_GetObjectItem(fm, "samples"),
                *fl = cJSON_GetObjectItem(fm, "floor_train_vs_test");
    assert_int_equal((int)num(s, "n", NULL), test->n);
    /* the same features on both sides: only rounding in the matrix square root is left, a
     * hundredth of the floor of as many training images at most */
    const double fd = num(s, "frechet_distance", NULL),
                 floor_fd = num(fl, "frechet_distance", NULL);
    if (!(floor_fd > 0 && fabs(fd) < 0.01 * floor_fd))
        fail_msg("test set vs itself: FD %g (floor %g)", fd, floor_fd);
    assert_float_equal(num(s, "precision", NULL), 1.0, 0);
    assert_float_equal(num(s, "recall", NULL), 1.0, 0);
    assert_true(verdict(j, "realism (Frechet distance)"));
    assert_true(verdict(j, "realism (precision)"));
    assert_true(verdict(j, "coverage (recall)"));
    cJSON_Delete(j);
    assert_int_equal(tu_system("grep -q 'Frechet distance to the test set' %s/images.txt", g_dir),
                     0);

    /* the wrong shape: 16x16 images */
    snprintf(path, sizeof path, "%s/small.npy", g_dir);
    write_npy(path, dc_dataset_image(test, 0), 4 * 16 * 16, "4, 1, 16, 16", "<f4");
    assert_int_equal(tu_system("%s eval --images %s --device cpu 2> %s/err.txt", bin, path, g_dir),
                     1);
    assert_int_equal(
        tu_system("grep -q 'small.npy: shape \\[4, 1, 16, 16\\].*32x32 grey' %s/err.txt", g_dir),
        0);
    /* RGB 32x32 */
    write_npy(path, dc_dataset_image(test, 0), 2 * 3 * 32 * 32, "2, 3, 32, 32", "<f4");
    assert_int_equal(tu_system("%s eval --images %s --device cpu 2> %s/err.txt", bin, path, g_dir),
                     1);
    assert_int_equal(tu_system("grep -q 'shape \\[2, 3, 32, 32\\]' %s/err.txt", g_dir), 0);
    /* float64 values */
    write_npy(path, dc_dataset_image(test, 0), 2 * 32 * 32, "1, 1, 32, 32", "<f8");
    assert_int_equal(tu_system("%s eval --images %s --device cpu 2> %s/err.txt", bin, path, g_dir),
                     1);
    assert_int_equal(tu_system("grep -q \"float32 ('<f4')\" %s/err.txt", g_dir), 0);
    /* fewer values than the header promises */
    write_npy(path, dc_dataset_image(test, 0), 32 * 32, "2, 32, 32", "<f4");
    assert_int_equal(tu_system("%s eval --images %s --device cpu 2> %s/err.txt", bin, path, g_dir),
                     1);
    assert_int_equal(tu_system("grep -q 'not 2 images of 32x32 float32' %s/err.txt", g_dir), 0);
    /* not a .npy at all, a missing file, a run next to --images, another data set */
    assert_int_equal(
        tu_system("%s eval --images %s/images.json --device cpu 2> %s/err.txt", bin, g_dir, g_dir),
        1);
    assert_int_equal(tu_system("grep -q 'images.json: not a NumPy .npy file' %s/err.txt", g_dir),
                     0);
    assert_int_equal(
        tu_system("%s eval --images %s/none.npy --device cpu 2> %s/err.txt", bin, g_dir, g_dir), 1);
    assert_int_equal(tu_system("grep -q 'none.npy: No such file' %s/err.txt", g_dir), 0);
    /* misuse, not a failure: exit status 2 as for every usage error */
    assert_int_equal(
        tu_system("%s eval %s --images %s --device cpu 2> %s/err.txt", bin, g_dir, path, g_dir), 2);
    assert_int_equal(tu_system("grep -q 'not a run' %s/err.txt", g_dir), 0);
    assert_int_equal(
        tu_system("%s eval --images %s --data cifar --device cpu 2> %s/err.txt", bin, path, g_dir),
        2);
    assert_int_equal(tu_system("grep -q 'only fashion-mnist' %s/err.txt", g_dir), 0);
    dc_dataset_free(test);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noise_and_grey_fail_realism),
        cmocka_unit_test(test_copies_fail_memorisation),
        cmocka_unit_test(test_new_shapes_pass),
        cmocka_unit_test(test_eval_json_end_to_end),
        cmocka_unit_test(test_pinned_classifier),
        cmocka_unit_test(test_fashion_mnist_end_to_end),
        cmocka_unit_test(test_eval_images),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
