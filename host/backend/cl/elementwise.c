/* OpenCL primitives: pooling, activations, randomness and the U-Net's element-wise ops
 * (channel slices, upsampling, time embedding) and self-attention. */

#include "launch.h"

/* ------------------------------------------------------------------ pooling */
/* The switch-based pooling primitives: an input, the switches (pooled size) and an output,
 * one at the input size (big) and the other at the pooled size (small). */
static dc_status pool_args(dc_backend *be, const char *op, const dc_win2d *g, const char *in_name,
                           dc_ptr in, int in_is_big, dc_ptr sw, const char *out_name, dc_ptr out,
                           size_t *big, size_t *small) {
    DC_TRY(check_win(be, op, g));
    *big = (size_t)g->n * g->c * g->h * g->w;
    *small = (size_t)g->n * g->c * g->oh * g->ow;
    return CHECK_TENSORS(
        be, op, *big > *small ? *big : *small, TENSOR(in_name, in, in_is_big ? *big : *small),
        TENSOR("switches", sw, *small), TENSOR(out_name, out, in_is_big ? *small : *big));
}

dc_status dc_cl_prim_maxpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr y, dc_ptr sw) {
    size_t big, small;
    DC_TRY(pool_args(be, "maxpool_fwd", g, "x", x, 1, sw, "y", y, &big, &small));
    /* one work-item per output row, or per output (cl/pool.cl) */
    const size_t rows = (size_t)g->n * g->c * g->oh;
    const int elem = B(be)->elem;
    return LAUNCH_ITEMS(be, DC_K_maxpool_fwd, elem ? small : rows, big, 2 * small,
                        KGEOM(g, 0, g->n), KPTR(x), KPTR(y), KPTR(sw), KUINT(rows), KINT(elem));
}

dc_status dc_cl_prim_maxpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw,
                                 dc_ptr dx) {
    size_t big, small;
    DC_TRY(pool_args(be, "maxpool_bwd", g, "dy", dy, 0, sw, "dx", dx, &big, &small));
    /* non-overlapping windows: scatter from the outputs (a quarter of the work-items for
     * 2x2 pools, no window search); otherwise gather per input pixel */
    const int scatter = g->kh <= g->sh && g->kw <= g->sw, elem = B(be)->elem;
    /* scatter: output rows (or, elem, outputs); gather: input pixels */
    const size_t bound = scatter ? (size_t)g->n * g->c * g->oh : big;
    const size_t items = scatter && elem ? small : bound;
    if (scatter)
        return LAUNCH_ITEMS(be, DC_K_maxpool_bwd_scatter, items, 3 * small, small,
                            KGEOM(g, 0, g->n), KPTR(dy), KPTR(sw), KPTR(dx), KUINT(bound),
                            KINT(elem));
    return LAUNCH_ITEMS(be, DC_K_maxpool_bwd, items, 2 * small + big, big, KGEOM(g, 0, g->n),
                        KPTR(dy), KPTR(sw), KPTR(dx), KUINT(bound));
}

dc_status dc_cl_prim_unpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr sw, dc_ptr y) {
    size_t big, small;
    DC_TRY(pool_args(be, "unpool_fwd", g, "x", x, 0, sw, "y", y, &big, &small));
    return LAUNCH_ITEMS(be, DC_K_unpool_fwd, big, 2 * small, big, KGEOM(g, 0, g->n), KPTR(x),
                        KPTR(sw), KPTR(y), KUINT(big));
}

dc_status dc_cl_prim_unpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw,
                                dc_ptr dx) {
    size_t big, small;
    DC_TRY(pool_args(be, "unpool_bwd", g, "dy", dy, 1, sw, "dx", dx, &big, &small));
    return LAUNCH_ITEMS(be, DC_K_unpool_bwd, small, big + 2 * small, small, KGEOM(g, 0, g->n),
                        KPTR(dy), KPTR(sw), KPTR(dx), KUINT(small));
}

dc_status dc_cl_prim_gap_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int hw) {
    const size_t total = (size_t)nc * hw;
    DC_TRY(CHECK_TENSORS(be, "gap_fwd", total, TENSOR("x", x, total), TENSOR("y", y, (size_t)nc)));
    return LAUNCH_ITEMS(be, DC_K_gap_fwd, (size_t)nc, total, (size_t)nc, KPTR(x), KPTR(y), KINT(nc),
                        KINT(hw));
}

dc_status dc_cl_prim_gap_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int hw) {
    const size_t total = (size_t)nc * hw;
    DC_TRY(
        CHECK_TENSORS(be, "gap_bwd", total, TENSOR("dy", dy, (size_t)nc), TENSOR("dx", dx, total)));
    return LAUNCH_ITEMS(be, DC_K_gap_bwd, total, total + (size_t)nc, total, KPTR(dy), KPTR(dx),
                        KUINT(total), KINT(hw));
}

/* -------------------------------------------------------------- activations */
dc_status dc_cl_prim_act_fwd(dc_backend *be, int kind, float alpha, dc_ptr x, dc_ptr y, size_t n) {
    if (kind < DC_ACT_RELU || kind > DC_ACT_SILU)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL act_fwd: unknown kind %d", kind);
    DC_TRY(CHECK_TENSORS(be, "act_fwd", n, TENSOR("x", x, n), TENSOR("y", y, n)));
    return LAUNCH_ITEMS(be, DC_K_act_fwd, n, n, n, KINT(kind), KFLOAT(alpha), KPTR(x), KPTR(y),
                        KUINT(n));
}

dc_status dc_cl_prim_act_bwd(dc_backend *be, int kind, int mode, float alpha, dc_ptr x, dc_ptr y,
                             dc_ptr dy, dc_ptr dx, size_t n) {
    if (kind < DC_ACT_RELU || kind > DC_ACT_SILU)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL act_bwd: unknown kind %d", kind);
    const int relu = kind == DC_ACT_RELU || kind == DC_ACT_LEAKY_RELU || kind == DC_ACT_SILU;
    /* ReLU and SiLU read x, tanh/sigmoid read y: the other may be absent */
    dc_ptr used = relu ? x : y;
    DC_TRY(CHECK_TENSORS(be, "act_bwd", n, TENSOR(relu ? "x" : "y", used, n), TENSOR("dy", dy, n),
                         TENSOR("dx", dx, n)));
    return LAUNCH_ITEMS(be, DC_K_act_bwd, n, 3 * n, n, KINT(kind), KINT(mode), KFLOAT(alpha),
                        KPTR(x.buf ? x : used), KPTR(y.buf ? y : used), KPTR(dy), KPTR(dx),
                        KUINT(n));
}

/* ---------------------------------------------------------------- randomness */
dc_status dc_cl_prim_randn(dc_backend *be, dc_ptr dst, size_t n, uint64_t seed, float mean,
                           float std) {
    DC_TRY(CHECK_TENSORS(be, "randn", n, TENSOR("dst", dst, n)));
    return LAUNCH_ITEMS(be, DC_K_randn, n, 0, n, KPTR(dst), KUINT(n), KUINT((uint32_t)seed),
                        KUINT((uint32_t)(seed >> 32)), KFLOAT(mean), KFLOAT(std));
}

dc_status dc_cl_prim_dropout_mask(dc_backend *be, dc_ptr mask, size_t n, uint64_t seed, float p) {
    DC_TRY(CHECK_TENSORS(be, "dropout_mask", n, TENSOR("mask", mask, n)));
    const float keep = 1.0f / (1.0f - p); /* the CPU's float expression, bit for bit */
    return LAUNCH_ITEMS(be, DC_K_dropout_mask, n, 0, n, KPTR(mask), KUINT(n), KUINT((uint32_t)seed),
                        KUINT((uint32_t)(seed >> 32)), KFLOAT(p), KFLOAT(keep));
}

dc_status dc_cl_prim_reparam_fwd(dc_backend *be, dc_ptr mu, dc_ptr lv, dc_ptr eps, dc_ptr z,
                                 size_t n) {
    DC_TRY(CHECK_TENSORS(be, "reparam_fwd", n, TENSOR("mu", mu, n), TENSOR("logvar", lv, n),
                         TENSOR("eps", eps, n), TENSOR("z", z, n)));
    return LAUNCH_ITEMS(be, DC_K_reparam_fwd, n, 3 * n, n, KPTR(mu), KPTR(lv), KPTR(eps), KPTR(z),
                        KUINT(n));
}

dc_status dc_cl_prim_reparam_bwd(dc_backend *be, dc_ptr lv, dc_ptr eps, dc_ptr dz, dc_ptr dmu,
                                 dc_ptr dlv, size_t n) {
    DC_TRY(CHECK_TENSORS(be, "reparam_bwd", n, TENSOR("logvar", lv, n), TENSOR("eps", eps, n),
                         TENSOR("dz", dz, n), TENSOR("dmu", dmu, n), TENSOR("dlogvar", dlv, n)));
    return LAUNCH_ITEMS(be, DC_K_reparam_bwd, n, 5 * n, 2 * n, KPTR(lv), KPTR(eps), KPTR(dz),
                        KPTR(dmu), KPTR(dlv), KUINT(n));
}

/* ------------------------------------------------------------- U-Net ops */
dc_status dc_cl_prim_chan_slice(dc_backend *be, int dir, dc_ptr big, int cbig, int coff,
                                dc_ptr small, int csmall, int n, int hw) {
    if (coff < 0 || csmall < 0 || coff + csmall > cbig || n < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL chan_slice: channels [%d, %d) outside a %d-channel tensor",
                            coff, coff + csmall, cbig);
    const size_t total = (size_t)n * csmall * hw, big_total = (size_t)n * cbig * hw;
    DC_TRY(CHECK_TENSORS(be, "chan_slice", big_total, TENSOR("big", big, big_total),
                         TENSOR("small", small, total)));
    return LAUNCH_ITEMS(be, DC_K_chan_slice, total, (dir ? 2 : 1) * total, total, KINT(dir),
                        KPTR(big), KINT(cbig), KINT(coff), KPTR(small), KINT(csmall), KUINT(total),
                        KINT(hw));
}

/* Nearest-neighbour upsampling by s: `small` has nc planes of h x w, `big` of hs x ws. */
static dc_status upsample_args(dc_backend *be, const char *op, dc_ptr small, dc_ptr big, int nc,
                               int h, int w, int s) {
    if (nc < 0 || h < 0 || w < 0 || s <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL %s: %d planes %dx%d, factor %d", op, nc,
                            h, w, s);
    const size_t big_total = (size_t)nc * h * w * s * s;
    return CHECK_TENSORS(be, op, big_total, TENSOR("input", small, (size_t)nc * h * w),
                         TENSOR("output", big, big_total));
}

dc_status dc_cl_prim_upsample_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int h, int w, int s) {
    DC_TRY(upsample_args(be, "upsample_fwd", x, y, nc, h, w, s));
    const size_t total = (size_t)nc * h * w * s * s;
    return LAUNCH_ITEMS(be, DC_K_upsample_fwd, total, total / ((size_t)s * s), total, KPTR(x),
                        KPTR(y), KUINT(total), KINT(h), KINT(w), KINT(s));
}

dc_status dc_cl_prim_upsample_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int h, int w,
                                  int s) {
    DC_TRY(upsample_args(be, "upsample_bwd", dx, dy, nc, h, w, s));
    const size_t total = (size_t)nc * h * w;
    return LAUNCH_ITEMS(be, DC_K_upsample_bwd, total, total * s * s + total, total, KPTR(dy),
                        KPTR(dx), KUINT(total), KINT(h), KINT(w), KINT(s));
}

dc_status dc_cl_prim_time_embed(dc_backend *be, dc_ptr t, dc_ptr y, int rows, int dim, float scale,
                                float max_period) {
    if (rows < 0 || dim <= 0 || dim % 2 || !(max_period > 0.0f))
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL time_embed: dim %d must be even and > 0, max_period %g > 0",
                            dim, (double)max_period);
    DC_TRY(CHECK_TENSORS(be, "time_embed", (size_t)rows * dim, TENSOR("t", t, (size_t)rows),
                         TENSOR("y", y, (size_t)rows * dim)));
    const size_t total = (size_t)rows * (dim / 2);
    return LAUNCH_ITEMS(be, DC_K_time_embed, total, (size_t)rows, 2 * total, KPTR(t), KPTR(y),
                        KUINT(total), KINT(dim), KFLOAT(scale), KFLOAT(max_period));
}

/* Self-attention: n images of c channels (3c in qkv) over hw positions; *qn, *an, *yn: the
 * elements of qkv, of the probabilities and of the output. */
static dc_status attn_args(dc_backend *be, const char *op, int n, int c, int hw, size_t *qn,
                           size_t *an, size_t *yn) {
    if (n < 0 || c <= 0 || hw <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: %d images of %d channels x %d positions", op, n, c, hw);
    *yn = (size_t)n * c * hw;
    *qn = 3 * *yn;
    *an = (size_t)n * hw * hw;
    return DC_OK;
}

/* the scores, their softmax rows, the output: three launches */
dc_status dc_cl_prim_attn_fwd(dc_backend *be, dc_ptr qkv, dc_ptr att, dc_ptr y, int n, int c,
                              int hw, float scale) {
    size_t qn = 0, an = 0, yn = 0;
    DC_TRY(attn_args(be, "attn_fwd", n, c, hw, &qn, &an, &yn));
    DC_TRY(CHECK_TENSORS(be, "attn_fwd", qn > an ? qn : an, TENSOR("qkv", qkv, qn),
                         TENSOR("att", att, an), TENSOR("y", y, yn)));
    const size_t rows = (size_t)n * hw;
    DC_TRY(LAUNCH_ITEMS(be, DC_K_attn_scores, an, 2 * yn, an, KPTR(qkv), KPTR(att), KUINT(an),
                        KINT(c), KINT(hw), KFLOAT(scale)));
    DC_TRY(LAUNCH_ITEMS(be, DC_K_attn_softmax, rows, an, an, KPTR(att), KUINT(rows), KINT(hw)));
    return LAUNCH_ITEMS(be, DC_K_attn_out, yn, yn + an, yn, KPTR(qkv), KPTR(att), KPTR(y),
                        KUINT(yn), KINT(c), KINT(hw));
}

/* the probabilities' gradient into work, the scores' in place, then dqkv: three launches */
dc_status dc_cl_prim_attn_bwd(dc_backend *be, dc_ptr qkv, dc_ptr att, dc_ptr dy, dc_ptr dqkv,
                              dc_ptr work, int n, int c, int hw, float scale) {
    size_t qn = 0, an = 0, yn = 0;
    DC_TRY(attn_args(be, "attn_bwd", n, c, hw, &qn, &an, &yn));
    DC_TRY(CHECK_TENSORS(be, "attn_bwd", qn > an ? qn : an, TENSOR("qkv", qkv, qn),
                         TENSOR("att", att, an), TENSOR("dy", dy, yn), TENSOR("dqkv", dqkv, qn),
                         TENSOR("work", work, an)));
    const size_t rows = (size_t)n * hw;
    DC_TRY(LAUNCH_ITEMS(be, DC_K_attn_dprobs, an, 2 * yn, an, KPTR(qkv), KPTR(dy), KPTR(work),
                        KUINT(an), KINT(c), KINT(hw)));
    DC_TRY(LAUNCH_ITEMS(be, DC_K_attn_softmax_bwd, rows, 2 * an, an, KPTR(att), KPTR(work),
                        KUINT(rows), KINT(hw)));
    return LAUNCH_ITEMS(be, DC_K_attn_dqkv, qn, 2 * qn + yn + 2 * an, qn, KPTR(qkv), KPTR(att),
                        KPTR(dy), KPTR(work), KPTR(dqkv), KUINT(qn), KINT(c), KINT(hw),
                        KFLOAT(scale));
}
