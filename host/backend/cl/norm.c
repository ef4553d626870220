/* OpenCL primitives: batch and group normalisation. */

#include "launch.h"

/* -------------------------------------------------------------- batch norm */
dc_status dc_cl_prim_bn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c,
                              int hw) {
    DC_TRY(CHECK_TENSORS(be, "bn_stats", (size_t)n * c * hw, TENSOR("x", x, (size_t)n * c * hw),
                         TENSOR("mean", mean, (size_t)c), TENSOR("var", var, (size_t)c)));
    if (c <= 0) return DC_OK;
    /* several work-groups per channel when its values are many (two partials per run);
     * a second launch combines them */
    const size_t m = (size_t)n * hw;
    size_t runs = 1, span = 1;
    DC_TRY(chan_runs(be, DC_K_bn_stats, "bn_stats", m, c, 2, &runs, &span));
    const size_t partials = 2 * runs * (size_t)c;
    DC_TRY(LAUNCH_GROUPS(be, DC_K_bn_stats, runs * (size_t)c, 2 * m * c,
                         runs > 1 ? partials : 2 * (size_t)c, KPTR(x), KPTR(mean), KPTR(var),
                         KINT(n), KINT(c), KINT(hw), KUINT(runs), KUINT(span), KPARTIAL(be),
                         KSCRATCH));
    if (runs == 1) return DC_OK;
    return LAUNCH_GROUPS(be, DC_K_bn_stats_final, (size_t)c, partials, 2 * (size_t)c, KPARTIAL(be),
                         KUINT(runs), KUINT(span), KUINT(m), KPTR(mean), KPTR(var), KSCRATCH);
}

dc_status dc_cl_prim_bn_apply_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                                  dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps,
                                  const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_act(be, "bn_apply_act", act));
    const size_t total = (size_t)n * c * hw;
    DC_TRY(CHECK_TENSORS(be, "bn_apply", total, TENSOR("x", x, total), TENSOR("y", y, total),
                         TENSOR("mean", mean, (size_t)c), TENSOR("var", var, (size_t)c),
                         TENSOR("gamma", gamma, (size_t)c), TENSOR("beta", beta, (size_t)c)));
    return LAUNCH_ITEMS(be, DC_K_bn_apply, total, total, total, KPTR(x), KPTR(mean), KPTR(var),
                        KPTR(gamma), KPTR(beta), KPTR(y), KUINT(total), KINT(c), KINT(hw),
                        KFLOAT(eps), KACT_FWD(act));
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
    DC_TRY(CHECK_TENSORS(be, "bn_bwd", total, TENSOR_IF(act, "y", y, total), TENSOR("x", x, total),
                         TENSOR("dy", dy, total), TENSOR("dx", dx, total),
                         TENSOR("mean", mean, (size_t)c), TENSOR("var", var, (size_t)c),
                         TENSOR("gamma", gamma, (size_t)c), TENSOR("dgamma", dgamma, (size_t)c),
                         TENSOR("dbeta", dbeta, (size_t)c)));
    if (c <= 0) return DC_OK;
    /* phase 0: one work-group per channel does it all; otherwise phase 1 writes each run's
     * two sums and phase 2 combines them and writes dx, run by run */
    size_t runs = 1, span = 1;
    DC_TRY(chan_runs(be, DC_K_bn_bwd, "bn_bwd", (size_t)n * hw, c, 2, &runs, &span));
    /* reads: x, dy (and y) per sum pass, again with dx for the update */
    const size_t sums = (act ? 3 : 2) * total, update = (act ? 4 : 3) * total;
    const size_t pairs = 2 * runs * (size_t)c;
    for (int phase = runs > 1; phase <= (runs > 1 ? 2 : 0); phase++)
        DC_TRY(LAUNCH_GROUPS(be, DC_K_bn_bwd, runs * (size_t)c,
                             phase == 0   ? sums + update
                             : phase == 1 ? sums
                                          : update + pairs,
                             phase == 1 ? pairs : total + 2 * (size_t)c, KPTR(x), KPTR(mean),
                             KPTR(var), KPTR(gamma), KPTR(dy), KPTR(dx), KPTR(dgamma), KPTR(dbeta),
                             KINT(n), KINT(c), KINT(hw), KFLOAT(eps), KPTR(act ? y : dy), KACT(act),
                             KUINT(runs), KUINT(span), KINT(phase), KPARTIAL(be), KSCRATCH));
    return DC_OK;
}

dc_status dc_cl_prim_bn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                            dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw,
                            float eps) {
    return dc_cl_prim_bn_bwd_act(be, x, mean, var, gamma, dc_null_ptr(), dy, dx, dgamma, dbeta, n,
                                 c, hw, eps, NULL);
}

/* The group-norm primitives' common arguments and checks. */
static dc_status gn_args(dc_backend *be, const char *op, dc_ptr x, dc_ptr mean, dc_ptr var, int n,
                         int c, int hw, int groups) {
    if (n < 0 || c <= 0 || hw <= 0 || groups <= 0 || c % groups)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: %d channels do not split into %d groups", op, c, groups);
    return CHECK_TENSORS(be, op, (size_t)n * c * hw, TENSOR("x", x, (size_t)n * c * hw),
                         TENSOR("mean", mean, (size_t)n * groups),
                         TENSOR("var", var, (size_t)n * groups));
}

dc_status dc_cl_prim_gn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c,
                              int hw, int groups) {
    DC_TRY(gn_args(be, "gn_stats", x, mean, var, n, c, hw, groups));
    if (n == 0) return DC_OK;
    return LAUNCH_GROUPS(be, DC_K_gn_stats, (size_t)n * groups, 2 * (size_t)n * c * hw,
                         2 * (size_t)n * groups, KPTR(x), KPTR(mean), KPTR(var),
                         KUINT((size_t)(c / groups) * hw), KSCRATCH);
}

dc_status dc_cl_prim_gn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                              dc_ptr beta, dc_ptr y, int n, int c, int hw, int groups, float eps) {
    DC_TRY(gn_args(be, "gn_apply", x, mean, var, n, c, hw, groups));
    const size_t total = (size_t)n * c * hw;
    DC_TRY(CHECK_TENSORS(be, "gn_apply", 0, TENSOR("gamma", gamma, (size_t)c),
                         TENSOR("beta", beta, (size_t)c), TENSOR("y", y, total)));
    return LAUNCH_ITEMS(be, DC_K_gn_apply, total, total, total, KPTR(x), KPTR(mean), KPTR(var),
                        KPTR(gamma), KPTR(beta), KPTR(y), KUINT(total), KINT(c), KINT(hw),
                        KINT(groups), KFLOAT(eps));
}

dc_status dc_cl_prim_gn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                            dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw,
                            int groups, float eps) {
    DC_TRY(gn_args(be, "gn_bwd", x, mean, var, n, c, hw, groups));
    const size_t total = (size_t)n * c * hw;
    DC_TRY(CHECK_TENSORS(be, "gn_bwd", 0, TENSOR("gamma", gamma, (size_t)c),
                         TENSOR("dy", dy, total), TENSOR("dx", dx, total),
                         TENSOR("dgamma", dgamma, (size_t)c), TENSOR("dbeta", dbeta, (size_t)c)));
    if (n == 0) return DC_OK;
    /* the parameter gradients over one or more work-groups per channel; with several, the
     * dx launch's extra work-groups add their partial sums */
    size_t runs = 1, span = 1;
    DC_TRY(chan_runs(be, DC_K_gn_bwd_param, "gn_bwd", (size_t)n * hw, c, 2, &runs, &span));
    const size_t pairs = 2 * runs * (size_t)c, finals = runs > 1 ? (size_t)c : 0;
    DC_TRY(LAUNCH_GROUPS(be, DC_K_gn_bwd_param, runs * (size_t)c, 2 * total,
                         runs > 1 ? pairs : 2 * (size_t)c, KPTR(x), KPTR(mean), KPTR(var), KPTR(dy),
                         KPTR(dgamma), KPTR(dbeta), KINT(n), KINT(c), KINT(hw), KINT(groups),
                         KFLOAT(eps), KUINT(runs), KUINT(span), KPARTIAL(be), KSCRATCH));
    return LAUNCH_GROUPS(be, DC_K_gn_bwd_dx, (size_t)n * groups + finals,
                         4 * total + (finals ? pairs : 0), total + 2 * finals, KPTR(x), KPTR(mean),
                         KPTR(var), KPTR(gamma), KPTR(dy), KPTR(dx), KINT(c), KINT(hw),
                         KINT(groups), KFLOAT(eps), KUINT((size_t)n * groups), KUINT(finals),
                         KPARTIAL(be), KUINT(runs), KPTR(dgamma), KPTR(dbeta), KSCRATCH);
}
