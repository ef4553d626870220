/* The explanation methods against a second route: hand-computed occlusion drops on a
 * linear model; guided / deconvnet / plain gradients against a backward pass written here
 * on the host for a tiny conv-relu-maxpool-dense network; CAM against the weighted sum of
 * the last feature maps read from the graph (and against the class score it must
 * average to); Grad-CAM against ReLU(CAM)/HW; ascent raising the score, bit-identical
 * for one seed; maxact against brute force; filters' count and range; flat maps reported;
 * CPU vs OpenCL; and the CLI end to end.
 *
 * Bounds: host references are float/double loops over the same float32 inputs, so maps
 * agree to 1e-4 relative to their largest magnitude (GEMM summation order). Occlusion
 * probabilities agree to 1e-5 absolute. CPU vs OpenCL: 1e-3 relative to the largest
 * magnitude (different GEMM kernels and reduction orders). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "deconv/data.h"
#include "deconv/image.h"
#include "deconv/model.h"
#include "deconv/viz.h"

#define MAP_TOL 1e-4
#define PROB_TOL 1e-5
#define PARITY_TOL 1e-3

static dc_backend *cpu(void) {
    dc_backend *be = NULL;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    return be;
}

/* A dc_model around a hand-built graph: the viz API only reads x, out, last_conv. */
static dc_model *wrap_graph(dc_backend *be, dc_params *p, dc_graph *g, int x, int out,
                            int last_conv) {
    dc_model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->be = be;
    m->params = p;
    m->owns_params = 1;
    m->g = g;
    m->batch = dc_graph_batch(g);
    m->x = x;
    m->out = out;
    m->last_conv = last_conv;
    m->target = m->weight = m->labels = m->index = m->latent = m->code = m->logvar = -1;
    m->noise = m->z_in = m->loss = m->recon = m->kl = -1;
    return m;
}

/* Every parameter uniform in [lo, hi]; batch-norm variances positive. */
static void randomize_params(dc_params *p, dc_rng *rng, float lo, float hi) {
    for (int i = 0; i < dc_params_count(p); i++) {
        dc_param *q = dc_params_get(p, i);
        float *w = malloc(sizeof(float) * q->numel);
        tu_fill_uniform(w, q->numel, rng, lo, hi);
        if (strstr(q->name, "running_var"))
            for (size_t j = 0; j < q->numel; j++)
                w[j] = 0.5f + fabsf(w[j]);
        assert_int_equal(dc_params_write(p, i, w), DC_OK);
        free(w);
    }
}

static void read_param(dc_params *p, const char *name, float *host) {
    int i = dc_params_find(p, name);
    if (i < 0) fail_msg("no parameter %s", name);
    assert_int_equal(dc_params_read(p, i, host), DC_OK);
}

static void softmax(const double *z, int k, double *p) {
    double mx = z[0], s = 0;
    for (int i = 1; i < k; i++)
        mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < k; i++)
        s += exp(z[i] - mx);
    for (int i = 0; i < k; i++)
        p[i] = exp(z[i] - mx) / s;
}

/* -------------------------------------------------------------- occlusion */
/* x [1, 5, 5] -> dense 3 -> softmax. Patch 2, stride 2: origins 0, 2 and the flush 3, so
 * rows / columns 2..3 are covered twice and their drop is the mean of two. */
static void test_occlusion_linear(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_params *p = NULL;
    dc_graph *g = NULL;
    enum { S = 5, K = 3, B = 4 };
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, B, &g), DC_OK);
    int x = dc_input(g, "x", 1, S, S);
    dc_name(g, "fc");
    int out = dc_dense(g, x, K);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    dc_model *m = wrap_graph(be, p, g, x, out, -1);
    dc_rng rng;
    dc_rng_seed(&rng, 11);
    randomize_params(p, &rng, -1.0f, 1.0f);
    float W[K * S * S], b[K], img[S * S];
    read_param(p, "fc.weight", W);
    read_param(p, "fc.bias", b);
    tu_fill_uniform(img, S * S, &rng, -1.0f, 1.0f);

    dc_viz_opts o;
    dc_viz_opts_default(&o);
    o.patch = 2;
    o.stride = 2;
    o.fill = 0.25f;
    o.target = 1;
    float map[S * S];
    dc_viz_info info;
    dc_error err = {0};
    if (dc_viz_occlusion(m, img, &o, map, &info, &err) != DC_OK) fail_msg("%s", err.msg);

    /* by hand */
    const int origins[3] = {0, 2, 3};
    double z[K], pr[K], sum[S * S] = {0};
    int cover[S * S] = {0};
    for (int k = 0; k < K; k++) {
        z[k] = b[k];
        for (int i = 0; i < S * S; i++)
            z[k] += (double)W[k * S * S + i] * img[i];
    }
    softmax(z, K, pr);
    const double p0 = pr[1];
    assert_true(fabs(info.prob - p0) < PROB_TOL);
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 3; c++) {
            float occ[S * S];
            memcpy(occ, img, sizeof occ);
            for (int y = origins[a]; y < origins[a] + 2; y++)
                for (int xx = origins[c]; xx < origins[c] + 2; xx++)
                    occ[y * S + xx] = 0.25f;
            for (int k = 0; k < K; k++) {
                z[k] = b[k];
                for (int i = 0; i < S * S; i++)
                    z[k] += (double)W[k * S * S + i] * occ[i];
            }
            softmax(z, K, pr);
            for (int y = origins[a]; y < origins[a] + 2; y++)
                for (int xx = origins[c]; xx < origins[c] + 2; xx++) {
                    sum[y * S + xx] += p0 - pr[1];
                    cover[y * S + xx]++;
                }
        }
    double worst = 0;
    for (int i = 0; i < S * S; i++) {
        assert_true(cover[i] > 0);
        worst = fmax(worst, fabs(map[i] - sum[i] / cover[i]));
    }
    print_message("  occlusion vs hand-computed drops: max abs err %.2e\n", worst);
    assert_true(worst < PROB_TOL);
    /* the drop is not trivially zero */
    assert_false(info.constant);
    dc_model_free(m);
    dc_backend_free(be);
}

/* ------------------------------------------ tiny conv-relu-pool-dense network */
enum { TS = 6, TC = 2, TP = 3, TK = 3 };
typedef struct tiny {
    dc_backend *be;
    dc_model *m;
    int conv, relu, pool;
    float cw[TC * 9], cb[TC], fw[TK * TC * TP * TP], fb[TK];
    float img[TS * TS];
    /* host forward */
    double z[TC * TS * TS], a[TC * TS * TS], pooled[TC * TP * TP];
    int sw[TC * TP * TP]; /* switch: index into the [TC, TS, TS] map */
    double logits[TK];
} tiny;

static void tiny_build(tiny *t, dc_backend *be, uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->be = be;
    dc_params *p = NULL;
    dc_graph *g = NULL;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, 1, &g), DC_OK);
    int x = dc_input(g, "x", 1, TS, TS);
    assert_int_equal(dc_graph_require_grad(g, x), DC_OK);
    dc_name(g, "conv");
    t->conv = dc_conv2d(g, x, TC, 3, 1, 1);
    dc_name(g, "relu");
    t->relu = dc_relu(g, t->conv);
    dc_name(g, "pool");
    t->pool = dc_maxpool2d(g, t->relu, 2, 2, 0);
    dc_name(g, "fc");
    int out = dc_dense(g, t->pool, TK);
    if (dc_graph_finalize(g) != DC_OK) fail_msg("%s", dc_graph_error(g)->msg);
    t->m = wrap_graph(be, p, g, x, out, t->relu);
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    randomize_params(p, &rng, -1.0f, 1.0f);
    read_param(p, "conv.weight", t->cw);
    read_param(p, "conv.bias", t->cb);
    read_param(p, "fc.weight", t->fw);
    read_param(p, "fc.bias", t->fb);
    tu_fill_uniform(t->img, TS * TS, &rng, -1.0f, 1.0f);
    /* host forward */
    for (int c = 0; c < TC; c++)
        for (int y = 0; y < TS; y++)
            for (int xx = 0; xx < TS; xx++) {
                double s = t->cb[c];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int iy = y + ky - 1, ix = xx + kx - 1;
                        if (iy < 0 || iy >= TS || ix < 0 || ix >= TS) continue;
                        s += (double)t->cw[c * 9 + ky * 3 + kx] * t->img[iy * TS + ix];
                    }
                t->z[(c * TS + y) * TS + xx] = s;
                t->a[(c * TS + y) * TS + xx] = s > 0 ? s : 0;
            }
    for (int c = 0; c < TC; c++)
        for (int py = 0; py < TP; py++)
            for (int px = 0; px < TP; px++) {
                int best = -1;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int i = (c * TS + 2 * py + dy) * TS + 2 * px + dx;
                        if (best < 0 || t->a[i] > t->a[best]) best = i;
                    }
                t->sw[(c * TP + py) * TP + px] = best;
                t->pooled[(c * TP + py) * TP + px] = t->a[best];
            }
    for (int k = 0; k < TK; k++) {
        double s = t->fb[k];
        for (int i = 0; i < TC * TP * TP; i++)
            s += (double)t->fw[k * TC * TP * TP + i] * t->pooled[i];
        t->logits[k] = s;
    }
}

/* Host backward from a gradient at the pool output, through unpooling (switches), the
 * ReLU rule of `mode` and the transposed conv. Returns in g_x [TS*TS]; g_z gets the
 * signal after the ReLU rule. */
static void tiny_backward(const tiny *t, const double *g_pool, dc_relu_mode mode, double *g_z,
                          double *g_x) {
    double g_a[TC * TS * TS] = {0};
    for (int i = 0; i < TC * TP * TP; i++)
        g_a[t->sw[i]] += g_pool[i];
    for (int i = 0; i < TC * TS * TS; i++) {
        const double gi = g_a[i], zi = t->z[i];
        if (mode == DC_RELU_NORMAL)
            g_z[i] = zi > 0 ? gi : 0;
        else if (mode == DC_RELU_GUIDED)
            g_z[i] = zi > 0 && gi > 0 ? gi : 0;
        else
            g_z[i] = gi > 0 ? gi : 0;
    }
    for (int i = 0; i < TS * TS; i++)
        g_x[i] = 0;
    for (int c = 0; c < TC; c++)
        for (int y = 0; y < TS; y++)
            for (int xx = 0; xx < TS; xx++)
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int iy = y + ky - 1, ix = xx + kx - 1;
                        if (iy < 0 || iy >= TS || ix < 0 || ix >= TS) continue;
                        g_x[iy * TS + ix] +=
                            t->cw[c * 9 + ky * 3 + kx] * g_z[(c * TS + y) * TS + xx];
                    }
}

static double rel_err_d(const float *a, const double *ref, int n) {
    double scale = 1e-6, worst = 0;
    for (int i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        worst = fmax(worst, fabs(a[i] - ref[i]));
    }
    return worst / scale;
}

static void test_guided_deconvnet_vs_host(void **state) {
    (void)state;
    dc_backend *be = cpu();
    int checked = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        tiny t;
        tiny_build(&t, be, seed);
        const int target = (int)(seed % TK);
        double g_pool[TC * TP * TP];
        for (int i = 0; i < TC * TP * TP; i++)
            g_pool[i] = t.fw[target * TC * TP * TP + i];
        double gz_n[TC * TS * TS], gz_g[TC * TS * TS], gz_d[TC * TS * TS];
        double gx_n[TS * TS], gx_g[TS * TS], gx_d[TS * TS];
        tiny_backward(&t, g_pool, DC_RELU_NORMAL, gz_n, gx_n);
        tiny_backward(&t, g_pool, DC_RELU_GUIDED, gz_g, gx_g);

        dc_viz_opts o;
        dc_viz_opts_default(&o);
        o.target = target;
        float map[TS * TS];
        dc_viz_info info;
        dc_error err = {0};
        /* guided */
        if (dc_viz_guided(t.m, t.img, &o, map, &info, &err) != DC_OK) fail_msg("%s", err.msg);
        assert_true(fabs(info.score - t.logits[target]) < 1e-4 * (1 + fabs(t.logits[target])));
        double e = rel_err_d(map, gx_g, TS * TS);
        if (!(e < MAP_TOL)) fail_msg("seed %d guided: rel err %g", (int)seed, e);
        /* plain gradient: saliency = |g| for one channel */
        if (dc_viz_saliency(t.m, t.img, &o, map, &info, &err) != DC_OK) fail_msg("%s", err.msg);
        double abs_n[TS * TS];
        for (int i = 0; i < TS * TS; i++)
            abs_n[i] = fabs(gx_n[i]);
        e = rel_err_d(map, abs_n, TS * TS);
        if (!(e < MAP_TOL)) fail_msg("seed %d saliency: rel err %g", (int)seed, e);
        /* the guided rule drops exactly the positive-input units with negative gradient */
        int differ = 0;
        for (int i = 0; i < TC * TS * TS; i++) {
            const int rule_differs = t.z[i] > 0 && gz_n[i] < 0;
            assert_int_equal(rule_differs, gz_n[i] != gz_g[i]);
            differ += rule_differs;
        }
        /* deconvnet from the pool layer, channel 1, at its maximum */
        o.layer = "pool";
        o.channel = 1;
        if (dc_viz_deconvnet(t.m, t.img, &o, map, &info, &err) != DC_OK) fail_msg("%s", err.msg);
        int best = 0;
        for (int i = 1; i < TP * TP; i++)
            if (t.pooled[TP * TP + i] > t.pooled[TP * TP + best]) best = i;
        assert_int_equal(info.channel, 1);
        assert_int_equal(info.pos_y * TP + info.pos_x, best);
        double seed_pool[TC * TP * TP] = {0};
        seed_pool[TP * TP + best] = t.pooled[TP * TP + best];
        tiny_backward(&t, seed_pool, DC_RELU_DECONVNET, gz_d, gx_d);
        e = rel_err_d(map, gx_d, TS * TS);
        if (!(e < MAP_TOL)) fail_msg("seed %d deconvnet: rel err %g", (int)seed, e);
        /* whole map of channel 0 */
        o.channel = 0;
        o.whole_map = 1;
        if (dc_viz_deconvnet(t.m, t.img, &o, map, &info, &err) != DC_OK) fail_msg("%s", err.msg);
        for (int i = 0; i < TC * TP * TP; i++)
            seed_pool[i] = i < TP * TP ? t.pooled[i] : 0;
        tiny_backward(&t, seed_pool, DC_RELU_DECONVNET, gz_d, gx_d);
        e = rel_err_d(map, gx_d, TS * TS);
        if (!(e < MAP_TOL)) fail_msg("seed %d deconvnet whole map: rel err %g", (int)seed, e);
        /* the deconvnet rule differs from the true gradient of the same seed exactly
         * where the forward input was <= 0 and the signal positive */
        double gz_dn[TC * TS * TS], gx_dn[TS * TS];
        tiny_backward(&t, seed_pool, DC_RELU_NORMAL, gz_dn, gx_dn);
        for (int i = 0; i < TC * TS * TS; i++) {
            const int rule_differs = !(t.z[i] > 0) && gz_d[i] > 0;
            assert_int_equal(rule_differs, gz_dn[i] != gz_d[i]);
            differ += rule_differs;
        }
        checked += differ > 0;
        dc_model_free(t.m);
    }
    /* the cases did exercise the rules */
    assert_true(checked >= 3);
    dc_backend_free(be);
}

/* ------------------------------------------------------ classifier presets */
static dc_model *small_classifier(dc_backend *be, int batchnorm, uint64_t seed) {
    dc_model_spec s;
    dc_error err = {0};
    assert_int_equal(dc_model_spec_default(&s, "classifier", 1, 8, &err), DC_OK);
    s.base = 4;
    s.blocks = 2;
    s.classes = 3;
    s.batchnorm = batchnorm;
    dc_model *m = NULL;
    if (dc_model_create(be, &s, 1, &m, &err) != DC_OK) fail_msg("%s", err.msg);
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    assert_int_equal(dc_params_init(m->params, &rng), DC_OK);
    randomize_params(m->params, &rng, -0.6f, 0.6f);
    return m;
}

static void test_upsample_bilinear(void **state) {
    (void)state;
    const float src[4] = {1, 2, 3, 4};
    const float want[16] = {1,    1.25f, 1.75f, 2,    1.5f, 1.75f, 2.25f, 2.5f,
                            2.5f, 2.75f, 3.25f, 3.5f, 3,    3.25f, 3.75f, 4};
    float dst[16];
    dc_viz_upsample_bilinear(src, 2, 2, dst, 4, 4);
    assert_true(tu_max_abs_err(dst, want, 16) < 1e-6);
    const float one = 0.7f;
    float c[9];
    dc_viz_upsample_bilinear(&one, 1, 1, c, 3, 3);
    for (int i = 0; i < 9; i++)
        assert_true(c[i] == 0.7f);
}

static void test_cam_and_gradcam(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model *m = small_classifier(be, 1, 5);
    dc_graph *g = m->g;
    float img[64];
    dc_rng rng;
    dc_rng_seed(&rng, 3);
    tu_fill_uniform(img, 64, &rng, -1.0f, 1.0f);
    int shape[4];
    assert_int_equal(dc_graph_node_shape(g, m->last_conv, shape), 4);
    const int LC = shape[1], h = shape[2], w = shape[3], hw = h * w;
    for (int target = 0; target < 3; target++) {
        dc_viz_opts o;
        dc_viz_opts_default(&o);
        o.target = target;
        float cam[64], gc[64];
        dc_viz_info info;
        dc_error err = {0};
        if (dc_viz_cam(m, img, &o, cam, &info, &err) != DC_OK) fail_msg("%s", err.msg);
        /* host: sum_c W[t, c] A_c from the graph's last_conv and fc.weight */
        float *A = malloc(sizeof(float) * LC * hw), *W = malloc(sizeof(float) * 3 * LC);
        float b[3];
        assert_int_equal(dc_graph_read(g, m->last_conv, A), DC_OK);
        read_param(m->params, "fc.weight", W);
        read_param(m->params, "fc.bias", b);
        float low[64], up[64];
        double mean = 0;
        for (int p = 0; p < hw; p++) {
            double s = 0;
            for (int c = 0; c < LC; c++)
                s += (double)W[target * LC + c] * A[c * hw + p];
            low[p] = (float)s;
            mean += s / hw;
        }
        dc_viz_upsample_bilinear(low, h, w, up, 8, 8);
        double e = tu_max_rel_err(cam, up, 64);
        print_message("  cam class %d: max rel err %.2e vs host weighted sum\n", target, e);
        assert_true(e < MAP_TOL);
        /* second route: the mean of the low-res CAM plus the bias is the class score */
        assert_true(fabs(mean + b[target] - info.score) < 1e-4 * (1 + fabs(info.score)));
        /* Grad-CAM at the last conv of a GAP network: ReLU(CAM) / HW */
        if (dc_viz_gradcam(m, img, &o, gc, &info, &err) != DC_OK) fail_msg("%s", err.msg);
        for (int p = 0; p < hw; p++)
            low[p] = (low[p] > 0 ? low[p] : 0) / (float)hw;
        dc_viz_upsample_bilinear(low, h, w, up, 8, 8);
        e = tu_max_rel_err(gc, up, 64);
        print_message("  gradcam class %d: max rel err %.2e vs ReLU(CAM)/HW\n", target, e);
        assert_true(e < MAP_TOL);
        free(A);
        free(W);
    }
    /* Grad-CAM at an earlier layer works; an unknown layer is named in the error */
    dc_viz_opts o;
    dc_viz_opts_default(&o);
    o.layer = "relu1_2";
    float map[64];
    dc_error err = {0};
    if (dc_viz_gradcam(m, img, &o, map, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    o.layer = "nope";
    assert_int_equal(dc_viz_gradcam(m, img, &o, map, NULL, &err), DC_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "nope"));
    assert_non_null(strstr(err.msg, "relu2_2"));
    dc_model_free(m);
    dc_backend_free(be);
}

static void test_ascent(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model *m = small_classifier(be, 1, 9);
    dc_viz_opts o;
    dc_viz_opts_default(&o);
    o.steps = 30;
    o.target = 2;
    o.seed = 42;
    float a[64], b[64], c[64];
    dc_viz_info ia, ib, ic;
    dc_error err = {0};
    if (dc_viz_ascent(m, &o, a, &ia, &err) != DC_OK) fail_msg("%s", err.msg);
    if (dc_viz_ascent(m, &o, b, &ib, &err) != DC_OK) fail_msg("%s", err.msg);
    print_message("  ascent: score %.4f -> %.4f\n", (double)ia.score_start, (double)ia.score);
    assert_true(ia.score > ia.score_start);
    assert_memory_equal(a, b, sizeof a);
    assert_true(ia.score == ib.score);
    o.seed = 43;
    if (dc_viz_ascent(m, &o, c, &ic, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_true(memcmp(a, c, sizeof a) != 0);
    for (int i = 0; i < 64; i++)
        assert_true(a[i] >= -1.0f && a[i] <= 1.0f);
    o.target = -1;
    assert_int_equal(dc_viz_ascent(m, &o, c, &ic, &err), DC_ERR_ARG);
    dc_model_free(m);
    dc_backend_free(be);
}

static void test_smoothgrad(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model *m = small_classifier(be, 1, 21);
    float img[64], plain[64], one[64], s1[64], s2[64];
    dc_rng rng;
    dc_rng_seed(&rng, 4);
    tu_fill_uniform(img, 64, &rng, -1.0f, 1.0f);
    dc_viz_opts o;
    dc_viz_opts_default(&o);
    dc_error err = {0};
    if (dc_viz_saliency(m, img, &o, plain, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    /* one sample without noise is the plain map (batched through a shared model) */
    o.samples = 1;
    o.noise = 0.0f;
    if (dc_viz_saliency(m, img, &o, one, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_true(tu_max_rel_err(one, plain, 64) < 1e-6);
    /* 10 samples in batches of 4; the same seed gives the same map */
    o.samples = 10;
    o.noise = 0.2f;
    o.batch = 4;
    if (dc_viz_saliency(m, img, &o, s1, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    if (dc_viz_saliency(m, img, &o, s2, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_memory_equal(s1, s2, sizeof s1);
    assert_true(memcmp(s1, plain, sizeof s1) != 0);
    dc_model_free(m);
    dc_backend_free(be);
}

static void test_receptive_field_and_maxact(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model *m = small_classifier(be, 1, 13);
    int R, J, off;
    dc_error err = {0};
    /* relu1_2: two 3x3 pad-1 convs -> 5 pixels centred; relu2_2 adds a 2x2/2 pool and two
     * more convs on the coarser grid: 6 + 2*2 + 2*2 = 14, jump 2, offset -2 - 2*2 */
    assert_int_equal(dc_viz_receptive_field(m, dc_graph_find(m->g, "relu1_2"), &R, &J, &off, &err),
                     DC_OK);
    assert_int_equal(R, 5);
    assert_int_equal(J, 1);
    assert_int_equal(off, -2);
    assert_int_equal(dc_viz_receptive_field(m, m->last_conv, &R, &J, &off, &err), DC_OK);
    assert_int_equal(R, 14);
    assert_int_equal(J, 2);
    assert_int_equal(off, -6);

    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_create(21, 1, 8, 8, 0, &ds, &err), DC_OK);
    dc_rng rng;
    dc_rng_seed(&rng, 8);
    tu_fill_uniform(ds->images, (size_t)21 * 64, &rng, -1.0f, 1.0f);
    dc_viz_opts o;
    dc_viz_opts_default(&o);
    o.layer = "relu1_2";
    o.channel = 2;
    o.top = 5;
    o.batch = 8; /* 8 + 8 + 5 through a shared batch-8 model */
    dc_viz_hit hits[5];
    int count = 0;
    if (dc_viz_maxact(m, ds, &o, hits, &count, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_int_equal(count, 5);
    /* brute force, one image at a time through the batch-1 graph in eval mode */
    dc_graph_set_train(m->g, 0);
    const int node = dc_graph_find(m->g, "relu1_2");
    float act[4 * 64], best[21];
    int where[21];
    for (int i = 0; i < 21; i++) {
        assert_int_equal(dc_graph_set_input(m->g, m->x, dc_dataset_image(ds, i)), DC_OK);
        assert_int_equal(dc_graph_forward(m->g, node), DC_OK);
        assert_int_equal(dc_graph_read(m->g, node, act), DC_OK);
        best[i] = act[2 * 64];
        where[i] = 0;
        for (int p = 1; p < 64; p++)
            if (act[2 * 64 + p] > best[i]) best[i] = act[2 * 64 + p], where[i] = p;
    }
    int used[21] = {0};
    for (int r = 0; r < 5; r++) {
        int b = -1;
        for (int i = 0; i < 21; i++)
            if (!used[i] && (b < 0 || best[i] > best[b])) b = i;
        used[b] = 1;
        if (hits[r].index != b)
            fail_msg("rank %d: maxact item %d (%.7g), brute force item %d (%.7g)", r, hits[r].index,
                     (double)hits[r].value, b, (double)best[b]);
        assert_true(fabsf(hits[r].value - best[b]) <= 1e-5f * (1 + fabsf(best[b])));
        assert_int_equal(hits[r].y * 8 + hits[r].x, where[b]);
        assert_int_equal(hits[r].y0, hits[r].y - 2 < 0 ? 0 : hits[r].y - 2);
        assert_int_equal(hits[r].y1, hits[r].y + 3 > 8 ? 8 : hits[r].y + 3);
        assert_int_equal(hits[r].x0, hits[r].x - 2 < 0 ? 0 : hits[r].x - 2);
        assert_int_equal(hits[r].x1, hits[r].x + 3 > 8 ? 8 : hits[r].x + 3);
    }
    o.channel = 99;
    assert_int_equal(dc_viz_maxact(m, ds, &o, hits, &count, &err), DC_ERR_ARG);
    dc_dataset_free(ds);
    dc_model_free(m);
    dc_backend_free(be);
}

static void test_filters(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model *m = small_classifier(be, 0, 17);
    int n = 0, c = 0, k = 0;
    dc_error err = {0};
    assert_int_equal(dc_viz_filters(m, NULL, &n, &c, &k, &err), DC_OK);
    assert_int_equal(n, 4);
    assert_int_equal(c, 1);
    assert_int_equal(k, 3);
    float f[36], w[36];
    assert_int_equal(dc_viz_filters(m, f, &n, &c, &k, &err), DC_OK);
    read_param(m->params, "conv1_1.weight", w);
    for (int o = 0; o < 4; o++) {
        float lo = w[o * 9], hi = w[o * 9], fmin = 1, fmax = 0;
        for (int i = 0; i < 9; i++)
            lo = fminf(lo, w[o * 9 + i]), hi = fmaxf(hi, w[o * 9 + i]);
        for (int i = 0; i < 9; i++) {
            assert_true(fabsf(f[o * 9 + i] - (w[o * 9 + i] - lo) / (hi - lo)) < 1e-6f);
            fmin = fminf(fmin, f[o * 9 + i]);
            fmax = fmaxf(fmax, f[o * 9 + i]);
        }
        assert_true(fmin == 0.0f && fmax == 1.0f);
    }
    dc_model_free(m);
    dc_backend_free(be);
}

static void test_flat_maps_reported(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model *m = small_classifier(be, 1, 23);
    /* zero every weight: the class scores no longer depend on the image */
    for (int i = 0; i < dc_params_count(m->params); i++) {
        dc_param *q = dc_params_get(m->params, i);
        if (!strstr(q->name, ".weight")) continue;
        float *z = calloc(q->numel, sizeof(float));
        assert_int_equal(dc_params_write(m->params, i, z), DC_OK);
        free(z);
    }
    float img[64], map[64];
    for (int i = 0; i < 64; i++)
        img[i] = (float)i / 32.0f - 1.0f;
    dc_viz_opts o;
    dc_viz_opts_default(&o);
    dc_viz_info info;
    dc_error err = {0};
    char buf[64];
    assert_int_equal(dc_viz_saliency(m, img, &o, map, &info, &err), DC_OK);
    assert_true(info.constant);
    assert_string_equal(dc_viz_describe_flat(&info, buf, sizeof buf), "all zero");
    assert_int_equal(dc_viz_occlusion(m, img, &o, map, &info, &err), DC_OK);
    assert_true(info.constant);
    assert_int_equal(dc_viz_cam(m, img, &o, map, &info, &err), DC_OK);
    assert_true(info.constant);
    assert_int_equal(dc_viz_gradcam(m, img, &o, map, &info, &err), DC_OK);
    assert_true(info.constant);
    /* a constant non-zero map and a NaN */
    float c[4] = {2, 2, 2, 2};
    assert_int_equal(dc_viz_map_check(c, 4, "test", &info, &err), DC_OK);
    assert_true(info.constant);
    assert_non_null(strstr(dc_viz_describe_flat(&info, buf, sizeof buf), "constant"));
    c[2] = NAN;
    assert_int_equal(dc_viz_map_check(c, 4, "test", &info, &err), DC_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "element 2"));
    dc_model_free(m);
    dc_backend_free(be);
}

static void test_sanity_helpers(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_model *m = small_classifier(be, 1, 31);
    dc_model *r = NULL, *r2 = NULL;
    dc_error err = {0};
    assert_int_equal(dc_viz_randomized_model(m, 7, &r, &err), DC_OK);
    assert_int_equal(dc_viz_randomized_model(m, 7, &r2, &err), DC_OK);
    float w1[36], w2[36], w0[36];
    read_param(m->params, "conv1_1.weight", w0);
    read_param(r->params, "conv1_1.weight", w1);
    read_param(r2->params, "conv1_1.weight", w2);
    assert_memory_equal(w1, w2, sizeof w1); /* seeded */
    assert_true(memcmp(w0, w1, sizeof w0) != 0);
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {10, 20, 30, 40, 50}, c[5] = {5, 4, 3, 2, 1};
    assert_true(fabs(dc_viz_rank_correlation(a, b, 5) - 1.0) < 1e-12);
    assert_true(fabs(dc_viz_rank_correlation(a, c, 5) + 1.0) < 1e-12);
    dc_model_free(r);
    dc_model_free(r2);
    dc_model_free(m);
    dc_backend_free(be);
}

/* ------------------------------------------------------------ CPU vs OpenCL */
static void copy_params(dc_params *from, dc_params *to) {
    assert_int_equal(dc_params_count(from), dc_params_count(to));
    for (int i = 0; i < dc_params_count(from); i++) {
        dc_param *q = dc_params_get(from, i);
        float *w = malloc(sizeof(float) * q->numel);
        assert_int_equal(dc_params_read(from, i, w), DC_OK);
        assert_int_equal(dc_params_write(to, dc_params_find(to, q->name), w), DC_OK);
        free(w);
    }
}

static void test_cpu_opencl_parity(void **state) {
    (void)state;
    if (!dc_opencl_available()) TU_SKIP_OR_FAIL("no OpenCL platform");
    dc_backend *be = cpu(), *cl = NULL;
    dc_error err = {0};
    if (dc_backend_create_opencl(-1, -1, &cl, &err) != DC_OK) fail_msg("opencl: %s", err.msg);
    dc_model *a = small_classifier(be, 1, 41), *b = NULL;
    if (dc_model_create(cl, &a->spec, 1, &b, &err) != DC_OK) fail_msg("%s", err.msg);
    copy_params(a->params, b->params);
    float img[64];
    dc_rng rng;
    dc_rng_seed(&rng, 5);
    tu_fill_uniform(img, 64, &rng, -1.0f, 1.0f);
    dc_viz_opts o;
    dc_viz_opts_default(&o);
    o.target = 1;
    o.patch = 3;
    o.stride = 2;
    o.batch = 8;
    static const char *const names[] = {"saliency",  "guided", "deconvnet",
                                        "occlusion", "cam",    "gradcam"};
    for (int k = 0; k < 6; k++) {
        float ma[64], mb[64];
        dc_status sa, sb;
        switch (k) {
        case 0:
            sa = dc_viz_saliency(a, img, &o, ma, NULL, &err);
            sb = dc_viz_saliency(b, img, &o, mb, NULL, &err);
            break;
        case 1:
            sa = dc_viz_guided(a, img, &o, ma, NULL, &err);
            sb = dc_viz_guided(b, img, &o, mb, NULL, &err);
            break;
        case 2:
            sa = dc_viz_deconvnet(a, img, &o, ma, NULL, &err);
            sb = dc_viz_deconvnet(b, img, &o, mb, NULL, &err);
            break;
        case 3:
            sa = dc_viz_occlusion(a, img, &o, ma, NULL, &err);
            sb = dc_viz_occlusion(b, img, &o, mb, NULL, &err);
            break;
        case 4:
            sa = dc_viz_cam(a, img, &o, ma, NULL, &err);
            sb = dc_viz_cam(b, img, &o, mb, NULL, &err);
            break;
        default: {
            /* ReLU(sum) can be all zero for a random net: use a layer and class where it
             * is not */
            static const char *const layers[] = {NULL, "relu2_1", "relu1_2", "relu1_1"};
            dc_viz_opts og = o;
            dc_viz_info gi = {0};
            int found = 0;
            for (int l = 0; l < 4 && !found; l++)
                for (og.target = 0, og.layer = layers[l]; og.target < 3 && !found; og.target++)
                    found = dc_viz_gradcam(a, img, &og, ma, &gi, &err) == DC_OK && !gi.constant;
            og.target--;
            if (!found) fail_msg("gradcam: every layer and class gives a flat map");
            print_message("  gradcam at %s, class %d\n", og.layer ? og.layer : "last conv",
                          og.target);
            sa = dc_viz_gradcam(a, img, &og, ma, NULL, &err);
            sb = dc_viz_gradcam(b, img, &og, mb, NULL, &err);
            break;
        }
        }
        if (sa != DC_OK || sb != DC_OK) fail_msg("%s: %s", names[k], err.msg);
        double e = tu_max_rel_err(mb, ma, 64), mx = 0;
        for (int i = 0; i < 64; i++)
            mx = fmax(mx, fabs(ma[i]));
        assert_true(mx > 0);
        print_message("  %-10s %s vs cpu: max rel err %.2e (max |map| %.3g)\n", names[k],
                      dc_backend_device(cl), e, mx);
        if (!(e < PARITY_TOL))
            fail_msg("%s: opencl vs cpu rel err %g > %g", names[k], e, PARITY_TOL);
    }
    dc_model_free(a);
    dc_model_free(b);
    dc_backend_free(cl);
    dc_backend_free(be);
}

/* --------------------------------------------------------------- CLI */
static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

static int file_contains(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

/* Two classes of 16x16 images: a bright square (left half) or a bright bar (bottom). */
static void write_folder_dataset(const char *dir) {
    char path[1024];
    dc_error err = {0};
    dc_rng rng;
    dc_rng_seed(&rng, 77);
    for (int cls = 0; cls < 2; cls++) {
        snprintf(path, sizeof path, "%s/%s", dir, cls ? "bar" : "square");
        assert_int_equal(mkdir(path, 0755), 0);
        for (int i = 0; i < 8; i++) {
            float img[256];
            for (int p = 0; p < 256; p++)
                img[p] = -0.8f + 0.2f * dc_rng_uniform(&rng);
            const int o = (int)dc_rng_below(&rng, 3);
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++) {
                    int on = cls ? (y >= 11 - o && y < 14 - o && x >= 2 && x < 14)
                                 : (y >= 4 + o && y < 10 + o && x >= 2 + o && x < 8 + o);
                    if (on) img[y * 16 + x] = 0.9f;
                }
            snprintf(path, sizeof path, "%s/%s/%d.png", dir, cls ? "bar" : "square", i);
            assert_int_equal(dc_image_write_png(path, img, 1, 16, 16, DC_RANGE_PM1, &err), DC_OK);
        }
    }
}

/* The output of a command line as one string (static buffer). */
static const char *run_log(const char *log) {
    static char buf[1 << 16];
    FILE *f = fopen(log, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

/* Every option a method would not use, and every contradiction, is an error naming it. */
static void cli_options_never_ignored(const char *bin, const char *dir, const char *run,
                                      const char *data) {
    char out[700], log[700];
    snprintf(out, sizeof out, "%s/opt.png", dir);
    snprintf(log, sizeof log, "%s/opt.txt", dir);
    static const struct {
        const char *args;
        int rc;
        const char *says;
    } cases[] = {
        /* cam at a layer that does not feed the global average pool: refused, named */
        {"cam RUN --data DATA --index 1 --layer relu2_1", 1, "relu2_1"},
        {"deconvnet RUN --data DATA --index 1 --channel -5", 2, "--channel -5"},
        {"gradcam RUN --data DATA --index 1 --image DATA/bar/1.png", 2, "not both"},
        {"deconvnet RUN --data DATA --index 1 --class 1", 2, "--class"},
        {"gradcam RUN --data DATA --index 1 --layer gap", 1, "height and width"},
        {"gradcam RUN --data DATA --index 1 --layer fc", 1, "height and width"},
        {"gradcam RUN --image DATA", 1, "is a folder"},
        {"filters RUN --patch 3", 2, "--patch"},
        {"saliency RUN --data DATA --index 1 --steps 4", 2, "--steps"},
        {"ascent RUN --index 2", 2, "--index"},
        {"maxact RUN --data DATA --channel 1 --fill 0", 2, "--fill"},
        {"gradcam RUN --data DATA --index 1 --sanity-seed 3", 2, "--sanity"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* RUN and DATA stand for the paths */
        char args[2048] = "";
        const char *a = cases[i].args;
        size_t n = 0;
        while (*a && n + 700 < sizeof args) {
            if (!strncmp(a, "RUN", 3))
                n += (size_t)snprintf(args + n, sizeof args - n, "'%s'", run), a += 3;
            else if (!strncmp(a, "DATA", 4))
                n += (size_t)snprintf(args + n, sizeof args - n, "'%s'", data), a += 4;
            else
                args[n++] = *a++, args[n] = 0;
        }
        const int rc =
            tu_system("'%s' visualize %s -o '%s' --device cpu > '%s' 2>&1", bin, args, out, log);
        if (rc != cases[i].rc || !file_contains(log, cases[i].says))
            fail_msg("visualize %s: exit %d (expected %d), output: %s", cases[i].args, rc,
                     cases[i].rc, run_log(log));
    }
    /* cam at the layer that does feed the pool is honoured and named */
    const int rc =
        tu_system("'%s' visualize cam '%s' --data '%s' --index 1 --layer relu2_2 -o '%s' "
                  "--device cpu > '%s' 2>&1",
                  bin, run, data, out, log);
    if ((rc != 0 && rc != 3) || !file_contains(log, "layer relu2_2"))
        fail_msg("cam --layer relu2_2: exit %d: %s", rc, run_log(log));
}

/* --sanity: the random model explains the trained model's class at the same layer, and
 * the verdict follows the printed similarity and threshold; maxact's overlap counts the
 * images both runs list. */
static void cli_sanity_holds_fixed(const char *bin, const char *dir, const char *run,
                                   const char *data) {
    char out[700], log[700];
    snprintf(out, sizeof out, "%s/san.png", dir);
    snprintf(log, sizeof log, "%s/san.txt", dir);
    for (int index = 0; index < 16; index += 5) {
        int rc = tu_system("'%s' visualize gradcam '%s' --data '%s' --index %d --sanity -o '%s' "
                           "--device cpu > '%s' 2>&1",
                           bin, run, data, index, out, log);
        if (rc != 0 && rc != 3) fail_msg("gradcam --sanity: exit %d: %s", rc, run_log(log));
        const char *text = run_log(log);
        int trained = -1, random = -2;
        const char *t = strstr(text, "gradcam: class ");
        const char *r = strstr(text, "gradcam (random weights): class ");
        assert_non_null(t);
        assert_non_null(r);
        sscanf(t, "gradcam: class %d", &trained);
        sscanf(r, "gradcam (random weights): class %d", &random);
        assert_int_equal(trained, random);
        assert_non_null(strstr(r, "layer relu2_2"));
        assert_non_null(strstr(text, "held fixed: class"));
        double rho = NAN, thr = NAN;
        const char *v = strstr(text, "sanity: PASS: rank correlation ");
        const char *f = strstr(text, "sanity: FAIL: rank correlation ");
        assert_true((v != NULL) != (f != NULL));
        assert_int_equal(sscanf(v ? v : f, "sanity: %*s rank correlation %lf %*s %lf", &rho, &thr),
                         2);
        assert_true(fabs(thr - 0.5) < 1e-9);
        assert_true(v ? rho < thr : rho >= thr);
    }
    int rc = tu_system("'%s' visualize maxact '%s' --data '%s' --layer relu2_2 --channel 1 --top 5 "
                       "--sanity -o '%s' --device cpu > '%s' 2>&1",
                       bin, run, data, out, log);
    if (rc != 0 && rc != 3) fail_msg("maxact --sanity: exit %d: %s", rc, run_log(log));
    /* the items listed: the trained run's five, then the random run's five */
    int items[10], k = 0, common_printed = -1, n_printed = -1;
    FILE *fp = fopen(log, "r");
    char line[512];
    while (fp && fgets(line, sizeof line, fp)) {
        int rank, item;
        if (k < 10 && sscanf(line, "maxact: #%d item %d", &rank, &item) == 2) items[k++] = item;
        sscanf(line, "sanity: %d of the %d images found", &common_printed, &n_printed);
    }
    if (fp) fclose(fp);
    assert_int_equal(k, 10);
    int common = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 5; j < 10; j++)
            if (items[i] == items[j]) {
                common++;
                break;
            }
    assert_int_equal(n_printed, 5);
    assert_int_equal(common_printed, common);
}

/* Occlusion's default fill is the data's background (the mean of the images' border
 * pixels, computed here from the files), and the negligible-drop warning follows the map's
 * printed maximum; ascent's warning follows the class probability (two classes: not
 * reached means p < 0.5). */
static void cli_occlusion_and_ascent(const char *bin, const char *dir, const char *run,
                                     const char *data) {
    char out[700], log[700];
    snprintf(out, sizeof out, "%s/occ.png", dir);
    snprintf(log, sizeof log, "%s/occ.txt", dir);
    dc_dataset *ds = NULL;
    dc_error err = {0};
    assert_int_equal(dc_dataset_load_path(data, 16, 1, &ds, &err), DC_OK);
    double sum = 0;
    long count = 0;
    for (int i = 0; i < ds->n; i++)
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
                if (y == 0 || y == 15 || x == 0 || x == 15)
                    sum += dc_dataset_image(ds, i)[y * 16 + x], count++;
    dc_dataset_free(ds);
    const double background = sum / (double)count;
    for (int patch = 1; patch <= 6; patch += 5) {
        int rc = tu_system("'%s' visualize occlusion '%s' --data '%s' --index 4 --patch %d "
                           "--stride 1 -o '%s' --device cpu > '%s' 2>&1",
                           bin, run, data, patch, out, log);
        if (rc != 0 && rc != 3) fail_msg("occlusion: exit %d: %s", rc, run_log(log));
        const char *text = run_log(log);
        double fill = NAN, lo = NAN, hi = NAN;
        const char *at = strstr(text, "occlusion: fill ");
        assert_non_null(at);
        assert_int_equal(sscanf(at, "occlusion: fill %lf", &fill), 1);
        assert_true(fabs(fill - background) < 1e-3);
        at = strstr(text, "map range [");
        assert_non_null(at);
        assert_int_equal(sscanf(at, "map range [%lf, %lf]", &lo, &hi), 2);
        const int warned = strstr(text, "largest drop") != NULL;
        if (warned != (hi < 0.01 && hi > lo))
            fail_msg("occlusion --patch %d: max drop %g, warning %s: %s", patch, hi,
                     warned ? "given" : "missing", text);
    }
    snprintf(out, sizeof out, "%s/asc.png", dir);
    int rc = tu_system("'%s' visualize ascent '%s' --steps 3 -o '%s' --device cpu > '%s' 2>&1", bin,
                       run, out, log);
    if (rc != 0 && rc != 3) fail_msg("ascent: exit %d: %s", rc, run_log(log));
    const char *text = run_log(log);
    for (int k = 0; k < 2; k++) {
        char want[64];
        snprintf(want, sizeof want, "ascent: class %d", k);
        const char *at = strstr(text, want);
        assert_non_null(at);
        double p = NAN;
        at = strstr(at, "p = ");
        assert_non_null(at);
        assert_int_equal(sscanf(at, "p = %lf", &p), 1);
        snprintf(want, sizeof want, "did not reach class %d", k);
        if ((strstr(text, want) != NULL) != (p < 0.5))
            fail_msg("ascent class %d: p = %g, warning %s: %s", k, p,
                     strstr(text, want) ? "given" : "missing", text);
    }
}

static void test_cli_end_to_end(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    if (!file_exists(bin)) fail_msg("CLI binary %s not found (set DECONV_BIN)", bin);
    char *dir = tu_tmpdir("viz");
    assert_non_null(dir);
    char data[600], run[600], out[700], log[700];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    assert_int_equal(mkdir(data, 0755), 0);
    write_folder_dataset(data);
    int rc = tu_system("'%s' train --model classifier --data '%s' --size 16 --base 4 --blocks 2 "
                       "--epochs 2 --batch 4 --val 0 --out '%s' --device cpu --quiet > '%s' 2>&1",
                       bin, data, run, log);
    if (rc != 0) fail_msg("train exited %d (log %s)", rc, log);

    static const char *const methods[] = {"saliency", "guided",  "deconvnet", "occlusion",
                                          "cam",      "gradcam", "filters"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        snprintf(out, sizeof out, "%s/%s.png", dir, methods[i]);
        /* filters explains no image: --index would be refused */
        const int per_image = strcmp(methods[i], "filters") != 0;
        rc = tu_system("'%s' visualize %s '%s' --data '%s' %s -o '%s' --device cpu > '%s' 2>&1",
                       bin, methods[i], run, data, per_image ? "--index 3" : "", out, log);
        if (rc != 0 && rc != 3) fail_msg("visualize %s exited %d (log %s)", methods[i], rc, log);
        if (!file_exists(out)) fail_msg("visualize %s wrote no %s", methods[i], out);
    }
    /* an image file, a class by name, and the randomised-weights twin */
    char img[700], sane[700];
    snprintf(img, sizeof img, "%s/bar/2.png", data);
    snprintf(out, sizeof out, "%s/gc.png", dir);
    snprintf(sane, sizeof sane, "%s/gc_sanity.png", dir);
    rc = tu_system("'%s' visualize gradcam '%s' --image '%s' --data '%s' --class bar --sanity "
                   "-o '%s' --device cpu > '%s' 2>&1",
                   bin, run, img, data, out, log);
    if (rc != 0 && rc != 3) fail_msg("visualize gradcam --sanity exited %d (log %s)", rc, log);
    assert_true(file_exists(out) && file_exists(sane));
    assert_true(file_contains(log, "rank correlation"));
    assert_true(file_contains(log, "class 0 (bar)"));
    /* ascent and maxact */
    snprintf(out, sizeof out, "%s/ascent.png", dir);
    rc = tu_system("'%s' visualize ascent '%s' --steps 10 -o '%s' --device cpu > '%s' 2>&1", bin,
                   run, out, log);
    if (rc != 0 && rc != 3) fail_msg("visualize ascent exited %d (log %s)", rc, log);
    assert_true(file_exists(out));
    snprintf(out, sizeof out, "%s/maxact.png", dir);
    rc = tu_system("'%s' visualize maxact '%s' --data '%s' --layer relu2_2 --channel 1 --top 4 "
                   "-o '%s' --device cpu > '%s' 2>&1",
                   bin, run, data, out, log);
    if (rc != 0 && rc != 3) fail_msg("visualize maxact exited %d (log %s)", rc, log);
    assert_true(file_exists(out));
    /* bad input is an error that names it */
    rc = tu_system("'%s' visualize gradcam '%s' --data '%s' --layer nope -o '%s' --device cpu > "
                   "'%s' 2>&1",
                   bin, run, data, out, log);
    assert_int_equal(rc, 1);
    assert_true(file_contains(log, "nope"));
    cli_options_never_ignored(bin, dir, run, data);
    cli_sanity_holds_fixed(bin, dir, run, data);
    cli_occlusion_and_ascent(bin, dir, run, data);
    /* the report's confusion matrix (no validation split: the training images) agrees with
     * deconv eval on the same folder */
    char report[700];
    snprintf(report, sizeof report, "%s/report.html", run);
    assert_true(file_contains(report, "Confusion matrix"));
    assert_true(file_contains(report, ">square<") && file_contains(report, ">bar<"));
    assert_true(file_contains(report, "Predictions"));
    assert_true(file_contains(report, "Validation accuracy"));
    double report_acc = -1, eval_acc = -2;
    {
        const char *at = NULL;
        FILE *f = fopen(report, "rb");
        static char page[1 << 20];
        size_t len = f ? fread(page, 1, sizeof page - 1, f) : 0;
        if (f) fclose(f);
        page[len] = 0;
        at = strstr(page, "accuracy ");
        while (at && sscanf(at, "accuracy %lf", &report_acc) != 1)
            at = strstr(at + 1, "accuracy ");
    }
    /* eval: accuracy and the confusion matrix with the folder's class names */
    rc = tu_system("'%s' eval '%s' --data '%s' --device cpu > '%s' 2>&1", bin, run, data, log);
    if (rc != 0) fail_msg("eval exited %d (log %s)", rc, log);
    assert_true(file_contains(log, "accuracy"));
    assert_true(file_contains(log, "square"));
    {
        FILE *f = fopen(log, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "accuracy %lf", &eval_acc) == 1) break;
        if (f) fclose(f);
    }
    if (fabs(report_acc - eval_acc) > 1e-4)
        fail_msg("report.html accuracy %g, deconv eval %g", report_acc, eval_acc);
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_occlusion_linear),
        cmocka_unit_test(test_guided_deconvnet_vs_host),
        cmocka_unit_test(test_upsample_bilinear),
        cmocka_unit_test(test_cam_and_gradcam),
        cmocka_unit_test(test_ascent),
        cmocka_unit_test(test_smoothgrad),
        cmocka_unit_test(test_receptive_field_and_maxact),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_flat_maps_reported),
        cmocka_unit_test(test_sanity_helpers),
        cmocka_unit_test(test_cpu_opencl_parity),
        cmocka_unit_test(test_cli_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
