/* maxpool2d (records its switches), maxunpool2d (reuses them), global average pool. */
#include "graph_internal.h"

int dc_maxpool2d(dc_graph *g, int x, int k, int stride, int pad) {
    if (dc_graph_check_input(g, "maxpool2d", x)) return -1;
    dc_node *in = &g->nodes[x];
    if (in->ndim != 4)
        return dc_graph_fail(g, DC_ERR_SHAPE, "maxpool2d: input '%s' must be [N, C, H, W]", in->name);
    if (k <= 0 || stride <= 0 || pad < 0 || 2 * pad > k)
        return dc_graph_fail(g, DC_ERR_ARG,
                             "maxpool2d: kernel %d, stride %d, pad %d are not valid (pad <= k/2)", k,
                             stride, pad);
    const int H = NH(in), W = NW(in);
    if (H + 2 * pad < k || W + 2 * pad < k)
        return dc_graph_fail(g, DC_ERR_SHAPE, "maxpool2d: window %d larger than input '%s' (%dx%d)",
                             k, in->name, H, W);
    const int oh = (H + 2 * pad - k) / stride + 1, ow = (W + 2 * pad - k) / stride + 1;
    const int C = NC(in); /* `in` may move when the node array grows below */
    int shape[4] = {g->batch, C, oh, ow};
    int id = dc_graph_add_node(g, DC_OP_MAXPOOL2D, &x, 1, 4, shape);
    if (id < 0) return -1;
    dc_node *n = &g->nodes[id];
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    n->win = (dc_win2d){g->batch, C, H, W, k, k, stride, stride, pad, pad, oh, ow};
    n->saved_numel[0] = n->numel; /* int32 switches */
    return id;
}

static dc_status maxpool_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, maxpool_fwd, &n->win, dc_node_out(g, n->in[0]), dc_tensor_ptr(n->out),
                 dc_tensor_ptr(n->saved[0]));
}

static dc_status maxpool_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    if (!dc_node_has_grad(g, n->in[0])) return DC_OK;
    return DC_BE(g->be, maxpool_bwd, &n->win, dc_tensor_ptr(n->grad), dc_tensor_ptr(n->saved[0]),
                 dc_node_grad(g, n->in[0]));
}

static double pool_flops(const dc_graph *g, const dc_node *n) {
    (void)g;
    return (double)n->numel * n->k * n->k;
}

int dc_maxunpool2d(dc_graph *g, int x, int pool_node) {
    if (dc_graph_check_input(g, "maxunpool2d", x) || dc_graph_check_input(g, "maxunpool2d", pool_node))
        return -1;
    dc_node *in = &g->nodes[x], *p = &g->nodes[pool_node];
    if (p->op != DC_OP_MAXPOOL2D)
        return dc_graph_fail(g, DC_ERR_ARG, "maxunpool2d: '%s' is a %s, not a maxpool2d", p->name,
                             dc_op_names[p->op]);
    if (in->ndim != 4 || memcmp(in->shape, p->shape, sizeof(int) * 4)) {
        char a[64], b[64];
        return dc_graph_fail(g, DC_ERR_SHAPE,
                             "maxunpool2d: input '%s' %s must match the output of pool '%s' %s",
                             in->name, dc_shape_str(in->ndim, in->shape, a, sizeof a), p->name,
                             dc_shape_str(p->ndim, p->shape, b, sizeof b));
    }
    int shape[4] = {g->batch, NC(p), p->win.h, p->win.w};
    int id = dc_graph_add_node(g, DC_OP_MAXUNPOOL2D, &x, 1, 4, shape);
    if (id < 0) return -1;
    dc_node *n = &g->nodes[id];
    n->pool_node = pool_node;
    n->win = g->nodes[pool_node].win; /* p may have moved with the node array */
    return id;
}

static dc_status unpool_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, unpool_fwd, &n->win, dc_node_out(g, n->in[0]),
                 dc_tensor_ptr(g->nodes[n->pool_node].saved[0]), dc_tensor_ptr(n->out));
}

static dc_status unpool_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    if (!dc_node_has_grad(g, n->in[0])) return DC_OK;
    return DC_BE(g->be, unpool_bwd, &n->win, dc_tensor_ptr(n->grad),
                 dc_tensor_ptr(g->nodes[n->pool_node].saved[0]), dc_node_grad(g, n->in[0]));
}

int dc_global_avgpool(dc_graph *g, int x) {
    if (dc_graph_check_input(g, "global_avgpool", x)) return -1;
    dc_node *in = &g->nodes[x];
    if (in->ndim != 4)
        return dc_graph_fail(g, DC_ERR_SHAPE, "global_avgpool: input '%s' must be [N, C, H, W]",
                             in->name);
    int shape[4] = {g->batch, NC(in), 1, 1};
    return dc_graph_add_node(g, DC_OP_GAP, &x, 1, 4, shape);
}

static dc_status gap_forward(dc_graph *g, dc_node *n) {
    dc_node *in = &g->nodes[n->in[0]];
    return DC_BE(g->be, gap_fwd, dc_tensor_ptr(in->out), dc_tensor_ptr(n->out), g->batch * NC(in),
                 NH(in) * NW(in));
}

static dc_status gap_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    dc_node *in = &g->nodes[n->in[0]];
    if (!in->grad.buf) return DC_OK;
    return DC_BE(g->be, gap_bwd, dc_tensor_ptr(n->grad), dc_tensor_ptr(in->grad),
                 g->batch * NC(in), NH(in) * NW(in));
}

const dc_op_impl dc_op_maxpool2d = {maxpool_forward, maxpool_backward, NULL, pool_flops};
const dc_op_impl dc_op_maxunpool2d = {unpool_forward, unpool_backward, NULL, NULL};
const dc_op_impl dc_op_gap = {gap_forward, gap_backward, NULL, NULL};
