/* Named parameters in one arena per family: values, gradients, and two optimizer
 * moment arenas. Declared while graphs are built, allocated once. */
#include <math.h>

#include "internal.h"

struct dc_params {
    dc_backend *be;
    dc_error err;
    dc_param *items;
    int n, cap;
    size_t total;
    dc_buffer *values, *grads, *moments[2];
    dc_buffer *ema; /* exponential moving average of the values (NULL: none) */
};

dc_status dc_params_create(dc_backend *be, dc_params **out) {
    if (!out) return DC_ERR_ARG;
    *out = NULL;
    if (!be) return DC_ERR_ARG;
    dc_params *p = calloc(1, sizeof *p);
    if (!p) return dc_set_error(&be->err, DC_ERR_OOM, "params: out of memory");
    p->be = be;
    *out = p;
    return DC_OK;
}

void dc_params_free(dc_params *p) {
    if (!p) return;
    if (p->values) DC_BE(p->be, free, p->values);
    if (p->grads) DC_BE(p->be, free, p->grads);
    for (int i = 0; i < 2; i++)
        if (p->moments[i]) DC_BE(p->be, free, p->moments[i]);
    if (p->ema) DC_BE(p->be, free, p->ema);
    free(p->items);
    free(p);
}

const dc_error *dc_params_error(const dc_params *p) { return p ? &p->err : NULL; }
dc_error *dc_params_err(dc_params *p) { return &p->err; }
int dc_params_count(const dc_params *p) { return p ? p->n : 0; }
dc_param *dc_params_get(dc_params *p, int i) { return (p && i >= 0 && i < p->n) ? &p->items[i] : NULL; }
size_t dc_params_total(const dc_params *p) { return p ? p->total : 0; }
int dc_params_allocated(const dc_params *p) { return p && p->values != NULL; }
dc_backend *dc_params_backend(dc_params *p) { return p ? p->be : NULL; }

int dc_params_find(const dc_params *p, const char *name) {
    if (!p || !name) return -1;
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->items[i].name, name)) return i;
    return -1;
}

dc_status dc_params_declare(dc_params *p, const char *name, int ndim, const int *shape,
                            dc_init init, int fan_in, int fan_out, int trainable, int *index) {
    if (!p || !name || !shape || ndim < 1 || ndim > DC_MAX_DIMS)
        return dc_set_error(p ? &p->err : NULL, DC_ERR_ARG, "params: bad declaration of '%s'",
                            name ? name : "(null)");
    char a[64], b[64];
    int i = dc_params_find(p, name);
    if (i >= 0) {
        dc_param *q = &p->items[i];
        if (q->ndim != ndim || memcmp(q->shape, shape, sizeof(int) * ndim))
            return dc_set_error(&p->err, DC_ERR_SHAPE, "parameter '%s' exists with shape %s, not %s",
                                name, dc_shape_str(q->ndim, q->shape, a, sizeof a),
                                dc_shape_str(ndim, shape, b, sizeof b));
        if (index) *index = i;
        return DC_OK;
    }
    if (p->values)
        return dc_set_error(&p->err, DC_ERR_STATE,
                            "parameter '%s' is new, but the parameters are already allocated "
                            "(build every graph with the same layers)",
                            name);
    for (int d = 0; d < ndim; d++)
        if (shape[d] <= 0)
            return dc_set_error(&p->err, DC_ERR_SHAPE, "parameter '%s': shape %s has a zero size",
                                name, dc_shape_str(ndim, shape, a, sizeof a));
    if (strlen(name) >= sizeof p->items[0].name)
        return dc_set_error(&p->err, DC_ERR_ARG, "parameter name '%s' is too long", name);
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 32;
        dc_param *items = realloc(p->items, sizeof *items * cap);
        if (!items) return dc_set_error(&p->err, DC_ERR_OOM, "params: out of memory");
        p->items = items;
        p->cap = cap;
    }
    dc_param *q = &p->items[p->n];
    memset(q, 0, sizeof *q);
    dc_strlcpy(q->name, name, sizeof q->name);
    q->ndim = ndim;
    memcpy(q->shape, shape, sizeof(int) * ndim);
    q->numel = dc_shape_numel(ndim, shape);
    /* 16-element alignment keeps every slice 64-byte aligned for vector loads */
    q->off = p->total;
    p->total += (q->numel + 15) & ~(size_t)15;
    q->init = init;
    q->fan_in = fan_in;
    q->fan_out = fan_out;
    q->init_std = 0.02f;
    q->trainable = trainable;
    q->decay = trainable && ndim > 1; /* no weight decay on biases and norms */
    if (index) *index = p->n;
    p->n++;
    return DC_OK;
}

dc_ptr dc_params_values_ptr(dc_params *p) {
    dc_ptr r = {p->values, 0};
    return r;
}
dc_ptr dc_params_grads_ptr(dc_params *p) {
    dc_ptr r = {p->grads, 0};
    return r;
}
dc_ptr dc_params_moment_ptr(dc_params *p, int which) {
    dc_ptr r = {p->moments[which & 1], 0};
    return r;
}

dc_ptr dc_params_ema_ptr(dc_params *p) {
    dc_ptr r = {p->ema, 0};
    return r;
}
int dc_params_has_ema(const dc_params *p) { return p && p->ema != NULL; }

dc_status dc_params_ensure_ema(dc_params *p) {
    if (!p) return DC_ERR_ARG;
    DC_TRY(dc_params_allocate(p));
    if (p->total == 0 || p->ema) return DC_OK;
    if (DC_BE(p->be, alloc, p->total * sizeof(float), &p->ema) != DC_OK)
        return dc_wrap_error(&p->err, DC_ERR_OOM, "allocating the weight average (%zu bytes)",
                             p->total * sizeof(float));
    /* the average starts at the current weights */
    if (DC_BE(p->be, copy, dc_params_ema_ptr(p), dc_params_values_ptr(p), p->total) != DC_OK)
        return dc_wrap_error(&p->err, p->be->err.status, "params: %s", p->be->err.msg);
    return DC_OK;
}

dc_status dc_params_swap_ema(dc_params *p) {
    if (!p || !p->ema)
        return dc_set_error(p ? &p->err : NULL, DC_ERR_STATE, "params: no weight average to swap in");
    dc_backend *be = p->be;
    dc_buffer *tmp = NULL;
    /* copies, not a pointer swap: graphs hold the values' buffer */
    if (DC_BE(be, alloc, p->total * sizeof(float), &tmp) != DC_OK)
        return dc_wrap_error(&p->err, DC_ERR_OOM, "swapping in the weight average: %s", be->err.msg);
    dc_ptr t = {tmp, 0};
    dc_status s = DC_BE(be, copy, t, dc_params_values_ptr(p), p->total);
    if (!s) s = DC_BE(be, copy, dc_params_values_ptr(p), dc_params_ema_ptr(p), p->total);
    if (!s) s = DC_BE(be, copy, dc_params_ema_ptr(p), t, p->total);
    DC_BE(be, free, tmp);
    if (s) return dc_wrap_error(&p->err, s, "swapping in the weight average: %s", be->err.msg);
    return DC_OK;
}

dc_status dc_params_allocate(dc_params *p) {
    if (!p) return DC_ERR_ARG;
    if (p->values) return DC_OK;
    if (p->total == 0) return DC_OK; /* a graph without parameters */
    dc_backend *be = p->be;
    size_t bytes = p->total * sizeof(float);
    if (DC_BE(be, alloc, bytes, &p->values) != DC_OK ||
        DC_BE(be, alloc, bytes, &p->grads) != DC_OK)
        return dc_wrap_error(&p->err, DC_ERR_OOM, "allocating %zu parameters (%zu bytes)",
                             p->total, bytes);
    for (int i = 0; i < p->n; i++) {
        dc_param *q = &p->items[i];
        q->value.buf = p->values;
        q->grad.buf = p->grads;
        q->value.off = q->grad.off = q->off;
        q->value.ndim = q->grad.ndim = q->ndim;
        memcpy(q->value.shape, q->shape, sizeof q->shape);
        memcpy(q->grad.shape, q->shape, sizeof q->shape);
    }
    if (DC_BE(be, fill, dc_params_values_ptr(p), p->total, 0.0f) != DC_OK ||
        DC_BE(be, fill, dc_params_grads_ptr(p), p->total, 0.0f) != DC_OK)
        return dc_wrap_error(&p->err, be->err.status, "params: %s", be->err.msg);
    return DC_OK;
}

dc_status dc_params_ensure_moments(dc_params *p) {
    if (p->total == 0) return DC_OK;
    for (int i = 0; i < 2; i++) {
        if (p->moments[i]) continue;
        if (DC_BE(p->be, alloc, p->total * sizeof(float), &p->moments[i]) != DC_OK)
            return dc_wrap_error(&p->err, DC_ERR_OOM, "allocating optimizer state (%zu bytes)",
                                 p->total * sizeof(float));
        DC_TRY(DC_BE(p->be, fill, dc_params_moment_ptr(p, i), p->total, 0.0f));
    }
    return DC_OK;
}

dc_status dc_params_init(dc_params *p, dc_rng *rng) {
    if (!p || !rng) return DC_ERR_ARG;
    DC_TRY(dc_params_allocate(p));
    if (p->total == 0) return DC_OK;
    float *host = malloc(sizeof(float) * p->total);
    if (!host) return dc_set_error(&p->err, DC_ERR_OOM, "params init: out of memory");
    memset(host, 0, sizeof(float) * p->total);
    /* Parameters are initialised in declaration order from one stream: the same seed
     * gives the same weights on every backend. */
    for (int i = 0; i < p->n; i++) {
        dc_param *q = &p->items[i];
        float *w = host + q->off;
        switch (q->init) {
        case DC_INIT_ZERO: break;
        case DC_INIT_ONE:
            for (size_t j = 0; j < q->numel; j++) w[j] = 1.0f;
            break;
        case DC_INIT_HE: {
            const float sd = sqrtf(2.0f / (float)(q->fan_in > 0 ? q->fan_in : 1));
            for (size_t j = 0; j < q->numel; j++) w[j] = sd * dc_rng_normal(rng);
            break;
        }
        case DC_INIT_XAVIER: {
            const float a = sqrtf(6.0f / (float)(q->fan_in + q->fan_out > 0 ? q->fan_in + q->fan_out : 1));
            for (size_t j = 0; j < q->numel; j++) w[j] = a * (2.0f * dc_rng_uniform(rng) - 1.0f);
            break;
        }
        case DC_INIT_NORMAL:
            for (size_t j = 0; j < q->numel; j++) w[j] = q->init_std * dc_rng_normal(rng);
            break;
        }
    }
    dc_status s = DC_BE(p->be, write, dc_params_values_ptr(p), host, sizeof(float) * p->total);
    free(host);
    if (s != DC_OK) return dc_wrap_error(&p->err, s, "params init: %s", p->be->err.msg);
    DC_TRY(dc_params_zero_grad(p));
    for (int i = 0; i < 2; i++)
        if (p->moments[i]) DC_TRY(DC_BE(p->be, fill, dc_params_moment_ptr(p, i), p->total, 0.0f));
    return DC_OK;
}

dc_status dc_params_zero_grad(dc_params *p) {
    if (p && p->total == 0) return DC_OK;
    if (!p || !p->grads) return dc_set_error(p ? &p->err : NULL, DC_ERR_STATE, "params: not allocated");
    return DC_BE(p->be, fill, dc_params_grads_ptr(p), p->total, 0.0f);
}

dc_status dc_params_read(dc_params *p, int i, float *host) {
    dc_param *q = dc_params_get(p, i);
    if (!q || !host || !p->values) return dc_set_error(p ? &p->err : NULL, DC_ERR_ARG, "params read: bad index %d", i);
    return DC_BE(p->be, read, dc_tensor_ptr(q->value), host, q->numel * sizeof(float));
}

dc_status dc_params_write(dc_params *p, int i, const float *host) {
    dc_param *q = dc_params_get(p, i);
    if (!q || !host || !p->values) return dc_set_error(p ? &p->err : NULL, DC_ERR_ARG, "params write: bad index %d", i);
    return DC_BE(p->be, write, dc_tensor_ptr(q->value), host, q->numel * sizeof(float));
}
