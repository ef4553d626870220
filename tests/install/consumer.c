/* A program that knows deconv only as an installed package (its headers and library found
 * through pkg-config or find_package). It builds a small graph and checks its forward pass
 * against plain loops, then builds the classifier preset and checks that a forward pass in
 * evaluation mode gives finite logits that depend on each image alone. Exit status 0: all
 * checks passed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <deconv/deconv.h>
#include <deconv/model.h>

enum { N = 2, C = 2, H = 6, W = 5, OC = 3, K = 3, PAD = 1 };

static int failed(const char *what, const char *msg) {
    fprintf(stderr, "consumer: %s: %s\n", what, msg);
    return 1;
}

/* conv2d (stride 1, zero padding) + bias + ReLU by loops, in double. */
static void conv_relu_by_loops(const float *x, const float *w, const float *b, float *out) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            for (int y = 0; y < H; y++)
                for (int xo = 0; xo < W; xo++) {
                    double s = b[o];
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < K; i++)
                            for (int j = 0; j < K; j++) {
                                int iy = y - PAD + i, ix = xo - PAD + j;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += (double)w[((o * C + c) * K + i) * K + j] *
                                     x[((n * C + c) * H + iy) * W + ix];
                            }
                    out[((n * OC + o) * H + y) * W + xo] = s > 0 ? (float)s : 0.0f;
                }
}

static int check_graph(dc_backend *be) {
    dc_params *params = NULL;
    dc_graph *g = NULL;
    if (dc_params_create(be, &params) != DC_OK) return failed("params", "create failed");
    if (dc_graph_create(params, N, &g) != DC_OK) return failed("graph", "create failed");
    int x = dc_input(g, "x", C, H, W);
    dc_name(g, "conv");
    int y = dc_relu(g, dc_conv2d(g, x, OC, K, 1, PAD));
    if (dc_graph_finalize(g) != DC_OK) return failed("finalize", dc_graph_error(g)->msg);

    dc_rng rng;
    dc_rng_seed(&rng, 42);
    if (dc_params_init(params, &rng) != DC_OK) return failed("init", dc_params_error(params)->msg);
    /* a random bias too (it starts at zero), so the check sees it */
    float bias[OC], weight[OC * C * K * K], input[N * C * H * W];
    for (int i = 0; i < OC; i++)
        bias[i] = dc_rng_uniform(&rng) - 0.5f;
    int bias_index = dc_params_find(params, "conv.bias");
    int weight_index = dc_params_find(params, "conv.weight");
    if (bias_index < 0 || weight_index < 0) return failed("params", "conv.weight/bias missing");
    if (dc_params_write(params, bias_index, bias) != DC_OK ||
        dc_params_read(params, weight_index, weight) != DC_OK)
        return failed("params", dc_params_error(params)->msg);
    for (int i = 0; i < N * C * H * W; i++)
        input[i] = 2.0f * dc_rng_uniform(&rng) - 1.0f;

    float got[N * OC * H * W], want[N * OC * H * W];
    if (dc_graph_set_input(g, x, input) != DC_OK || dc_graph_forward(g, y) != DC_OK ||
        dc_graph_read(g, y, got) != DC_OK)
        return failed("forward", dc_graph_error(g)->msg);
    conv_relu_by_loops(input, weight, bias, want);
    double worst = 0;
    int positive = 0;
    for (int i = 0; i < N * OC * H * W; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst)) worst = d; /* NaN lands here too */
        positive += want[i] > 0;
    }
    printf("consumer: conv2d+relu [%d, %d, %d, %d]: largest difference to loops %.3g "
           "(%d of %d outputs positive)\n",
           N, OC, H, W, worst, positive, N * OC * H * W);
    dc_graph_free(g);
    dc_params_free(params);
    if (!(worst <= 1e-5)) return failed("conv2d+relu", "differs from the loops");
    if (positive == 0 || positive == N * OC * H * W)
        return failed("conv2d+relu", "the ReLU never or always clipped: a weak check");
    return 0;
}

static int check_classifier(dc_backend *be) {
    dc_error err = {0};
    dc_model_spec spec;
    dc_model *m = NULL;
    if (dc_model_spec_defaults(&spec, DC_MODEL_CLASSIFIER, 1, 28, &err) != DC_OK)
        return failed("classifier spec", err.msg);
    spec.classes = 10;
    if (dc_model_create(be, &spec, 2, &m, &err) != DC_OK) return failed("classifier", err.msg);
    dc_rng rng;
    dc_rng_seed(&rng, 7);
    if (dc_params_init(m->params, &rng) != DC_OK)
        return failed("classifier init", dc_params_error(m->params)->msg);
    dc_graph_set_train(m->g, 0);

    static float images[2 * 28 * 28];
    float first[2 * 10], second[2 * 10];
    for (int i = 0; i < 2 * 28 * 28; i++)
        images[i] = 2.0f * dc_rng_uniform(&rng) - 1.0f;
    if (dc_graph_set_input(m->g, m->x, images) != DC_OK ||
        dc_graph_forward(m->g, m->out) != DC_OK || dc_graph_read(m->g, m->out, first) != DC_OK)
        return failed("classifier forward", dc_graph_error(m->g)->msg);
    /* change the second image only: in evaluation mode the first one's logits stay */
    for (int i = 28 * 28; i < 2 * 28 * 28; i++)
        images[i] = -images[i];
    if (dc_graph_set_input(m->g, m->x, images) != DC_OK ||
        dc_graph_forward(m->g, m->out) != DC_OK || dc_graph_read(m->g, m->out, second) != DC_OK)
        return failed("classifier forward", dc_graph_error(m->g)->msg);
    int shape[8];
    int nd = dc_graph_node_shape(m->g, m->out, shape);
    size_t count = dc_shape_numel(nd, shape);
    dc_model_free(m);
    if (count != 2 * 10) return failed("classifier", "logits are not [2, 10]");
    int second_changed = 0;
    for (int i = 0; i < 10; i++) {
        if (!isfinite(first[i]) || !isfinite(first[10 + i]))
            return failed("classifier", "non-finite logit");
        if (first[i] != second[i])
            return failed("classifier", "image 0's logits moved with image 1");
        second_changed += first[10 + i] != second[10 + i];
    }
    if (!second_changed) return failed("classifier", "image 1's logits ignore image 1");
    printf("consumer: classifier preset: logits [2, 10], each image's own\n");
    return 0;
}

int main(void) {
    dc_error err = {0};
    dc_backend *be = NULL;
    if (dc_backend_create_cpu(1, &be, &err) != DC_OK) return failed("backend", err.msg);
    printf("consumer: deconv %s, backend %s\n", DECONV_VERSION, dc_backend_name(be));
    int bad = check_graph(be) || check_classifier(be);
    dc_backend_free(be);
    if (!bad) printf("consumer: all checks passed\n");
    return bad;
}
