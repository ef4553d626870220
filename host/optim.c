/* Optimizers: SGD (momentum, Nesterov, weight decay), Adam, AdamW; clipping by global
 * norm computed on the device (no host round trip); learning-rate schedules. */
#include <math.h>

#include "internal.h"

struct dc_optim {
    dc_params *params;
    dc_optim_config cfg;
    dc_error err;
    long steps;
    dc_buffer *scratch; /* [0] sum of squares, [1] gradient scale */
};

void dc_optim_config_default(dc_optim_config *c, dc_optim_kind kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->lr = kind == DC_OPTIM_SGD ? 0.01f : 1e-3f;
    c->momentum = 0.9f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->weight_decay = kind == DC_OPTIM_ADAMW ? 0.01f : 0.0f;
    c->schedule = DC_SCHED_CONSTANT;
    c->step_size = 1000;
    c->gamma = 0.1f;
    c->min_lr = 0.0f;
}

dc_status dc_optim_create(dc_params *p, const dc_optim_config *cfg, dc_optim **out) {
    if (!out) return DC_ERR_ARG;
    *out = NULL;
    if (!p || !cfg) return DC_ERR_ARG;
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr))
        return dc_set_error(dc_params_err(p), DC_ERR_ARG, "optimizer: learning rate %g must be > 0",
                            (double)cfg->lr);
    if (cfg->kind != DC_OPTIM_SGD && !(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1))
        return dc_set_error(dc_params_err(p), DC_ERR_ARG, "optimizer: betas (%g, %g) must be in [0, 1)",
                            (double)cfg->beta1, (double)cfg->beta2);
    if (!(cfg->ema_decay >= 0.0f && cfg->ema_decay < 1.0f))
        return dc_set_error(dc_params_err(p), DC_ERR_ARG, "optimizer: EMA decay %g must be in [0, 1)",
                            (double)cfg->ema_decay);
    DC_TRY(dc_params_allocate(p));
    DC_TRY(dc_params_ensure_moments(p));
    if (cfg->ema_decay > 0.0f) DC_TRY(dc_params_ensure_ema(p));
    dc_optim *o = calloc(1, sizeof *o);
    if (!o) return DC_ERR_OOM;
    o->params = p;
    o->cfg = *cfg;
    dc_backend *be = dc_params_backend(p);
    if (DC_BE(be, alloc, 16 * sizeof(float), &o->scratch) != DC_OK) {
        free(o);
        return dc_set_error(dc_params_err(p), DC_ERR_OOM, "optimizer: %s", be->err.msg);
    }
    *out = o;
    return DC_OK;
}

void dc_optim_free(dc_optim *o) {
    if (!o) return;
    dc_backend *be = dc_params_backend(o->params);
    if (o->scratch) DC_BE(be, free, o->scratch);
    free(o);
}

const dc_error *dc_optim_error(const dc_optim *o) { return o ? &o->err : NULL; }
long dc_optim_steps(const dc_optim *o) { return o ? o->steps : 0; }
void dc_optim_set_steps(dc_optim *o, long steps) {
    if (o) o->steps = steps;
}
const dc_optim_config *dc_optim_get_config(const dc_optim *o) { return o ? &o->cfg : NULL; }

float dc_optim_lr_at(const dc_optim_config *c, long step) {
    float lr = c->lr;
    if (c->warmup > 0 && step < c->warmup) return lr * (float)(step + 1) / (float)c->warmup;
    long t = step - (c->warmup > 0 ? c->warmup : 0);
    switch (c->schedule) {
    case DC_SCHED_CONSTANT: break;
    case DC_SCHED_STEP:
        if (c->step_size > 0) lr *= powf(c->gamma, (float)(t / c->step_size));
        break;
    case DC_SCHED_COSINE: {
        long total = c->total_steps - (c->warmup > 0 ? c->warmup : 0);
        if (total <= 0) break;
        double f = t >= total ? 1.0 : (double)t / (double)total;
        lr = c->min_lr + (lr - c->min_lr) * (float)(0.5 * (1.0 + cos(3.141592653589793 * f)));
        break;
    }
    }
    return lr;
}

dc_status dc_optim_step(dc_optim *o) {
    if (!o) return DC_ERR_ARG;
    dc_params *p = o->params;
    dc_backend *be = dc_params_backend(p);
    const dc_optim_config *c = &o->cfg;
    dc_ptr sumsq = {o->scratch, 0}, gscale = {o->scratch, 1};
    dc_ptr values = dc_params_values_ptr(p), grads = dc_params_grads_ptr(p);
    dc_ptr m = dc_params_moment_ptr(p, 0), v = dc_params_moment_ptr(p, 1);
    dc_status s;
    if (c->clip_norm > 0.0f) {
        /* norm over trainable parameters only: zero the state slices' gradients first */
        for (int i = 0; i < dc_params_count(p); i++) {
            dc_param *q = dc_params_get(p, i);
            if (!q->trainable && (s = DC_BE(be, fill, dc_ptr_at(grads, q->off), q->numel, 0.0f)))
                goto fail;
        }
        if ((s = DC_BE(be, reduce_sum, sumsq, grads, dc_params_total(p), 1)) ||
            (s = DC_BE(be, clip_scale, sumsq, gscale, c->clip_norm)))
            goto fail;
    } else if ((s = DC_BE(be, fill, gscale, 1, 1.0f))) {
        goto fail;
    }
    const float lr = dc_optim_lr_at(c, o->steps);
    const long t = o->steps + 1;
    const float bc1 = 1.0f - (float)pow(c->beta1, (double)t), bc2 = 1.0f - (float)pow(c->beta2, (double)t);
    /* One launch per contiguous run of parameters with the same (trainable, decay) flags:
     * running statistics are skipped and biases get no weight decay. */
    int n = dc_params_count(p);
    for (int i = 0; i < n;) {
        dc_param *q = dc_params_get(p, i);
        int j = i + 1;
        size_t end = q->off + q->numel;
        while (j < n) {
            dc_param *r = dc_params_get(p, j);
            if (r->trainable != q->trainable || r->decay != q->decay) break;
            end = r->off + r->numel;
            j++;
        }
        if (q->trainable) {
            size_t len = end - q->off;
            float wd = q->decay ? c->weight_decay : 0.0f;
            if (c->kind == DC_OPTIM_SGD)
                s = DC_BE(be, sgd_update, dc_ptr_at(values, q->off), dc_ptr_at(grads, q->off),
                                        dc_ptr_at(m, q->off), len, gscale, lr, c->momentum, wd,
                                        c->nesterov);
            else
                s = DC_BE(be, adam_update, dc_ptr_at(values, q->off), dc_ptr_at(grads, q->off),
                                         dc_ptr_at(m, q->off), dc_ptr_at(v, q->off), len, gscale, lr,
                                         c->beta1, c->beta2, c->eps, wd,
                                         c->kind == DC_OPTIM_ADAMW, bc1, bc2);
            if (s) goto fail;
        }
        i = j;
    }
    if (c->ema_decay > 0.0f) {
        /* ema = d * ema + (1 - d) * values, over the whole arena (running statistics too) */
        const double warm = (1.0 + (double)o->steps) / (10.0 + (double)o->steps);
        const float d = (float)(warm < c->ema_decay ? warm : c->ema_decay);
        const size_t total = dc_params_total(p);
        if ((s = dc_params_ensure_ema(p)) ||
            (s = DC_BE(be, scale, dc_params_ema_ptr(p), total, d)) ||
            (s = DC_BE(be, axpy, dc_params_ema_ptr(p), values, total, 1.0f - d)))
            goto fail;
    }
    o->steps++;
    return DC_OK;
fail:
    return dc_set_error(&o->err, s, "optimizer step %ld: %s", o->steps, be->err.msg);
}

dc_status dc_optim_read_state(dc_optim *o, float *m, float *v) {
    if (!o || !m || !v) return DC_ERR_ARG;
    dc_backend *be = dc_params_backend(o->params);
    size_t bytes = dc_params_total(o->params) * sizeof(float);
    DC_TRY(DC_BE(be, read, dc_params_moment_ptr(o->params, 0), m, bytes));
    return DC_BE(be, read, dc_params_moment_ptr(o->params, 1), v, bytes);
}

dc_status dc_optim_write_state(dc_optim *o, const float *m, const float *v) {
    if (!o || !m || !v) return DC_ERR_ARG;
    dc_backend *be = dc_params_backend(o->params);
    size_t bytes = dc_params_total(o->params) * sizeof(float);
    DC_TRY(DC_BE(be, write, dc_params_moment_ptr(o->params, 0), m, bytes));
    return DC_BE(be, write, dc_params_moment_ptr(o->params, 1), v, bytes);
}
