/* conv2d and conv_transpose2d, both as im2col/col2im + one large GEMM per chunk of
 * images, so the GEMM's N dimension (images x pixels) stays large.
 *
 * conv2d:        weight [OC, C, k, k] (PyTorch Conv2d layout), bias [OC]
 * conv_t2d:      weight [C, OC, k, k] (PyTorch ConvTranspose2d layout), bias [OC]
 * A transposed conv is the data-gradient of a conv that maps its output to its input;
 * node->win always describes that conv (input = the larger image). */
#include "graph_internal.h"

/* Workspace budget for one chunk (elements). 8M floats = 32 MB. */
#define CONV_WORK_BUDGET ((size_t)8 << 20)

static int conv_chunk(const dc_graph *g, const dc_node *n, size_t per_image) {
    size_t nb = per_image ? CONV_WORK_BUDGET / per_image : (size_t)g->batch;
    if (nb < 1) nb = 1;
    if (nb > (size_t)g->batch) nb = (size_t)g->batch;
    (void)n;
    return (int)nb;
}

/* Elements per image that a chunk needs: columns + the channel-major output/gradient. */
static size_t conv_per_image(const dc_node *n) {
    const dc_win2d *w = &n->win;
    const size_t kk = (size_t)w->kh * w->kw;
    if (n->op == DC_OP_CONV2D) return ((size_t)w->c * kk + (size_t)n->shape[1]) * w->oh * w->ow;
    /* transposed: columns of the big image (C_out * kk rows) over the small image's pixels,
     * plus the small input in channel-major form */
    return ((size_t)w->c * kk + (size_t)n->win.n) * w->oh * w->ow;
}

static size_t conv_workspace(const dc_graph *g, const dc_node *n) {
    /* a backend with fused convolutions keeps its own per-thread scratch */
    const dc_backend_ops *o = g->be->ops;
    if (n->op == DC_OP_CONV2D ? (o->conv2d_fwd && o->conv2d_bwd) : (o->conv_t2d_fwd && o->conv_t2d_bwd))
        return 0;
    size_t per = conv_per_image(n);
    return per * (size_t)conv_chunk(g, n, per);
}

/* The products of one chunk of `cols_n` columns (images x pixels), `times` times, as
 * conv_forward / conv_backward (im2col path) call gemm. a: OC; b: C (input channels);
 * rows: the column matrix's rows (conv: C*k*k; transposed: OC*k*k). */
static void conv_chunk_gemms(int id, int transposed, int a, int b, int rows, int cols_n,
                             int want_dx, int times, dc_gemm_visitor fn, void *ctx) {
    if (times <= 0) return;
    if (!transposed) {
        fn(ctx, id, "fwd", 0, 0, a, cols_n, rows, 0.0f, times);
        fn(ctx, id, "dW", 0, 1, a, rows, cols_n, 1.0f, times);
        if (want_dx) fn(ctx, id, "dX", 1, 0, rows, cols_n, a, 0.0f, times);
    } else {
        fn(ctx, id, "fwd", 1, 0, rows, cols_n, b, 0.0f, times);
        fn(ctx, id, "dW", 0, 1, b, rows, cols_n, 1.0f, times);
        if (want_dx) fn(ctx, id, "dX", 0, 0, b, cols_n, rows, 0.0f, times);
    }
}

void dc_conv_gemm_plan(const dc_graph *g, const dc_node *n, int id, dc_gemm_visitor fn,
                       void *ctx) {
    const int transposed = n->op == DC_OP_CONV_T2D;
    const dc_node *in = &g->nodes[n->in[0]];
    const int kk = n->win.kh * n->win.kw;
    const int a = n->shape[1], b = NC(in);
    const int rows = transposed ? a * kk : b * kk;
    const int pix = transposed ? NH(in) * NW(in) : n->shape[2] * n->shape[3];
    const int nb = conv_chunk(g, n, conv_per_image(n));
    const int want_dx = in->grad.buf != NULL;
    conv_chunk_gemms(id, transposed, a, b, rows, nb * pix, want_dx, g->batch / nb, fn, ctx);
    conv_chunk_gemms(id, transposed, a, b, rows, (g->batch % nb) * pix, want_dx,
                     g->batch % nb ? 1 : 0, fn, ctx);
}

static int conv_common(dc_graph *g, int x, int k, int stride, int pad, const char *op) {
    if (dc_graph_check_input(g, op, x)) return -1;
    dc_node *in = &g->nodes[x];
    if (in->ndim != 4)
        return dc_graph_fail(g, DC_ERR_SHAPE, "%s '%s': input '%s' must be [N, C, H, W], got %d dims",
                             op, g->next_name[0] ? g->next_name : op, in->name, in->ndim);
    if (k <= 0 || stride <= 0 || pad < 0)
        return dc_graph_fail(g, DC_ERR_ARG, "%s: kernel %d, stride %d, pad %d are not valid", op, k,
                             stride, pad);
    return 0;
}

int dc_conv2d(dc_graph *g, int x, int out_ch, int k, int stride, int pad) {
    return dc_conv2d_ex(g, x, out_ch, k, stride, pad, 1);
}

int dc_conv2d_ex(dc_graph *g, int x, int out_ch, int k, int stride, int pad, int bias) {
    if (conv_common(g, x, k, stride, pad, "conv2d")) return -1;
    dc_node *in = &g->nodes[x];
    if (out_ch <= 0) return dc_graph_fail(g, DC_ERR_ARG, "conv2d: out_ch %d must be > 0", out_ch);
    const int C = NC(in), H = NH(in), W = NW(in);
    const int oh = (H + 2 * pad - k) / stride + 1, ow = (W + 2 * pad - k) / stride + 1;
    if (H + 2 * pad < k || W + 2 * pad < k)
        return dc_graph_fail(g, DC_ERR_SHAPE,
                             "conv2d '%s': kernel %d is larger than the padded input %dx%d of '%s'",
                             g->next_name[0] ? g->next_name : "conv2d", k, H + 2 * pad, W + 2 * pad,
                             in->name);
    if (g->next_name[0]) {
        /* parameters shared with another graph: name the mismatch in conv terms */
        char wname[96];
        snprintf(wname, sizeof wname, "%s.weight", g->next_name);
        const dc_param *q = dc_params_get(g->params, dc_params_find(g->params, wname));
        if (q && q->ndim == 4 && q->shape[1] != C)
            return dc_graph_fail(g, DC_ERR_SHAPE, "conv2d '%s': input has %d channels, weights expect %d",
                                 g->next_name, C, q->shape[1]);
    }
    int shape[4] = {g->batch, out_ch, oh, ow};
    int id = dc_graph_add_node(g, DC_OP_CONV2D, &x, 1, 4, shape);
    if (id < 0) return -1;
    dc_node *n = &g->nodes[id];
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    n->out_ch = out_ch;
    n->win = (dc_win2d){g->batch, C, H, W, k, k, stride, stride, pad, pad, oh, ow};
    int ws[4] = {out_ch, C, k, k}, bs[1] = {out_ch};
    if (dc_graph_param(g, n, 0, "weight", 4, ws, DC_INIT_HE, C * k * k, out_ch * k * k, 1, 1) < 0 ||
        (bias && dc_graph_param(g, n, 1, "bias", 1, bs, DC_INIT_ZERO, 0, 0, 1, 0) < 0))
        return -1;
    return id;
}

/* tied_param >= 0: use that existing weight parameter instead of declaring one */
static int convt_build(dc_graph *g, int x, int out_ch, int k, int stride, int pad, int out_pad,
                       int tied_param) {
    const char *op = "conv_transpose2d";
    if (conv_common(g, x, k, stride, pad, op)) return -1;
    dc_node *in = &g->nodes[x];
    if (out_pad < 0 || (out_pad >= stride && out_pad >= 1))
        return dc_graph_fail(g, DC_ERR_ARG,
                             "conv_transpose2d: output padding %d must be smaller than stride %d",
                             out_pad, stride);
    const int C = NC(in), H = NH(in), W = NW(in);
    const int oh = (H - 1) * stride - 2 * pad + k + out_pad, ow = (W - 1) * stride - 2 * pad + k + out_pad;
    int shape[4] = {g->batch, out_ch, oh, ow};
    int id = dc_graph_add_node(g, DC_OP_CONV_T2D, &x, 1, 4, shape);
    if (id < 0) return -1;
    dc_node *n = &g->nodes[id];
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    n->out_pad = out_pad;
    n->out_ch = out_ch;
    /* the conv from output [out_ch, oh, ow] back to input [C, H, W]; win.n holds C */
    n->win = (dc_win2d){C, out_ch, oh, ow, k, k, stride, stride, pad, pad, H, W};
    int bs[1] = {out_ch};
    if (tied_param >= 0) {
        n->param[0] = tied_param;
    } else {
        int ws[4] = {C, out_ch, k, k};
        if (dc_graph_param(g, n, 0, "weight", 4, ws, DC_INIT_HE, C * k * k / (stride * stride),
                           out_ch * k * k, 1, 1) < 0)
            return -1;
    }
    if (dc_graph_param(g, n, 1, "bias", 1, bs, DC_INIT_ZERO, 0, 0, 1, 0) < 0) return -1;
    return id;
}

int dc_conv_transpose2d(dc_graph *g, int x, int out_ch, int k, int stride, int pad, int out_pad) {
    if (out_ch <= 0)
        return g ? dc_graph_fail(g, DC_ERR_ARG, "conv_transpose2d: out_ch %d must be > 0", out_ch) : -1;
    return convt_build(g, x, out_ch, k, stride, pad, out_pad, -1);
}

int dc_conv_transpose2d_tied_param(dc_graph *g, int x, const char *weight_name, int stride,
                                    int pad, int out_pad) {
    if (dc_graph_check_input(g, "conv_transpose2d (tied)", x)) return -1;
    int pi = dc_params_find(g->params, weight_name);
    if (pi < 0)
        return dc_graph_fail(g, DC_ERR_NOT_FOUND, "conv_transpose2d (tied): no parameter '%s'",
                             weight_name ? weight_name : "(null)");
    dc_param *q = dc_params_get(g->params, pi);
    dc_node *in = &g->nodes[x];
    if (q->ndim != 4 || q->shape[2] != q->shape[3])
        return dc_graph_fail(g, DC_ERR_SHAPE, "conv_transpose2d (tied): '%s' is not a square conv kernel",
                             weight_name);
    if (in->ndim != 4 || NC(in) != q->shape[0])
        return dc_graph_fail(g, DC_ERR_SHAPE,
                             "conv_transpose2d tied to '%s': input '%s' has %d channels, the tied "
                             "weight expects %d",
                             weight_name, in->name, in->ndim == 4 ? NC(in) : -1, q->shape[0]);
    int id = convt_build(g, x, q->shape[1], q->shape[2], stride, pad, out_pad, pi);
    if (id >= 0) g->nodes[id].tied_to = -2;
    return id;
}

int dc_conv_transpose2d_tied(dc_graph *g, int x, int conv_node, int stride, int pad, int out_pad) {
    if (dc_graph_check_input(g, "conv_transpose2d (tied)", x) ||
        dc_graph_check_input(g, "conv_transpose2d (tied)", conv_node))
        return -1;
    dc_node *c = &g->nodes[conv_node];
    if (c->op != DC_OP_CONV2D)
        return dc_graph_fail(g, DC_ERR_ARG, "conv_transpose2d (tied): '%s' is a %s, not a conv2d",
                             c->name, dc_op_names[c->op]);
    const dc_param *q = dc_params_get(g->params, c->param[0]);
    int id = dc_conv_transpose2d_tied_param(g, x, q->name, stride, pad, out_pad);
    if (id >= 0) g->nodes[id].tied_to = conv_node;
    return id;
}

/* ---- conv2d ---- */
static dc_status conv_forward(dc_graph *g, dc_node *n) {
    dc_backend *be = g->be;
    if (be->ops->conv2d_fwd && be->ops->conv2d_bwd) {
        dc_ptr B = n->param[1] >= 0 ? dc_tensor_ptr(dc_graph_param_at(g, n, 1)->value) : dc_null_ptr();
        return DC_BE(be, conv2d_fwd, &n->win, n->out_ch, dc_node_out(g, n->in[0]),
                                   dc_tensor_ptr(dc_graph_param_at(g, n, 0)->value), B,
                                   dc_tensor_ptr(n->out), n->has_fact ? &n->fact : NULL);
    }
    const dc_win2d *w = &n->win;
    const int OC = n->out_ch, K = w->c * w->kh * w->kw, ohw = w->oh * w->ow;
    const int nb = conv_chunk(g, n, conv_per_image(n));
    dc_ptr W = dc_tensor_ptr(dc_graph_param_at(g, n, 0)->value);
    dc_ptr B = n->param[1] >= 0 ? dc_tensor_ptr(dc_graph_param_at(g, n, 1)->value) : dc_null_ptr();
    dc_ptr x = dc_node_out(g, n->in[0]), y = dc_tensor_ptr(n->out);
    for (int n0 = 0; n0 < g->batch; n0 += nb) {
        const int cnt = n0 + nb <= g->batch ? nb : g->batch - n0;
        const int cols_n = cnt * ohw;
        dc_ptr cols = dc_work(g, 0), ycm = dc_work(g, (size_t)K * cols_n);
        DC_TRY(DC_BE(be, im2col, w, n0, cnt, x, cols));
        DC_TRY(DC_BE(be, gemm, 0, 0, OC, cols_n, K, 1.0f, W, K, cols, cols_n, 0.0f, ycm, cols_n));
        DC_TRY(DC_BE(be, cm_to_nchw, ycm, B, y, n0, cnt, OC, ohw, 0.0f));
    }
    return DC_OK;
}

static dc_status conv_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    dc_backend *be = g->be;
    if (be->ops->conv2d_fwd && be->ops->conv2d_bwd) {
        dc_param *pw = dc_graph_param_at(g, n, 0), *pb = dc_graph_param_at(g, n, 1);
        dc_fused_act fa;
        return DC_BE(be, conv2d_bwd, &n->win, n->out_ch, dc_node_out(g, n->in[0]),
                                   dc_tensor_ptr(pw->value), dc_tensor_ptr(n->out), dc_tensor_ptr(n->grad),
                                   dc_node_has_grad(g, n->in[0]) ? dc_node_grad(g, n->in[0]) : dc_null_ptr(),
                                   dc_tensor_ptr(pw->grad), pb ? dc_tensor_ptr(pb->grad) : dc_null_ptr(),
                                   dc_node_act(n, mode, &fa));
    }
    const dc_win2d *w = &n->win;
    const int OC = n->out_ch, K = w->c * w->kh * w->kw, ohw = w->oh * w->ow;
    const int nb = conv_chunk(g, n, conv_per_image(n));
    dc_param *pw = dc_graph_param_at(g, n, 0), *pb = dc_graph_param_at(g, n, 1);
    dc_ptr W = dc_tensor_ptr(pw->value), dW = dc_tensor_ptr(pw->grad);
    dc_ptr x = dc_node_out(g, n->in[0]), dy = dc_tensor_ptr(n->grad);
    const int want_dx = dc_node_has_grad(g, n->in[0]);
    if (pb) DC_TRY(DC_BE(be, bias_grad, dc_tensor_ptr(pb->grad), dy, g->batch, OC, ohw));
    for (int n0 = 0; n0 < g->batch; n0 += nb) {
        const int cnt = n0 + nb <= g->batch ? nb : g->batch - n0;
        const int cols_n = cnt * ohw;
        dc_ptr cols = dc_work(g, 0), dycm = dc_work(g, (size_t)K * cols_n);
        DC_TRY(DC_BE(be, nchw_to_cm, dy, dycm, n0, cnt, OC, ohw));
        DC_TRY(DC_BE(be, im2col, w, n0, cnt, x, cols));
        /* dW[OC, K] += dy_cm [OC, cols] * cols^T */
        DC_TRY(DC_BE(be, gemm, 0, 1, OC, K, cols_n, 1.0f, dycm, cols_n, cols, cols_n, 1.0f, dW, K));
        if (want_dx) {
            /* dcols [K, cols] = W^T dy_cm, folded back into dx */
            DC_TRY(DC_BE(be, gemm, 1, 0, K, cols_n, OC, 1.0f, W, K, dycm, cols_n, 0.0f, cols, cols_n));
            DC_TRY(DC_BE(be, col2im, w, n0, cnt, cols, dc_node_grad(g, n->in[0])));
        }
    }
    return DC_OK;
}

static double conv_flops(const dc_graph *g, const dc_node *n) {
    const dc_win2d *w = &n->win;
    if (n->op == DC_OP_CONV2D)
        return 2.0 * g->batch * n->out_ch * w->oh * w->ow * (double)w->c * w->kh * w->kw;
    return 2.0 * g->batch * (double)w->n * w->oh * w->ow * (double)w->c * w->kh * w->kw;
}

/* ---- conv_transpose2d ---- */
static dc_status convt_forward(dc_graph *g, dc_node *n) {
    dc_backend *be = g->be;
    if (be->ops->conv_t2d_fwd && be->ops->conv_t2d_bwd)
        return DC_BE(be, conv_t2d_fwd, &n->win, g->batch, n->win.n, dc_node_out(g, n->in[0]),
                                     dc_tensor_ptr(dc_graph_param_at(g, n, 0)->value),
                                     dc_tensor_ptr(dc_graph_param_at(g, n, 1)->value),
                                     dc_tensor_ptr(n->out), n->has_fact ? &n->fact : NULL);
    const dc_win2d *w = &n->win; /* conv geometry: big [OC, oh', ow'] -> small [C, H, W] */
    const int C = w->n, R = w->c * w->kh * w->kw, hw = w->oh * w->ow;
    const int nb = conv_chunk(g, n, conv_per_image(n));
    dc_ptr W = dc_tensor_ptr(dc_graph_param_at(g, n, 0)->value);
    dc_ptr B = dc_tensor_ptr(dc_graph_param_at(g, n, 1)->value);
    dc_ptr x = dc_node_out(g, n->in[0]), y = dc_tensor_ptr(n->out);
    DC_TRY(DC_BE(be, fill, y, n->numel, 0.0f));
    dc_win2d wb = *w;
    wb.n = g->batch;
    for (int n0 = 0; n0 < g->batch; n0 += nb) {
        const int cnt = n0 + nb <= g->batch ? nb : g->batch - n0;
        const int cols_n = cnt * hw;
        dc_ptr cols = dc_work(g, 0), xcm = dc_work(g, (size_t)R * cols_n);
        DC_TRY(DC_BE(be, nchw_to_cm, x, xcm, n0, cnt, C, hw));
        /* cols [OC*kk, cols] = W[C, OC*kk]^T x_cm[C, cols] */
        DC_TRY(DC_BE(be, gemm, 1, 0, R, cols_n, C, 1.0f, W, R, xcm, cols_n, 0.0f, cols, cols_n));
        DC_TRY(DC_BE(be, col2im, &wb, n0, cnt, cols, y));
    }
    return DC_BE(be, bias_add, y, B, g->batch, n->out_ch, NH(n) * NW(n));
}

static dc_status convt_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    dc_backend *be = g->be;
    if (be->ops->conv_t2d_fwd && be->ops->conv_t2d_bwd) {
        dc_param *pw = dc_graph_param_at(g, n, 0), *pb = dc_graph_param_at(g, n, 1);
        dc_fused_act fa;
        return DC_BE(be, conv_t2d_bwd, &n->win, g->batch, n->win.n, dc_node_out(g, n->in[0]),
                                     dc_tensor_ptr(pw->value), dc_tensor_ptr(n->out), dc_tensor_ptr(n->grad),
                                     dc_node_has_grad(g, n->in[0]) ? dc_node_grad(g, n->in[0])
                                                                   : dc_null_ptr(),
                                     dc_tensor_ptr(pw->grad), dc_tensor_ptr(pb->grad),
                                     dc_node_act(n, mode, &fa));
    }
    const dc_win2d *w = &n->win;
    const int C = w->n, R = w->c * w->kh * w->kw, hw = w->oh * w->ow;
    const int nb = conv_chunk(g, n, conv_per_image(n));
    dc_param *pw = dc_graph_param_at(g, n, 0), *pb = dc_graph_param_at(g, n, 1);
    dc_ptr W = dc_tensor_ptr(pw->value), dW = dc_tensor_ptr(pw->grad);
    dc_ptr x = dc_node_out(g, n->in[0]), dy = dc_tensor_ptr(n->grad);
    const int want_dx = dc_node_has_grad(g, n->in[0]);
    dc_win2d wb = *w;
    wb.n = g->batch;
    DC_TRY(DC_BE(be, bias_grad, dc_tensor_ptr(pb->grad), dy, g->batch, n->out_ch, NH(n) * NW(n)));
    for (int n0 = 0; n0 < g->batch; n0 += nb) {
        const int cnt = n0 + nb <= g->batch ? nb : g->batch - n0;
        const int cols_n = cnt * hw;
        dc_ptr cols = dc_work(g, 0), xcm = dc_work(g, (size_t)R * cols_n);
        DC_TRY(DC_BE(be, im2col, &wb, n0, cnt, dy, cols));
        DC_TRY(DC_BE(be, nchw_to_cm, x, xcm, n0, cnt, C, hw));
        /* dW [C, R] += x_cm [C, cols] * cols^T */
        DC_TRY(DC_BE(be, gemm, 0, 1, C, R, cols_n, 1.0f, xcm, cols_n, cols, cols_n, 1.0f, dW, R));
        if (want_dx) {
            /* dx_cm [C, cols] = W [C, R] * cols [R, cols]; reuse xcm */
            DC_TRY(DC_BE(be, gemm, 0, 0, C, cols_n, R, 1.0f, W, R, cols, cols_n, 0.0f, xcm, cols_n));
            DC_TRY(DC_BE(be, cm_to_nchw, xcm, dc_null_ptr(), dc_node_grad(g, n->in[0]), n0, cnt, C,
                         hw, 1.0f));
        }
    }
    return DC_OK;
}

const dc_op_impl dc_op_conv2d = {conv_forward, conv_backward, conv_workspace, conv_flops};
const dc_op_impl dc_op_conv_t2d = {convt_forward, convt_backward, conv_workspace, conv_flops};
