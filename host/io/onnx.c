/* ONNX export: the inference graph of a model, encoded by hand (io/protobuf.h) as an
 * onnx.ModelProto (IR version 7, default opset 13).
 *
 * The exporter walks the deconv graph's nodes in order (they are topological) and maps
 * each node needed for the outputs to ONNX operators. Parameters become FLOAT
 * initializers named as in dc_params, with the same (PyTorch) layouts, so a tied
 * transposed conv simply names its encoder conv's weight again. Eval-mode semantics:
 * batch norm uses running statistics, dropout is Identity, the VAE sample is its mean.
 * Tensors carry a symbolic batch dimension "N". Dense layers produce [N, features] (the
 * deconv shape is [N, features, 1, 1]); a 4-D view is made with Reshape where a later op
 * needs one.
 *
 * Field numbers are onnx.proto's (onnx/onnx.proto3 in the ONNX repository). */
#include <math.h>
#include <stdarg.h>

#include "deconv/io.h"
#include "graph_internal.h"
#include "io/io_internal.h"
#include "io/protobuf.h"
#include "models/kinds.h"

/* onnx.proto field numbers and enum values used here */
enum {
    MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_DOC = 6,
    MODEL_GRAPH = 7, MODEL_OPSET = 8, MODEL_METADATA = 14,
    OPSET_DOMAIN = 1, OPSET_VERSION = 2,
    ENTRY_KEY = 1, ENTRY_VALUE = 2,
    GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_DOC = 10, GRAPH_INPUT = 11,
    GRAPH_OUTPUT = 12,
    NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5,
    ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20,
    ATTR_TYPE_FLOAT = 1, ATTR_TYPE_INT = 2, ATTR_TYPE_INTS = 7,
    TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9,
    DTYPE_FLOAT = 1, DTYPE_INT64 = 7,
    VALUE_NAME = 1, VALUE_TYPE = 2,
    TYPE_TENSOR = 1, TTENSOR_ELEM_TYPE = 1, TTENSOR_SHAPE = 2,
    SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2,
};

#define ONNX_IR_VERSION 7
#define ONNX_OPSET 13
#define NAME_CAP 112
#define MAX_IO 8

typedef struct ox_io {
    int node;
    char name[NAME_CAP];
    int rank;  /* inputs: declared rank */
    int int64; /* inputs: int64 (class labels) rather than float */
} ox_io;

typedef struct ox {
    const char *path;
    dc_graph *g;
    dc_params *params;
    dc_error *err;
    dc_status st;
    pb_buf nodes, inits;
    char (*vname)[NAME_CAP];  /* value name of each deconv node's output */
    char (*vname4)[NAME_CAP]; /* its 4-D view, once made */
    int *rank;
    unsigned char *need, *param_used;
    ox_io in[MAX_IO], out[MAX_IO];
    int n_in, n_out;
} ox;

static dc_status ox_fail(ox *x, dc_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static dc_status ox_fail(ox *x, dc_status s, const char *fmt, ...) {
    if (x->st == DC_OK) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        x->st = dc_set_error(x->err, s, "ONNX export to '%s': %s", x->path, msg);
    }
    return x->st;
}

/* ---- small encoders ---- */
static void attr_int(pb_buf *b, const char *name, int64_t v) {
    size_t s = dc_pb_begin(b, NODE_ATTRIBUTE);
    dc_pb_string(b, ATTR_NAME, name);
    dc_pb_int(b, ATTR_I, v);
    dc_pb_int(b, ATTR_TYPE, ATTR_TYPE_INT);
    dc_pb_end(b, s);
}

static void attr_float(pb_buf *b, const char *name, float v) {
    size_t s = dc_pb_begin(b, NODE_ATTRIBUTE);
    dc_pb_string(b, ATTR_NAME, name);
    dc_pb_float(b, ATTR_F, v);
    dc_pb_int(b, ATTR_TYPE, ATTR_TYPE_FLOAT);
    dc_pb_end(b, s);
}

static void attr_ints(pb_buf *b, const char *name, const int64_t *v, int n) {
    size_t s = dc_pb_begin(b, NODE_ATTRIBUTE);
    dc_pb_string(b, ATTR_NAME, name);
    for (int i = 0; i < n; i++) dc_pb_int(b, ATTR_INTS, v[i]);
    dc_pb_int(b, ATTR_TYPE, ATTR_TYPE_INTS);
    dc_pb_end(b, s);
}

static void attr_pair(pb_buf *b, const char *name, int v) {
    int64_t a[2] = {v, v};
    attr_ints(b, name, a, 2);
}

static void attr_pads(pb_buf *b, int p) {
    int64_t a[4] = {p, p, p, p};
    attr_ints(b, "pads", a, 4);
}

/* Opens a NodeProto; attributes may follow; close with dc_pb_end(&x->nodes, returned). */
static size_t node_open(ox *x, const char *op, const char *name, const char *const *ins, int nin,
                        const char *out) {
    pb_buf *b = &x->nodes;
    size_t s = dc_pb_begin(b, GRAPH_NODE);
    for (int i = 0; i < nin; i++) dc_pb_string(b, NODE_INPUT, ins[i]);
    dc_pb_string(b, NODE_OUTPUT, out);
    dc_pb_string(b, NODE_NAME, name);
    dc_pb_string(b, NODE_OP_TYPE, op);
    return s;
}

static void node_simple(ox *x, const char *op, const char *name, const char *const *ins, int nin,
                        const char *out) {
    dc_pb_end(&x->nodes, node_open(x, op, name, ins, nin, out));
}

static void init_int64(ox *x, const char *name, const int64_t *v, int n) {
    pb_buf *b = &x->inits;
    size_t s = dc_pb_begin(b, GRAPH_INITIALIZER);
    dc_pb_int(b, TENSOR_DIMS, n);
    dc_pb_int(b, TENSOR_DATA_TYPE, DTYPE_INT64);
    dc_pb_string(b, TENSOR_NAME, name);
    uint8_t raw[8 * 4];
    for (int i = 0; i < n && i < 4; i++) dc_put_le64(raw + 8 * i, (uint64_t)v[i]);
    dc_pb_bytes(b, TENSOR_RAW_DATA, raw, (size_t)(8 * (n < 4 ? n : 4)));
    dc_pb_end(b, s);
}

static void init_float(ox *x, const char *name, const float *v, int n, const int64_t *dims,
                       int ndim) {
    pb_buf *b = &x->inits;
    size_t s = dc_pb_begin(b, GRAPH_INITIALIZER);
    for (int d = 0; d < ndim; d++) dc_pb_int(b, TENSOR_DIMS, dims[d]);
    dc_pb_int(b, TENSOR_DATA_TYPE, DTYPE_FLOAT);
    dc_pb_string(b, TENSOR_NAME, name);
    uint8_t *raw = malloc(4 * (size_t)(n > 0 ? n : 1));
    if (!raw) {
        ox_fail(x, DC_ERR_OOM, "out of memory");
    } else {
        for (int i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int k = 0; k < 4; k++) raw[4 * i + k] = (uint8_t)(u >> (8 * k));
        }
        dc_pb_bytes(b, TENSOR_RAW_DATA, raw, 4 * (size_t)n);
        free(raw);
    }
    dc_pb_end(b, s);
}

/* A scalar float initializer (broadcasts in Mul/Add). */
static void init_scalar(ox *x, const char *name, float v) { init_float(x, name, &v, 1, NULL, 0); }

static void value_info(pb_buf *b, int field, const char *name, int elem, int rank, const int *shape) {
    size_t s = dc_pb_begin(b, field);
    dc_pb_string(b, VALUE_NAME, name);
    size_t t = dc_pb_begin(b, VALUE_TYPE);
    size_t tt = dc_pb_begin(b, TYPE_TENSOR);
    dc_pb_int(b, TTENSOR_ELEM_TYPE, elem);
    size_t sh = dc_pb_begin(b, TTENSOR_SHAPE);
    for (int d = 0; d < rank; d++) {
        size_t dm = dc_pb_begin(b, SHAPE_DIM);
        if (d == 0)
            dc_pb_string(b, DIM_PARAM, "N");
        else
            dc_pb_int(b, DIM_VALUE, shape[d]);
        dc_pb_end(b, dm);
    }
    dc_pb_end(b, sh);
    dc_pb_end(b, tt);
    dc_pb_end(b, t);
    dc_pb_end(b, s);
}

/* ---- graph walk ---- */
static const char *param_name(ox *x, const dc_node *n, int slot) {
    const dc_param *q = n->param[slot] >= 0 ? dc_params_get(x->params, n->param[slot]) : NULL;
    if (!q) {
        ox_fail(x, DC_ERR_STATE, "node '%s' lacks its parameter %s", n->name, slot ? "bias" : "weight");
        return "";
    }
    x->param_used[n->param[slot]] = 1;
    return q->name;
}

/* The node's value as [N, C, H, W]: itself, or a Reshape of its [N, C] form. */
static const char *as4d(ox *x, int i) {
    if (x->rank[i] == 4) return x->vname[i];
    if (!x->vname4[i][0]) {
        const dc_node *n = &x->g->nodes[i];
        char shape_name[NAME_CAP + 16];
        snprintf(x->vname4[i], NAME_CAP, "%.90s/4d", x->vname[i]);
        snprintf(shape_name, sizeof shape_name, "%.90s/4d_shape", x->vname[i]);
        int64_t sh[4] = {-1, n->shape[1], n->ndim > 2 ? n->shape[2] : 1, n->ndim > 3 ? n->shape[3] : 1};
        init_int64(x, shape_name, sh, 4);
        const char *ins[2] = {x->vname[i], shape_name};
        node_simple(x, "Reshape", x->vname4[i], ins, 2, x->vname4[i]);
    }
    return x->vname4[i];
}

/* The node's value as [N, features]: itself, or a Flatten of its 4-D form. */
static const char *as2d(ox *x, int i) {
    if (x->rank[i] == 2) return x->vname[i];
    if (!x->vname4[i][0]) {
        /* reuse vname4's slot: a 4-D value never needs a 4-D view */
        snprintf(x->vname4[i], NAME_CAP, "%.90s/2d", x->vname[i]);
        const char *in = x->vname[i];
        size_t s = node_open(x, "Flatten", x->vname4[i], &in, 1, x->vname4[i]);
        attr_int(&x->nodes, "axis", 1);
        dc_pb_end(&x->nodes, s);
    }
    return x->vname4[i];
}

/* Group normalisation (opset 13 has no GroupNormalization): [N, C, H, W] -> [N, G, C/G*H*W]
 * -> InstanceNormalization (per (image, group) mean and biased variance, unit scale) ->
 * [N, C, H, W] -> * weight[C, 1, 1] + bias[C, 1, 1]. */
static void emit_groupnorm(ox *x, const dc_node *n, const char *in, const char *out) {
    const int C = n->shape[1], H = n->shape[2], W = n->shape[3], G = n->k;
    char grouped[NAME_CAP + 16], normed[NAME_CAP + 16], back[NAME_CAP + 16], scaled[NAME_CAP + 16];
    char gshape[NAME_CAP + 16], bshape[NAME_CAP + 16], ones[NAME_CAP + 16], zeros[NAME_CAP + 16];
    char pshape[NAME_CAP + 16], gamma[NAME_CAP + 16], beta[NAME_CAP + 16];
    const char *nm = n->name;
    snprintf(grouped, sizeof grouped, "%.90s/grouped", nm);
    snprintf(normed, sizeof normed, "%.90s/normed", nm);
    snprintf(back, sizeof back, "%.90s/ungrouped", nm);
    snprintf(scaled, sizeof scaled, "%.90s/scaled", nm);
    snprintf(gshape, sizeof gshape, "%.90s/group_shape", nm);
    snprintf(bshape, sizeof bshape, "%.90s/image_shape", nm);
    snprintf(ones, sizeof ones, "%.90s/unit_scale", nm);
    snprintf(zeros, sizeof zeros, "%.90s/zero_bias", nm);
    snprintf(pshape, sizeof pshape, "%.90s/param_shape", nm);
    snprintf(gamma, sizeof gamma, "%.90s/weight_c11", nm);
    snprintf(beta, sizeof beta, "%.90s/bias_c11", nm);
    const int64_t gs[3] = {0, G, (int64_t)(C / G) * H * W}, bs[4] = {-1, C, H, W};
    const int64_t ps[3] = {C, 1, 1}, gdim = G;
    init_int64(x, gshape, gs, 3);
    init_int64(x, bshape, bs, 4);
    init_int64(x, pshape, ps, 3);
    float *unit = malloc(sizeof(float) * (size_t)G), *zero = calloc((size_t)G, sizeof(float));
    if (!unit || !zero) {
        free(unit), free(zero);
        ox_fail(x, DC_ERR_OOM, "out of memory");
        return;
    }
    for (int k = 0; k < G; k++) unit[k] = 1.0f;
    init_float(x, ones, unit, G, &gdim, 1);
    init_float(x, zeros, zero, G, &gdim, 1);
    free(unit), free(zero);
    const char *r1[2] = {in, gshape};
    node_simple(x, "Reshape", grouped, r1, 2, grouped);
    const char *inorm[3] = {grouped, ones, zeros};
    size_t s = node_open(x, "InstanceNormalization", normed, inorm, 3, normed);
    attr_float(&x->nodes, "epsilon", n->eps);
    dc_pb_end(&x->nodes, s);
    const char *r2[2] = {normed, bshape};
    node_simple(x, "Reshape", back, r2, 2, back);
    const char *rg[2] = {param_name(x, n, 0), pshape};
    node_simple(x, "Reshape", gamma, rg, 2, gamma);
    const char *rb[2] = {param_name(x, n, 1), pshape};
    node_simple(x, "Reshape", beta, rb, 2, beta);
    const char *mul[2] = {back, gamma};
    node_simple(x, "Mul", scaled, mul, 2, scaled);
    const char *add[2] = {scaled, beta};
    node_simple(x, "Add", nm, add, 2, out);
}

/* The sinusoidal embedding as deconv computes it (backend/primitives.def time_embed):
 * a = (scale * t) * f_k with f_k = exp(-log(max_period) k / half) in float, [sin a, cos a]. */
static void emit_time_embed(ox *x, const dc_node *n, const char *t, const char *out) {
    const int dim = n->out_ch, half = dim / 2;
    char scale[NAME_CAP + 16], freqs[NAME_CAP + 16], st[NAME_CAP + 16], arg[NAME_CAP + 16];
    char sn[NAME_CAP + 16], cs[NAME_CAP + 16];
    const char *nm = n->name;
    snprintf(scale, sizeof scale, "%.90s/scale", nm);
    snprintf(freqs, sizeof freqs, "%.90s/frequencies", nm);
    snprintf(st, sizeof st, "%.90s/scaled_t", nm);
    snprintf(arg, sizeof arg, "%.90s/angle", nm);
    snprintf(sn, sizeof sn, "%.90s/sin", nm);
    snprintf(cs, sizeof cs, "%.90s/cos", nm);
    float *f = malloc(sizeof(float) * (size_t)half);
    if (!f) {
        ox_fail(x, DC_ERR_OOM, "out of memory");
        return;
    }
    const float lp = logf(n->p);
    for (int k = 0; k < half; k++) f[k] = expf(-lp * (float)k / (float)half);
    const int64_t fd[2] = {1, half};
    init_float(x, freqs, f, half, fd, 2);
    free(f);
    init_scalar(x, scale, n->alpha);
    const char *m1[2] = {t, scale};
    node_simple(x, "Mul", st, m1, 2, st);
    const char *m2[2] = {st, freqs};
    node_simple(x, "Mul", arg, m2, 2, arg);
    const char *a = arg;
    node_simple(x, "Sin", sn, &a, 1, sn);
    node_simple(x, "Cos", cs, &a, 1, cs);
    const char *cat[2] = {sn, cs};
    size_t s = node_open(x, "Concat", nm, cat, 2, out);
    attr_int(&x->nodes, "axis", 1);
    dc_pb_end(&x->nodes, s);
}

/* Self-attention (backend/primitives.def attn_fwd) as standard operators: q, k, v are
 * channel Slices of [N, 3C, H, W] reshaped to [N, C, HW]; probabilities = Softmax over the
 * last axis of MatMul(q^T, k) * 1/sqrt(C) ([N, HW, HW], row p: query p); output =
 * MatMul(v, probabilities^T) reshaped to [N, C, H, W]. */
static void emit_attention(ox *x, const dc_node *n, const char *in, const char *out) {
    const int C = n->shape[1], H = n->shape[2], W = n->shape[3];
    const char *nm = n->name;
    char part[3][NAME_CAP + 16], flat[3][NAME_CAP + 16], bounds[4][NAME_CAP + 16];
    char axis[NAME_CAP + 16], fshape[NAME_CAP + 16], oshape[NAME_CAP + 16], qt[NAME_CAP + 16];
    char scores[NAME_CAP + 16], scale[NAME_CAP + 16], scaled[NAME_CAP + 16];
    char probs[NAME_CAP + 16], probs_t[NAME_CAP + 16], mixed[NAME_CAP + 16];
    static const char *const which[3] = {"q", "k", "v"};
    snprintf(axis, sizeof axis, "%.90s/channel_axis", nm);
    snprintf(fshape, sizeof fshape, "%.90s/flat_shape", nm);
    snprintf(oshape, sizeof oshape, "%.90s/image_shape", nm);
    snprintf(qt, sizeof qt, "%.90s/q_t", nm);
    snprintf(scores, sizeof scores, "%.90s/scores", nm);
    snprintf(scale, sizeof scale, "%.90s/scale", nm);
    snprintf(scaled, sizeof scaled, "%.90s/scaled", nm);
    snprintf(probs, sizeof probs, "%.90s/probabilities", nm);
    snprintf(probs_t, sizeof probs_t, "%.90s/probabilities_t", nm);
    snprintf(mixed, sizeof mixed, "%.90s/mixed", nm);
    const int64_t ax = 1, fs[3] = {0, C, (int64_t)H * W}, os[4] = {-1, C, H, W};
    init_int64(x, axis, &ax, 1);
    init_int64(x, fshape, fs, 3);
    init_int64(x, oshape, os, 4);
    init_scalar(x, scale, n->alpha);
    for (int k = 0; k <= 3; k++) {
        const int64_t at = (int64_t)k * C;
        snprintf(bounds[k], sizeof bounds[k], "%.90s/channel_%d", nm, k * C);
        init_int64(x, bounds[k], &at, 1);
    }
    for (int k = 0; k < 3; k++) {
        snprintf(part[k], sizeof part[k], "%.90s/%s", nm, which[k]);
        snprintf(flat[k], sizeof flat[k], "%.90s/%s_flat", nm, which[k]);
        const char *sl[4] = {in, bounds[k], bounds[k + 1], axis};
        node_simple(x, "Slice", part[k], sl, 4, part[k]);
        const char *rs[2] = {part[k], fshape};
        node_simple(x, "Reshape", flat[k], rs, 2, flat[k]);
    }
    static const int64_t perm[3] = {0, 2, 1};
    const char *tq = flat[0];
    size_t s = node_open(x, "Transpose", qt, &tq, 1, qt);
    attr_ints(&x->nodes, "perm", perm, 3);
    dc_pb_end(&x->nodes, s);
    const char *mm1[2] = {qt, flat[1]};
    node_simple(x, "MatMul", scores, mm1, 2, scores);
    const char *mul[2] = {scores, scale};
    node_simple(x, "Mul", scaled, mul, 2, scaled);
    const char *sm = scaled;
    s = node_open(x, "Softmax", probs, &sm, 1, probs);
    attr_int(&x->nodes, "axis", 2);
    dc_pb_end(&x->nodes, s);
    const char *tp = probs;
    s = node_open(x, "Transpose", probs_t, &tp, 1, probs_t);
    attr_ints(&x->nodes, "perm", perm, 3);
    dc_pb_end(&x->nodes, s);
    const char *mm2[2] = {flat[2], probs_t};
    node_simple(x, "MatMul", mixed, mm2, 2, mixed);
    const char *rs[2] = {mixed, oshape};
    node_simple(x, "Reshape", nm, rs, 2, out);
}

static void emit_softmax(ox *x, const char *in, int in_rank, const dc_node *shape_of, const char *base,
                         const char *out) {
    if (in_rank == 2) {
        size_t s = node_open(x, "Softmax", base, &in, 1, out);
        attr_int(&x->nodes, "axis", 1);
        dc_pb_end(&x->nodes, s);
        return;
    }
    /* deconv's softmax runs over all of C*H*W: flatten, softmax, restore the shape */
    char flat[NAME_CAP + 16], soft[NAME_CAP + 16], shape_name[NAME_CAP + 16];
    snprintf(flat, sizeof flat, "%.90s/flat", base);
    snprintf(soft, sizeof soft, "%.90s/softmax", base);
    snprintf(shape_name, sizeof shape_name, "%.90s/shape", base);
    size_t s = node_open(x, "Flatten", flat, &in, 1, flat);
    attr_int(&x->nodes, "axis", 1);
    dc_pb_end(&x->nodes, s);
    const char *fin = flat;
    s = node_open(x, "Softmax", soft, &fin, 1, soft);
    attr_int(&x->nodes, "axis", 1);
    dc_pb_end(&x->nodes, s);
    int64_t sh[4] = {-1, shape_of->shape[1], shape_of->shape[2], shape_of->shape[3]};
    init_int64(x, shape_name, sh, 4);
    const char *ins[2] = {soft, shape_name};
    node_simple(x, "Reshape", base, ins, 2, out);
}

static void emit_node(ox *x, int i) {
    const dc_node *n = &x->g->nodes[i];
    const char *out = x->vname[i], *name = n->name;
    const int a = n->n_in > 0 ? n->in[0] : -1;
    pb_buf *b = &x->nodes;
    size_t s;
    switch (n->op) {
    case DC_OP_INPUT:
    case DC_OP_INPUT_INT:
        return; /* a graph input */
    case DC_OP_CONV2D: {
        /* a conv followed by batch norm may have no bias: ONNX's bias input is optional */
        const int has_bias = n->param[1] >= 0;
        const char *ins[3] = {as4d(x, a), param_name(x, n, 0), has_bias ? param_name(x, n, 1) : ""};
        s = node_open(x, "Conv", name, ins, has_bias ? 3 : 2, out);
        attr_pair(b, "kernel_shape", n->k);
        attr_pair(b, "strides", n->stride);
        attr_pads(b, n->pad);
        attr_pair(b, "dilations", 1);
        attr_int(b, "group", 1);
        dc_pb_end(b, s);
        x->rank[i] = 4;
        return;
    }
    case DC_OP_CONV_T2D: {
        const char *ins[3] = {as4d(x, a), param_name(x, n, 0), param_name(x, n, 1)};
        const dc_param *w = dc_params_get(x->params, n->param[0]);
        s = node_open(x, "ConvTranspose", name, ins, 3, out);
        attr_pair(b, "kernel_shape", w && w->ndim == 4 ? w->shape[2] : n->k);
        attr_pair(b, "strides", n->stride);
        attr_pads(b, n->pad);
        attr_pair(b, "output_padding", n->out_pad);
        attr_pair(b, "dilations", 1);
        attr_int(b, "group", 1);
        dc_pb_end(b, s);
        x->rank[i] = 4;
        return;
    }
    case DC_OP_MAXPOOL2D: {
        const char *in = as4d(x, a);
        s = node_open(x, "MaxPool", name, &in, 1, out);
        attr_pair(b, "kernel_shape", n->k);
        attr_pair(b, "strides", n->stride);
        attr_pads(b, n->pad);
        dc_pb_end(b, s);
        x->rank[i] = 4;
        return;
    }
    case DC_OP_RELU:
    case DC_OP_TANH:
    case DC_OP_SIGMOID:
    case DC_OP_DROPOUT: /* eval mode: the identity */
    case DC_OP_REPARAM: /* eval mode: z = mu */ {
        const char *op = n->op == DC_OP_RELU ? "Relu" : n->op == DC_OP_TANH ? "Tanh"
                       : n->op == DC_OP_SIGMOID ? "Sigmoid" : "Identity";
        const char *in = x->vname[a];
        node_simple(x, op, name, &in, 1, out);
        x->rank[i] = x->rank[a];
        return;
    }
    case DC_OP_LEAKY_RELU: {
        const char *in = x->vname[a];
        s = node_open(x, "LeakyRelu", name, &in, 1, out);
        attr_float(b, "alpha", n->alpha);
        dc_pb_end(b, s);
        x->rank[i] = x->rank[a];
        return;
    }
    case DC_OP_DENSE: {
        const char *in = x->vname[a];
        char flat[NAME_CAP + 16];
        if (x->rank[a] != 2) {
            snprintf(flat, sizeof flat, "%.90s/flatten", name);
            s = node_open(x, "Flatten", flat, &in, 1, flat);
            attr_int(b, "axis", 1);
            dc_pb_end(b, s);
            in = flat;
        }
        const char *ins[3] = {in, param_name(x, n, 0), param_name(x, n, 1)};
        s = node_open(x, "Gemm", name, ins, 3, out);
        attr_int(b, "transB", 1);
        dc_pb_end(b, s);
        x->rank[i] = 2;
        return;
    }
    case DC_OP_RESHAPE: {
        char shape_name[NAME_CAP + 16];
        snprintf(shape_name, sizeof shape_name, "%.90s/shape", name);
        int64_t sh[4] = {-1, n->shape[1], n->shape[2], n->shape[3]};
        init_int64(x, shape_name, sh, 4);
        const char *ins[2] = {x->vname[a], shape_name};
        node_simple(x, "Reshape", name, ins, 2, out);
        x->rank[i] = 4;
        return;
    }
    case DC_OP_ADD:
    case DC_OP_MUL: {
        const int c = n->in[1];
        const char *ins[2] = {x->vname[a], x->vname[c]};
        x->rank[i] = x->rank[a];
        if (x->rank[a] != x->rank[c]) {
            ins[0] = as4d(x, a);
            ins[1] = as4d(x, c);
            x->rank[i] = 4;
        }
        node_simple(x, n->op == DC_OP_ADD ? "Add" : "Mul", name, ins, 2, out);
        return;
    }
    case DC_OP_GAP: {
        const char *in = as4d(x, a);
        node_simple(x, "GlobalAveragePool", name, &in, 1, out);
        x->rank[i] = 4;
        return;
    }
    case DC_OP_BATCHNORM2D: {
        const char *ins[5] = {as4d(x, a), param_name(x, n, 0), param_name(x, n, 1), param_name(x, n, 2),
                              param_name(x, n, 3)};
        s = node_open(x, "BatchNormalization", name, ins, 5, out);
        attr_float(b, "epsilon", n->eps);
        dc_pb_end(b, s);
        x->rank[i] = 4;
        return;
    }
    case DC_OP_GAUSSIAN_NOISE: {
        /* The random draw becomes an input: the caller feeds std * N(0,1) (or zeros). */
        const char *noise = NULL;
        for (int k = 0; k < x->n_in; k++)
            if (x->in[k].node == i) noise = x->in[k].name;
        if (!noise) {
            ox_fail(x, DC_ERR_STATE, "noise node '%s' has no input", name);
            return;
        }
        const char *ins[2] = {x->vname[a], noise};
        node_simple(x, "Add", name, ins, 2, out);
        x->rank[i] = x->rank[a];
        return;
    }
    case DC_OP_SILU: { /* x * Sigmoid(x) */
        char sig[NAME_CAP + 16];
        snprintf(sig, sizeof sig, "%.90s/sigmoid", name);
        const char *in = x->vname[a];
        node_simple(x, "Sigmoid", sig, &in, 1, sig);
        const char *ins[2] = {in, sig};
        node_simple(x, "Mul", name, ins, 2, out);
        x->rank[i] = x->rank[a];
        return;
    }
    case DC_OP_CONCAT: {
        const char *ins[2] = {as4d(x, a), as4d(x, n->in[1])};
        s = node_open(x, "Concat", name, ins, 2, out);
        attr_int(b, "axis", 1);
        dc_pb_end(b, s);
        x->rank[i] = 4;
        return;
    }
    case DC_OP_GROUPNORM:
        emit_groupnorm(x, n, as4d(x, a), out);
        x->rank[i] = 4;
        return;
    case DC_OP_ADD_CHANNELS: { /* [N, C, H, W] + [N, C, 1, 1]: ONNX broadcasting */
        const char *ins[2] = {as4d(x, a), as4d(x, n->in[1])};
        node_simple(x, "Add", name, ins, 2, out);
        x->rank[i] = 4;
        return;
    }
    case DC_OP_TIME_EMBED:
        emit_time_embed(x, n, as2d(x, a), out);
        x->rank[i] = 2;
        return;
    case DC_OP_ATTENTION:
        emit_attention(x, n, as4d(x, a), out);
        x->rank[i] = 4;
        return;
    case DC_OP_EMBEDDING: { /* rows of the table by the integer input: Gather on axis 0 */
        const char *ins[2] = {param_name(x, n, 0), x->vname[a]};
        s = node_open(x, "Gather", name, ins, 2, out);
        attr_int(b, "axis", 0);
        dc_pb_end(b, s);
        x->rank[i] = 2;
        return;
    }
    case DC_OP_SOFTMAX:
        emit_softmax(x, x->vname[a], x->rank[a], n, name, out);
        x->rank[i] = x->rank[a] == 2 ? 2 : 4;
        return;
    default:
        ox_fail(x, DC_ERR_UNSUPPORTED, "node '%s' (%s) has no ONNX mapping in deconv's exporter", name,
                dc_op_names[n->op]);
        return;
    }
}

static int reserved_name(const ox *x, const char *s) {
    for (int k = 0; k < x->n_in; k++)
        if (!strcmp(x->in[k].name, s)) return 1;
    for (int k = 0; k < x->n_out; k++)
        if (!strcmp(x->out[k].name, s)) return 1;
    return !strcmp(s, "probabilities") || !strcmp(s, "logits") || !strcmp(s, "output");
}

static dc_status write_params(ox *x) {
    const int np = dc_params_count(x->params);
    size_t maxn = 1;
    for (int i = 0; i < np; i++)
        if (x->param_used[i] && dc_params_get(x->params, i)->numel > maxn) maxn = dc_params_get(x->params, i)->numel;
    float *buf = malloc(maxn * sizeof(float));
    if (!buf) return ox_fail(x, DC_ERR_OOM, "out of memory");
    for (int i = 0; i < np && x->st == DC_OK; i++) {
        if (!x->param_used[i]) continue;
        const dc_param *q = dc_params_get(x->params, i);
        if (dc_params_read(x->params, i, buf) != DC_OK) {
            ox_fail(x, dc_params_error(x->params)->status, "reading '%s': %s", q->name,
                    dc_params_error(x->params)->msg);
            break;
        }
        dc_f32_to_le(buf, q->numel);
        pb_buf *b = &x->inits;
        size_t s = dc_pb_begin(b, GRAPH_INITIALIZER);
        for (int d = 0; d < q->ndim; d++) dc_pb_int(b, TENSOR_DIMS, q->shape[d]);
        dc_pb_int(b, TENSOR_DATA_TYPE, DTYPE_FLOAT);
        dc_pb_string(b, TENSOR_NAME, q->name);
        dc_pb_bytes(b, TENSOR_RAW_DATA, buf, q->numel * sizeof(float));
        dc_pb_end(b, s);
    }
    free(buf);
    return x->st;
}

static const char *graph_doc(const dc_model *m) {
    const dc_kind_row *row = dc_kind_row_get(m->spec.kind);
    if (row && row->onnx_doc && !m->decoder_only) return row->onnx_doc;
    return "deconv decoder (generator): z = latent code -> output image in [-1, 1]";
}

static dc_status export_graph(ox *x, const dc_model *m, pb_buf *model) {
    dc_graph *g = x->g;
    const int nn = g->n;
    x->vname = calloc((size_t)nn, sizeof *x->vname);
    x->vname4 = calloc((size_t)nn, sizeof *x->vname4);
    x->rank = calloc((size_t)nn, sizeof *x->rank);
    x->need = calloc((size_t)nn, 1);
    x->param_used = calloc((size_t)dc_params_count(x->params) + 1, 1);
    if (!x->vname || !x->vname4 || !x->rank || !x->need || !x->param_used)
        return ox_fail(x, DC_ERR_OOM, "out of memory");
    /* which nodes the outputs depend on */
    for (int k = 0; k < x->n_out; k++) x->need[x->out[k].node] = 1;
    for (int i = nn - 1; i >= 0; i--)
        if (x->need[i])
            for (int j = 0; j < g->nodes[i].n_in; j++) x->need[g->nodes[i].in[j]] = 1;
    /* graph inputs: the named float inputs, and one per noise draw */
    int n_noise = 0;
    for (int i = 0; i < nn; i++)
        if (x->need[i] && g->nodes[i].op == DC_OP_GAUSSIAN_NOISE) n_noise++;
    for (int i = 0; i < nn; i++) {
        const dc_node *n = &g->nodes[i];
        if (!x->need[i] || (n->op != DC_OP_INPUT && n->op != DC_OP_INPUT_INT &&
                            n->op != DC_OP_GAUSSIAN_NOISE))
            continue;
        if (x->n_in == MAX_IO) return ox_fail(x, DC_ERR_UNSUPPORTED, "more than %d inputs", MAX_IO);
        ox_io *io = &x->in[x->n_in++];
        io->node = i;
        if (n->op == DC_OP_GAUSSIAN_NOISE) {
            if (n_noise == 1)
                snprintf(io->name, NAME_CAP, "noise");
            else
                snprintf(io->name, NAME_CAP, "noise_%.90s", n->name);
            io->rank = 0; /* set from its input's rank during the walk */
            continue;
        }
        if (n->op == DC_OP_INPUT_INT) {
            /* class labels or table rows: one int64 per image */
            snprintf(io->name, NAME_CAP, "%.100s", n->name);
            io->rank = 1;
            io->int64 = 1;
            x->rank[i] = 1;
            dc_strlcpy(x->vname[i], io->name, NAME_CAP);
            continue;
        }
        if (i == m->x)
            snprintf(io->name, NAME_CAP, "%s",
                     dc_model_kind_has(m->spec.kind, DC_KIND_FLOW) ? "x" : "image");
        else if (i == m->z_in)
            snprintf(io->name, NAME_CAP, "z");
        else
            snprintf(io->name, NAME_CAP, "%.100s", n->name);
        io->rank = n->ndim == 4 && n->shape[2] == 1 && n->shape[3] == 1 ? 2 : n->ndim;
        x->rank[i] = io->rank;
        dc_strlcpy(x->vname[i], io->name, NAME_CAP);
    }
    for (int i = 0; i < nn; i++) {
        if (x->vname[i][0]) continue;
        const char *nm = g->nodes[i].name;
        if (reserved_name(x, nm))
            snprintf(x->vname[i], NAME_CAP, "node/%.100s", nm);
        else
            dc_strlcpy(x->vname[i], nm, NAME_CAP);
    }
    for (int k = 0; k < x->n_out; k++) dc_strlcpy(x->vname[x->out[k].node], x->out[k].name, NAME_CAP);
    for (int i = 0; i < nn && x->st == DC_OK; i++) {
        if (!x->need[i]) continue;
        emit_node(x, i);
        if (g->nodes[i].op == DC_OP_GAUSSIAN_NOISE)
            for (int k = 0; k < x->n_in; k++)
                if (x->in[k].node == i) x->in[k].rank = x->rank[g->nodes[i].in[0]];
    }
    /* classifier: probabilities from the logits */
    const int classifies = dc_model_kind_has(m->spec.kind, DC_KIND_CLASSIFIES);
    if (classifies && x->n_out == 1 && x->st == DC_OK) {
        const int lg = x->out[0].node;
        emit_softmax(x, x->vname[lg], x->rank[lg], &g->nodes[lg], "probabilities", "probabilities");
    }
    if (x->st != DC_OK) return x->st;
    if (write_params(x) != DC_OK) return x->st;

    pb_buf gb = {0};
    dc_pb_append(&gb, &x->nodes);
    char gname[64];
    snprintf(gname, sizeof gname, "deconv_%s%s", dc_model_kind_name(m->spec.kind),
             m->decoder_only ? "_decoder" : "");
    dc_pb_string(&gb, GRAPH_NAME, gname);
    dc_pb_append(&gb, &x->inits);
    dc_pb_string(&gb, GRAPH_DOC, graph_doc(m));
    for (int k = 0; k < x->n_in; k++) {
        const dc_node *n = &g->nodes[x->in[k].node];
        int shape[4] = {0, n->shape[1], n->ndim > 2 ? n->shape[2] : 1, n->ndim > 3 ? n->shape[3] : 1};
        value_info(&gb, GRAPH_INPUT, x->in[k].name, x->in[k].int64 ? DTYPE_INT64 : DTYPE_FLOAT,
                   x->in[k].rank, shape);
    }
    if (classifies) {
        const dc_node *n = &g->nodes[x->out[0].node];
        int shape[4] = {0, n->shape[1], n->shape[2], n->shape[3]};
        value_info(&gb, GRAPH_OUTPUT, "probabilities", DTYPE_FLOAT, x->rank[x->out[0].node], shape);
    }
    for (int k = 0; k < x->n_out; k++) {
        const dc_node *n = &g->nodes[x->out[k].node];
        int shape[4] = {0, n->shape[1], n->shape[2], n->shape[3]};
        value_info(&gb, GRAPH_OUTPUT, x->out[k].name, DTYPE_FLOAT, x->rank[x->out[k].node], shape);
    }
    size_t s = dc_pb_begin(model, MODEL_GRAPH);
    dc_pb_append(model, &gb);
    dc_pb_end(model, s);
    dc_pb_free(&gb);
    return DC_OK;
}

dc_status dc_export_onnx(const char *path, dc_model *model, dc_error *err) {
    if (!path || !model || !model->g) return dc_set_error(err, DC_ERR_ARG, "dc_export_onnx: NULL argument");
    /* a graph wrapped by hand (no kind) exports as it is, its output named "output" */
    const dc_kind_row *row = dc_kind_row_get(model->spec.kind);
    dc_model *dec = NULL;
    dc_model *m = model;
    if (row && !model->decoder_only && !row->onnx_doc) {
        /* the generator: a decoder-only graph on the same parameters */
        dc_status s = dc_model_create_shared(model, 1, 1, &dec, err);
        if (s != DC_OK) return dc_wrap_error(err, s, "ONNX export to '%s': building the decoder", path);
        m = dec;
    }
    ox x;
    memset(&x, 0, sizeof x);
    x.path = path;
    x.g = m->g;
    x.params = m->params;
    x.err = err;
    x.out[x.n_out].node = m->out;
    snprintf(x.out[x.n_out++].name, NAME_CAP, "%s", row ? row->onnx_output : "output");
    if (m->out < 0 || m->out >= m->g->n) ox_fail(&x, DC_ERR_STATE, "model has no output node");
    pb_buf model_buf = {0};
    dc_atomic_file af = {0};
    char *spec_json = NULL;
    if (x.st == DC_OK) {
        dc_pb_int(&model_buf, MODEL_IR_VERSION, ONNX_IR_VERSION);
        size_t s = dc_pb_begin(&model_buf, MODEL_OPSET);
        dc_pb_string(&model_buf, OPSET_DOMAIN, "");
        dc_pb_int(&model_buf, OPSET_VERSION, ONNX_OPSET);
        dc_pb_end(&model_buf, s);
        dc_pb_string(&model_buf, MODEL_PRODUCER_NAME, "deconv");
        dc_pb_string(&model_buf, MODEL_PRODUCER_VERSION, DECONV_VERSION);
        dc_pb_string(&model_buf, MODEL_DOC, graph_doc(m));
        export_graph(&x, m, &model_buf);
        spec_json = dc_model_spec_to_json(&model->spec);
        if (spec_json) {
            s = dc_pb_begin(&model_buf, MODEL_METADATA);
            dc_pb_string(&model_buf, ENTRY_KEY, "deconv.model");
            dc_pb_string(&model_buf, ENTRY_VALUE, spec_json);
            dc_pb_end(&model_buf, s);
        }
    }
    if (x.st == DC_OK && (model_buf.oom || x.nodes.oom || x.inits.oom))
        ox_fail(&x, DC_ERR_OOM, "out of memory");
    if (x.st == DC_OK && (x.st = dc_atomic_open(&af, path, err)) == DC_OK &&
        (x.st = dc_atomic_write(&af, model_buf.data, model_buf.len, err)) == DC_OK)
        x.st = dc_atomic_commit(&af, err);
    dc_atomic_abort(&af);
    free(spec_json);
    dc_pb_free(&model_buf);
    dc_pb_free(&x.nodes);
    dc_pb_free(&x.inits);
    free(x.vname);
    free(x.vname4);
    free(x.rank);
    free(x.need);
    free(x.param_used);
    dc_model_free(dec);
    return x.st;
}
