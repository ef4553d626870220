/* OpenCL primitives: losses, embeddings and optimizer updates. Losses write their value
 * into a device buffer; nothing here makes the host wait. */

#include "launch.h"

/* ------------------------------------------------------------------ losses */
dc_status dc_cl_prim_mse(dc_backend *be, dc_ptr pred, dc_ptr target, dc_ptr weight, size_t n,
                         dc_ptr loss, dc_ptr dpred, float scale) {
    DC_TRY(need(be, "mse", "pred", pred, n));
    DC_TRY(need(be, "mse", "target", target, n));
    if (weight.buf) DC_TRY(need(be, "mse", "weight", weight, n));
    DC_TRY(need(be, "mse", "loss", loss, 1));
    DC_TRY(need(be, "mse", "dpred", dpred, n));
    DC_TRY(fits32(be, "mse", n));
    const float k = 2.0f * scale / (float)n;
    const size_t groups = reduce_groups(be, DC_K_mse_partial, n);
    kargs a = ka(be, DC_K_mse_partial);
    ka_ptr(&a, pred);
    ka_ptr(&a, target);
    ka_ptr(&a, weight.buf ? weight : pred);
    ka_int(&a, weight.buf != NULL);
    ka_uint(&a, n);
    ka_ptr(&a, dpred);
    ka_float(&a, k);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    DC_TRY(ka_run_groups(&a, groups, (weight.buf ? 3 : 2) * n, n + groups));
    return reduce_final(be, groups, loss, 1.0f, (float)n);
}

dc_status dc_cl_prim_bce_tanh(dc_backend *be, dc_ptr x, dc_ptr target, dc_ptr weight, size_t n,
                              dc_ptr loss, dc_ptr dx, float scale) {
    DC_TRY(need(be, "bce_tanh", "x", x, n));
    DC_TRY(need(be, "bce_tanh", "target", target, n));
    if (weight.buf) DC_TRY(need(be, "bce_tanh", "weight", weight, n));
    DC_TRY(need(be, "bce_tanh", "loss", loss, 1));
    DC_TRY(need(be, "bce_tanh", "dx", dx, n));
    DC_TRY(fits32(be, "bce_tanh", n));
    const size_t groups = reduce_groups(be, DC_K_bce_tanh_partial, n);
    kargs a = ka(be, DC_K_bce_tanh_partial);
    ka_ptr(&a, x);
    ka_ptr(&a, target);
    ka_ptr(&a, weight.buf ? weight : x);
    ka_int(&a, weight.buf != NULL);
    ka_uint(&a, n);
    ka_ptr(&a, dx);
    ka_float(&a, scale / (float)n);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    DC_TRY(ka_run_groups(&a, groups, (weight.buf ? 3 : 2) * n, n + groups));
    return reduce_final(be, groups, loss, 1.0f, (float)n);
}

dc_status dc_cl_prim_softmax(dc_backend *be, dc_ptr logits, dc_ptr probs, int rows, int k) {
    if (rows < 0 || k <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL softmax: %d rows of %d classes", rows, k);
    DC_TRY(need(be, "softmax", "logits", logits, (size_t)rows * k));
    DC_TRY(need(be, "softmax", "probs", probs, (size_t)rows * k));
    kargs a = ka(be, DC_K_softmax);
    ka_ptr(&a, logits);
    ka_ptr(&a, probs);
    ka_int(&a, rows);
    ka_int(&a, k);
    return ka_run(&a, (size_t)rows, (size_t)rows * k, (size_t)rows * k);
}

dc_status dc_cl_prim_softmax_xent(dc_backend *be, dc_ptr logits, dc_ptr labels, int rows, int k,
                                  dc_ptr probs, dc_ptr loss, dc_ptr dlogits, float scale) {
    if (rows <= 0 || k <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL softmax_xent: %d rows of %d classes",
                            rows, k);
    const size_t total = (size_t)rows * k;
    DC_TRY(need(be, "softmax_xent", "logits", logits, total));
    DC_TRY(need(be, "softmax_xent", "labels", labels, (size_t)rows));
    DC_TRY(need(be, "softmax_xent", "probs", probs, total));
    DC_TRY(need(be, "softmax_xent", "loss", loss, 1));
    DC_TRY(need(be, "softmax_xent", "dlogits", dlogits, total));
    kargs a = ka(be, DC_K_softmax_xent);
    ka_ptr(&a, logits);
    ka_ptr(&a, labels);
    ka_int(&a, rows);
    ka_int(&a, k);
    ka_ptr(&a, probs);
    ka_ptr(&a, loss);
    ka_ptr(&a, dlogits);
    ka_float(&a, scale / (float)rows);
    ka_scratch(&a);
    return ka_run_groups(&a, 1, total + (size_t)rows, 2 * total + 1);
}

dc_status dc_cl_prim_gauss_kl(dc_backend *be, dc_ptr mu, dc_ptr logvar, int rows, int dim,
                              dc_ptr loss, dc_ptr dmu, dc_ptr dlogvar, float scale) {
    if (rows <= 0 || dim < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL gauss_kl: %d rows of %d dims", rows, dim);
    const size_t n = (size_t)rows * dim;
    DC_TRY(need(be, "gauss_kl", "mu", mu, n));
    DC_TRY(need(be, "gauss_kl", "logvar", logvar, n));
    DC_TRY(need(be, "gauss_kl", "loss", loss, 1));
    DC_TRY(need(be, "gauss_kl", "dmu", dmu, n));
    DC_TRY(need(be, "gauss_kl", "dlogvar", dlogvar, n));
    DC_TRY(fits32(be, "gauss_kl", n));
    const size_t groups = reduce_groups(be, DC_K_kl_partial, n);
    kargs a = ka(be, DC_K_kl_partial);
    ka_ptr(&a, mu);
    ka_ptr(&a, logvar);
    ka_uint(&a, n);
    ka_ptr(&a, dmu);
    ka_ptr(&a, dlogvar);
    ka_float(&a, scale / (float)rows);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    DC_TRY(ka_run_groups(&a, groups, 2 * n, 2 * n + groups));
    return reduce_final(be, groups, loss, -0.5f, (float)rows);
}

/* ---------------------------------------------------------------- embedding */
dc_status dc_cl_prim_gather_rows(dc_backend *be, dc_ptr table, dc_ptr idx, dc_ptr y, int rows,
                                 int dim) {
    if (rows < 0 || dim <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL gather_rows: %d rows of %d", rows, dim);
    DC_TRY(need(be, "gather_rows", "table", table, (size_t)dim));
    DC_TRY(need(be, "gather_rows", "indices", idx, (size_t)rows));
    DC_TRY(need(be, "gather_rows", "y", y, (size_t)rows * dim));
    DC_TRY(fits32(be, "gather_rows", (size_t)rows * dim));
    /* rows the table's buffer holds past its offset: the kernel's bounds for indices */
    const size_t table_rows = (table.buf->bytes / 4 - table.off) / (size_t)dim;
    kargs a = ka(be, DC_K_gather_rows);
    ka_ptr(&a, table);
    ka_ptr(&a, idx);
    ka_ptr(&a, y);
    ka_int(&a, rows);
    ka_int(&a, dim);
    ka_uint(&a, table_rows > UINT_MAX ? UINT_MAX : table_rows);
    return ka_run(&a, (size_t)rows * dim, (size_t)rows * dim + (size_t)rows, (size_t)rows * dim);
}

dc_status dc_cl_prim_scatter_add_rows(dc_backend *be, dc_ptr dtable, dc_ptr idx, dc_ptr dy,
                                      int rows, int dim, int table_rows) {
    if (rows < 0 || dim <= 0 || table_rows < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL scatter_add_rows: %d rows of %d", rows,
                            dim);
    DC_TRY(need(be, "scatter_add_rows", "dtable", dtable, (size_t)table_rows * dim));
    DC_TRY(need(be, "scatter_add_rows", "indices", idx, (size_t)rows));
    DC_TRY(need(be, "scatter_add_rows", "dy", dy, (size_t)rows * dim));
    DC_TRY(fits32(be, "scatter_add_rows", (size_t)rows * dim));
    kargs a = ka(be, DC_K_scatter_add_rows);
    ka_ptr(&a, dtable);
    ka_ptr(&a, idx);
    ka_ptr(&a, dy);
    ka_int(&a, rows);
    ka_int(&a, dim);
    ka_int(&a, table_rows);
    return ka_run(&a, (size_t)rows * dim, 2 * (size_t)rows * dim + (size_t)rows,
                  (size_t)rows * dim);
}

/* --------------------------------------------------------------- optimizers */
dc_status dc_cl_prim_sgd_update(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr v, size_t n,
                                dc_ptr gscale, float lr, float momentum, float wd, int nesterov) {
    DC_TRY(need(be, "sgd_update", "params", p, n));
    DC_TRY(need(be, "sgd_update", "grads", g, n));
    DC_TRY(need(be, "sgd_update", "velocity", v, n));
    DC_TRY(need(be, "sgd_update", "gscale", gscale, 1));
    DC_TRY(fits32(be, "sgd_update", n));
    kargs a = ka(be, DC_K_sgd_update);
    ka_ptr(&a, p);
    ka_ptr(&a, g);
    ka_ptr(&a, v);
    ka_uint(&a, n);
    ka_ptr(&a, gscale);
    ka_float(&a, lr);
    ka_float(&a, momentum);
    ka_float(&a, wd);
    ka_int(&a, nesterov);
    return ka_run(&a, n, 3 * n, 2 * n);
}

static dc_status adam_launch(dc_backend *be, const dc_cl_pending_adam *q) {
    cl_uint16 ends;
    cl_float16 wds;
    for (int r = 0; r < 16; r++) {
        const int last = r < q->runs ? r : q->runs - 1;
        ends.s[r] = q->ends[last];
        wds.s[r] = q->wds[last];
    }
    kargs a = ka(be, DC_K_adam_update);
    ka_ptr(&a, q->p);
    ka_ptr(&a, q->g);
    ka_ptr(&a, q->m);
    ka_ptr(&a, q->v);
    ka_uint(&a, q->n);
    ka_ptr(&a, q->gscale);
    ka_float(&a, q->lr);
    ka_float(&a, q->beta1);
    ka_float(&a, q->beta2);
    ka_float(&a, q->eps);
    ka_set(&a, sizeof ends, &ends);
    ka_set(&a, sizeof wds, &wds);
    ka_int(&a, q->decoupled);
    ka_float(&a, q->bc1);
    ka_float(&a, q->bc2);
    return ka_run(&a, q->n, 4 * q->n, 3 * q->n);
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
    DC_TRY(need(be, "adam_update", "params", p, n));
    DC_TRY(need(be, "adam_update", "grads", g, n));
    DC_TRY(need(be, "adam_update", "m", m, n));
    DC_TRY(need(be, "adam_update", "v", v, n));
    DC_TRY(need(be, "adam_update", "gscale", gscale, 1));
    DC_TRY(fits32(be, "adam_update", n));
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
    DC_TRY(need(be, "clip_scale", "sumsq", sumsq, 1));
    DC_TRY(need(be, "clip_scale", "gscale", gscale, 1));
    kargs a = ka(be, DC_K_clip_scale);
    ka_ptr(&a, sumsq);
    ka_ptr(&a, gscale);
    ka_float(&a, max_norm);
    return ka_run(&a, 1, 1, 1);
}
