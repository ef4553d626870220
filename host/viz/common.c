/* Shared pieces of the explanation methods: options, the work graph (the caller's model
 * or a larger-batch one sharing its parameters), forward / backward from the class scores,
 * map statistics, bilinear upsampling, rank correlation and the randomised model of
 * --sanity. */
#include "viz/viz_internal.h"

void dc_viz_opts_default(dc_viz_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->target = -1;
    o->layer = NULL;
    o->channel = -1;
    o->batch = 64;
    o->samples = 0;
    o->noise = 0.15f;
    o->seed = 1;
    o->patch = 6;
    o->stride = 2;
    o->fill = 0.0f;
    o->steps = 200;
    o->lr = 0.05f;
    o->l2 = 0.01f;
    o->blur_every = 4;
    o->blur_sigma = 0.5f;
    o->jitter = 1;
    o->top = 9;
}

void dc_viz_info_reset(dc_viz_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->target = info->predicted = info->node = info->channel = -1;
    info->pos_y = info->pos_x = -1;
}

void dc_viz_defaults(const dc_viz_opts **o, dc_viz_opts *def, dc_viz_info **info,
                  dc_viz_info *local) {
    if (!*o) {
        dc_viz_opts_default(def);
        *o = def;
    }
    if (!*info) *info = local;
    dc_viz_info_reset(*info);
}

/* ------------------------------------------------------------------ stats */
dc_status dc_viz_map_check(const float *map, size_t n, const char *what, dc_viz_info *info,
                           dc_error *err) {
    if (!map || n == 0) return dc_set_error(err, DC_ERR_ARG, "%s: empty map", what ? what : "map");
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(map[i]))
            return dc_set_error(err, DC_ERR_NUMERIC,
                                "%s: the map holds a non-finite value (%g at element %zu of %zu)",
                                what ? what : "map", (double)map[i], i, n);
        if (map[i] < lo) lo = map[i];
        if (map[i] > hi) hi = map[i];
    }
    if (info) {
        info->min = lo;
        info->max = hi;
        info->constant = !(hi > lo);
    }
    return DC_OK;
}

const char *dc_viz_describe_flat(const dc_viz_info *info, char *buf, size_t cap) {
    if (!buf || cap == 0) return buf;
    if (!info || !info->constant)
        snprintf(buf, cap, "not constant");
    else if (info->min == 0.0f)
        snprintf(buf, cap, "all zero");
    else
        snprintf(buf, cap, "constant (every value %g)", (double)info->min);
    return buf;
}

void dc_viz_abs_max_channels(const float *chw, int c, int h, int w, float *hw) {
    const size_t n = (size_t)h * w;
    for (size_t p = 0; p < n; p++) {
        float best = 0.0f;
        for (int ch = 0; ch < c; ch++) {
            const float a = fabsf(chw[(size_t)ch * n + p]);
            if (a > best) best = a;
        }
        hw[p] = best;
    }
}

/* Source coordinate of destination pixel i: (i + 0.5) * s/d - 0.5, clamped at 0, with the
 * neighbour pair and weight as PyTorch computes them for align_corners=False. */
static void bilinear_axis(int i, int s, int d, int *i0, int *i1, float *t) {
    float x = ((float)i + 0.5f) * (float)s / (float)d - 0.5f;
    if (x < 0.0f) x = 0.0f;
    int a = (int)x;
    if (a > s - 1) a = s - 1;
    *i0 = a;
    *i1 = a < s - 1 ? a + 1 : a;
    *t = x - (float)a;
}

void dc_viz_upsample_bilinear(const float *src, int sh, int sw, float *dst, int dh, int dw) {
    for (int y = 0; y < dh; y++) {
        int y0, y1;
        float ty;
        bilinear_axis(y, sh, dh, &y0, &y1, &ty);
        for (int x = 0; x < dw; x++) {
            int x0, x1;
            float tx;
            bilinear_axis(x, sw, dw, &x0, &x1, &tx);
            const float top = (1.0f - tx) * src[y0 * sw + x0] + tx * src[y0 * sw + x1];
            const float bot = (1.0f - tx) * src[y1 * sw + x0] + tx * src[y1 * sw + x1];
            dst[y * dw + x] = (1.0f - ty) * top + ty * bot;
        }
    }
}

typedef struct ranked {
    float v;
    size_t i;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Average ranks (1-based), ties sharing their mean rank. */
static int ranks_of(const float *v, size_t n, double *rank) {
    ranked *r = malloc(sizeof *r * n);
    if (!r) return -1;
    for (size_t i = 0; i < n; i++)
        r[i] = (ranked){v[i], i};
    qsort(r, n, sizeof *r, cmp_ranked);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && r[j + 1].v == r[i].v)
            j++;
        const double mean = 0.5 * (double)(i + j) + 1.0;
        for (size_t k = i; k <= j; k++)
            rank[r[k].i] = mean;
        i = j + 1;
    }
    free(r);
    return 0;
}

double dc_viz_rank_correlation(const float *a, const float *b, size_t n) {
    if (!a || !b || n < 2) return 0.0;
    double *ra = malloc(sizeof(double) * n), *rb = malloc(sizeof(double) * n);
    double out = 0.0;
    if (ra && rb && ranks_of(a, n, ra) == 0 && ranks_of(b, n, rb) == 0) {
        double ma = 0, mb = 0;
        for (size_t i = 0; i < n; i++)
            ma += ra[i], mb += rb[i];
        ma /= (double)n;
        mb /= (double)n;
        double sab = 0, saa = 0, sbb = 0;
        for (size_t i = 0; i < n; i++) {
            sab += (ra[i] - ma) * (rb[i] - mb);
            saa += (ra[i] - ma) * (ra[i] - ma);
            sbb += (rb[i] - mb) * (rb[i] - mb);
        }
        out = saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0.0;
    }
    free(ra);
    free(rb);
    return out;
}

/* -------------------------------------------------------------- work graph */
static dc_status model_geometry(dc_model *m, const char *method, int *c, int *h, int *w,
                                int *classes, dc_error *err) {
    if (!m || !m->g) return dc_set_error(err, DC_ERR_ARG, "%s: no model", method);
    int xs[DC_MAX_DIMS], os[DC_MAX_DIMS];
    const char *xop = dc_graph_node_op(m->g, m->x);
    if (!xop || strcmp(xop, "input") || dc_graph_node_shape(m->g, m->x, xs) != 4)
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: the model has no float image input [N, C, H, W] (x = %d)", method,
                            m->x);
    int nd = m->out >= 0 ? dc_graph_node_shape(m->g, m->out, os) : 0;
    if (nd < 2 || (nd == 4 && (os[2] != 1 || os[3] != 1)))
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: the model has no class-score node [N, K] (out = %d); is it a "
                            "classifier?",
                            method, m->out);
    if (c) *c = xs[1];
    if (h) *h = xs[2];
    if (w) *w = xs[3];
    if (classes) *classes = os[1];
    return DC_OK;
}

dc_status dc_viz_model_geometry(dc_model *m, int *c, int *h, int *w, int *classes, dc_error *err) {
    return model_geometry(m, "viz", c, h, w, classes, err);
}

dc_status dc_viz_open(dc_model *m, int want_batch, const char *method, viz_ctx *v, dc_error *err) {
    memset(v, 0, sizeof *v);
    v->method = method;
    DC_TRY(model_geometry(m, method, &v->C, &v->H, &v->W, &v->K, err));
    if (want_batch > m->batch && m->spec.kind != DC_MODEL_NONE) {
        dc_error e = {0};
        if (dc_model_create_shared(m, want_batch, 0, &v->owned, &e) != DC_OK)
            return dc_set_error(err, e.status, "%s: cannot build a batch-%d model: %s", method,
                                want_batch, e.msg);
        m = v->owned;
    }
    v->m = m;
    v->g = m->g;
    v->x = m->x;
    v->out = m->out;
    v->B = dc_graph_batch(m->g);
    v->chw = (size_t)v->C * v->H * v->W;
    dc_graph_set_train(v->g, 0);
    return DC_OK;
}

void dc_viz_close(viz_ctx *v) {
    if (!v) return;
    dc_model_free(v->owned);
    v->owned = NULL;
}

dc_status dc_viz_graph_fail(viz_ctx *v, dc_error *err) {
    const dc_error *ge = dc_graph_error(v->g);
    return dc_set_error(err, ge->status ? ge->status : DC_ERR_STATE, "%s: %s", v->method, ge->msg);
}

dc_status dc_viz_forward(viz_ctx *v, const float *images, int count, int last, dc_error *err) {
    if (count < 1 || count > v->B)
        return dc_set_error(err, DC_ERR_ARG, "%s: %d images for a batch of %d", v->method, count,
                            v->B);
    const float *src = images;
    float *pad = NULL;
    if (count < v->B) {
        pad = calloc((size_t)v->B * v->chw, sizeof(float));
        if (!pad) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", v->method);
        memcpy(pad, images, sizeof(float) * (size_t)count * v->chw);
        src = pad;
    }
    dc_status s = dc_graph_set_input(v->g, v->x, src);
    free(pad);
    if (s != DC_OK) return dc_viz_graph_fail(v, err);
    if (dc_graph_forward(v->g, last < 0 ? v->out : last) != DC_OK) return dc_viz_graph_fail(v, err);
    return DC_OK;
}

dc_status dc_viz_read_scores(viz_ctx *v, float *scores, dc_error *err) {
    if (dc_graph_read(v->g, v->out, scores) != DC_OK) return dc_viz_graph_fail(v, err);
    return DC_OK;
}

dc_status dc_viz_backward_scores(viz_ctx *v, const int *targets, int count, dc_relu_mode mode,
                              float *input_grad, dc_error *err) {
    float *seed = calloc((size_t)v->B * v->K, sizeof(float));
    if (!seed) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", v->method);
    for (int i = 0; i < count && i < v->B; i++) {
        if (targets[i] < 0 || targets[i] >= v->K) {
            free(seed);
            return dc_set_error(err, DC_ERR_ARG, "%s: class %d is outside [0, %d)", v->method,
                                targets[i], v->K);
        }
        seed[(size_t)i * v->K + targets[i]] = 1.0f;
    }
    dc_status s = dc_graph_backward_from(v->g, v->out, seed, mode);
    free(seed);
    if (s != DC_OK) return dc_viz_graph_fail(v, err);
    if (input_grad && dc_graph_read_grad(v->g, v->x, input_grad) != DC_OK)
        return dc_viz_graph_fail(v, err);
    return DC_OK;
}

dc_status dc_viz_find_layer(viz_ctx *v, const char *layer, int def, int *node, int shape[4],
                         dc_error *err) {
    int id = layer ? dc_graph_find(v->g, layer) : def;
    if (id < 0) {
        char list[512] = "";
        size_t len = 0;
        for (int i = 0; i < dc_graph_node_count(v->g) && len + 50 < sizeof list; i++) {
            int s[DC_MAX_DIMS];
            if (dc_graph_node_shape(v->g, i, s) != 4 || s[2] * s[3] <= 1 || i == v->x) continue;
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                    dc_graph_node_name(v->g, i));
        }
        if (layer)
            return dc_set_error(err, DC_ERR_NOT_FOUND, "%s: no layer '%s' (feature maps: %s)",
                                v->method, layer, list);
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: the model has no last conv layer; name one with "
                            "--layer (feature maps: %s)",
                            v->method, list);
    }
    int s[DC_MAX_DIMS];
    if (dc_graph_node_shape(v->g, id, s) != 4) {
        char b[64];
        return dc_set_error(err, DC_ERR_SHAPE,
                            "%s: layer '%s' is %s, not feature maps [N, C, H, W]", v->method,
                            dc_graph_node_name(v->g, id),
                            dc_shape_str(dc_graph_node_shape(v->g, id, s), s, b, sizeof b));
    }
    *node = id;
    if (shape) memcpy(shape, s, sizeof(int) * 4);
    return DC_OK;
}

void dc_viz_softmax(const float *scores, int K, float *probs) {
    float mx = scores[0];
    for (int k = 1; k < K; k++)
        if (scores[k] > mx) mx = scores[k];
    double sum = 0;
    for (int k = 0; k < K; k++)
        sum += exp((double)scores[k] - mx);
    for (int k = 0; k < K; k++)
        probs[k] = (float)(exp((double)scores[k] - mx) / sum);
}

int dc_viz_argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

dc_status dc_viz_classify(viz_ctx *v, const float *image, int want_target, int *target,
                       dc_viz_info *info, dc_error *err) {
    if (want_target >= v->K)
        return dc_set_error(err, DC_ERR_ARG, "%s: class %d is outside [0, %d)", v->method,
                            want_target, v->K);
    float *scores = malloc(sizeof(float) * (size_t)v->B * v->K);
    float *probs = malloc(sizeof(float) * (size_t)v->K);
    dc_status s = DC_OK;
    if (!scores || !probs) {
        s = dc_set_error(err, DC_ERR_OOM, "%s: out of memory", v->method);
        goto done;
    }
    if ((s = dc_viz_forward(v, image, 1, -1, err)) != DC_OK) goto done;
    if ((s = dc_viz_read_scores(v, scores, err)) != DC_OK) goto done;
    for (int k = 0; k < v->K; k++)
        if (!isfinite(scores[k])) {
            s = dc_set_error(err, DC_ERR_NUMERIC, "%s: class score %d is %g", v->method, k,
                             (double)scores[k]);
            goto done;
        }
    dc_viz_softmax(scores, v->K, probs);
    const int pred = dc_viz_argmax(scores, v->K);
    const int t = want_target >= 0 ? want_target : pred;
    *target = t;
    if (info) {
        info->predicted = pred;
        info->target = t;
        info->prob = probs[t];
        info->score = scores[t];
    }
done:
    free(scores);
    free(probs);
    return s;
}

dc_status dc_viz_predict(dc_model *m, const float *image, float *probs, dc_error *err) {
    viz_ctx v;
    DC_TRY(dc_viz_open(m, 0, "predict", &v, err));
    if (!image || !probs) return dc_set_error(err, DC_ERR_ARG, "predict: NULL image or output");
    float *scores = malloc(sizeof(float) * (size_t)v.B * v.K);
    if (!scores) return dc_set_error(err, DC_ERR_OOM, "predict: out of memory");
    dc_status s = dc_viz_forward(&v, image, 1, -1, err);
    if (s == DC_OK) s = dc_viz_read_scores(&v, scores, err);
    if (s == DC_OK) dc_viz_softmax(scores, v.K, probs);
    free(scores);
    dc_viz_close(&v);
    return s;
}

dc_status dc_viz_randomized_model(dc_model *m, uint64_t seed, dc_model **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "sanity: NULL output");
    *out = NULL;
    if (!m || m->spec.kind == DC_MODEL_NONE)
        return dc_set_error(err, DC_ERR_ARG,
                            "sanity: a randomised copy needs a preset model (spec.kind is DC_MODEL_NONE)");
    dc_model *r = NULL;
    DC_TRY(dc_model_create(m->be, &m->spec, m->batch, &r, err));
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    if (dc_params_init(r->params, &rng) != DC_OK) {
        dc_status s = dc_set_error(err, dc_params_error(r->params)->status, "sanity: %s",
                                   dc_params_error(r->params)->msg);
        dc_model_free(r);
        return s;
    }
    dc_graph_set_train(r->g, 0);
    *out = r;
    return DC_OK;
}
