/* batchnorm2d (batch statistics in training, running statistics in eval) and dropout. */
#include <math.h>

#include "graph_internal.h"

int dc_batchnorm2d(dc_graph *g, int x, float momentum, float eps) {
    if (dc_graph_check_input(g, "batchnorm2d", x)) return -1;
    dc_node *in = &g->nodes[x];
    if (in->ndim != 4)
        return dc_graph_fail(g, DC_ERR_SHAPE, "batchnorm2d: input '%s' must be [N, C, H, W]", in->name);
    if (!(eps > 0.0f) || momentum < 0.0f || momentum > 1.0f)
        return dc_graph_fail(g, DC_ERR_ARG, "batchnorm2d: eps %g must be > 0, momentum %g in [0,1]",
                             (double)eps, (double)momentum);
    int id = dc_graph_add_node(g, DC_OP_BATCHNORM2D, &x, 1, 4, in->shape);
    if (id < 0) return -1;
    /* the fused backward writes dx and the parameter gradients together */
    g->nodes[x].wants_grad = 1;
    dc_node *n = &g->nodes[id];
    in = &g->nodes[x]; /* the node array may have moved */
    const int C = NC(in);
    n->eps = eps;
    n->momentum = momentum;
    int cs[1] = {C};
    if (dc_graph_param(g, n, 0, "weight", 1, cs, DC_INIT_ONE, 0, 0, 1, 0) < 0 ||
        dc_graph_param(g, n, 1, "bias", 1, cs, DC_INIT_ZERO, 0, 0, 1, 0) < 0 ||
        dc_graph_param(g, n, 2, "running_mean", 1, cs, DC_INIT_ZERO, 0, 0, 0, 0) < 0 ||
        dc_graph_param(g, n, 3, "running_var", 1, cs, DC_INIT_ONE, 0, 0, 0, 0) < 0)
        return -1;
    n->saved_numel[0] = (size_t)C; /* batch mean */
    n->saved_numel[1] = (size_t)C; /* batch variance */
    n->saved_numel[2] = (size_t)C;                 /* zeros, for the eval-mode backward */
    n->saved_numel[3] = in->numel + (size_t)C;     /* eval backward: x-hat * dy, then ones */
    return id;
}

/* Synchronised batch norm, forward: this rank's mean and (biased) variance over M items
 * become the global batch's, combined exactly from every rank's count, sum and sum of
 * squares (in double). */
static dc_status bn_sync_stats(dc_graph *g, dc_node *n, dc_ptr mean, dc_ptr var, double *M) {
    dc_backend *be = g->be;
    const int C = NC(n);
    float *host = malloc(sizeof(float) * 2 * (size_t)C);
    double *sums = malloc(sizeof(double) * (2 * (size_t)C + 1));
    dc_status s = DC_OK;
    if (!host || !sums)
        s = dc_set_error(&g->err, DC_ERR_OOM, "batchnorm2d '%s': out of memory", n->name);
    if (s == DC_OK && ((s = DC_BE(be, read, mean, host, sizeof(float) * C)) != DC_OK ||
                       (s = DC_BE(be, read, var, host + C, sizeof(float) * C)) != DC_OK))
        s = dc_set_error(&g->err, s, "batchnorm2d '%s': %s", n->name, be->err.msg);
    if (s == DC_OK) {
        for (int c = 0; c < C; c++) {
            const double m = host[c];
            sums[c] = *M * m;
            sums[C + c] = *M * ((double)host[C + c] + m * m);
        }
        sums[2 * C] = *M;
        if ((s = g->batch_sum(g->batch_sum_user, sums, 2 * C + 1, &g->err)) != DC_OK)
            dc_wrap_error(&g->err, s, "synchronised batchnorm2d '%s'", n->name);
    }
    if (s == DC_OK) {
        const double total = *M = sums[2 * C];
        for (int c = 0; c < C; c++) {
            const double m = sums[c] / total, v = sums[C + c] / total - m * m;
            host[c] = (float)m;
            host[C + c] = (float)(v > 0 ? v : 0);
        }
        if ((s = DC_BE(be, write, mean, host, sizeof(float) * C)) != DC_OK ||
            (s = DC_BE(be, write, var, host + C, sizeof(float) * C)) != DC_OK)
            s = dc_set_error(&g->err, s, "batchnorm2d '%s': %s", n->name, be->err.msg);
    }
    free(host);
    free(sums);
    return s;
}

static dc_status bn_forward(dc_graph *g, dc_node *n) {
    dc_backend *be = g->be;
    const int N = g->batch, C = NC(n), hw = NH(n) * NW(n);
    dc_ptr x = dc_node_out(g, n->in[0]), y = dc_tensor_ptr(n->out);
    dc_ptr gamma = dc_tensor_ptr(dc_graph_param_at(g, n, 0)->value);
    dc_ptr beta = dc_tensor_ptr(dc_graph_param_at(g, n, 1)->value);
    dc_ptr rm = dc_tensor_ptr(dc_graph_param_at(g, n, 2)->value);
    dc_ptr rv = dc_tensor_ptr(dc_graph_param_at(g, n, 3)->value);
    /* a fused activation (dc_graph_set_fusion) is applied in the same pass */
    dc_fused_act fa;
    const dc_fused_act *act = dc_node_act(n, DC_RELU_NORMAL, &fa);
    if (!g->train)
        return act ? DC_BE(be, bn_apply_act, x, rm, rv, gamma, beta, y, N, C, hw, n->eps, act)
                   : DC_BE(be, bn_apply, x, rm, rv, gamma, beta, y, N, C, hw, n->eps);
    dc_ptr mean = dc_tensor_ptr(n->saved[0]), var = dc_tensor_ptr(n->saved[1]);
    DC_TRY(DC_BE(be, bn_stats, x, mean, var, N, C, hw));
    double M = (double)N * hw; /* items per channel: the global batch's when synchronised */
    if (g->batch_sum) DC_TRY(bn_sync_stats(g, n, mean, var, &M));
    DC_TRY(act ? DC_BE(be, bn_apply_act, x, mean, var, gamma, beta, y, N, C, hw, n->eps, act)
               : DC_BE(be, bn_apply, x, mean, var, gamma, beta, y, N, C, hw, n->eps));
    /* running = (1-m) running + m batch; the variance is unbiased, as in PyTorch */
    DC_TRY(DC_BE(be, scale, rm, (size_t)C, 1.0f - n->momentum));
    DC_TRY(DC_BE(be, axpy, rm, mean, (size_t)C, n->momentum));
    DC_TRY(DC_BE(be, scale, rv, (size_t)C, 1.0f - n->momentum));
    DC_TRY(DC_BE(be, axpy, rv, var, (size_t)C, (float)(n->momentum * (M > 1 ? M / (M - 1) : 1.0))));
    return DC_OK;
}

/* Synchronised batch norm, backward, after the backend's fused backward has run on this
 * rank's items: that backward used this rank's sums of dy and dy * xhat over its M items;
 * the global batch's dx uses the sums over every rank's items. The difference is
 * gamma rstd ((sum_dy/M - SUM_dy/M_all) + xhat (sum_dyx/M - SUM_dyx/M_all)) per channel,
 * an affine function of xhat that bn_apply computes and dx gains. This rank's sums are what
 * the backward added to dgamma and dbeta (read before and after). */
static dc_status bn_sync_backward(dc_graph *g, dc_node *n, const float *before, float *host) {
    dc_backend *be = g->be;
    const int C = NC(n), hw = NH(n) * NW(n);
    const double M = (double)g->batch * hw;
    dc_param *pg = dc_graph_param_at(g, n, 0), *pb = dc_graph_param_at(g, n, 1);
    dc_ptr mean = dc_tensor_ptr(n->saved[0]), var = dc_tensor_ptr(n->saved[1]);
    dc_ptr x = dc_node_out(g, n->in[0]), dx = dc_node_grad(g, n->in[0]);
    /* host: dgamma, dbeta after; gamma; var; then the correction's slope and offset */
    float *dg = host, *db = host + C, *gam = host + 2 * C, *vv = host + 3 * C;
    float *slope = host + 4 * C, *offset = host + 5 * C;
    double *sums = malloc(sizeof(double) * (2 * (size_t)C + 1));
    if (!sums) return dc_set_error(&g->err, DC_ERR_OOM, "batchnorm2d '%s': out of memory", n->name);
    dc_status s;
    if ((s = DC_BE(be, read, dc_tensor_ptr(pg->grad), dg, sizeof(float) * C)) != DC_OK ||
        (s = DC_BE(be, read, dc_tensor_ptr(pb->grad), db, sizeof(float) * C)) != DC_OK ||
        (s = DC_BE(be, read, dc_tensor_ptr(pg->value), gam, sizeof(float) * C)) != DC_OK ||
        (s = DC_BE(be, read, var, vv, sizeof(float) * C)) != DC_OK) {
        free(sums);
        return dc_set_error(&g->err, s, "batchnorm2d '%s': %s", n->name, be->err.msg);
    }
    for (int c = 0; c < C; c++) {
        sums[c] = (double)db[c] - before[C + c];
        sums[C + c] = (double)dg[c] - before[c];
    }
    sums[2 * C] = M;
    for (int c = 0; c < 2 * C; c++) host[6 * C + c] = (float)sums[c]; /* this rank's */
    if ((s = g->batch_sum(g->batch_sum_user, sums, 2 * C + 1, &g->err)) != DC_OK) {
        free(sums);
        return dc_wrap_error(&g->err, s, "synchronised batchnorm2d '%s'", n->name);
    }
    const double M_all = sums[2 * C];
    for (int c = 0; c < C; c++) {
        const double k = gam[c] / sqrt((double)vv[c] + n->eps);
        offset[c] = (float)(k * (host[6 * C + c] / M - sums[c] / M_all));
        slope[c] = (float)(k * (host[7 * C + c] / M - sums[C + c] / M_all));
    }
    free(sums);
    /* scratch: saved[2] (C floats) and saved[3] (numel + C), idle in training mode */
    dc_ptr slope_d = dc_tensor_ptr(n->saved[2]), tmp = dc_tensor_ptr(n->saved[3]);
    dc_ptr offset_d = dc_ptr_at(tmp, n->numel);
    if ((s = DC_BE(be, write, slope_d, slope, sizeof(float) * C)) != DC_OK ||
        (s = DC_BE(be, write, offset_d, offset, sizeof(float) * C)) != DC_OK)
        return dc_set_error(&g->err, s, "batchnorm2d '%s': %s", n->name, be->err.msg);
    DC_TRY(DC_BE(be, bn_apply, x, mean, var, slope_d, offset_d, tmp, g->batch, C, hw, n->eps));
    return DC_BE(be, axpy, dx, tmp, n->numel, 1.0f);
}

static dc_status bn_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    dc_backend *be = g->be;
    const int N = g->batch, C = NC(n), hw = NH(n) * NW(n);
    dc_param *pg = dc_graph_param_at(g, n, 0), *pb = dc_graph_param_at(g, n, 1);
    dc_ptr x = dc_node_out(g, n->in[0]), dy = dc_tensor_ptr(n->grad);
    dc_ptr dx = dc_node_grad(g, n->in[0]);
    if (g->train) {
        if (!dx.buf) /* cannot happen: the builder makes the input keep a gradient */
            return dc_set_error(&g->err, DC_ERR_STATE,
                                "batchnorm2d '%s': input has no gradient buffer", n->name);
        dc_fused_act fa;
        const dc_fused_act *act = dc_node_act(n, mode, &fa);
        float *host = NULL; /* synchronised: dgamma, dbeta before, then bn_sync_backward's */
        if (g->batch_sum) {
            if (!(host = malloc(sizeof(float) * 10 * (size_t)C)))
                return dc_set_error(&g->err, DC_ERR_OOM, "batchnorm2d '%s': out of memory",
                                    n->name);
            dc_status rs;
            if ((rs = DC_BE(be, read, dc_tensor_ptr(pg->grad), host + 8 * C, sizeof(float) * C)) ||
                (rs = DC_BE(be, read, dc_tensor_ptr(pb->grad), host + 9 * C, sizeof(float) * C))) {
                free(host);
                return rs;
            }
        }
        dc_status s =
            act ? DC_BE(be, bn_bwd_act, x, dc_tensor_ptr(n->saved[0]), dc_tensor_ptr(n->saved[1]),
                        dc_tensor_ptr(pg->value), dc_tensor_ptr(n->out), dy, dx,
                        dc_tensor_ptr(pg->grad), dc_tensor_ptr(pb->grad), N, C, hw, n->eps, act)
                : DC_BE(be, bn_bwd, x, dc_tensor_ptr(n->saved[0]), dc_tensor_ptr(n->saved[1]),
                        dc_tensor_ptr(pg->value), dy, dx, dc_tensor_ptr(pg->grad),
                        dc_tensor_ptr(pb->grad), N, C, hw, n->eps);
        if (s == DC_OK && host) s = bn_sync_backward(g, n, host + 8 * C, host);
        free(host);
        return s;
    }
    if (n->has_fact)
        return dc_set_error(&g->err, DC_ERR_STATE,
                            "batchnorm2d '%s': backward in eval mode of a graph with fused "
                            "activations (dc_graph_set_fusion is for training graphs)",
                            n->name);
    /* Eval mode (explanations on a trained network): y = a*x + b with fixed
     * a = gamma/sqrt(rv+eps). dgamma += sum dy*xhat, dbeta += sum dy, dx += a*dy. */
    dc_ptr zeros = dc_tensor_ptr(n->saved[2]), tmp = dc_tensor_ptr(n->saved[3]);
    dc_ptr ones = dc_ptr_at(tmp, n->numel);
    dc_ptr rm = dc_tensor_ptr(dc_graph_param_at(g, n, 2)->value);
    dc_ptr rv = dc_tensor_ptr(dc_graph_param_at(g, n, 3)->value);
    DC_TRY(DC_BE(be, fill, zeros, (size_t)C, 0.0f));
    DC_TRY(DC_BE(be, fill, ones, (size_t)C, 1.0f));
    DC_TRY(DC_BE(be, bn_apply, x, rm, rv, ones, zeros, tmp, N, C, hw, n->eps)); /* xhat */
    DC_TRY(DC_BE(be, binary, 1, tmp, tmp, dy, n->numel));
    DC_TRY(DC_BE(be, bias_grad, dc_tensor_ptr(pg->grad), tmp, N, C, hw));
    DC_TRY(DC_BE(be, bias_grad, dc_tensor_ptr(pb->grad), dy, N, C, hw));
    if (!dx.buf) return DC_OK;
    DC_TRY(DC_BE(be, bn_apply, dy, zeros, rv, dc_tensor_ptr(pg->value), zeros, tmp, N, C, hw, n->eps));
    return DC_BE(be, axpy, dx, tmp, n->numel, 1.0f);
}

int dc_dropout(dc_graph *g, int x, float p) {
    if (dc_graph_check_input(g, "dropout", x)) return -1;
    dc_node *in = &g->nodes[x];
    if (!(p >= 0.0f && p < 1.0f))
        return dc_graph_fail(g, DC_ERR_ARG, "dropout: probability %g must be in [0, 1)", (double)p);
    int id = dc_graph_add_node(g, DC_OP_DROPOUT, &x, 1, in->ndim, in->shape);
    if (id < 0) return -1;
    g->nodes[id].p = p;
    g->nodes[id].saved_numel[0] = g->nodes[x].numel; /* `in` may have moved */
    return id;
}

static dc_status dropout_forward(dc_graph *g, dc_node *n) {
    dc_backend *be = g->be;
    dc_ptr x = dc_node_out(g, n->in[0]), y = dc_tensor_ptr(n->out), mask = dc_tensor_ptr(n->saved[0]);
    if (!g->train || n->p == 0.0f) {
        DC_TRY(DC_BE(be, fill, mask, n->numel, 1.0f));
        return DC_BE(be, copy, y, x, n->numel);
    }
    DC_TRY(DC_BE(be, dropout_mask, mask, n->numel, dc_graph_node_seed(g, n), n->p));
    return DC_BE(be, binary, 1, y, x, mask, n->numel);
}

static dc_status dropout_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    if (!dc_node_has_grad(g, n->in[0])) return DC_OK;
    return DC_BE(g->be, binary, 2, dc_node_grad(g, n->in[0]), dc_tensor_ptr(n->grad),
                 dc_tensor_ptr(n->saved[0]), n->numel);
}

const dc_op_impl dc_op_batchnorm2d = {bn_forward, bn_backward, NULL, NULL};
const dc_op_impl dc_op_dropout = {dropout_forward, dropout_backward, NULL, NULL};
