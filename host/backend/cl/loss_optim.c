/* OpenCL primitives: losses, embeddings and optimizer updates. Losses write their value
 * into a device buffer; nothing here makes the host wait. */

#include "launch.h"

/* ------------------------------------------------------------------ losses */
/* The element-wise losses (MSE, BCE on tanh outputs) share a kernel layout: per element the
 * gradient, k * d(loss)/d(x), and per work-group a partial sum; the loss is their sum / n. */
static dc_status elementwise_loss(dc_backend *be, const char *op, int kernel, const char *x_name,
                                  dc_ptr x, dc_ptr target, dc_ptr weight, size_t n, dc_ptr loss,
                                  const char *dx_name, dc_ptr dx, float k) {
    DC_TRY(CHECK_TENSORS(be, op, n, TENSOR(x_name, x, n), TENSOR("target", target, n),
                         TENSOR_IF(weight.buf, "weight", weight, n), TENSOR("loss", loss, 1),
                         TENSOR(dx_name, dx, n)));
    const size_t groups = reduce_groups(be, kernel, n);
    DC_TRY(LAUNCH_GROUPS(be, kernel, groups, (weight.buf ? 3 : 2) * n, n + groups, KPTR(x),
                         KPTR(target), KPTR(weight.buf ? weight : x), KINT(weight.buf != NULL),
                         KUINT(n), KPTR(dx), KFLOAT(k), KPARTIAL(be), KSCRATCH));
    return reduce_final(be, groups, loss, 1.0f, (float)n);
}

dc_status dc_cl_prim_mse(dc_backend *be, dc_ptr pred, dc_ptr target, dc_ptr weight, size_t n,
                         dc_ptr loss, dc_ptr dpred, float scale) {
    return elementwise_loss(be, "mse", DC_K_mse_partial, "pred", pred, target, weight, n, loss,
                            "dpred", dpred, 2.0f * scale / (float)n);
}

dc_status dc_cl_prim_bce_tanh(dc_backend *be, dc_ptr x, dc_ptr target, dc_ptr weight, size_t n,
                              dc_ptr loss, dc_ptr dx, float scale) {
    return elementwise_loss(be, "bce_tanh", DC_K_bce_tanh_partial, "x", x, target, weight, n, loss,
                            "dx", dx, scale / (float)n);
}

dc_status dc_cl_prim_softmax(dc_backend *be, dc_ptr logits, dc_ptr probs, int rows, int k) {
    if (rows < 0 || k <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL softmax: %d rows of %d classes", rows, k);
    const size_t total = (size_t)rows * k;
    DC_TRY(CHECK_TENSORS(be, "softmax", 0, TENSOR("logits", logits, total),
                         TENSOR("probs", probs, total)));
    return LAUNCH_ITEMS(be, DC_K_softmax, (size_t)rows, total, total, KPTR(logits), KPTR(probs),
                        KINT(rows), KINT(k));
}

dc_status dc_cl_prim_softmax_xent(dc_backend *be, dc_ptr logits, dc_ptr labels, int rows, int k,
                                  dc_ptr probs, dc_ptr loss, dc_ptr dlogits, float scale) {
    if (rows <= 0 || k <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL softmax_xent: %d rows of %d classes",
                            rows, k);
    const size_t total = (size_t)rows * k;
    DC_TRY(CHECK_TENSORS(be, "softmax_xent", 0, TENSOR("logits", logits, total),
                         TENSOR("labels", labels, (size_t)rows), TENSOR("probs", probs, total),
                         TENSOR("loss", loss, 1), TENSOR("dlogits", dlogits, total)));
    return LAUNCH_GROUPS(be, DC_K_softmax_xent, 1, total + (size_t)rows, 2 * total + 1,
                         KPTR(logits), KPTR(labels), KINT(rows), KINT(k), KPTR(probs), KPTR(loss),
                         KPTR(dlogits), KFLOAT(scale / (float)rows), KSCRATCH);
}

dc_status dc_cl_prim_gauss_kl(dc_backend *be, dc_ptr mu, dc_ptr logvar, int rows, int dim,
                              dc_ptr loss, dc_ptr dmu, dc_ptr dlogvar, float scale) {
    if (rows <= 0 || dim < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL gauss_kl: %d rows of %d dims", rows, dim);
    const size_t n = (size_t)rows * dim;
    DC_TRY(CHECK_TENSORS(be, "gauss_kl", n, TENSOR("mu", mu, n), TENSOR("logvar", logvar, n),
                         TENSOR("loss", loss, 1), TENSOR("dmu", dmu, n),
                         TENSOR("dlogvar", dlogvar, n)));
    const size_t groups = reduce_groups(be, DC_K_kl_partial, n);
    DC_TRY(LAUNCH_GROUPS(be, DC_K_kl_partial, groups, 2 * n, 2 * n + groups, KPTR(mu), KPTR(logvar),
                         KUINT(n), KPTR(dmu), KPTR(dlogvar), KFLOAT(scale / (float)rows),
                         KPARTIAL(be), KSCRATCH));
    return reduce_final(be, groups, loss, -0.5f, (float)rows);
}

/* ---------------------------------------------------------------- embedding */
dc_status dc_cl_prim_gather_rows(dc_backend *be, dc_ptr table, dc_ptr idx, dc_ptr y, int rows,
                                 int dim) {
    if (rows < 0 || dim <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL gather_rows: %d rows of %d", rows, dim);
    const size_t total = (size_t)rows * dim;
    DC_TRY(CHECK_TENSORS(be, "gather_rows", total, TENSOR("table", table, (size_t)dim),
                         TENSOR("indices", idx, (size_t)rows), TENSOR("y", y, total)));
    /* rows the table's buffer holds past its offset: the kernel's bounds for indices */
    const size_t table_rows = (table.buf->bytes / 4 - table.off) / (size_t)dim;
    return LAUNCH_ITEMS(be, DC_K_gather_rows, total, total + (size_t)rows, total, KPTR(table),
                        KPTR(idx), KPTR(y), KINT(rows), KINT(dim),
                        KUINT(table_rows > UINT_MAX ? UINT_MAX : table_rows));
}

dc_status dc_cl_prim_scatter_add_rows(dc_backend *be, dc_ptr dtable, dc_ptr idx, dc_ptr dy,
                                      int rows, int dim, int table_rows) {
    if (rows < 0 || dim <= 0 || table_rows < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL scatter_add_rows: %d rows of %d", rows,
                            dim);
    const size_t total = (size_t)rows * dim;
    DC_TRY(CHECK_TENSORS(be, "scatter_add_rows", total,
                         TENSOR("dtable", dtable, (size_t)table_rows * dim),
                         TENSOR("indices", idx, (size_t)rows), TENSOR("dy", dy, total)));
    return LAUNCH_ITEMS(be, DC_K_scatter_add_rows, total, 2 * total + (size_t)rows, total,
                        KPTR(dtable), KPTR(idx), KPTR(dy), KINT(rows), KINT(dim), KINT(table_rows));
}

/* --------------------------------------------------------------- optimizers */
dc_status dc_cl_prim_sgd_update(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr v, size_t n,
                                dc_ptr gscale, float lr, float momentum, float wd, int nesterov) {
    DC_TRY(CHECK_TENSORS(be, "sgd_update", n, TENSOR("params", p, n), TENSOR("grads", g, n),
                         TENSOR("velocity", v, n), TENSOR("gscale", gscale, 1)));
    return LAUNCH_ITEMS(be, DC_K_sgd_update, n, 3 * n, 2 * n, KPTR(p), KPTR(g), KPTR(v), KUINT(n),
                        KPTR(gscale), KFLOAT(lr), KFLOAT(momentum), KFLOAT(wd), KINT(nesterov));
}

static dc_status adam_launch(dc_backend *be, const dc_cl_pending_adam *q) {
    cl_uint16 ends;
    cl_float16 wds;
    for (int r = 0; r < 16; r++) {
        const int last = r < q->runs ? r : q->runs - 1;
        ends.s[r] = q->ends[last];
        wds.s[r] = q->wds[last];
    }
    return LAUNCH_ITEMS(be, DC_K_adam_update, q->n, 4 * q->n, 3 * q->n, KPTR(q->p), KPTR(q->g),
                        KPTR(q->m), KPTR(q->v), KUINT(q->n), KPTR(q->gscale), KFLOAT(q->lr),
                        KFLOAT(q->beta1), KFLOAT(q->beta2), KFLOAT(q->eps), KBYTES(ends),
                        KBYTES(wds), KINT(q->decoupled), KFLOAT(q->bc1), KFLOAT(q->bc2));
}

dc_status dc_cl_flush(dc_backend *be) {
    cl_backend *b = B(be);
    /* never both pending: a fill flushes pending updates, an update pending fills */
    DC_TRY(dc_cl_flush_fill(be));
    if (!b->adam.runs) return DC_OK;
    const dc_cl_pending_adam q = b->adam;
    b->adam.runs = 0;
    return adam_launch(be, &q);
}

static int same_ptr(dc_ptr a, dc_ptr b) {
    return a.buf == b.buf && a.off == b.off;
}

dc_status dc_cl_prim_adam_update(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr m, dc_ptr v, size_t n,
                                 dc_ptr gscale, float lr, float beta1, float beta2, float eps,
                                 float wd, int decoupled, float bc1, float bc2) {
    DC_TRY(CHECK_TENSORS(be, "adam_update", n, TENSOR("params", p, n), TENSOR("grads", g, n),
                         TENSOR("m", m, n), TENSOR("v", v, n), TENSOR("gscale", gscale, 1)));
    if (n == 0) return DC_OK;
    dc_cl_pending_adam *q = &B(be)->adam;
    /* the next run of the same arenas with the same settings: one launch for both */
    if (q->runs && q->runs < DC_CL_ADAM_RUNS && q->n + n <= UINT_MAX &&
        same_ptr(p, dc_ptr_at(q->p, q->n)) && same_ptr(g, dc_ptr_at(q->g, q->n)) &&
        same_ptr(m, dc_ptr_at(q->m, q->n)) && same_ptr(v, dc_ptr_at(q->v, q->n)) &&
        same_ptr(gscale, q->gscale) && lr == q->lr && beta1 == q->beta1 && beta2 == q->beta2 &&
        eps == q->eps && decoupled == q->decoupled && bc1 == q->bc1 && bc2 == q->bc2) {
        q->n += n;
        q->ends[q->runs] = (cl_uint)q->n;
        q->wds[q->runs] = wd;
        q->runs++;
        return DC_OK;
    }
    DC_TRY(dc_cl_flush(be));
    *q = (dc_cl_pending_adam){.runs = 1,
                              .p = p,
                              .g = g,
                              .m = m,
                              .v = v,
                              .gscale = gscale,
                              .n = n,
                              .lr = lr,
                              .beta1 = beta1,
                              .beta2 = beta2,
                              .eps = eps,
                              .bc1 = bc1,
                              .bc2 = bc2,
                              .decoupled = decoupled};
    q->ends[0] = (cl_uint)n;
    q->wds[0] = wd;
    return DC_OK;
}

dc_status dc_cl_prim_clip_scale(dc_backend *be, dc_ptr sumsq, dc_ptr gscale, float max_norm) {
    DC_TRY(
        CHECK_TENSORS(be, "clip_scale", 0, TENSOR("sumsq", sumsq, 1), TENSOR("gscale", gscale, 1)));
    return LAUNCH_ITEMS(be, DC_K_clip_scale, 1, 1, 1, KPTR(sumsq), KPTR(gscale), KFLOAT(max_norm));
}
