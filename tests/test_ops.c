/* Every op: forward against a naive direct-loop reference written here, backward against
 * central finite differences evaluated in double precision on the float32 forward.
 *
 * Bounds: forward max relative error 1e-4 (float32 GEMM vs naive loops, relative to the
 * largest reference magnitude). Gradients: max relative error 2e-2 relative to the largest
 * gradient magnitude, with step 1e-2 on inputs chosen away from ReLU/max-pool kinks. The
 * loss is 0.5*mean((y - t)^2)-like MSE, smooth in y. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "internal.h"

#define FWD_TOL 1e-4
#define GRAD_TOL 2e-2
#define FD_STEP 1e-2
#define FD_SAMPLES 24

typedef struct op_case {
    const char *name;
    int n_inputs;
    int in_shape[3][4]; /* [N, C, H, W]; C == 0 for an int input */
    /* builds the op from input node ids; returns the output node */
    int (*build)(dc_graph *g, const int *in, const struct op_case *c);
    /* naive reference: inputs and params on the host -> output */
    void (*ref)(const struct op_case *c, float **in, dc_params *p, float *out);
    int k, stride, pad, out_pad, out_ch;
    float alpha;
    int distinct; /* inputs are distinct values spaced apart (for max-pool) */
    int away_from_zero;
    int train;
    int int_rows; /* int input range */
    int no_input_grad; /* the op passes no gradient to its inputs (time embedding) */
} op_case;

static int b_attn(dc_graph *g, const int *in, const op_case *c);
static int b_where(dc_graph *g, const int *in, const op_case *c);

static dc_backend *cpu(void) {
    dc_backend *be = NULL;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    return be;
}

static void fill_input(const op_case *c, int i, float *x, size_t n, dc_rng *rng) {
    if (c->distinct) {
        /* a random permutation of evenly spaced values: distinct maxima whose gaps (2/n)
         * exceed 2*FD_STEP for the small sizes used here */
        for (size_t j = 0; j < n; j++) x[j] = -1.0f + 2.0f * (float)j / (float)n;
        for (size_t j = n - 1; j > 0; j--) {
            size_t k = dc_rng_below(rng, (uint32_t)(j + 1));
            float t = x[j];
            x[j] = x[k];
            x[k] = t;
        }
        return;
    }
    tu_fill_uniform(x, n, rng, -1.0f, 1.0f);
    if (c->build == b_attn && c->alpha > 0) {
        /* integer queries and keys in [-alpha, alpha]: exact scores, large ones */
        const int C = c->in_shape[i][1] / 3, hw = c->in_shape[i][2] * c->in_shape[i][3];
        const int a = (int)c->alpha;
        for (size_t j = 0; j < n; j++)
            if ((int)(j / (size_t)hw % (size_t)(3 * C)) < 2 * C)
                x[j] = (float)((int)dc_rng_below(rng, (uint32_t)(2 * a + 1)) - a);
    }
    if (c->build == b_where && i == 0) /* the mask: no finite-difference step crosses 0.5 */
        for (size_t j = 0; j < n; j++)
            if (fabsf(x[j] - 0.5f) < 0.1f) x[j] += x[j] < 0.5f ? -0.1f : 0.1f;
    if (c->away_from_zero)
        for (size_t j = 0; j < n; j++)
            if (fabsf(x[j]) < 0.1f) x[j] = x[j] < 0 ? x[j] - 0.1f : x[j] + 0.1f;
    (void)i;
}

static double loss_at(dc_graph *g, int loss) {
    float l;
    assert_int_equal(dc_graph_forward(g, -1), DC_OK);
    assert_int_equal(dc_graph_read(g, loss, &l), DC_OK);
    return (double)l;
}

static void run_case(const op_case *c) {
    dc_backend *be = cpu();
    dc_params *p = NULL;
    dc_graph *g = NULL;
    dc_rng rng;
    dc_rng_seed(&rng, 1234);
    const int N = c->in_shape[0][0];
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, N, &g), DC_OK);
    int in[3];
    float *host[3] = {0};
    size_t numel[3];
    for (int i = 0; i < c->n_inputs; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", i);
        if (c->in_shape[i][1] == 0) {
            in[i] = dc_input_int(g, nm);
            numel[i] = (size_t)N;
        } else {
            in[i] = dc_input(g, nm, c->in_shape[i][1], c->in_shape[i][2], c->in_shape[i][3]);
            numel[i] = dc_shape_numel(4, c->in_shape[i]);
            assert_int_equal(dc_graph_require_grad(g, in[i]), DC_OK);
        }
        host[i] = malloc(sizeof(float) * numel[i]);
    }
    int out = c->build(g, in, c);
    if (out < 0) fail_msg("%s: build failed: %s", c->name, dc_graph_error(g)->msg);
    int shape[4];
    int nd = dc_graph_node_shape(g, out, shape);
    size_t on = dc_shape_numel(nd, shape);
    int t = dc_input(g, "target", (int)(on / N), 1, 1);
    int flat = dc_reshape(g, out, (int)(on / N), 1, 1);
    int loss = dc_mse_loss(g, flat, t, -1);
    if (dc_graph_finalize(g) != DC_OK) fail_msg("%s: %s", c->name, dc_graph_error(g)->msg);
    dc_graph_set_train(g, c->train);
    dc_graph_set_seed(g, 99);
    assert_int_equal(dc_params_init(p, &rng), DC_OK);
    /* randomise every parameter (biases and norms start at 0/1 otherwise) */
    for (int i = 0; i < dc_params_count(p); i++) {
        dc_param *q = dc_params_get(p, i);
        float *w = malloc(sizeof(float) * q->numel);
        tu_fill_uniform(w, q->numel, &rng, -0.5f, 0.5f);
        if (strstr(q->name, "running_var"))
            for (size_t j = 0; j < q->numel; j++) w[j] = 0.5f + fabsf(w[j]);
        dc_params_write(p, i, w);
        free(w);
    }
    for (int i = 0; i < c->n_inputs; i++) {
        if (c->in_shape[i][1] == 0) {
            int32_t *idx = malloc(sizeof(int32_t) * N);
            for (int j = 0; j < N; j++) idx[j] = (int32_t)dc_rng_below(&rng, (uint32_t)c->int_rows);
            idx[N - 1] = idx[0]; /* repeated index: gradients must accumulate */
            for (int j = 0; j < N; j++) host[i][j] = (float)idx[j];
            assert_int_equal(dc_graph_set_input_int(g, in[i], idx), DC_OK);
            free(idx);
        } else {
            fill_input(c, i, host[i], numel[i], &rng);
            assert_int_equal(dc_graph_set_input(g, in[i], host[i]), DC_OK);
        }
    }
    float *tgt = malloc(sizeof(float) * on);
    tu_fill_uniform(tgt, on, &rng, -1.0f, 1.0f);
    assert_int_equal(dc_graph_set_input(g, t, tgt), DC_OK);

    /* forward vs naive reference */
    assert_int_equal(dc_graph_forward(g, -1), DC_OK);
    float *y = malloc(sizeof(float) * on), *yref = calloc(on, sizeof(float));
    assert_int_equal(dc_graph_read(g, out, y), DC_OK);
    if (c->ref) {
        c->ref(c, host, p, yref);
        double e = tu_max_rel_err(y, yref, on);
        print_message("  %-28s forward  max rel err %.2e\n", c->name, e);
        if (!(e <= FWD_TOL)) fail_msg("%s forward: max rel err %g > %g", c->name, e, FWD_TOL);
    }

    /* backward vs central differences */
    assert_int_equal(dc_params_zero_grad(p), DC_OK);
    if (dc_graph_backward(g, loss, DC_RELU_NORMAL) != DC_OK)
        fail_msg("%s backward: %s", c->name, dc_graph_error(g)->msg);
    double worst = 0;
    for (int i = 0; i < c->n_inputs; i++) {
        if (c->in_shape[i][1] == 0 || c->no_input_grad) continue;
        float *grad = malloc(sizeof(float) * numel[i]);
        assert_int_equal(dc_graph_read_grad(g, in[i], grad), DC_OK);
        double gmax = 1e-3;
        for (size_t j = 0; j < numel[i]; j++) gmax = fmax(gmax, fabs(grad[j]));
        for (int s = 0; s < FD_SAMPLES; s++) {
            size_t j = dc_rng_below(&rng, (uint32_t)numel[i]);
            float keep = host[i][j];
            host[i][j] = keep + (float)FD_STEP;
            dc_graph_set_input(g, in[i], host[i]);
            double lp = loss_at(g, loss);
            host[i][j] = keep - (float)FD_STEP;
            dc_graph_set_input(g, in[i], host[i]);
            double lm = loss_at(g, loss);
            host[i][j] = keep;
            dc_graph_set_input(g, in[i], host[i]);
            double fd = (lp - lm) / (2 * FD_STEP);
            double e = fabs(fd - grad[j]) / gmax;
            if (e > worst) worst = e;
            if (e > GRAD_TOL)
                fail_msg("%s: d loss / d input%d[%zu]: analytic %g, finite difference %g", c->name, i,
                         j, (double)grad[j], fd);
        }
        free(grad);
    }
    for (int pi = 0; pi < dc_params_count(p); pi++) {
        dc_param *q = dc_params_get(p, pi);
        if (!q->trainable) continue;
        float *w = malloc(sizeof(float) * q->numel), *gw = malloc(sizeof(float) * q->numel);
        dc_params_read(p, pi, w);
        be->ops->read(be, dc_tensor_ptr(q->grad), gw, q->numel * 4);
        double gmax = 1e-3;
        for (size_t j = 0; j < q->numel; j++) gmax = fmax(gmax, fabs(gw[j]));
        for (int s = 0; s < FD_SAMPLES; s++) {
            size_t j = dc_rng_below(&rng, (uint32_t)q->numel);
            float keep = w[j];
            w[j] = keep + (float)FD_STEP;
            dc_params_write(p, pi, w);
            double lp = loss_at(g, loss);
            w[j] = keep - (float)FD_STEP;
            dc_params_write(p, pi, w);
            double lm = loss_at(g, loss);
            w[j] = keep;
            dc_params_write(p, pi, w);
            double fd = (lp - lm) / (2 * FD_STEP);
            double e = fabs(fd - gw[j]) / gmax;
            if (e > worst) worst = e;
            if (e > GRAD_TOL)
                fail_msg("%s: d loss / d %s[%zu]: analytic %g, finite difference %g", c->name, q->name,
                         j, (double)gw[j], fd);
        }
        free(w);
        free(gw);
    }
    print_message("  %-28s gradient max rel err %.2e\n", c->name, worst);
    for (int i = 0; i < c->n_inputs; i++) free(host[i]);
    free(tgt);
    free(y);
    free(yref);
    dc_graph_free(g);
    dc_params_free(p);
    dc_backend_free(be);
}

/* ---- host helpers ---- */
static float *param_host(dc_params *p, const char *name) {
    int i = dc_params_find(p, name);
    if (i < 0) fail_msg("no parameter %s", name);
    dc_param *q = dc_params_get(p, i);
    float *w = malloc(sizeof(float) * q->numel);
    dc_params_read(p, i, w);
    return w;
}

/* ---- conv2d ---- */
static int b_conv(dc_graph *g, const int *in, const op_case *c) {
    dc_name(g, "c");
    return dc_conv2d(g, in[0], c->out_ch, c->k, c->stride, c->pad);
}
static void r_conv(const op_case *c, float **in, dc_params *p, float *out) {
    const int N = c->in_shape[0][0], C = c->in_shape[0][1], H = c->in_shape[0][2], W = c->in_shape[0][3];
    const int K = c->k, S = c->stride, P = c->pad, OC = c->out_ch;
    const int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    float *w = param_host(p, "c.weight"), *b = param_host(p, "c.bias");
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double s = b[o];
                    for (int ci = 0; ci < C; ci++)
                        for (int i = 0; i < K; i++)
                            for (int j = 0; j < K; j++) {
                                int iy = oy * S - P + i, ix = ox * S - P + j;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += (double)w[((o * C + ci) * K + i) * K + j] *
                                     in[0][((n * C + ci) * H + iy) * W + ix];
                            }
                    out[((n * OC + o) * OH + oy) * OW + ox] = (float)s;
                }
    free(w);
    free(b);
}

/* ---- conv_transpose2d: the scatter definition ---- */
static int b_convt(dc_graph *g, const int *in, const op_case *c) {
    dc_name(g, "t");
    return dc_conv_transpose2d(g, in[0], c->out_ch, c->k, c->stride, c->pad, c->out_pad);
}
static void r_convt(const op_case *c, float **in, dc_params *p, float *out) {
    const int N = c->in_shape[0][0], C = c->in_shape[0][1], H = c->in_shape[0][2], W = c->in_shape[0][3];
    const int K = c->k, S = c->stride, P = c->pad, OC = c->out_ch;
    const int OH = (H - 1) * S - 2 * P + K + c->out_pad, OW = (W - 1) * S - 2 * P + K + c->out_pad;
    float *w = param_host(p, "t.weight"), *b = param_host(p, "t.bias");
    double *acc = calloc((size_t)N * OC * OH * OW, sizeof(double));
    for (int n = 0; n < N; n++)
        for (int ci = 0; ci < C; ci++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int o = 0; o < OC; o++)
                        for (int i = 0; i < K; i++)
                            for (int j = 0; j < K; j++) {
                                int oy = y * S - P + i, ox = x * S - P + j;
                                if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                                acc[((n * OC + o) * OH + oy) * OW + ox] +=
                                    (double)in[0][((n * C + ci) * H + y) * W + x] *
                                    w[((ci * OC + o) * K + i) * K + j];
                            }
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            for (int q = 0; q < OH * OW; q++)
                out[(n * OC + o) * OH * OW + q] = (float)(acc[(n * OC + o) * OH * OW + q] + b[o]);
    free(acc);
    free(w);
    free(b);
}

/* ---- maxpool2d ---- */
static int b_pool(dc_graph *g, const int *in, const op_case *c) {
    return dc_maxpool2d(g, in[0], c->k, c->stride, c->pad);
}
static void r_pool(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    const int N = c->in_shape[0][0], C = c->in_shape[0][1], H = c->in_shape[0][2], W = c->in_shape[0][3];
    const int K = c->k, S = c->stride, P = c->pad;
    const int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    for (int n = 0; n < N * C; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float m = -INFINITY;
                for (int i = 0; i < K; i++)
                    for (int j = 0; j < K; j++) {
                        int iy = oy * S - P + i, ix = ox * S - P + j;
                        if (iy >= 0 && iy < H && ix >= 0 && ix < W && in[0][(n * H + iy) * W + ix] > m)
                            m = in[0][(n * H + iy) * W + ix];
                    }
                out[(n * OH + oy) * OW + ox] = m;
            }
}

/* ---- maxunpool(maxpool(x)) keeps each window's max where it was ---- */
static int b_unpool(dc_graph *g, const int *in, const op_case *c) {
    int pl = dc_maxpool2d(g, in[0], c->k, c->stride, c->pad);
    return dc_maxunpool2d(g, pl, pl);
}
static void r_unpool(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    const int N = c->in_shape[0][0], C = c->in_shape[0][1], H = c->in_shape[0][2], W = c->in_shape[0][3];
    const int K = c->k, S = c->stride, P = c->pad;
    const int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    memset(out, 0, sizeof(float) * N * C * H * W);
    for (int n = 0; n < N * C; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float m = -INFINITY;
                int at = -1;
                for (int i = 0; i < K; i++)
                    for (int j = 0; j < K; j++) {
                        int iy = oy * S - P + i, ix = ox * S - P + j;
                        if (iy >= 0 && iy < H && ix >= 0 && ix < W && in[0][(n * H + iy) * W + ix] > m) {
                            m = in[0][(n * H + iy) * W + ix];
                            at = iy * W + ix;
                        }
                    }
                out[n * H * W + at] = m;
            }
}

/* ---- activations ---- */
static float act_ref(int which, float x, float a) {
    switch (which) {
    case 0: return x > 0 ? x : 0;
    case 1: return x > 0 ? x : a * x;
    case 2: return tanhf(x);
    case 4: return (float)(x / (1.0 + exp(-(double)x)));
    default: return 1.0f / (1.0f + expf(-x));
    }
}
static int b_act(dc_graph *g, const int *in, const op_case *c) {
    switch (c->k) {
    case 0: return dc_relu(g, in[0]);
    case 1: return dc_leaky_relu(g, in[0], c->alpha);
    case 2: return dc_tanh(g, in[0]);
    case 4: return dc_silu(g, in[0]);
    default: return dc_sigmoid(g, in[0]);
    }
}
static void r_act(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    size_t n = dc_shape_numel(4, c->in_shape[0]);
    for (size_t i = 0; i < n; i++) out[i] = act_ref(c->k, in[0][i], c->alpha);
}

/* ---- dense ---- */
static int b_dense(dc_graph *g, const int *in, const op_case *c) {
    dc_name(g, "fc");
    return dc_dense(g, in[0], c->out_ch);
}
static void r_dense(const op_case *c, float **in, dc_params *p, float *out) {
    const int N = c->in_shape[0][0], F = (int)(dc_shape_numel(4, c->in_shape[0]) / N), O = c->out_ch;
    float *w = param_host(p, "fc.weight"), *b = param_host(p, "fc.bias");
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double s = b[o];
            for (int f = 0; f < F; f++) s += (double)w[o * F + f] * in[0][n * F + f];
            out[n * O + o] = (float)s;
        }
    free(w);
    free(b);
}

/* ---- add, mul, gap ---- */
static int b_add(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_add(g, in[0], in[1]);
}
static void r_add(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    size_t n = dc_shape_numel(4, c->in_shape[0]);
    for (size_t i = 0; i < n; i++) out[i] = in[0][i] + in[1][i];
}
static int b_mul(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_mul(g, in[0], in[1]);
}
static void r_mul(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    size_t n = dc_shape_numel(4, c->in_shape[0]);
    for (size_t i = 0; i < n; i++) out[i] = in[0][i] * in[1][i];
}
static int b_where(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_where(g, in[0], in[1], in[2]);
}
/* one mask plane per image, shared by the channels */
static void r_where(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    const int N = c->in_shape[1][0], C = c->in_shape[1][1];
    const int hw = c->in_shape[1][2] * c->in_shape[1][3];
    for (int i = 0; i < N; i++)
        for (int ch = 0; ch < C; ch++)
            for (int q = 0; q < hw; q++) {
                const size_t k = ((size_t)i * C + ch) * hw + q;
                out[k] = in[0][(size_t)i * hw + q] > 0.5f ? in[1][k] : in[2][k];
            }
}
static int b_gap(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_global_avgpool(g, in[0]);
}
static void r_gap(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    const int NC_ = c->in_shape[0][0] * c->in_shape[0][1], HW = c->in_shape[0][2] * c->in_shape[0][3];
    for (int i = 0; i < NC_; i++) {
        double s = 0;
        for (int q = 0; q < HW; q++) s += in[0][i * HW + q];
        out[i] = (float)(s / HW);
    }
}

/* ---- batchnorm (training: batch statistics; eval: running statistics) ---- */
static int b_bn(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    dc_name(g, "bn");
    return dc_batchnorm2d(g, in[0], 0.1f, 1e-5f);
}
static void r_bn(const op_case *c, float **in, dc_params *p, float *out) {
    const int N = c->in_shape[0][0], C = c->in_shape[0][1], HW = c->in_shape[0][2] * c->in_shape[0][3];
    float *gm = param_host(p, "bn.weight"), *bt = param_host(p, "bn.bias");
    float *rm = param_host(p, "bn.running_mean"), *rv = param_host(p, "bn.running_var");
    for (int ch = 0; ch < C; ch++) {
        double m = 0, v = 0;
        if (c->train) {
            for (int n = 0; n < N; n++)
                for (int q = 0; q < HW; q++) m += in[0][(n * C + ch) * HW + q];
            m /= (double)N * HW;
            for (int n = 0; n < N; n++)
                for (int q = 0; q < HW; q++) {
                    double d = in[0][(n * C + ch) * HW + q] - m;
                    v += d * d;
                }
            v /= (double)N * HW;
        } else {
            /* running stats were read after the forward: eval mode leaves them unchanged */
            m = rm[ch];
            v = rv[ch];
        }
        for (int n = 0; n < N; n++)
            for (int q = 0; q < HW; q++) {
                size_t i = (size_t)(n * C + ch) * HW + q;
                out[i] = (float)(gm[ch] * (in[0][i] - m) / sqrt(v + 1e-5) + bt[ch]);
            }
    }
    free(gm);
    free(bt);
    free(rm);
    free(rv);
}

/* ---- dropout / noise / reparameterize: deterministic given the graph seed ---- */
static int b_dropout(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_dropout(g, in[0], 0.3f);
}
static int b_noise(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_gaussian_noise(g, in[0], 0.5f, 0);
}
static int b_reparam(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_reparameterize(g, in[0], in[1], 0);
}
static int b_embed(dc_graph *g, const int *in, const op_case *c) {
    dc_name(g, "emb");
    return dc_embedding(g, in[0], c->int_rows, c->out_ch, 0.5f);
}
static void r_embed(const op_case *c, float **in, dc_params *p, float *out) {
    float *t = param_host(p, "emb.weight");
    const int N = c->in_shape[0][0], D = c->out_ch;
    for (int n = 0; n < N; n++)
        for (int d = 0; d < D; d++) out[n * D + d] = t[(int)in[0][n] * D + d];
    free(t);
}

/* ---- a tied conv -> transposed conv pair: gradients from both uses accumulate ---- */
static int b_tied(dc_graph *g, const int *in, const op_case *c) {
    dc_name(g, "e");
    int h = dc_conv2d(g, in[0], c->out_ch, c->k, 1, c->k / 2);
    h = dc_tanh(g, h);
    return dc_conv_transpose2d_tied(g, h, 1, 1, c->k / 2, 0); /* node 1 is the conv */
}

/* Weight sharing (dc_graph_share_scope): conv, batch norm, transposed conv and dense each
 * applied twice with one set of parameters; every parameter's gradient must be the sum of
 * both uses (finite differences see the whole function). */
static int b_shared(dc_graph *g, const int *in, const op_case *c) {
    const int C = c->in_shape[0][1], H = c->in_shape[0][2], W = c->in_shape[0][3];
    int h = in[0];
    for (int pass = 0; pass < 2; pass++) {
        dc_graph_share_scope(g, pass ? "p2" : NULL);
        dc_name(g, "a");
        h = dc_conv2d(g, h, C, 3, 1, 1);
        dc_name(g, "n");
        h = dc_tanh(g, dc_batchnorm2d(g, h, 0.1f, 1e-5f));
    }
    for (int pass = 0; pass < 2; pass++) {
        dc_graph_share_scope(g, pass ? "p2" : NULL);
        dc_name(g, "t");
        h = dc_tanh(g, dc_conv_transpose2d(g, h, C, 3, 1, 1, 0));
    }
    for (int pass = 0; pass < 2; pass++) {
        dc_graph_share_scope(g, pass ? "p2" : NULL);
        dc_name(g, "d");
        h = dc_reshape(g, dc_tanh(g, dc_dense(g, h, C * H * W)), C, H, W);
    }
    dc_graph_share_scope(g, NULL);
    return h;
}

/* ---- U-Net ops: concat, group norm, add_channels, upsampling, time embedding ---- */
static int b_concat(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_concat(g, in[0], in[1]);
}
static void r_concat(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    const int N = c->in_shape[0][0], HW = c->in_shape[0][2] * c->in_shape[0][3];
    const int ca = c->in_shape[0][1], cb = c->in_shape[1][1];
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < ca + cb; ch++)
            for (int q = 0; q < HW; q++)
                out[((size_t)n * (ca + cb) + ch) * HW + q] =
                    ch < ca ? in[0][((size_t)n * ca + ch) * HW + q]
                            : in[1][((size_t)n * cb + ch - ca) * HW + q];
}
static int b_gn(dc_graph *g, const int *in, const op_case *c) {
    dc_name(g, "gn");
    return dc_groupnorm(g, in[0], c->k, 1e-5f);
}
static void r_gn(const op_case *c, float **in, dc_params *p, float *out) {
    const int N = c->in_shape[0][0], C = c->in_shape[0][1], HW = c->in_shape[0][2] * c->in_shape[0][3];
    const int G = c->k, cg = C / G;
    float *gm = param_host(p, "gn.weight"), *bt = param_host(p, "gn.bias");
    for (int n = 0; n < N; n++)
        for (int j = 0; j < G; j++) {
            const float *x = in[0] + ((size_t)n * C + (size_t)j * cg) * HW;
            double m = 0, v = 0;
            for (int q = 0; q < cg * HW; q++) m += x[q];
            m /= (double)cg * HW;
            for (int q = 0; q < cg * HW; q++) v += (x[q] - m) * (x[q] - m);
            v /= (double)cg * HW;
            for (int q = 0; q < cg * HW; q++) {
                const int ch = j * cg + q / HW;
                out[((size_t)n * C + (size_t)j * cg) * HW + q] =
                    (float)(gm[ch] * (x[q] - m) / sqrt(v + 1e-5) + bt[ch]);
            }
        }
    free(gm);
    free(bt);
}
static int b_addc(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_add_channels(g, in[0], in[1]);
}
static void r_addc(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    const int NC_ = c->in_shape[0][0] * c->in_shape[0][1], HW = c->in_shape[0][2] * c->in_shape[0][3];
    for (int i = 0; i < NC_; i++)
        for (int q = 0; q < HW; q++) out[(size_t)i * HW + q] = in[0][(size_t)i * HW + q] + in[1][i];
}
static int b_up(dc_graph *g, const int *in, const op_case *c) {
    return dc_upsample_nearest(g, in[0], c->k);
}
static void r_up(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    const int NC_ = c->in_shape[0][0] * c->in_shape[0][1], H = c->in_shape[0][2], W = c->in_shape[0][3];
    const int s = c->k;
    for (int i = 0; i < NC_; i++)
        for (int y = 0; y < H * s; y++)
            for (int x = 0; x < W * s; x++)
                out[((size_t)i * H * s + y) * W * s + x] = in[0][((size_t)i * H + y / s) * W + x / s];
}
/* t in [-1, 1] times 100 over periods up to 10^4: float arguments within ~1e-5 */
static int b_temb(dc_graph *g, const int *in, const op_case *c) {
    return dc_time_embedding(g, in[0], c->out_ch, 100.0f, 10000.0f);
}
static void r_temb(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    const int N = c->in_shape[0][0], D = c->out_ch, half = D / 2;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < half; k++) {
            const double a = 100.0 * in[0][n] * pow(10000.0, -(double)k / half);
            out[n * D + k] = (float)sin(a);
            out[n * D + half + k] = (float)cos(a);
        }
}
/* the embedding feeding a dense layer: the layer's gradients flow, t's does not */
static int b_temb_dense(dc_graph *g, const int *in, const op_case *c) {
    int e = dc_time_embedding(g, in[0], 8, 100.0f, 10000.0f);
    dc_name(g, "fc");
    return dc_dense(g, e, c->out_ch);
}

/* single-head self-attention over the positions: [N, 3C, H, W] -> [N, C, H, W] */
static int b_attn(dc_graph *g, const int *in, const op_case *c) {
    (void)c;
    return dc_attention(g, in[0]);
}
static void r_attn(const op_case *c, float **in, dc_params *p, float *out) {
    (void)p;
    const int N = c->in_shape[0][0], C = c->in_shape[0][1] / 3;
    const int HW = c->in_shape[0][2] * c->in_shape[0][3];
    double *e = malloc(sizeof(double) * HW);
    for (int n = 0; n < N; n++) {
        const float *q = in[0] + (size_t)n * 3 * C * HW, *k = q + (size_t)C * HW;
        const float *v = k + (size_t)C * HW;
        for (int p = 0; p < HW; p++) {
            double mx = -HUGE_VAL, sum = 0;
            for (int j = 0; j < HW; j++) {
                double d = 0;
                for (int ch = 0; ch < C; ch++) d += (double)q[ch * HW + p] * k[ch * HW + j];
                e[j] = d / sqrt((double)C);
                mx = fmax(mx, e[j]);
            }
            for (int j = 0; j < HW; j++) sum += (e[j] = exp(e[j] - mx));
            for (int ch = 0; ch < C; ch++) {
                double acc = 0;
                for (int j = 0; j < HW; j++) acc += e[j] / sum * v[ch * HW + j];
                out[((size_t)n * C + ch) * HW + p] = (float)acc;
            }
        }
    }
    free(e);
}

#define S4(n, c, h, w) {n, c, h, w}
static const op_case cases[] = {
    {"conv2d 3x3 s1 p1", 1, {S4(2, 3, 7, 6)}, b_conv, r_conv, 3, 1, 1, 0, 4, 0, 0, 0, 1, 0, 0},
    {"conv2d 3x3 s2 p0 odd", 1, {S4(2, 2, 9, 7)}, b_conv, r_conv, 3, 2, 0, 0, 3, 0, 0, 0, 1, 0, 0},
    {"conv2d 5x5 s2 p2", 1, {S4(3, 2, 8, 8)}, b_conv, r_conv, 5, 2, 2, 0, 2, 0, 0, 0, 1, 0, 0},
    {"conv2d 1x1", 1, {S4(2, 5, 4, 3)}, b_conv, r_conv, 1, 1, 0, 0, 3, 0, 0, 0, 1, 0, 0},
    /* >= 8 channels in and out: the CPU backend's Winograd F(2x2, 3x3) path */
    {"conv2d 3x3 s1 p1 winograd", 1, {S4(3, 8, 6, 8)}, b_conv, r_conv, 3, 1, 1, 0, 12, 0, 0, 0, 1, 0, 0},
    {"conv2d 3x3 s1 p1 winograd odd", 1, {S4(2, 9, 7, 5)}, b_conv, r_conv, 3, 1, 1, 0, 8, 0, 0, 0, 1, 0, 0},
    {"conv_t2d 3x3 s2 p1 op1", 1, {S4(2, 3, 4, 5)}, b_convt, r_convt, 3, 2, 1, 1, 2, 0, 0, 0, 1, 0, 0},
    {"conv_t2d 4x4 s2 p1", 1, {S4(2, 2, 3, 3)}, b_convt, r_convt, 4, 2, 1, 0, 3, 0, 0, 0, 1, 0, 0},
    {"conv_t2d 3x3 s1 p0", 1, {S4(1, 2, 5, 4)}, b_convt, r_convt, 3, 1, 0, 0, 2, 0, 0, 0, 1, 0, 0},
    {"conv_t2d 5x5 s3 p2 op2", 1, {S4(2, 1, 3, 4)}, b_convt, r_convt, 5, 3, 2, 2, 2, 0, 0, 0, 1, 0, 0},
    {"maxpool 2x2 s2", 1, {S4(2, 3, 6, 8)}, b_pool, r_pool, 2, 2, 0, 0, 0, 0, 1, 0, 1, 0, 0},
    {"maxpool 3x3 s2 p1 odd", 1, {S4(2, 2, 7, 5)}, b_pool, r_pool, 3, 2, 1, 0, 0, 0, 1, 0, 1, 0, 0},
    {"maxpool 3x3 s1 overlap", 1, {S4(1, 2, 5, 6)}, b_pool, r_pool, 3, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0},
    {"maxunpool 2x2 s2", 1, {S4(2, 2, 6, 4)}, b_unpool, r_unpool, 2, 2, 0, 0, 0, 0, 1, 0, 1, 0, 0},
    {"maxunpool 3x3 s2 p1", 1, {S4(1, 3, 5, 7)}, b_unpool, r_unpool, 3, 2, 1, 0, 0, 0, 1, 0, 1, 0, 0},
    {"relu", 1, {S4(2, 3, 4, 4)}, b_act, r_act, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0},
    {"leaky_relu", 1, {S4(2, 3, 4, 4)}, b_act, r_act, 1, 0, 0, 0, 0, 0.2f, 0, 1, 1, 0, 0},
    {"tanh", 1, {S4(2, 3, 4, 4)}, b_act, r_act, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"sigmoid", 1, {S4(2, 3, 4, 4)}, b_act, r_act, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"dense", 1, {S4(3, 2, 3, 2)}, b_dense, r_dense, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0},
    {"add", 2, {S4(2, 3, 4, 2), S4(2, 3, 4, 2)}, b_add, r_add, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"mul", 2, {S4(2, 3, 4, 2), S4(2, 3, 4, 2)}, b_mul, r_mul, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"where", 3, {S4(2, 1, 4, 3), S4(2, 3, 4, 3), S4(2, 3, 4, 3)}, b_where, r_where, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"global_avgpool", 1, {S4(2, 3, 5, 3)}, b_gap, r_gap, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"batchnorm2d train", 1, {S4(3, 2, 3, 4)}, b_bn, r_bn, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"batchnorm2d eval", 1, {S4(3, 2, 3, 4)}, b_bn, r_bn, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"dropout", 1, {S4(2, 3, 4, 4)}, b_dropout, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"gaussian_noise", 1, {S4(2, 3, 4, 4)}, b_noise, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"reparameterize", 2, {S4(3, 4, 1, 1), S4(3, 4, 1, 1)}, b_reparam, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"embedding", 1, {S4(5, 0, 1, 1)}, b_embed, r_embed, 0, 0, 0, 0, 3, 0, 0, 0, 1, 4, 0},
    {"tied conv/conv_t2d", 1, {S4(2, 2, 6, 6)}, b_tied, NULL, 3, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0},
    {"shared conv/bn/conv_t2d/dense", 1, {S4(3, 3, 4, 4)}, b_shared, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"silu", 1, {S4(2, 3, 4, 4)}, b_act, r_act, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"concat", 2, {S4(2, 3, 4, 5), S4(2, 2, 4, 5)}, b_concat, r_concat, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"groupnorm 3 groups", 1, {S4(2, 6, 3, 4)}, b_gn, r_gn, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"groupnorm 1 group", 1, {S4(3, 4, 2, 3)}, b_gn, r_gn, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"groupnorm per channel", 1, {S4(2, 3, 4, 4)}, b_gn, r_gn, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"add_channels", 2, {S4(2, 3, 4, 5), S4(2, 3, 1, 1)}, b_addc, r_addc, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"upsample_nearest 2x", 1, {S4(2, 3, 3, 4)}, b_up, r_up, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"upsample_nearest 3x", 1, {S4(1, 2, 2, 3)}, b_up, r_up, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"time_embedding", 1, {S4(3, 1, 1, 1)}, b_temb, r_temb, 0, 0, 0, 0, 10, 0, 0, 0, 1, 0, 1},
    {"time_embedding -> dense", 1, {S4(3, 1, 1, 1)}, b_temb_dense, NULL, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 1},
    /* C not a multiple of 4, H*W not a power of two */
    {"attention C3 3x5", 1, {S4(2, 9, 3, 5)}, b_attn, r_attn, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"attention C5 2x3", 1, {S4(3, 15, 2, 3)}, b_attn, r_attn, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    {"attention C1 1x7", 1, {S4(2, 3, 1, 7)}, b_attn, r_attn, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
    /* queries and keys integers in [-12, 12]: exact scores beyond 88, where exp overflows
     * unless each row's maximum is taken off first */
    {"attention C4 scores past 88", 1, {S4(2, 12, 2, 5)}, b_attn, r_attn, 0, 0, 0, 0, 0, 12.0f, 0, 0, 1, 0, 0},
};

static void test_all_ops(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
}

/* Share scopes: scoped nodes are named SCOPE/NAME and hold the parameters of NAME (no new
 * ones; the pass computes what the same layer computes), a shape mismatch and bad scope
 * names fail the graph with a message naming them. */
static void test_share_scope(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_params *p;
    dc_graph *g;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, 2, &g), DC_OK);
    int x = dc_input(g, "x", 2, 5, 5);
    dc_name(g, "c");
    int a = dc_conv2d(g, x, 3, 3, 1, 1);
    assert_int_equal(dc_graph_share_scope(g, "again"), DC_OK);
    dc_name(g, "c");
    int b = dc_conv2d(g, x, 3, 3, 1, 1);
    assert_int_equal(dc_graph_share_scope(g, NULL), DC_OK);
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    assert_int_equal(dc_params_count(p), 2); /* c.weight, c.bias */
    assert_true(dc_params_find(p, "c.weight") >= 0 && dc_params_find(p, "c.bias") >= 0);
    assert_int_equal(dc_graph_find(g, "again/c"), b);
    dc_rng rng;
    dc_rng_seed(&rng, 3);
    assert_int_equal(dc_params_init(p, &rng), DC_OK);
    float xs[100], ya[150], yb[150]; /* batch 2: [2, 2, 5, 5] in, [2, 3, 5, 5] out */
    tu_fill_uniform(xs, 100, &rng, -1, 1);
    assert_int_equal(dc_graph_set_input(g, x, xs), DC_OK);
    assert_int_equal(dc_graph_forward(g, -1), DC_OK);
    assert_int_equal(dc_graph_read(g, a, ya), DC_OK);
    assert_int_equal(dc_graph_read(g, b, yb), DC_OK);
    assert_memory_equal(ya, yb, sizeof ya);
    dc_graph_free(g);

    /* the same name with another shape: the shared parameter's shape is named */
    assert_int_equal(dc_graph_create(p, 2, &g), DC_OK);
    x = dc_input(g, "x", 2, 5, 5);
    dc_name(g, "c");
    dc_conv2d(g, x, 3, 3, 1, 1);
    dc_graph_share_scope(g, "p2");
    dc_name(g, "c");
    assert_true(dc_conv2d(g, x, 4, 3, 1, 1) < 0);
    assert_int_equal(dc_graph_finalize(g), DC_ERR_SHAPE);
    assert_non_null(strstr(dc_graph_error(g)->msg, "p2/c"));
    assert_non_null(strstr(dc_graph_error(g)->msg, "c.weight"));
    dc_graph_free(g);
    /* scope names: no '/', at most 15 characters */
    assert_int_equal(dc_graph_create(p, 2, &g), DC_OK);
    assert_int_equal(dc_graph_share_scope(g, "a/b"), DC_ERR_ARG);
    assert_non_null(strstr(dc_graph_error(g)->msg, "a/b"));
    dc_graph_free(g);
    assert_int_equal(dc_graph_create(p, 2, &g), DC_OK);
    assert_int_equal(dc_graph_share_scope(g, "sixteen_letters_"), DC_ERR_ARG);
    dc_graph_free(g);
    /* SCOPE/NAME must fit a node name (47 characters) */
    assert_int_equal(dc_graph_create(p, 2, &g), DC_OK);
    x = dc_input(g, "x", 2, 5, 5);
    assert_int_equal(dc_graph_share_scope(g, "fifteen_letter"), DC_OK);
    dc_name(g, "a_layer_name_of_thirty_five_letters");
    assert_true(dc_relu(g, x) < 0);
    assert_int_equal(dc_graph_finalize(g), DC_ERR_ARG);
    assert_non_null(strstr(dc_graph_error(g)->msg, "too long"));
    dc_graph_free(g);
    dc_params_free(p);
    dc_backend_free(be);
}

/* ReLU backward modes, checked element by element against the rules. */
static void test_relu_modes(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_params *p;
    dc_graph *g;
    dc_rng rng;
    dc_rng_seed(&rng, 5);
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, 2, &g), DC_OK);
    int x = dc_input(g, "x", 3, 4, 5);
    dc_graph_require_grad(g, x);
    int r = dc_relu(g, x);
    int l = dc_leaky_relu(g, x, 0.1f);
    int sum = dc_add(g, r, r); /* two paths into r's gradient */
    assert_true(sum >= 0);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    const size_t n = 2 * 3 * 4 * 5;
    float xs[120], seed[120], dx[120];
    tu_fill_uniform(xs, n, &rng, -1, 1);
    tu_fill_uniform(seed, n, &rng, -1, 1);
    dc_graph_set_input(g, x, xs);
    assert_int_equal(dc_graph_forward(g, -1), DC_OK);
    const int nodes[2] = {r, l};
    for (int which = 0; which < 2; which++)
        for (int mode = 0; mode < 3; mode++) {
            assert_int_equal(dc_graph_backward_from(g, nodes[which], seed, (dc_relu_mode)mode), DC_OK);
            assert_int_equal(dc_graph_read_grad(g, x, dx), DC_OK);
            size_t differ = 0;
            for (size_t i = 0; i < n; i++) {
                float want;
                if (mode == DC_RELU_NORMAL)
                    want = xs[i] > 0 ? seed[i] : (which ? 0.1f * seed[i] : 0.0f);
                else if (mode == DC_RELU_GUIDED)
                    want = (xs[i] > 0 && seed[i] > 0) ? seed[i] : 0.0f;
                else
                    want = seed[i] > 0 ? seed[i] : 0.0f;
                assert_float_equal(dx[i], want, 0.0f);
                float plain = xs[i] > 0 ? seed[i] : (which ? 0.1f * seed[i] : 0.0f);
                differ += dx[i] != plain;
            }
            /* guided and deconvnet differ from the gradient exactly where their rule bites */
            if (mode != DC_RELU_NORMAL) assert_true(differ > 0);
        }
    dc_graph_free(g);
    dc_params_free(p);
    dc_backend_free(be);
}

/* Activation fusion (dc_graph_set_fusion): a graph with fusion must give the same loss,
 * outputs and gradients as the same graph without it, in every ReLU mode; the oracle is the
 * unfused graph, whose ops are checked above against naive loops and finite differences.
 * Fusion must happen where allowed (conv, transposed conv, batch norm: the node then reads
 * activated values) and not where it is not (two consumers, negative slope); a fused
 * graph refuses an eval-mode backward through a fused batch norm, with a message. */
typedef struct fuse_net {
    dc_graph *g;
    int x, t, c1, r1, c2, r2, ct, rt, c3, r3, sum, c4, bn, rb, r4, out, loss;
} fuse_net;

static void fuse_build(dc_params *p, int fuse, fuse_net *f) {
    assert_int_equal(dc_graph_create(p, 3, &f->g), DC_OK);
    dc_graph *g = f->g;
    if (fuse) assert_int_equal(dc_graph_set_fusion(g, 1), DC_OK);
    f->x = dc_input(g, "x", 2, 9, 9);
    dc_graph_require_grad(g, f->x);
    dc_name(g, "c1");
    f->c1 = dc_conv2d(g, f->x, 4, 3, 1, 1);
    f->r1 = dc_relu(g, f->c1);                     /* fusable */
    dc_name(g, "c2");
    f->c2 = dc_conv2d(g, f->r1, 6, 3, 2, 1);
    f->r2 = dc_leaky_relu(g, f->c2, 0.2f);         /* fusable, slope 0.2 */
    dc_name(g, "ct");
    f->ct = dc_conv_transpose2d(g, f->r2, 3, 3, 2, 1, 0);
    f->rt = dc_relu(g, f->ct);                     /* fusable transposed conv */
    dc_name(g, "c3");
    f->c3 = dc_conv2d(g, f->rt, 3, 3, 1, 1);
    f->r3 = dc_relu(g, f->c3);                     /* c3 has two consumers: not fused */
    f->sum = dc_add(g, f->r3, f->c3);
    dc_name(g, "c4");
    f->c4 = dc_conv2d(g, f->sum, 4, 3, 1, 1);
    f->r4 = dc_leaky_relu(g, f->c4, -0.5f);        /* negative slope: not fused */
    f->bn = dc_batchnorm2d(g, f->r4, 0.1f, 1e-5f);
    f->rb = dc_relu(g, f->bn);                     /* fusable into the batch norm */
    dc_name(g, "c5");
    f->out = dc_conv2d(g, f->rb, 2, 3, 1, 1);
    f->t = dc_input(g, "t", 2, 9, 9);
    f->loss = dc_mse_loss(g, f->out, f->t, -1);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
}

/* all parameter gradients, concatenated; returns the number of values */
static size_t read_all_grads(dc_params *p, float *dst) {
    dc_backend *be = dc_params_backend(p);
    size_t n = 0;
    for (int i = 0; i < dc_params_count(p); i++) {
        dc_param *q = dc_params_get(p, i);
        assert_int_equal(be->ops->read(be, dc_tensor_ptr(q->grad), dst + n, q->numel * 4), DC_OK);
        n += q->numel;
    }
    return n;
}

static void test_fused_activations(void **state) {
    (void)state;
    dc_backend *be = NULL;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(2, &be, &err), DC_OK);
    dc_params *p;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    fuse_net a, b;
    fuse_build(p, 0, &a);
    fuse_build(p, 1, &b);
    dc_rng rng;
    dc_rng_seed(&rng, 11);
    assert_int_equal(dc_params_init(p, &rng), DC_OK);
    const size_t nx = 3 * 2 * 9 * 9, np = dc_params_total(p);
    float *x = malloc(nx * 4), *t = malloc(nx * 4), *ya = malloc(nx * 4), *yb = malloc(nx * 4);
    float *ga = malloc(np * 4), *gb = malloc(np * 4), *dxa = malloc(nx * 4), *dxb = malloc(nx * 4);
    tu_fill_uniform(x, nx, &rng, -1, 1);
    tu_fill_uniform(t, nx, &rng, -1, 1);
    for (int mode = 0; mode < 3; mode++) {
        float la, lb;
        size_t ng[2];
        fuse_net *nets[2] = {&a, &b};
        float *ys[2] = {ya, yb}, *gs[2] = {ga, gb}, *dxs[2] = {dxa, dxb}, *ls[2] = {&la, &lb};
        for (int k = 0; k < 2; k++) {
            dc_graph *g = nets[k]->g;
            dc_graph_set_input(g, nets[k]->x, x);
            dc_graph_set_input(g, nets[k]->t, t);
            assert_int_equal(dc_params_zero_grad(p), DC_OK);
            assert_int_equal(dc_graph_forward(g, -1), DC_OK);
            assert_int_equal(dc_graph_backward(g, nets[k]->loss, (dc_relu_mode)mode), DC_OK);
            assert_int_equal(dc_graph_read(g, nets[k]->loss, ls[k]), DC_OK);
            assert_int_equal(dc_graph_read(g, nets[k]->out, ys[k]), DC_OK);
            assert_int_equal(dc_graph_read_grad(g, nets[k]->x, dxs[k]), DC_OK);
            ng[k] = read_all_grads(p, gs[k]);
        }
        assert_float_equal(la, lb, 0.0f);
        assert_true(tu_max_abs_err(yb, ya, nx) == 0.0);
        /* same operations in the same order: equal up to the sign of zero */
        assert_true(tu_max_abs_err(dxb, dxa, nx) == 0.0);
        assert_int_equal(ng[0], ng[1]);
        assert_true(tu_max_abs_err(gb, ga, ng[0]) == 0.0);
        double gmax = 0;
        for (size_t i = 0; i < ng[0]; i++) gmax = fmax(gmax, fabs(ga[i]));
        assert_true(gmax > 0);
    }
    /* where fusion happened the conv node holds the activated values */
    float *v = malloc(3 * 6 * 5 * 5 * 4);
    const struct { int node, fused; size_t n; } chk[] = {{b.c1, 1, 3 * 4 * 81}, {b.ct, 1, 3 * 3 * 81},
                                                         {b.c3, 0, 3 * 3 * 81}, {b.c4, 0, 3 * 4 * 81},
                                                         {b.bn, 1, 3 * 4 * 81}};
    float *big = malloc(3 * 4 * 81 * 4);
    for (size_t k = 0; k < sizeof chk / sizeof chk[0]; k++) {
        assert_int_equal(dc_graph_read(b.g, chk[k].node, big), DC_OK);
        size_t negative = 0;
        for (size_t i = 0; i < chk[k].n; i++) negative += big[i] < 0;
        if (chk[k].fused)
            assert_int_equal(negative, 0);
        else
            assert_true(negative > 0);
    }
    /* the fused leaky ReLU: conv node c2 holds what the unfused graph's activation holds */
    float *w = malloc(3 * 6 * 5 * 5 * 4);
    assert_int_equal(dc_graph_read(b.g, b.c2, v), DC_OK);
    assert_int_equal(dc_graph_read(a.g, a.r2, w), DC_OK);
    assert_true(tu_max_abs_err(v, w, 3 * 6 * 5 * 5) == 0.0);
    free(v);
    free(w);
    free(big);
    dc_graph_set_train(b.g, 0);
    assert_int_equal(dc_graph_forward(b.g, -1), DC_OK);
    assert_int_equal(dc_graph_backward(b.g, b.loss, DC_RELU_NORMAL), DC_ERR_STATE);
    assert_non_null(strstr(dc_graph_error(b.g)->msg, "eval mode"));
    free(x), free(t), free(ya), free(yb), free(ga), free(gb), free(dxa), free(dxb);
    dc_graph_free(a.g);
    dc_graph_free(b.g);
    dc_params_free(p);
    dc_backend_free(be);
}

/* SiLU is not ReLU-like (negative outputs, a backward that needs the input), so fusion must
 * leave it alone: with fusion on, a conv -> SiLU and a batch norm -> SiLU keep their
 * pre-activation values (negatives present) and every value and gradient equals the
 * unfused graph's. */
static void silu_net(dc_params *p, int fuse, dc_graph **out, int *node) {
    dc_graph *g;
    assert_int_equal(dc_graph_create(p, 2, &g), DC_OK);
    if (fuse) assert_int_equal(dc_graph_set_fusion(g, 1), DC_OK);
    int x = dc_input(g, "x", 2, 6, 6);
    dc_graph_require_grad(g, x);
    dc_name(g, "c1");
    int c1 = dc_conv2d(g, x, 4, 3, 1, 1);
    int s1 = dc_silu(g, c1);
    dc_name(g, "bn");
    int bn = dc_batchnorm2d(g, s1, 0.1f, 1e-5f);
    int s2 = dc_silu(g, bn);
    int t = dc_input(g, "t", 4, 6, 6);
    int loss = dc_mse_loss(g, s2, t, -1);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    node[0] = x, node[1] = c1, node[2] = bn, node[3] = s2, node[4] = t, node[5] = loss;
    *out = g;
}

static void test_silu_not_fused(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_params *p;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    dc_graph *g[2];
    int nd[2][6];
    silu_net(p, 0, &g[0], nd[0]);
    silu_net(p, 1, &g[1], nd[1]);
    dc_rng rng;
    dc_rng_seed(&rng, 5);
    assert_int_equal(dc_params_init(p, &rng), DC_OK);
    const size_t nx = 2 * 2 * 36, ny = 2 * 4 * 36;
    float x[2 * 2 * 36], t[2 * 4 * 36], v[2][3][2 * 4 * 36], dx[2][2 * 2 * 36];
    tu_fill_uniform(x, nx, &rng, -1, 1);
    tu_fill_uniform(t, ny, &rng, -1, 1);
    for (int k = 0; k < 2; k++) {
        dc_graph_set_input(g[k], nd[k][0], x);
        dc_graph_set_input(g[k], nd[k][4], t);
        assert_int_equal(dc_graph_forward(g[k], -1), DC_OK);
        assert_int_equal(dc_graph_backward(g[k], nd[k][5], DC_RELU_NORMAL), DC_OK);
        for (int j = 0; j < 3; j++) assert_int_equal(dc_graph_read(g[k], nd[k][1 + j], v[k][j]), DC_OK);
        assert_int_equal(dc_graph_read_grad(g[k], nd[k][0], dx[k]), DC_OK);
    }
    for (int j = 0; j < 2; j++) {
        size_t negative = 0;
        for (size_t i = 0; i < ny; i++) negative += v[1][j][i] < 0;
        assert_true(negative > 0); /* conv and batch norm hold pre-activation values */
    }
    for (int j = 0; j < 3; j++) assert_true(tu_max_abs_err(v[1][j], v[0][j], ny) == 0.0);
    assert_true(tu_max_abs_err(dx[1], dx[0], nx) == 0.0);
    dc_graph_free(g[0]);
    dc_graph_free(g[1]);
    dc_params_free(p);
    dc_backend_free(be);
}

/* The U-Net builders refuse bad shapes and arguments with a message naming the op and the
 * node (errors are sticky, so each case gets a fresh graph). */
static void test_unet_builder_errors(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_params *p;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    static const struct {
        int which;
        const char *want;
    } cases[] = {{0, "do not split into 4 groups"}, {1, "differ in height or width"},
                 {2, "one value per image and channel"}, {3, "must be even"},
                 {4, "factor 0"}, {5, "one float per image"}, {6, "must be a float [N, C, H, W]"},
                 {7, "must hold 3C channels"}, {8, "must be a float [N, C, H, W]"},
                 {9, "where: the mask 'x' [2, 6, 4, 4] must be one float plane per image"},
                 {10, "where: 'x' [2, 6, 4, 4] and 'y' [2, 2, 2, 4] differ"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dc_graph *g;
        assert_int_equal(dc_graph_create(p, 2, &g), DC_OK);
        int x = dc_input(g, "x", 6, 4, 4), y = dc_input(g, "y", 2, 2, 4);
        int t = dc_input(g, "t", 1, 1, 1), v = dc_input(g, "v", 5, 1, 1);
        int lab = dc_input_int(g, "lab");
        int r = 0;
        switch (cases[k].which) {
        case 0: r = dc_groupnorm(g, x, 4, 1e-5f); break;
        case 1: r = dc_concat(g, x, y); break;
        case 2: r = dc_add_channels(g, x, v); break;
        case 3: r = dc_time_embedding(g, t, 7, 1000.0f, 10000.0f); break;
        case 4: r = dc_upsample_nearest(g, x, 0); break;
        case 5: r = dc_time_embedding(g, v, 8, 1000.0f, 10000.0f); break;
        case 6: r = dc_concat(g, x, lab); break;
        case 7: r = dc_attention(g, y); break;
        case 9: r = dc_where(g, x, x, x); break;
        case 10: r = dc_where(g, t, x, y); break;
        default: r = dc_attention(g, lab); break;
        }
        assert_int_equal(r, -1);
        assert_int_not_equal(dc_graph_finalize(g), DC_OK);
        const char *msg = dc_graph_error(g)->msg;
        if (!strstr(msg, cases[k].want)) fail_msg("case %zu: message '%s' lacks '%s'", k, msg, cases[k].want);
        dc_graph_free(g);
    }
    dc_params_free(p);
    dc_backend_free(be);
}

/* Inputs folded into a concatenation (dc_graph_finalize): a float input that only feeds a
 * concat and needs no gradient is written straight into its channels of each image. The
 * concat's output, a conv after it and its weight gradient must equal those of the same
 * graph whose inputs keep buffers of their own (they ask for gradients, so they are not
 * folded; the concat and conv ops themselves are checked above against naive loops);
 * dc_graph_read still returns a folded input; an input with a second consumer is not
 * folded. */
static void test_concat_input_folding(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_rng rng;
    dc_rng_seed(&rng, 31);
    const int B = 3, CA = 2, CB = 1, H = 5, W = 6;
    const size_t na = (size_t)B * CA * H * W, nb = (size_t)B * CB * H * W;
    float a[180], b[90], cat[2][270], y[2][3 * 4 * 30], dw[2][4 * 3 * 9 + 4], back[360];
    tu_fill_uniform(a, na, &rng, -1, 1);
    tu_fill_uniform(b, nb, &rng, -1, 1);
    size_t nw = 0;
    for (int fold = 1; fold >= 0; fold--) {
        dc_params *p;
        dc_graph *g;
        assert_int_equal(dc_params_create(be, &p), DC_OK);
        assert_int_equal(dc_graph_create(p, B, &g), DC_OK);
        int xa = dc_input(g, "a", CA, H, W), xb = dc_input(g, "b", CB, H, W);
        if (!fold) {
            dc_graph_require_grad(g, xa);
            dc_graph_require_grad(g, xb);
        }
        int c = dc_concat(g, xa, xb);
        dc_name(g, "conv");
        int conv = dc_conv2d(g, c, 4, 3, 1, 1);
        int t = dc_input(g, "t", 4, H, W);
        int loss = dc_mse_loss(g, conv, t, -1);
        assert_true(loss >= 0);
        assert_int_equal(dc_graph_finalize(g), DC_OK);
        dc_rng wr;
        dc_rng_seed(&wr, 7); /* the same weights in both graphs */
        assert_int_equal(dc_params_init(p, &wr), DC_OK);
        /* folded inputs have no tensor of their own */
        assert_true((dc_graph_value(g, xa).buf == NULL) == fold);
        assert_true((dc_graph_value(g, xb).buf == NULL) == fold);
        assert_int_equal(dc_graph_set_input(g, xa, a), DC_OK);
        assert_int_equal(dc_graph_set_input(g, xb, b), DC_OK);
        float tv[360];
        tu_fill_uniform(tv, (size_t)B * 4 * H * W, &rng, -1, 1);
        if (fold) memcpy(back, tv, sizeof tv); /* the same targets in both graphs */
        assert_int_equal(dc_graph_set_input(g, t, back), DC_OK);
        assert_int_equal(dc_graph_forward(g, -1), DC_OK);
        assert_int_equal(dc_params_zero_grad(p), DC_OK);
        assert_int_equal(dc_graph_backward(g, loss, DC_RELU_NORMAL), DC_OK);
        assert_int_equal(dc_graph_read(g, c, cat[fold]), DC_OK);
        assert_int_equal(dc_graph_read(g, conv, y[fold]), DC_OK);
        nw = read_all_grads(p, dw[fold]);
        float ra[180], rb[90];
        assert_int_equal(dc_graph_read(g, xa, ra), DC_OK);
        assert_int_equal(dc_graph_read(g, xb, rb), DC_OK);
        assert_memory_equal(ra, a, na * 4);
        assert_memory_equal(rb, b, nb * 4);
        dc_graph_free(g);
        dc_params_free(p);
    }
    /* the concatenation by hand: image i's channels of a, then of b */
    for (int i = 0; i < B; i++) {
        assert_memory_equal(cat[1] + (size_t)i * (CA + CB) * H * W, a + (size_t)i * CA * H * W,
                            (size_t)CA * H * W * 4);
        assert_memory_equal(cat[1] + ((size_t)i * (CA + CB) + CA) * H * W,
                            b + (size_t)i * CB * H * W, (size_t)CB * H * W * 4);
    }
    assert_memory_equal(cat[1], cat[0], sizeof cat[0]);
    assert_memory_equal(y[1], y[0], sizeof y[0]);
    assert_memory_equal(dw[1], dw[0], nw * 4);

    /* a second consumer keeps the input's own buffer */
    dc_params *p;
    dc_graph *g;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, B, &g), DC_OK);
    int xa = dc_input(g, "a", CA, H, W), xb = dc_input(g, "b", CB, H, W);
    int c = dc_concat(g, xa, xb), r = dc_relu(g, xa);
    assert_true(c >= 0 && r >= 0);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    assert_non_null(dc_graph_value(g, xa).buf);
    assert_null(dc_graph_value(g, xb).buf);
    dc_graph_free(g);
    dc_params_free(p);
    dc_backend_free(be);
}

/* The Winograd convolutions, F(4x4, 3x3) (the default) and F(2x2, 3x3), against the
 * im2col + GEMM one (DECONV_CONV=gemm), whole tensors: outputs, input gradients and weight
 * gradients of 3x3 stride-1 convs with and without a fused ReLU, on 9x10 planes (partial
 * tiles in both directions), images split over two threads. Bound: 1e-5 relative to the
 * largest value (rounding of the transforms: F(4x4) multiplies by up to 8 and divides by
 * 24, about ten times F(2x2)'s error). */
static void wino_run(const char *algo, const float *x, const float *seed, float *y, float *dx,
                     float *dw, size_t *nw_out) {
    /* the backend reads DECONV_CONV when it is created; the caller's value is restored */
    char saved[32] = "";
    const char *was = getenv("DECONV_CONV");
    if (was) snprintf(saved, sizeof saved, "%s", was);
    if (algo)
        setenv("DECONV_CONV", algo, 1);
    else
        unsetenv("DECONV_CONV");
    dc_backend *be = NULL;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(2, &be, &err), DC_OK);
    if (was)
        setenv("DECONV_CONV", saved, 1);
    else
        unsetenv("DECONV_CONV");
    dc_params *p;
    dc_graph *g;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, 5, &g), DC_OK);
    assert_int_equal(dc_graph_set_fusion(g, 1), DC_OK);
    int in = dc_input(g, "x", 12, 9, 10);
    dc_graph_require_grad(g, in);
    int c1 = dc_conv2d(g, in, 16, 3, 1, 1);
    int r1 = dc_relu(g, c1); /* fused */
    int c2 = dc_conv2d(g, r1, 10, 3, 1, 1);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    dc_rng rng;
    dc_rng_seed(&rng, 3);
    assert_int_equal(dc_params_init(p, &rng), DC_OK);
    dc_graph_set_input(g, in, x);
    assert_int_equal(dc_graph_forward(g, -1), DC_OK);
    assert_int_equal(dc_params_zero_grad(p), DC_OK);
    assert_int_equal(dc_graph_backward_from(g, c2, seed, DC_RELU_NORMAL), DC_OK);
    assert_int_equal(dc_graph_read(g, c2, y), DC_OK);
    assert_int_equal(dc_graph_read_grad(g, in, dx), DC_OK);
    *nw_out = read_all_grads(p, dw);
    dc_graph_free(g);
    dc_params_free(p);
    dc_backend_free(be);
}

static double rel_to_max(const float *a, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(ref[i]));
    return tu_max_abs_err(a, ref, n) / (m > 0 ? m : 1);
}

static void test_winograd_matches_gemm(void **state) {
    (void)state;
    const size_t nx = 5 * 12 * 9 * 10, ny = 5 * 10 * 9 * 10;
    const size_t nwmax = 2 * (16 * 12 * 9 + 16 + 10 * 16 * 9 + 10); /* with alignment room */
    float *x = malloc(nx * 4), *seed = malloc(ny * 4);
    float *y[3], *dx[3], *dw[3];
    size_t nw[3];
    const char *algos[3] = {"gemm", "winograd2", NULL /* default: F(4x4, 3x3) */};
    dc_rng rng;
    dc_rng_seed(&rng, 8);
    tu_fill_uniform(x, nx, &rng, -1, 1);
    tu_fill_uniform(seed, ny, &rng, -1, 1);
    for (int k = 0; k < 3; k++) {
        y[k] = malloc(ny * 4), dx[k] = malloc(nx * 4), dw[k] = malloc(nwmax * 4);
        wino_run(algos[k], x, seed, y[k], dx[k], dw[k], &nw[k]);
        assert_true(nw[k] <= nwmax);
        assert_int_equal(nw[k], nw[0]);
    }
    for (int k = 1; k < 3; k++) {
        const double ey = rel_to_max(y[k], y[0], ny), edx = rel_to_max(dx[k], dx[0], nx),
                     edw = rel_to_max(dw[k], dw[0], nw[0]);
        print_message("  %s vs gemm: output %.2g, dx %.2g, dw %.2g (max err / max value)\n",
                      algos[k] ? algos[k] : "winograd4", ey, edx, edw);
        assert_true(ey < 1e-5);
        assert_true(edx < 1e-5);
        assert_true(edw < 1e-5);
        /* the paths really differ (rounding): the comparison is not of one code with itself */
        assert_true(tu_max_abs_err(y[k], y[0], ny) > 0);
    }
    assert_true(tu_max_abs_err(y[1], y[2], ny) > 0);
    for (int k = 0; k < 3; k++) free(y[k]), free(dx[k]), free(dw[k]);
    free(x);
    free(seed);
}

/* Losses: values against naive formulas, gradients against finite differences. */
static void test_losses(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_params *p;
    dc_graph *g;
    dc_rng rng;
    dc_rng_seed(&rng, 11);
    const int N = 4, K = 5;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, N, &g), DC_OK);
    int pr = dc_input(g, "pred", 2, 3, 1), tg = dc_input(g, "tgt", 2, 3, 1), wt = dc_input(g, "w", 2, 3, 1);
    int lg = dc_input(g, "logits", K, 1, 1), lb = dc_input_int(g, "labels");
    int mu = dc_input(g, "mu", 3, 1, 1), lv = dc_input(g, "lv", 3, 1, 1);
    dc_graph_require_grad(g, pr);
    dc_graph_require_grad(g, lg);
    dc_graph_require_grad(g, mu);
    dc_graph_require_grad(g, lv);
    int mse = dc_mse_loss(g, pr, tg, wt), xe = dc_softmax_xent_loss(g, lg, lb), kl = dc_gaussian_kl_loss(g, mu, lv);
    int s1 = dc_loss_sum(g, mse, 0.7f, xe, 1.3f), total = dc_loss_sum(g, s1, 1.0f, kl, 0.5f);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    float P[24], T[24], W[24], L[20], M[12], V[12];
    int32_t Y[4] = {0, 4, 2, 4};
    tu_fill_uniform(P, 24, &rng, -1, 1);
    tu_fill_uniform(T, 24, &rng, -1, 1);
    tu_fill_uniform(W, 24, &rng, 0, 1);
    tu_fill_uniform(L, 20, &rng, -2, 2);
    tu_fill_uniform(M, 12, &rng, -1, 1);
    tu_fill_uniform(V, 12, &rng, -1, 1);
    dc_graph_set_input(g, pr, P);
    dc_graph_set_input(g, tg, T);
    dc_graph_set_input(g, wt, W);
    dc_graph_set_input(g, lg, L);
    dc_graph_set_input_int(g, lb, Y);
    dc_graph_set_input(g, mu, M);
    dc_graph_set_input(g, lv, V);
    assert_int_equal(dc_graph_forward(g, -1), DC_OK);
    double rm = 0, rx = 0, rk = 0;
    for (int i = 0; i < 24; i++) rm += W[i] * (P[i] - T[i]) * (P[i] - T[i]);
    rm /= 24;
    for (int r = 0; r < N; r++) {
        double mx = -1e30, s = 0;
        for (int j = 0; j < K; j++) mx = fmax(mx, L[r * K + j]);
        for (int j = 0; j < K; j++) s += exp(L[r * K + j] - mx);
        rx += -(L[r * K + Y[r]] - mx - log(s));
    }
    rx /= N;
    for (int i = 0; i < 12; i++) rk += -0.5 * (1 + V[i] - M[i] * M[i] - exp(V[i]));
    rk /= N;
    float got[4];
    dc_graph_read(g, mse, &got[0]);
    dc_graph_read(g, xe, &got[1]);
    dc_graph_read(g, kl, &got[2]);
    dc_graph_read(g, total, &got[3]);
    assert_true(fabs(got[0] - rm) < 1e-5 * fmax(1, rm));
    assert_true(fabs(got[1] - rx) < 1e-5 * fmax(1, rx));
    assert_true(fabs(got[2] - rk) < 1e-5 * fmax(1, rk));
    assert_true(fabs(got[3] - (0.7 * rm + 1.3 * rx + 0.5 * rk)) < 1e-5 * fmax(1, got[3]));
    assert_int_equal(dc_graph_backward(g, total, DC_RELU_NORMAL), DC_OK);
    struct { int node; float *host; int n; } ins[4] = {{pr, P, 24}, {lg, L, 20}, {mu, M, 12}, {lv, V, 12}};
    for (int k = 0; k < 4; k++) {
        float grad[24];
        dc_graph_read_grad(g, ins[k].node, grad);
        for (int i = 0; i < ins[k].n; i++) {
            float keep = ins[k].host[i];
            ins[k].host[i] = keep + 1e-2f;
            dc_graph_set_input(g, ins[k].node, ins[k].host);
            double lp = loss_at(g, total);
            ins[k].host[i] = keep - 1e-2f;
            dc_graph_set_input(g, ins[k].node, ins[k].host);
            double lm = loss_at(g, total);
            ins[k].host[i] = keep;
            dc_graph_set_input(g, ins[k].node, ins[k].host);
            double fd = (lp - lm) / 2e-2;
            if (fabs(fd - grad[i]) > 2e-3 + 2e-2 * fabs(fd))
                fail_msg("loss input %d[%d]: analytic %g, finite difference %g", k, i, (double)grad[i], fd);
        }
    }
    /* an out-of-range label is rejected before any kernel sees it */
    int32_t bad[4] = {0, 5, 1, 1};
    assert_int_equal(dc_graph_set_input_int(g, lb, bad), DC_ERR_ARG);
    assert_non_null(strstr(dc_graph_error(g)->msg, "labels"));
    dc_graph_free(g);
    dc_params_free(p);
    dc_backend_free(be);
}

/* Binary cross-entropy of tanh(x) against t in [-1, 1]: the value against the textbook
 * -[y log p + (1-y) log(1-p)] (p = (1 + tanh x)/2 = sigmoid(2x), y = (1 + t)/2, logs from
 * log-sigmoid in double), finite at logits far beyond exp's float range, and its gradient
 * against finite differences, weighted and unweighted. */
static void test_bce_tanh_loss(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_params *p;
    dc_graph *g;
    dc_rng rng;
    dc_rng_seed(&rng, 21);
    const int N = 3, D = 8, n = N * D;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, N, &g), DC_OK);
    int x = dc_input(g, "x", D, 1, 1), t = dc_input(g, "t", D, 1, 1), w = dc_input(g, "w", D, 1, 1);
    int x2 = dc_input(g, "x2", D, 1, 1);
    dc_graph_require_grad(g, x);
    dc_graph_require_grad(g, x2);
    int weighted = dc_bce_tanh_loss(g, x, t, w), plain = dc_bce_tanh_loss(g, x2, t, -1);
    int total = dc_loss_sum(g, weighted, 1.0f, plain, 0.5f);
    /* shapes are checked */
    int bad = dc_input(g, "bad", D + 1, 1, 1);
    assert_int_equal(dc_bce_tanh_loss(g, x, bad, -1), -1);
    assert_non_null(strstr(dc_graph_error(g)->msg, "bce_tanh_loss"));
    dc_graph_free(g);
    assert_int_equal(dc_graph_create(p, N, &g), DC_OK);
    x = dc_input(g, "x", D, 1, 1), t = dc_input(g, "t", D, 1, 1), w = dc_input(g, "w", D, 1, 1);
    x2 = dc_input(g, "x2", D, 1, 1);
    dc_graph_require_grad(g, x);
    dc_graph_require_grad(g, x2);
    weighted = dc_bce_tanh_loss(g, x, t, w), plain = dc_bce_tanh_loss(g, x2, t, -1);
    total = dc_loss_sum(g, weighted, 1.0f, plain, 0.5f);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    float X[24], X2[24], T[24], W[24];
    tu_fill_uniform(X, n, &rng, -2, 2);
    tu_fill_uniform(X2, n, &rng, -2, 2);
    tu_fill_uniform(T, n, &rng, -1, 1);
    tu_fill_uniform(W, n, &rng, 0, 1);
    T[0] = -1, T[1] = 1, T[2] = 1, T[3] = -1; /* binary targets, and extreme logits */
    X2[0] = 40, X2[1] = -40, X2[2] = 60, X2[3] = -60;
    dc_graph_set_input(g, x, X);
    dc_graph_set_input(g, x2, X2);
    dc_graph_set_input(g, t, T);
    dc_graph_set_input(g, w, W);
    assert_int_equal(dc_graph_forward(g, -1), DC_OK);
    double rw = 0, rp = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            const double v = k ? X2[i] : X[i], y = 0.5 * (1.0 + T[i]);
            const double logp = -log1p(exp(-2.0 * v)), log1mp = -log1p(exp(2.0 * v));
            const double e = -(y * logp + (1.0 - y) * log1mp);
            if (k) rp += e; else rw += W[i] * e;
        }
    }
    rw /= n, rp /= n;
    float got[3];
    dc_graph_read(g, weighted, &got[0]);
    dc_graph_read(g, plain, &got[1]);
    dc_graph_read(g, total, &got[2]);
    assert_true(isfinite(got[1]));
    if (fabs(got[0] - rw) > 1e-5 * fmax(1, rw)) fail_msg("bce weighted %g, reference %g", got[0], rw);
    if (fabs(got[1] - rp) > 1e-5 * fmax(1, rp)) fail_msg("bce plain %g, reference %g", got[1], rp);
    assert_int_equal(dc_graph_backward(g, total, DC_RELU_NORMAL), DC_OK);
    struct { int node; float *host; } ins[2] = {{x, X}, {x2, X2}};
    for (int k = 0; k < 2; k++) {
        float grad[24];
        dc_graph_read_grad(g, ins[k].node, grad);
        for (int i = 0; i < n; i++) {
            assert_true(isfinite(grad[i]));
            float keep = ins[k].host[i];
            ins[k].host[i] = keep + 1e-2f;
            dc_graph_set_input(g, ins[k].node, ins[k].host);
            double lp = loss_at(g, total);
            ins[k].host[i] = keep - 1e-2f;
            dc_graph_set_input(g, ins[k].node, ins[k].host);
            double lm = loss_at(g, total);
            ins[k].host[i] = keep;
            dc_graph_set_input(g, ins[k].node, ins[k].host);
            double fd = (lp - lm) / 2e-2;
            if (fabs(fd - grad[i]) > 2e-3 + 2e-2 * fabs(fd))
                fail_msg("bce input %d[%d]: analytic %g, finite difference %g", k, i, (double)grad[i], fd);
        }
    }
    dc_graph_free(g);
    dc_params_free(p);
    dc_backend_free(be);
}

/* Dropout keeps about 1-p of the values, scaled by 1/(1-p); eval mode is the identity. */
static void test_dropout_stats(void **state) {
    (void)state;
    dc_backend *be = cpu();
    dc_params *p;
    dc_graph *g;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, 8, &g), DC_OK);
    int x = dc_input(g, "x", 16, 16, 16);
    int d = dc_dropout(g, x, 0.25f);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    const size_t n = 8 * 16 * 16 * 16;
    float *ones = malloc(n * 4), *y = malloc(n * 4);
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    dc_graph_set_input(g, x, ones);
    dc_graph_set_seed(g, 42);
    assert_int_equal(dc_graph_forward(g, -1), DC_OK);
    dc_graph_read(g, d, y);
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] == 0.0f) zeros++;
        else assert_float_equal(y[i], 1.0f / 0.75f, 1e-6);
    }
    double frac = (double)zeros / n; /* binomial sd ~ 0.0024 at this n */
    assert_true(fabs(frac - 0.25) < 0.015);
    dc_graph_set_train(g, 0);
    dc_graph_forward(g, -1);
    dc_graph_read(g, d, y);
    for (size_t i = 0; i < n; i++) assert_float_equal(y[i], 1.0f, 0.0f);
    free(ones);
    free(y);
    dc_graph_free(g);
    dc_params_free(p);
    dc_backend_free(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_ops),
        cmocka_unit_test(test_share_scope),
        cmocka_unit_test(test_relu_modes),
        cmocka_unit_test(test_fused_activations),
        cmocka_unit_test(test_silu_not_fused),
        cmocka_unit_test(test_unet_builder_errors),
        cmocka_unit_test(test_winograd_matches_gemm),
        cmocka_unit_test(test_concat_input_folding),
        cmocka_unit_test(test_losses),
        cmocka_unit_test(test_bce_tanh_loss),
        cmocka_unit_test(test_dropout_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
