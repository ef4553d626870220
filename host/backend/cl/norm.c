/* OpenCL primitives: batch and group normalisation. */

#include "launch.h"

/* -------------------------------------------------------------- batch norm */
dc_status dc_cl_prim_bn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c,
                              int hw) {
    DC_TRY(need(be, "bn_stats", "x", x, (size_t)n * c * hw));
    DC_TRY(need(be, "bn_stats", "mean", mean, (size_t)c));
    DC_TRY(need(be, "bn_stats", "var", var, (size_t)c));
    DC_TRY(fits32(be, "bn_stats", (size_t)n * c * hw));
    if (c <= 0) return DC_OK;
    /* several work-groups per channel when its values are many (two partials per run);
     * a second launch combines them */
    const size_t m = (size_t)n * hw;
    size_t runs = 1, span = 1;
    DC_TRY(chan_runs(be, DC_K_bn_stats, "bn_stats", m, c, 2, &runs, &span));
    kargs a = ka(be, DC_K_bn_stats);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_int(&a, n);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_uint(&a, runs);
    ka_uint(&a, span);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    const size_t partials = 2 * runs * (size_t)c;
    DC_TRY(ka_run_groups(&a, runs * (size_t)c, 2 * m * c, runs > 1 ? partials : 2 * (size_t)c));
    if (runs == 1) return DC_OK;
    kargs f = ka(be, DC_K_bn_stats_final);
    ka_mem(&f, B(be)->partial);
    ka_uint(&f, runs);
    ka_uint(&f, span);
    ka_uint(&f, m);
    ka_ptr(&f, mean);
    ka_ptr(&f, var);
    ka_scratch(&f);
    return ka_run_groups(&f, (size_t)c, partials, 2 * (size_t)c);
}

dc_status dc_cl_prim_bn_apply_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                                  dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps,
                                  const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_act(be, "bn_apply_act", act));
    const size_t total = (size_t)n * c * hw;
    DC_TRY(need(be, "bn_apply", "x", x, total));
    DC_TRY(need(be, "bn_apply", "y", y, total));
    DC_TRY(need(be, "bn_apply", "mean", mean, (size_t)c));
    DC_TRY(need(be, "bn_apply", "var", var, (size_t)c));
    DC_TRY(need(be, "bn_apply", "gamma", gamma, (size_t)c));
    DC_TRY(need(be, "bn_apply", "beta", beta, (size_t)c));
    DC_TRY(fits32(be, "bn_apply", total));
    kargs a = ka(be, DC_K_bn_apply);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_ptr(&a, gamma);
    ka_ptr(&a, beta);
    ka_ptr(&a, y);
    ka_uint(&a, total);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_float(&a, eps);
    ka_int(&a, act ? act->kind : DC_FACT_NONE);
    ka_float(&a, act ? act->alpha : 0.0f);
    return ka_run(&a, total, total, total);
}

dc_status dc_cl_prim_bn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                              dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps) {
    return dc_cl_prim_bn_apply_act(be, x, mean, var, gamma, beta, y, n, c, hw, eps, NULL);
}

dc_status dc_cl_prim_bn_bwd_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                                dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n,
                                int c, int hw, float eps, const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_act(be, "bn_bwd_act", act));
    const size_t total = (size_t)n * c * hw;
    if (act) DC_TRY(need(be, "bn_bwd", "y", y, total));
    DC_TRY(need(be, "bn_bwd", "x", x, total));
    DC_TRY(need(be, "bn_bwd", "dy", dy, total));
    DC_TRY(need(be, "bn_bwd", "dx", dx, total));
    DC_TRY(need(be, "bn_bwd", "mean", mean, (size_t)c));
    DC_TRY(need(be, "bn_bwd", "var", var, (size_t)c));
    DC_TRY(need(be, "bn_bwd", "gamma", gamma, (size_t)c));
    DC_TRY(need(be, "bn_bwd", "dgamma", dgamma, (size_t)c));
    DC_TRY(need(be, "bn_bwd", "dbeta", dbeta, (size_t)c));
    DC_TRY(fits32(be, "bn_bwd", total));
    if (c <= 0) return DC_OK;
    /* phase 0: one work-group per channel does it all; otherwise phase 1 writes each run's
     * two sums and phase 2 combines them and writes dx, run by run */
    size_t runs = 1, span = 1;
    DC_TRY(chan_runs(be, DC_K_bn_bwd, "bn_bwd", (size_t)n * hw, c, 2, &runs, &span));
    for (int phase = runs > 1; phase <= (runs > 1 ? 2 : 0); phase++) {
        kargs a = ka(be, DC_K_bn_bwd);
        ka_ptr(&a, x);
        ka_ptr(&a, mean);
        ka_ptr(&a, var);
        ka_ptr(&a, gamma);
        ka_ptr(&a, dy);
        ka_ptr(&a, dx);
        ka_ptr(&a, dgamma);
        ka_ptr(&a, dbeta);
        ka_int(&a, n);
        ka_int(&a, c);
        ka_int(&a, hw);
        ka_float(&a, eps);
        ka_ptr(&a, act ? y : dy);
        ka_int(&a, act ? act->kind : DC_FACT_NONE);
        ka_int(&a, act ? act->mode : 0);
        ka_float(&a, act ? act->alpha : 0.0f);
        ka_uint(&a, runs);
        ka_uint(&a, span);
        ka_int(&a, phase);
        ka_mem(&a, B(be)->partial);
        ka_scratch(&a);
        /* reads: x, dy (and y) per sum pass, again with dx for the update */
        const size_t sums = (act ? 3 : 2) * total, update = (act ? 4 : 3) * total;
        const size_t pairs = 2 * runs * (size_t)c;
        DC_TRY(ka_run_groups(&a, runs * (size_t)c,
                             phase == 0   ? sums + update
                             : phase == 1 ? sums
                                          : update + pairs,
                             phase == 1 ? pairs : total + 2 * (size_t)c));
    }
    return DC_OK;
}

dc_status dc_cl_prim_bn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                            dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw,
                            float eps) {
    return dc_cl_prim_bn_bwd_act(be, x, mean, var, gamma, dc_null_ptr(), dy, dx, dgamma, dbeta, n,
                                 c, hw, eps, NULL);
}

static dc_status gn_args(dc_backend *be, const char *op, dc_ptr x, dc_ptr mean, dc_ptr var, int n,
                         int c, int hw, int groups) {
    if (n < 0 || c <= 0 || hw <= 0 || groups <= 0 || c % groups)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: %d channels do not split into %d groups", op, c, groups);
    DC_TRY(need(be, op, "x", x, (size_t)n * c * hw));
    DC_TRY(need(be, op, "mean", mean, (size_t)n * groups));
    DC_TRY(need(be, op, "var", var, (size_t)n * groups));
    return fits32(be, op, (size_t)n * c * hw);
}

dc_status dc_cl_prim_gn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c,
                              int hw, int groups) {
    DC_TRY(gn_args(be, "gn_stats", x, mean, var, n, c, hw, groups));
    if (n == 0) return DC_OK;
    kargs a = ka(be, DC_K_gn_stats);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_uint(&a, (size_t)(c / groups) * hw);
    ka_scratch(&a);
    return ka_run_groups(&a, (size_t)n * groups, 2 * (size_t)n * c * hw, 2 * (size_t)n * groups);
}

dc_status dc_cl_prim_gn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                              dc_ptr beta, dc_ptr y, int n, int c, int hw, int groups, float eps) {
    DC_TRY(gn_args(be, "gn_apply", x, mean, var, n, c, hw, groups));
    const size_t total = (size_t)n * c * hw;
    DC_TRY(need(be, "gn_apply", "gamma", gamma, (size_t)c));
    DC_TRY(need(be, "gn_apply", "beta", beta, (size_t)c));
    DC_TRY(need(be, "gn_apply", "y", y, total));
    kargs a = ka(be, DC_K_gn_apply);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_ptr(&a, gamma);
    ka_ptr(&a, beta);
    ka_ptr(&a, y);
    ka_uint(&a, total);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_int(&a, groups);
    ka_float(&a, eps);
    return ka_run(&a, total, total, total);
}

dc_status dc_cl_prim_gn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                            dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw,
                            int groups, float eps) {
    DC_TRY(gn_args(be, "gn_bwd", x, mean, var, n, c, hw, groups));
    const size_t total = (size_t)n * c * hw;
    DC_TRY(need(be, "gn_bwd", "gamma", gamma, (size_t)c));
    DC_TRY(need(be, "gn_bwd", "dy", dy, total));
    DC_TRY(need(be, "gn_bwd", "dx", dx, total));
    DC_TRY(need(be, "gn_bwd", "dgamma", dgamma, (size_t)c));
    DC_TRY(need(be, "gn_bwd", "dbeta", dbeta, (size_t)c));
    if (n == 0) return DC_OK;
    /* the parameter gradients over one or more work-groups per channel; with several, the
     * dx launch's extra work-groups add their partial sums */
    size_t runs = 1, span = 1;
    DC_TRY(chan_runs(be, DC_K_gn_bwd_param, "gn_bwd", (size_t)n * hw, c, 2, &runs, &span));
    kargs a = ka(be, DC_K_gn_bwd_param);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_ptr(&a, dy);
    ka_ptr(&a, dgamma);
    ka_ptr(&a, dbeta);
    ka_int(&a, n);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_int(&a, groups);
    ka_float(&a, eps);
    ka_uint(&a, runs);
    ka_uint(&a, span);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    const size_t pairs = 2 * runs * (size_t)c, finals = runs > 1 ? (size_t)c : 0;
    DC_TRY(ka_run_groups(&a, runs * (size_t)c, 2 * total, runs > 1 ? pairs : 2 * (size_t)c));
    kargs d = ka(be, DC_K_gn_bwd_dx);
    ka_ptr(&d, x);
    ka_ptr(&d, mean);
    ka_ptr(&d, var);
    ka_ptr(&d, gamma);
    ka_ptr(&d, dy);
    ka_ptr(&d, dx);
    ka_int(&d, c);
    ka_int(&d, hw);
    ka_int(&d, groups);
    ka_float(&d, eps);
    ka_uint(&d, (size_t)n * groups);
    ka_uint(&d, finals);
    ka_mem(&d, B(be)->partial);
    ka_uint(&d, runs);
    ka_ptr(&d, dgamma);
    ka_ptr(&d, dbeta);
    ka_scratch(&d);
    return ka_run_groups(&d, (size_t)n * groups + finals, 4 * total + (finals ? pairs : 0),
                         total + 2 * finals);
}
