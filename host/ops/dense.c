/* dense (fully connected, weight [out, in] as PyTorch's Linear) and embedding. */
#include "graph_internal.h"

int dc_dense(dc_graph *g, int x, int out_features) {
    if (dc_graph_check_input(g, "dense", x)) return -1;
    dc_node *in = &g->nodes[x];
    if (out_features <= 0)
        return dc_graph_fail(g, DC_ERR_ARG, "dense: out_features %d must be > 0", out_features);
    if (in->op == DC_OP_INPUT_INT || in->ndim < 2)
        return dc_graph_fail(g, DC_ERR_ARG, "dense: input '%s' is not a float tensor", in->name);
    const int fin = (int)(in->numel / (size_t)g->batch);
    int shape[4] = {g->batch, out_features, 1, 1};
    int id = dc_graph_add_node(g, DC_OP_DENSE, &x, 1, 4, shape);
    if (id < 0) return -1;
    dc_node *n = &g->nodes[id];
    n->out_ch = out_features;
    n->k = fin; /* in_features */
    int ws[2] = {out_features, fin}, bs[1] = {out_features};
    if (dc_graph_param(g, n, 0, "weight", 2, ws, DC_INIT_XAVIER, fin, out_features, 1, 1) < 0 ||
        dc_graph_param(g, n, 1, "bias", 1, bs, DC_INIT_ZERO, 0, 0, 1, 0) < 0)
        return -1;
    return id;
}

static dc_status dense_forward(dc_graph *g, dc_node *n) {
    const int N = g->batch, in = n->k, out = n->out_ch;
    dc_ptr W = dc_tensor_ptr(dc_graph_param_at(g, n, 0)->value);
    dc_ptr B = dc_tensor_ptr(dc_graph_param_at(g, n, 1)->value);
    dc_ptr y = dc_tensor_ptr(n->out);
    /* y[N, out] = x[N, in] W^T + b */
    DC_TRY(DC_BE(g->be, gemm, 0, 1, N, out, in, 1.0f, dc_node_out(g, n->in[0]), in, W, in, 0.0f, y, out));
    return DC_BE(g->be, bias_add, y, B, N, out, 1);
}

static dc_status dense_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    const int N = g->batch, in = n->k, out = n->out_ch;
    dc_param *pw = dc_graph_param_at(g, n, 0), *pb = dc_graph_param_at(g, n, 1);
    dc_ptr dy = dc_tensor_ptr(n->grad);
    DC_TRY(DC_BE(g->be, gemm, 1, 0, out, in, N, 1.0f, dy, out, dc_node_out(g, n->in[0]), in, 1.0f,
                 dc_tensor_ptr(pw->grad), in));
    DC_TRY(DC_BE(g->be, bias_grad, dc_tensor_ptr(pb->grad), dy, N, out, 1));
    if (dc_node_has_grad(g, n->in[0]))
        DC_TRY(DC_BE(g->be, gemm, 0, 0, N, in, out, 1.0f, dy, out, dc_tensor_ptr(pw->value), in, 1.0f,
                     dc_node_grad(g, n->in[0]), in));
    return DC_OK;
}

void dc_dense_gemm_plan(const dc_graph *g, const dc_node *n, int id, dc_gemm_visitor fn,
                        void *ctx) {
    const int N = g->batch, in = n->k, out = n->out_ch;
    fn(ctx, id, "fwd", 0, 1, N, out, in, 0.0f, 1);
    fn(ctx, id, "dW", 1, 0, out, in, N, 1.0f, 1);
    if (g->nodes[n->in[0]].grad.buf) fn(ctx, id, "dX", 0, 0, N, in, out, 1.0f, 1);
}

static double dense_flops(const dc_graph *g, const dc_node *n) {
    return 2.0 * g->batch * (double)n->k * n->out_ch;
}

int dc_embedding(dc_graph *g, int idx_input, int rows, int dim, float init_std) {
    if (dc_graph_check_input(g, "embedding", idx_input)) return -1;
    dc_node *in = &g->nodes[idx_input];
    if (in->op != DC_OP_INPUT_INT)
        return dc_graph_fail(g, DC_ERR_ARG, "embedding: input '%s' must be an integer input",
                             in->name);
    if (rows <= 0 || dim <= 0)
        return dc_graph_fail(g, DC_ERR_ARG, "embedding: table %dx%d is empty", rows, dim);
    int shape[4] = {g->batch, dim, 1, 1};
    int id = dc_graph_add_node(g, DC_OP_EMBEDDING, &idx_input, 1, 4, shape);
    if (id < 0) return -1;
    dc_node *n = &g->nodes[id];
    n->rows = rows;
    n->out_ch = dim;
    int ts[2] = {rows, dim};
    int p = dc_graph_param(g, n, 0, "weight", 2, ts, DC_INIT_NORMAL, dim, dim, 1, 0);
    if (p < 0) return -1;
    dc_params_get(g->params, p)->init_std = init_std;
    return id;
}

static dc_status emb_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, gather_rows, dc_tensor_ptr(dc_graph_param_at(g, n, 0)->value),
                 dc_node_out(g, n->in[0]), dc_tensor_ptr(n->out), g->batch, n->out_ch);
}

static dc_status emb_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    return DC_BE(g->be, scatter_add_rows, dc_tensor_ptr(dc_graph_param_at(g, n, 0)->grad),
                 dc_node_out(g, n->in[0]), dc_tensor_ptr(n->grad), g->batch, n->out_ch, n->rows);
}

const dc_op_impl dc_op_dense = {dense_forward, dense_backward, NULL, dense_flops};
const dc_op_impl dc_op_embedding = {emb_forward, emb_backward, NULL, NULL};
