/* OpenCL primitives: convolution plumbing (im2col, col2im, the column-major <-> NCHW
 * transposes), the bias and the per-channel gradient sums. */

#include "launch.h"

/* im2col; with act, x is the gradient of the fused activation's output act_y and the
 * columns hold the gradient before the activation. */
dc_status dc_cl_im2col_act(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr x,
                           dc_ptr act_y, const dc_fused_act *act, dc_ptr cols,
                           const chan_final_job *fin) {
    DC_TRY(check_win(be, "im2col", g));
    DC_TRY(check_chunk(be, "im2col", g, n0, nb));
    /* one work-item per output row of ow columns, or per column (see cl/conv.cl) */
    const size_t rows = (size_t)g->c * g->kh * g->kw, ncols = (size_t)nb * g->oh * g->ow;
    const size_t total = rows * ncols, images = (size_t)(n0 + nb) * g->c * g->h * g->w;
    const size_t out_rows = rows * nb * g->oh, local = B(be)->local[DC_K_im2col];
    const int elem = B(be)->elem;
    const size_t items = elem ? total : out_rows, col_groups = (items + local - 1) / local;
    DC_TRY(CHECK_TENSORS(be, "im2col", total, TENSOR("x", x, images), TENSOR("cols", cols, total),
                         TENSOR_IF(act, "activation output", act_y, images)));
    if (fin && !fin->channels) fin = NULL;
    return LAUNCH_GROUPS(be, DC_K_im2col, col_groups + (fin ? (size_t)fin->channels : 0),
                         (size_t)nb * g->c * g->h * g->w, total, KGEOM(g, n0, nb), KPTR(x),
                         KPTR(act_y.buf ? act_y : x), KACT(act), KPTR(cols), KUINT(out_rows),
                         KUINT(col_groups), KUINT(fin ? (size_t)fin->channels : 0), KPARTIAL(be),
                         KUINT(fin ? fin->groups_per_ch : 1), KPTR(fin ? fin->db : cols), KSCRATCH,
                         KINT(elem));
}

dc_status dc_cl_prim_im2col(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr x,
                            dc_ptr cols) {
    return dc_cl_im2col_act(be, g, n0, nb, x, dc_null_ptr(), NULL, cols, NULL);
}

/* col2im; accumulate 0 overwrites x (images n0..n0+nb) instead, then adds bias (when set)
 * and applies act: a transposed convolution's epilogue in the same pass. */
dc_status dc_cl_col2im_epilogue(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr cols,
                                dc_ptr x, int accumulate, dc_ptr bias, const dc_fused_act *act,
                                int image_major) {
    DC_TRY(check_win(be, "col2im", g));
    DC_TRY(check_chunk(be, "col2im", g, n0, nb));
    const size_t total = (size_t)nb * g->c * g->h * g->w;
    const size_t cols_total = (size_t)g->c * g->kh * g->kw * nb * g->oh * g->ow;
    DC_TRY(CHECK_TENSORS(be, "col2im", cols_total, TENSOR("cols", cols, cols_total),
                         TENSOR("x", x, (size_t)(n0 + nb) * g->c * g->h * g->w),
                         TENSOR_IF(bias.buf, "bias", bias, (size_t)g->c)));
    /* one work-item per image row, or per pixel (see cl/conv.cl) */
    const size_t rows = (size_t)nb * g->c * g->h;
    const int elem = B(be)->elem;
    return LAUNCH_ITEMS(be, DC_K_col2im, elem ? total : rows,
                        cols_total + (accumulate ? total : 0), total, KGEOM(g, n0, nb), KPTR(cols),
                        KPTR(x), KUINT(rows), KINT(accumulate), KPTR(bias.buf ? bias : cols),
                        KINT(bias.buf != NULL), KACT_FWD(act), KINT(image_major), KINT(elem));
}

dc_status dc_cl_prim_col2im(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr cols,
                            dc_ptr x) {
    return dc_cl_col2im_epilogue(be, g, n0, nb, cols, x, 1, dc_null_ptr(), NULL, 0);
}

/* cm_to_nchw with a fused activation after the bias (act NULL: none). */
dc_status dc_cl_cm_to_nchw_act(dc_backend *be, dc_ptr src, dc_ptr bias, dc_ptr dst, int n0, int nb,
                               int c, int hw, float beta, const dc_fused_act *act) {
    const size_t total = (size_t)nb * c * hw;
    if (n0 < 0 || nb < 0 || c < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL cm_to_nchw: negative size");
    DC_TRY(CHECK_TENSORS(be, "cm_to_nchw", total, TENSOR("src", src, total),
                         TENSOR("dst", dst, (size_t)(n0 + nb) * c * hw),
                         TENSOR_IF(bias.buf, "bias", bias, (size_t)c)));
    const size_t run = B(be)->elem ? 1 : DC_CL_RUN;
    return LAUNCH_ITEMS(be, DC_K_cm_to_nchw, (total + run - 1) / run,
                        (beta != 0.0f ? 2 : 1) * total, total, KPTR(src),
                        KPTR(bias.buf ? bias : src), KINT(bias.buf != NULL), KPTR(dst), KINT(n0),
                        KINT(nb), KINT(c), KINT(hw), KFLOAT(beta), KACT_FWD(act), KUINT(run));
}

dc_status dc_cl_prim_cm_to_nchw(dc_backend *be, dc_ptr src, dc_ptr bias, dc_ptr dst, int n0, int nb,
                                int c, int hw, float beta) {
    return dc_cl_cm_to_nchw_act(be, src, bias, dst, n0, nb, c, hw, beta, NULL);
}

dc_status dc_cl_prim_nchw_to_cm(dc_backend *be, dc_ptr src, dc_ptr dst, int n0, int nb, int c,
                                int hw) {
    const size_t total = (size_t)nb * c * hw;
    if (n0 < 0 || nb < 0 || c < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL nchw_to_cm: negative size");
    DC_TRY(CHECK_TENSORS(be, "nchw_to_cm", total, TENSOR("src", src, (size_t)(n0 + nb) * c * hw),
                         TENSOR("dst", dst, total)));
    const size_t run = B(be)->elem ? 1 : DC_CL_RUN;
    return LAUNCH_ITEMS(be, DC_K_nchw_to_cm, (total + run - 1) / run, total, total, KPTR(src),
                        KPTR(dst), KINT(n0), KINT(nb), KINT(c), KINT(hw), KUINT(run));
}

dc_status dc_cl_prim_bias_add(dc_backend *be, dc_ptr y, dc_ptr bias, int n, int c, int hw) {
    const size_t total = (size_t)n * c * hw;
    DC_TRY(CHECK_TENSORS(be, "bias_add", total, TENSOR("y", y, total),
                         TENSOR("bias", bias, (size_t)c)));
    return LAUNCH_ITEMS(be, DC_K_bias_add, total, total, total, KPTR(y), KPTR(bias), KUINT(total),
                        KINT(c), KINT(hw));
}

/* Per-channel gradient sums over images [n0, n0 + nb) of an NCHW gradient dy (c channels,
 * hw pixels): db[ch] += sum of g, g = dy or, with act, the gradient before the fused
 * activation whose output is act_y. cm (when set) also receives g channel-major,
 * [c][nb*hw]. Two stages: many work-groups per channel write partial sums (a big device
 * stays busy even with few channels), then one work-group per channel adds them in a fixed
 * order (deterministic); one stage when a channel fits one run. db NULL: only the
 * transposed copy. */
dc_status dc_cl_chan_sums(dc_backend *be, dc_ptr dy, dc_ptr act_y, const dc_fused_act *act,
                          dc_ptr cm, int n0, int nb, int c, int hw, dc_ptr db,
                          chan_final_job *later) {
    if (later) *later = (chan_final_job){0, 1, dc_null_ptr()};
    if (c <= 0 || nb <= 0 || hw <= 0) return DC_OK;
    const size_t m = (size_t)nb * hw;
    size_t groups_per_ch = 1, span = 1;
    DC_TRY(chan_runs(be, DC_K_chan_grad, "channel sums", m, c, 1, &groups_per_ch, &span));
    /* one run per channel: its sum is the channel's, added to db in this launch */
    const int direct = db.buf && groups_per_ch == 1;
    DC_TRY(LAUNCH_GROUPS(
        be, DC_K_chan_grad, groups_per_ch * (size_t)c, (act ? 2 : 1) * m * (size_t)c,
        (cm.buf ? m * (size_t)c : 0) + groups_per_ch * (size_t)c, KPTR(dy),
        KPTR(act_y.buf ? act_y : dy), KACT(act), KPTR(cm.buf ? cm : dy), KINT(cm.buf != NULL),
        KINT(n0), KINT(nb), KINT(c), KINT(hw), KUINT(groups_per_ch), KUINT(span), KPARTIAL(be),
        KINT(direct), KPTR(direct ? db : dy), KSCRATCH));
    if (!db.buf || direct) return DC_OK;
    if (later) { /* the caller's next launch finishes it */
        *later = (chan_final_job){c, groups_per_ch, db};
        return DC_OK;
    }
    return LAUNCH_GROUPS(be, DC_K_chan_final, (size_t)c, groups_per_ch * (size_t)c + (size_t)c,
                         (size_t)c, KPARTIAL(be), KUINT(groups_per_ch), KPTR(db), KSCRATCH);
}

dc_status dc_cl_prim_bias_grad(dc_backend *be, dc_ptr db, dc_ptr dy, int n, int c, int hw) {
    DC_TRY(CHECK_TENSORS(be, "bias_grad", (size_t)n * c * hw, TENSOR("db", db, (size_t)c),
                         TENSOR("dy", dy, (size_t)n * c * hw)));
    return dc_cl_chan_sums(be, dy, dc_null_ptr(), NULL, dc_null_ptr(), 0, n, c, hw, db, NULL);
}
