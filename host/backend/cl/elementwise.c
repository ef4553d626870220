/* OpenCL primitives: pooling, activations, randomness and the U-Net's element-wise ops
 * (channel slices, upsampling, time embedding). */

#include "launch.h"

/* ------------------------------------------------------------------ pooling */
static dc_status pool_args(dc_backend *be, const char *op, const dc_win2d *g, size_t *big,
                           size_t *small) {
    DC_TRY(check_win(be, op, g));
    *big = (size_t)g->n * g->c * g->h * g->w;
    *small = (size_t)g->n * g->c * g->oh * g->ow;
    DC_TRY(fits32(be, op, *big > *small ? *big : *small));
    return DC_OK;
}

dc_status dc_cl_prim_maxpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr y, dc_ptr sw) {
    size_t big, small;
    DC_TRY(pool_args(be, "maxpool_fwd", g, &big, &small));
    DC_TRY(need(be, "maxpool_fwd", "x", x, big));
    DC_TRY(need(be, "maxpool_fwd", "y", y, small));
    DC_TRY(need(be, "maxpool_fwd", "switches", sw, small));
    kargs a = ka(be, DC_K_maxpool_fwd);
    ka_geom(&a, g, 0, g->n);
    ka_ptr(&a, x);
    ka_ptr(&a, y);
    ka_ptr(&a, sw);
    ka_uint(&a, small);
    return ka_run(&a, small, big, 2 * small);
}

dc_status dc_cl_prim_maxpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw,
                                 dc_ptr dx) {
    size_t big, small;
    DC_TRY(pool_args(be, "maxpool_bwd", g, &big, &small));
    DC_TRY(need(be, "maxpool_bwd", "dy", dy, small));
    DC_TRY(need(be, "maxpool_bwd", "switches", sw, small));
    DC_TRY(need(be, "maxpool_bwd", "dx", dx, big));
    /* non-overlapping windows: scatter from the outputs (a quarter of the work-items for
     * 2x2 pools, no window search); otherwise gather per input pixel */
    const int scatter = g->kh <= g->sh && g->kw <= g->sw;
    kargs a = ka(be, scatter ? DC_K_maxpool_bwd_scatter : DC_K_maxpool_bwd);
    ka_geom(&a, g, 0, g->n);
    ka_ptr(&a, dy);
    ka_ptr(&a, sw);
    ka_ptr(&a, dx);
    ka_uint(&a, scatter ? small : big);
    return ka_run(&a, scatter ? small : big, scatter ? 3 * small : 2 * small + big,
                  scatter ? small : big);
}

dc_status dc_cl_prim_unpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr sw, dc_ptr y) {
    size_t big, small;
    DC_TRY(pool_args(be, "unpool_fwd", g, &big, &small));
    DC_TRY(need(be, "unpool_fwd", "x", x, small));
    DC_TRY(need(be, "unpool_fwd", "switches", sw, small));
    DC_TRY(need(be, "unpool_fwd", "y", y, big));
    kargs a = ka(be, DC_K_unpool_fwd);
    ka_geom(&a, g, 0, g->n);
    ka_ptr(&a, x);
    ka_ptr(&a, sw);
    ka_ptr(&a, y);
    ka_uint(&a, big);
    return ka_run(&a, big, 2 * small, big);
}

dc_status dc_cl_prim_unpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw,
                                dc_ptr dx) {
    size_t big, small;
    DC_TRY(pool_args(be, "unpool_bwd", g, &big, &small));
    DC_TRY(need(be, "unpool_bwd", "dy", dy, big));
    DC_TRY(need(be, "unpool_bwd", "switches", sw, small));
    DC_TRY(need(be, "unpool_bwd", "dx", dx, small));
    kargs a = ka(be, DC_K_unpool_bwd);
    ka_geom(&a, g, 0, g->n);
    ka_ptr(&a, dy);
    ka_ptr(&a, sw);
    ka_ptr(&a, dx);
    ka_uint(&a, small);
    return ka_run(&a, small, big + 2 * small, small);
}

dc_status dc_cl_prim_gap_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int hw) {
    DC_TRY(need(be, "gap_fwd", "x", x, (size_t)nc * hw));
    DC_TRY(need(be, "gap_fwd", "y", y, (size_t)nc));
    DC_TRY(fits32(be, "gap_fwd", (size_t)nc * hw));
    kargs a = ka(be, DC_K_gap_fwd);
    ka_ptr(&a, x);
    ka_ptr(&a, y);
    ka_int(&a, nc);
    ka_int(&a, hw);
    return ka_run(&a, (size_t)nc, (size_t)nc * hw, (size_t)nc);
}

dc_status dc_cl_prim_gap_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int hw) {
    const size_t total = (size_t)nc * hw;
    DC_TRY(need(be, "gap_bwd", "dy", dy, (size_t)nc));
    DC_TRY(need(be, "gap_bwd", "dx", dx, total));
    DC_TRY(fits32(be, "gap_bwd", total));
    kargs a = ka(be, DC_K_gap_bwd);
    ka_ptr(&a, dy);
    ka_ptr(&a, dx);
    ka_uint(&a, total);
    ka_int(&a, hw);
    return ka_run(&a, total, total + (size_t)nc, total);
}

/* -------------------------------------------------------------- activations */
dc_status dc_cl_prim_act_fwd(dc_backend *be, int kind, float alpha, dc_ptr x, dc_ptr y, size_t n) {
    if (kind < DC_ACT_RELU || kind > DC_ACT_SILU)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL act_fwd: unknown kind %d", kind);
    DC_TRY(need(be, "act_fwd", "x", x, n));
    DC_TRY(need(be, "act_fwd", "y", y, n));
    DC_TRY(fits32(be, "act_fwd", n));
    kargs a = ka(be, DC_K_act_fwd);
    ka_int(&a, kind);
    ka_float(&a, alpha);
    ka_ptr(&a, x);
    ka_ptr(&a, y);
    ka_uint(&a, n);
    return ka_run(&a, n, n, n);
}

dc_status dc_cl_prim_act_bwd(dc_backend *be, int kind, int mode, float alpha, dc_ptr x, dc_ptr y,
                             dc_ptr dy, dc_ptr dx, size_t n) {
    if (kind < DC_ACT_RELU || kind > DC_ACT_SILU)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL act_bwd: unknown kind %d", kind);
    const int relu = kind == DC_ACT_RELU || kind == DC_ACT_LEAKY_RELU || kind == DC_ACT_SILU;
    /* ReLU and SiLU read x, tanh/sigmoid read y: the other may be absent */
    dc_ptr used = relu ? x : y;
    DC_TRY(need(be, "act_bwd", relu ? "x" : "y", used, n));
    DC_TRY(need(be, "act_bwd", "dy", dy, n));
    DC_TRY(need(be, "act_bwd", "dx", dx, n));
    DC_TRY(fits32(be, "act_bwd", n));
    kargs a = ka(be, DC_K_act_bwd);
    ka_int(&a, kind);
    ka_int(&a, mode);
    ka_float(&a, alpha);
    ka_ptr(&a, x.buf ? x : used);
    ka_ptr(&a, y.buf ? y : used);
    ka_ptr(&a, dy);
    ka_ptr(&a, dx);
    ka_uint(&a, n);
    return ka_run(&a, n, 3 * n, n);
}

/* ---------------------------------------------------------------- randomness */
dc_status dc_cl_prim_randn(dc_backend *be, dc_ptr dst, size_t n, uint64_t seed, float mean,
                           float std) {
    DC_TRY(need(be, "randn", "dst", dst, n));
    DC_TRY(fits32(be, "randn", n));
    kargs a = ka(be, DC_K_randn);
    ka_ptr(&a, dst);
    ka_uint(&a, n);
    ka_uint(&a, (uint32_t)seed);
    ka_uint(&a, (uint32_t)(seed >> 32));
    ka_float(&a, mean);
    ka_float(&a, std);
    return ka_run(&a, n, 0, n);
}

dc_status dc_cl_prim_dropout_mask(dc_backend *be, dc_ptr mask, size_t n, uint64_t seed, float p) {
    DC_TRY(need(be, "dropout_mask", "mask", mask, n));
    DC_TRY(fits32(be, "dropout_mask", n));
    const float keep = 1.0f / (1.0f - p); /* the CPU's float expression, bit for bit */
    kargs a = ka(be, DC_K_dropout_mask);
    ka_ptr(&a, mask);
    ka_uint(&a, n);
    ka_uint(&a, (uint32_t)seed);
    ka_uint(&a, (uint32_t)(seed >> 32));
    ka_float(&a, p);
    ka_float(&a, keep);
    return ka_run(&a, n, 0, n);
}

dc_status dc_cl_prim_reparam_fwd(dc_backend *be, dc_ptr mu, dc_ptr lv, dc_ptr eps, dc_ptr z,
                                 size_t n) {
    DC_TRY(need(be, "reparam_fwd", "mu", mu, n));
    DC_TRY(need(be, "reparam_fwd", "logvar", lv, n));
    DC_TRY(need(be, "reparam_fwd", "eps", eps, n));
    DC_TRY(need(be, "reparam_fwd", "z", z, n));
    DC_TRY(fits32(be, "reparam_fwd", n));
    kargs a = ka(be, DC_K_reparam_fwd);
    ka_ptr(&a, mu);
    ka_ptr(&a, lv);
    ka_ptr(&a, eps);
    ka_ptr(&a, z);
    ka_uint(&a, n);
    return ka_run(&a, n, 3 * n, n);
}

dc_status dc_cl_prim_reparam_bwd(dc_backend *be, dc_ptr lv, dc_ptr eps, dc_ptr dz, dc_ptr dmu,
                                 dc_ptr dlv, size_t n) {
    DC_TRY(need(be, "reparam_bwd", "logvar", lv, n));
    DC_TRY(need(be, "reparam_bwd", "eps", eps, n));
    DC_TRY(need(be, "reparam_bwd", "dz", dz, n));
    DC_TRY(need(be, "reparam_bwd", "dmu", dmu, n));
    DC_TRY(need(be, "reparam_bwd", "dlogvar", dlv, n));
    DC_TRY(fits32(be, "reparam_bwd", n));
    kargs a = ka(be, DC_K_reparam_bwd);
    ka_ptr(&a, lv);
    ka_ptr(&a, eps);
    ka_ptr(&a, dz);
    ka_ptr(&a, dmu);
    ka_ptr(&a, dlv);
    ka_uint(&a, n);
    return ka_run(&a, n, 5 * n, 2 * n);
}

/* ------------------------------------------------------------- U-Net ops */
dc_status dc_cl_prim_chan_slice(dc_backend *be, int dir, dc_ptr big, int cbig, int coff,
                                dc_ptr small, int csmall, int n, int hw) {
    if (coff < 0 || csmall < 0 || coff + csmall > cbig || n < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL chan_slice: channels [%d, %d) outside a %d-channel tensor",
                            coff, coff + csmall, cbig);
    const size_t total = (size_t)n * csmall * hw;
    DC_TRY(need(be, "chan_slice", "big", big, (size_t)n * cbig * hw));
    DC_TRY(need(be, "chan_slice", "small", small, total));
    DC_TRY(fits32(be, "chan_slice", (size_t)n * cbig * hw));
    kargs a = ka(be, DC_K_chan_slice);
    ka_int(&a, dir);
    ka_ptr(&a, big);
    ka_int(&a, cbig);
    ka_int(&a, coff);
    ka_ptr(&a, small);
    ka_int(&a, csmall);
    ka_uint(&a, total);
    ka_int(&a, hw);
    return ka_run(&a, total, (dir ? 2 : 1) * total, total);
}

static dc_status upsample_args(dc_backend *be, const char *op, dc_ptr small, dc_ptr big, int nc,
                               int h, int w, int s) {
    if (nc < 0 || h < 0 || w < 0 || s <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL %s: %d planes %dx%d, factor %d", op, nc,
                            h, w, s);
    DC_TRY(need(be, op, "input", small, (size_t)nc * h * w));
    DC_TRY(need(be, op, "output", big, (size_t)nc * h * w * s * s));
    return fits32(be, op, (size_t)nc * h * w * s * s);
}

dc_status dc_cl_prim_upsample_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int h, int w, int s) {
    DC_TRY(upsample_args(be, "upsample_fwd", x, y, nc, h, w, s));
    const size_t total = (size_t)nc * h * w * s * s;
    kargs a = ka(be, DC_K_upsample_fwd);
    ka_ptr(&a, x);
    ka_ptr(&a, y);
    ka_uint(&a, total);
    ka_int(&a, h);
    ka_int(&a, w);
    ka_int(&a, s);
    return ka_run(&a, total, total / ((size_t)s * s), total);
}

dc_status dc_cl_prim_upsample_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int h, int w,
                                  int s) {
    DC_TRY(upsample_args(be, "upsample_bwd", dx, dy, nc, h, w, s));
    const size_t total = (size_t)nc * h * w;
    kargs a = ka(be, DC_K_upsample_bwd);
    ka_ptr(&a, dy);
    ka_ptr(&a, dx);
    ka_uint(&a, total);
    ka_int(&a, h);
    ka_int(&a, w);
    ka_int(&a, s);
    return ka_run(&a, total, total * s * s + total, total);
}

dc_status dc_cl_prim_time_embed(dc_backend *be, dc_ptr t, dc_ptr y, int rows, int dim, float scale,
                                float max_period) {
    if (rows < 0 || dim <= 0 || dim % 2 || !(max_period > 0.0f))
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL time_embed: dim %d must be even and > 0, max_period %g > 0",
                            dim, (double)max_period);
    DC_TRY(need(be, "time_embed", "t", t, (size_t)rows));
    DC_TRY(need(be, "time_embed", "y", y, (size_t)rows * dim));
    DC_TRY(fits32(be, "time_embed", (size_t)rows * dim));
    const size_t total = (size_t)rows * (dim / 2);
    kargs a = ka(be, DC_K_time_embed);
    ka_ptr(&a, t);
    ka_ptr(&a, y);
    ka_uint(&a, total);
    ka_int(&a, dim);
    ka_float(&a, scale);
    ka_float(&a, max_period);
    return ka_run(&a, total, (size_t)rows, 2 * total);
}
