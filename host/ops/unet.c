/* The U-Net ops of the diffusion models: channel concatenation (skip connections), group
 * normalisation, a per-(image, channel) broadcast add (time / class embeddings into feature
 * maps), nearest-neighbour upsampling, the sinusoidal time embedding and single-head
 * self-attention over an image's positions. SiLU is in act.c. */
#include <math.h>

#include "graph_internal.h"

/* 0 when node x is a float [N, C, H, W] tensor, otherwise records an error and returns -1 */
static int need_nchw(dc_graph *g, const char *op, int x) {
    if (dc_graph_check_input(g, op, x)) return -1;
    const dc_node *in = &g->nodes[x];
    if (in->op == DC_OP_INPUT_INT || in->ndim != 4) {
        char s[64];
        dc_graph_fail(g, DC_ERR_SHAPE, "%s: input '%s' %s must be a float [N, C, H, W] tensor", op,
                      in->name, dc_shape_str(in->ndim, in->shape, s, sizeof s));
        return -1;
    }
    return 0;
}

/* ---- concat: y = [a, b] along channels; the backward hands each input its slice ---- */
int dc_concat(dc_graph *g, int a, int b) {
    if (need_nchw(g, "concat", a) || need_nchw(g, "concat", b)) return -1;
    const dc_node *na = &g->nodes[a], *nb = &g->nodes[b];
    if (NH(na) != NH(nb) || NW(na) != NW(nb)) {
        char s1[64], s2[64];
        return dc_graph_fail(g, DC_ERR_SHAPE,
                             "concat: '%s' %s and '%s' %s differ in height or width", na->name,
                             dc_shape_str(4, na->shape, s1, sizeof s1), nb->name,
                             dc_shape_str(4, nb->shape, s2, sizeof s2));
    }
    int in[2] = {a, b};
    int shape[4] = {g->batch, NC(na) + NC(nb), NH(na), NW(na)};
    return dc_graph_add_node(g, DC_OP_CONCAT, in, 2, 4, shape);
}

static dc_status concat_forward(dc_graph *g, dc_node *n) {
    const int hw = NH(n) * NW(n);
    int coff = 0;
    for (int i = 0; i < 2; i++) {
        const dc_node *in = &g->nodes[n->in[i]];
        const int ci = NC(in);
        /* a folded input is already in place (dc_graph_set_input wrote it there) */
        if (!in->folded)
            DC_TRY(DC_BE(g->be, chan_slice, 0, dc_tensor_ptr(n->out), NC(n), coff,
                         dc_node_out(g, n->in[i]), ci, g->batch, hw));
        coff += ci;
    }
    return DC_OK;
}

static dc_status concat_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    const int hw = NH(n) * NW(n);
    int coff = 0;
    for (int i = 0; i < 2; i++) {
        const int ci = NC(&g->nodes[n->in[i]]);
        if (dc_node_has_grad(g, n->in[i]))
            DC_TRY(DC_BE(g->be, chan_slice, 1, dc_tensor_ptr(n->grad), NC(n), coff,
                         dc_node_grad(g, n->in[i]), ci, g->batch, hw));
        coff += ci;
    }
    return DC_OK;
}

/* ---- group norm: statistics per (image, group) in training and inference alike ---- */
int dc_groupnorm(dc_graph *g, int x, int groups, float eps) {
    if (need_nchw(g, "groupnorm", x)) return -1;
    const dc_node *in = &g->nodes[x];
    const int C = NC(in);
    if (groups <= 0 || C % groups)
        return dc_graph_fail(g, DC_ERR_ARG,
                             "groupnorm: %d channels of '%s' do not split into %d groups", C,
                             in->name, groups);
    if (!(eps > 0.0f))
        return dc_graph_fail(g, DC_ERR_ARG, "groupnorm: eps %g must be > 0", (double)eps);
    int id = dc_graph_add_node(g, DC_OP_GROUPNORM, &x, 1, 4, in->shape);
    if (id < 0) return -1;
    /* the backward primitive writes dx together with the parameter gradients */
    g->nodes[x].wants_grad = 1;
    dc_node *n = &g->nodes[id];
    n->k = groups;
    n->eps = eps;
    int cs[1] = {C};
    if (dc_graph_param(g, n, 0, "weight", 1, cs, DC_INIT_ONE, 0, 0, 1, 0) < 0 ||
        dc_graph_param(g, n, 1, "bias", 1, cs, DC_INIT_ZERO, 0, 0, 1, 0) < 0)
        return -1;
    n->saved_numel[0] = (size_t)g->batch * groups; /* mean */
    n->saved_numel[1] = (size_t)g->batch * groups; /* variance (biased) */
    return id;
}

static dc_status gn_forward(dc_graph *g, dc_node *n) {
    dc_backend *be = g->be;
    const int N = g->batch, C = NC(n), hw = NH(n) * NW(n);
    dc_ptr x = dc_node_out(g, n->in[0]);
    dc_ptr mean = dc_tensor_ptr(n->saved[0]), var = dc_tensor_ptr(n->saved[1]);
    DC_TRY(DC_BE(be, gn_stats, x, mean, var, N, C, hw, n->k));
    return DC_BE(be, gn_apply, x, mean, var, dc_tensor_ptr(dc_graph_param_at(g, n, 0)->value),
                 dc_tensor_ptr(dc_graph_param_at(g, n, 1)->value), dc_tensor_ptr(n->out), N, C, hw,
                 n->k, n->eps);
}

static dc_status gn_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    const int N = g->batch, C = NC(n), hw = NH(n) * NW(n);
    dc_param *pg = dc_graph_param_at(g, n, 0), *pb = dc_graph_param_at(g, n, 1);
    dc_ptr dx = dc_node_grad(g, n->in[0]);
    if (!dx.buf) /* cannot happen: the builder makes the input keep a gradient */
        return dc_set_error(&g->err, DC_ERR_STATE, "groupnorm '%s': input has no gradient buffer",
                            n->name);
    return DC_BE(g->be, gn_bwd, dc_node_out(g, n->in[0]), dc_tensor_ptr(n->saved[0]),
                 dc_tensor_ptr(n->saved[1]), dc_tensor_ptr(pg->value), dc_tensor_ptr(n->grad), dx,
                 dc_tensor_ptr(pg->grad), dc_tensor_ptr(pb->grad), N, C, hw, n->k, n->eps);
}

/* ---- add_channels: y[n,c,h,w] = x[n,c,h,w] + e[n,c] ----
 * Seen as one image of N*C planes, e is a per-plane bias: bias_add and bias_grad. */
int dc_add_channels(dc_graph *g, int x, int e) {
    if (need_nchw(g, "add_channels", x) || dc_graph_check_input(g, "add_channels", e)) return -1;
    const dc_node *nx = &g->nodes[x], *ne = &g->nodes[e];
    if (ne->op == DC_OP_INPUT_INT || ne->numel != (size_t)g->batch * NC(nx)) {
        char s1[64], s2[64];
        return dc_graph_fail(g, DC_ERR_SHAPE,
                             "add_channels: '%s' %s needs one value per image and channel, '%s' "
                             "is %s",
                             nx->name, dc_shape_str(4, nx->shape, s1, sizeof s1), ne->name,
                             dc_shape_str(ne->ndim, ne->shape, s2, sizeof s2));
    }
    int in[2] = {x, e};
    return dc_graph_add_node(g, DC_OP_ADD_CHANNELS, in, 2, 4, nx->shape);
}

static dc_status addc_forward(dc_graph *g, dc_node *n) {
    dc_ptr y = dc_tensor_ptr(n->out);
    DC_TRY(DC_BE(g->be, copy, y, dc_node_out(g, n->in[0]), n->numel));
    return DC_BE(g->be, bias_add, y, dc_node_out(g, n->in[1]), 1, g->batch * NC(n), NH(n) * NW(n));
}

static dc_status addc_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    dc_ptr dy = dc_tensor_ptr(n->grad);
    if (dc_node_has_grad(g, n->in[0]))
        DC_TRY(DC_BE(g->be, axpy, dc_node_grad(g, n->in[0]), dy, n->numel, 1.0f));
    if (dc_node_has_grad(g, n->in[1]))
        DC_TRY(DC_BE(g->be, bias_grad, dc_node_grad(g, n->in[1]), dy, 1, g->batch * NC(n),
                     NH(n) * NW(n)));
    return DC_OK;
}

/* ---- nearest-neighbour upsampling by an integer factor ---- */
int dc_upsample_nearest(dc_graph *g, int x, int factor) {
    if (need_nchw(g, "upsample_nearest", x)) return -1;
    const dc_node *in = &g->nodes[x];
    if (factor < 1 || factor > 64)
        return dc_graph_fail(g, DC_ERR_ARG,
                             "upsample_nearest: factor %d of '%s' must be in [1, 64]", factor,
                             in->name);
    int shape[4] = {g->batch, NC(in), NH(in) * factor, NW(in) * factor};
    int id = dc_graph_add_node(g, DC_OP_UPSAMPLE, &x, 1, 4, shape);
    if (id >= 0) g->nodes[id].k = factor;
    return id;
}

static dc_status up_forward(dc_graph *g, dc_node *n) {
    const dc_node *in = &g->nodes[n->in[0]];
    return DC_BE(g->be, upsample_fwd, dc_node_out(g, n->in[0]), dc_tensor_ptr(n->out),
                 g->batch * NC(in), NH(in), NW(in), n->k);
}

static dc_status up_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    const dc_node *in = &g->nodes[n->in[0]];
    if (!dc_node_has_grad(g, n->in[0])) return DC_OK;
    return DC_BE(g->be, upsample_bwd, dc_tensor_ptr(n->grad), dc_node_grad(g, n->in[0]),
                 g->batch * NC(in), NH(in), NW(in), n->k);
}

/* ---- sinusoidal time embedding of one float per image; no gradient flows to t ---- */
int dc_time_embedding(dc_graph *g, int t, int dim, float scale, float max_period) {
    if (dc_graph_check_input(g, "time_embedding", t)) return -1;
    const dc_node *in = &g->nodes[t];
    if (in->op == DC_OP_INPUT_INT || in->numel != (size_t)g->batch) {
        char s[64];
        return dc_graph_fail(g, DC_ERR_SHAPE,
                             "time_embedding: '%s' %s must hold one float per image", in->name,
                             dc_shape_str(in->ndim, in->shape, s, sizeof s));
    }
    if (dim <= 0 || dim % 2 || !(max_period > 1.0f))
        return dc_graph_fail(g, DC_ERR_ARG,
                             "time_embedding: dim %d must be even and > 0, max_period %g > 1", dim,
                             (double)max_period);
    int shape[4] = {g->batch, dim, 1, 1};
    int id = dc_graph_add_node(g, DC_OP_TIME_EMBED, &t, 1, 4, shape);
    if (id < 0) return -1;
    g->nodes[id].out_ch = dim;
    g->nodes[id].alpha = scale;
    g->nodes[id].p = max_period;
    return id;
}

static dc_status temb_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, time_embed, dc_node_out(g, n->in[0]), dc_tensor_ptr(n->out), g->batch,
                 n->out_ch, n->alpha, n->p);
}

/* ---- attention: [N, 3C, H, W] queries, keys, values -> [N, C, H, W] ----
 * The probabilities [N, HW, HW] are kept (saved[0]) for the backward; the backward's
 * scratch, the scores' gradient, is the shared workspace. */
int dc_attention(dc_graph *g, int qkv) {
    if (need_nchw(g, "attention", qkv)) return -1;
    const dc_node *in = &g->nodes[qkv];
    if (NC(in) % 3) {
        char s[64];
        return dc_graph_fail(g, DC_ERR_SHAPE,
                             "attention: '%s' %s must hold 3C channels (queries, keys, values)",
                             in->name, dc_shape_str(4, in->shape, s, sizeof s));
    }
    const int C = NC(in) / 3;
    const size_t hw = (size_t)NH(in) * NW(in);
    int shape[4] = {g->batch, C, NH(in), NW(in)};
    int id = dc_graph_add_node(g, DC_OP_ATTENTION, &qkv, 1, 4, shape);
    if (id < 0) return -1;
    dc_node *n = &g->nodes[id];
    n->alpha = 1.0f / sqrtf((float)C); /* the scores' scale */
    n->saved_numel[0] = (size_t)g->batch * hw * hw;
    return id;
}

static dc_status attn_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, attn_fwd, dc_node_out(g, n->in[0]), dc_tensor_ptr(n->saved[0]),
                 dc_tensor_ptr(n->out), g->batch, NC(n), NH(n) * NW(n), n->alpha);
}

static dc_status attn_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    if (!dc_node_has_grad(g, n->in[0])) return DC_OK;
    return DC_BE(g->be, attn_bwd, dc_node_out(g, n->in[0]), dc_tensor_ptr(n->saved[0]),
                 dc_tensor_ptr(n->grad), dc_node_grad(g, n->in[0]), dc_work(g, 0), g->batch, NC(n),
                 NH(n) * NW(n), n->alpha);
}

static size_t attn_workspace(const dc_graph *g, const dc_node *n) {
    if (!g->nodes[n->in[0]].requires_grad) return 0;
    return (size_t)g->batch * NH(n) * NW(n) * NH(n) * NW(n);
}

/* the two products, q^T k and v a^T: 2 * HW * HW * C multiply-adds per image */
static double attn_flops(const dc_graph *g, const dc_node *n) {
    const double hw = (double)NH(n) * NW(n);
    return 4.0 * g->batch * hw * hw * NC(n);
}

const dc_op_impl dc_op_concat = {concat_forward, concat_backward, NULL, NULL};
const dc_op_impl dc_op_groupnorm = {gn_forward, gn_backward, NULL, NULL};
const dc_op_impl dc_op_add_channels = {addc_forward, addc_backward, NULL, NULL};
const dc_op_impl dc_op_upsample = {up_forward, up_backward, NULL, NULL};
const dc_op_impl dc_op_time_embed = {temb_forward, NULL, NULL, NULL};
const dc_op_impl dc_op_attention = {attn_forward, attn_backward, attn_workspace, attn_flops};
