/* The graph: nodes in topological order (the order they were built). Forward walks
 * them in order; backward walks them in reverse, each op applying its gradient rule. */
#include <stdarg.h>

#include "graph_internal.h"

const char *const dc_op_names[DC_OP_COUNT] = {
#define X(e, name, impl) name,
#include "ops.def"
#undef X
};
_Static_assert(sizeof(dc_op_names) / sizeof(dc_op_names[0]) == DC_OP_COUNT, "op table size");

dc_status dc_graph_create(dc_params *params, int batch, dc_graph **out) {
    if (!out) return DC_ERR_ARG;
    *out = NULL;
    if (!params) return DC_ERR_ARG;
    if (batch <= 0)
        return dc_set_error(dc_params_err(params), DC_ERR_SHAPE, "graph: batch size %d must be > 0",
                            batch);
    dc_graph *g = calloc(1, sizeof *g);
    if (!g) return DC_ERR_OOM;
    g->be = dc_params_backend(params);
    g->params = params;
    g->batch = batch;
    g->train = 1;
    *out = g;
    return DC_OK;
}

void dc_graph_free(dc_graph *g) {
    if (!g) return;
    if (g->act_arena) DC_BE(g->be, free, g->act_arena);
    if (g->grad_arena) DC_BE(g->be, free, g->grad_arena);
    if (g->work) DC_BE(g->be, free, g->work);
    free(g->nodes);
    free(g->reach);
    free(g);
}

const dc_error *dc_graph_error(const dc_graph *g) { return g ? &g->err : NULL; }
dc_backend *dc_graph_backend(dc_graph *g) { return g ? g->be : NULL; }
dc_params *dc_graph_params(dc_graph *g) { return g ? g->params : NULL; }
int dc_graph_batch(const dc_graph *g) { return g ? g->batch : 0; }
int dc_graph_node_count(const dc_graph *g) { return g ? g->n : 0; }
void dc_graph_set_train(dc_graph *g, int train) {
    if (g) g->train = train;
}
void dc_graph_set_seed(dc_graph *g, uint64_t seed) {
    if (g) g->seed = seed;
}
uint64_t dc_graph_node_seed(const dc_graph *g, const dc_node *n) {
    return dc_seed_mix(g->seed, (uint64_t)(n - g->nodes) + 1);
}

void dc_name(dc_graph *g, const char *name) {
    if (g) dc_strlcpy(g->next_name, name ? name : "", sizeof g->next_name);
}

dc_status dc_graph_share_scope(dc_graph *g, const char *scope) {
    if (!g) return DC_ERR_ARG;
    if (g->failed) return g->err.status;
    if (g->finalized) {
        dc_graph_fail(g, DC_ERR_STATE, "share scope: the graph is already finalized");
        return DC_ERR_STATE;
    }
    if (scope && (strlen(scope) >= sizeof g->scope || strchr(scope, '/'))) {
        dc_graph_fail(g, DC_ERR_ARG, "share scope '%s': at most %d characters, no '/'", scope,
                      (int)sizeof g->scope - 1);
        return DC_ERR_ARG;
    }
    dc_strlcpy(g->scope, scope ? scope : "", sizeof g->scope);
    return DC_OK;
}

int dc_graph_fail(dc_graph *g, dc_status s, const char *fmt, ...) {
    if (g->failed) return -1; /* keep the first error */
    g->failed = 1;
    g->err.status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err.msg, sizeof g->err.msg, fmt, ap);
    va_end(ap);
    return -1;
}

int dc_graph_check_input(dc_graph *g, const char *op, int x) {
    if (!g) return -1;
    if (g->failed) return -1;
    if (g->finalized) {
        dc_graph_fail(g, DC_ERR_STATE, "%s: the graph is already finalized", op);
        return -1;
    }
    if (x < 0 || x >= g->n) {
        dc_graph_fail(g, DC_ERR_ARG, "%s: input node %d does not exist (graph has %d nodes)", op, x,
                      g->n);
        return -1;
    }
    return 0;
}

int dc_graph_add_node(dc_graph *g, dc_op op, const int *inputs, int n_in, int ndim,
                      const int *shape_arg) {
    if (g->failed) return -1;
    if (ndim < 0 || ndim > DC_MAX_DIMS || n_in < 0 || n_in > 3)
        return dc_graph_fail(g, DC_ERR_ARG, "%s: %d dimensions and %d inputs (at most %d and 3)",
                             dc_op_names[op], ndim, n_in, DC_MAX_DIMS);
    /* Builders pass an input node's own shape (g->nodes[x].shape): copy it before the node
     * array may move below. */
    int shape[DC_MAX_DIMS], in_ids[3] = {-1, -1, -1};
    memcpy(shape, shape_arg, sizeof(int) * (size_t)ndim);
    for (int i = 0; i < n_in; i++) in_ids[i] = inputs[i];
    inputs = in_ids;
    for (int d = 0; d < ndim; d++)
        if (shape[d] <= 0) {
            char a[64];
            const char *nm = g->next_name[0] ? g->next_name : dc_op_names[op];
            return dc_graph_fail(g, DC_ERR_SHAPE, "%s '%s': output shape %s has a zero or negative size",
                                 dc_op_names[op], nm, dc_shape_str(ndim, shape, a, sizeof a));
        }
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 32;
        dc_node *nodes = realloc(g->nodes, sizeof *nodes * cap);
        if (!nodes) return dc_graph_fail(g, DC_ERR_OOM, "graph: out of memory");
        g->nodes = nodes;
        g->cap = cap;
    }
    dc_node *n = &g->nodes[g->n];
    memset(n, 0, sizeof *n);
    n->op = op;
    if (g->next_name[0]) {
        dc_strlcpy(n->param_base, g->next_name, sizeof n->param_base);
        g->next_name[0] = 0;
    } else {
        snprintf(n->param_base, sizeof n->param_base, "%s%d", dc_op_names[op], ++g->counters[op]);
    }
    if (g->scope[0]) {
        const size_t ls = strlen(g->scope), lb = strlen(n->param_base);
        if (ls + 1 + lb >= sizeof n->name)
            return dc_graph_fail(g, DC_ERR_ARG, "%s: node name '%s/%s' is too long", dc_op_names[op],
                                 g->scope, n->param_base);
        memcpy(n->name, g->scope, ls);
        n->name[ls] = '/';
        memcpy(n->name + ls + 1, n->param_base, lb + 1);
    } else {
        dc_strlcpy(n->name, n->param_base, sizeof n->name);
    }
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->nodes[i].name, n->name))
            return dc_graph_fail(g, DC_ERR_ARG, "%s: node name '%s' is already used by node %d",
                                 dc_op_names[op], n->name, i);
    n->n_in = n_in;
    for (int i = 0; i < 3; i++) n->in[i] = i < n_in ? inputs[i] : -1;
    n->ndim = ndim;
    memcpy(n->shape, shape, sizeof(int) * ndim);
    n->numel = dc_shape_numel(ndim, shape);
    for (int i = 0; i < 4; i++) n->param[i] = -1;
    n->tied_to = n->pool_node = -1;
    n->seed_scale = 0;
    return g->n++;
}

int dc_graph_param(dc_graph *g, dc_node *n, int slot, const char *suffix, int ndim,
                   const int *shape, dc_init init, int fan_in, int fan_out, int trainable,
                   int decay) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", n->param_base, suffix);
    int idx = -1;
    if (dc_params_declare(g->params, name, ndim, shape, init, fan_in, fan_out, trainable, &idx) !=
        DC_OK)
        return dc_graph_fail(g, dc_params_error(g->params)->status, "%s '%s': %s",
                             dc_op_names[n->op], n->name, dc_params_error(g->params)->msg);
    dc_param *q = dc_params_get(g->params, idx);
    q->decay = decay;
    n->param[slot] = idx;
    return idx;
}

dc_param *dc_graph_param_at(dc_graph *g, const dc_node *n, int slot) {
    return n->param[slot] < 0 ? NULL : dc_params_get(g->params, n->param[slot]);
}

int dc_input(dc_graph *g, const char *name, int c, int h, int w) {
    if (!g || g->failed) return -1;
    if (g->finalized) return dc_graph_fail(g, DC_ERR_STATE, "input: graph already finalized");
    if (name) dc_name(g, name);
    int shape[4] = {g->batch, c, h, w};
    return dc_graph_add_node(g, DC_OP_INPUT, NULL, 0, 4, shape);
}

int dc_input_int(dc_graph *g, const char *name) {
    if (!g || g->failed) return -1;
    if (g->finalized) return dc_graph_fail(g, DC_ERR_STATE, "input: graph already finalized");
    if (name) dc_name(g, name);
    int shape[1] = {g->batch};
    return dc_graph_add_node(g, DC_OP_INPUT_INT, NULL, 0, 1, shape);
}

dc_status dc_graph_keep_buffer(dc_graph *g, int input) {
    if (!g) return DC_ERR_ARG;
    if (input < 0 || input >= g->n || g->nodes[input].op != DC_OP_INPUT)
        return dc_set_error(&g->err, DC_ERR_ARG, "keep_buffer: node %d is not a float input", input);
    if (g->finalized)
        return dc_set_error(&g->err, DC_ERR_STATE,
                            "keep_buffer on '%s': call it before dc_graph_finalize",
                            g->nodes[input].name);
    g->nodes[input].keep_buffer = 1;
    return DC_OK;
}

dc_status dc_graph_require_grad(dc_graph *g, int node) {
    if (!g) return DC_ERR_ARG;
    if (node < 0 || node >= g->n)
        return dc_set_error(&g->err, DC_ERR_ARG, "require_grad: no node %d", node);
    if (g->finalized)
        return dc_set_error(&g->err, DC_ERR_STATE,
                            "require_grad on '%s': call it before dc_graph_finalize",
                            g->nodes[node].name);
    if (g->nodes[node].op == DC_OP_INPUT_INT)
        return dc_set_error(&g->err, DC_ERR_ARG, "require_grad: '%s' holds integers",
                            g->nodes[node].name);
    g->nodes[node].wants_grad = 1;
    return DC_OK;
}

static int is_scalar_loss(dc_op op) {
    return op == DC_OP_MSE_LOSS || op == DC_OP_BCE_TANH_LOSS || op == DC_OP_XENT_LOSS || op == DC_OP_KL_LOSS ||
           op == DC_OP_LOSS_SUM;
}

dc_status dc_graph_set_fusion(dc_graph *g, int on) {
    if (!g) return DC_ERR_ARG;
    if (g->finalized)
        return dc_set_error(&g->err, DC_ERR_STATE, "set_fusion: call it before dc_graph_finalize");
    g->fuse = on != 0;
    return DC_OK;
}

/* Fold each ReLU / leaky ReLU (slope >= 0) that is the only consumer of a convolution or a
 * batch norm into it, where the backend has the fused primitives. The activation node becomes an alias of
 * the conv output (which now holds the activated values) and its gradient the conv's. */
static void fuse_activations(dc_graph *g, const int *uses) {
    const dc_backend_ops *o = g->be->ops;
    for (int i = 0; i < g->n; i++) {
        dc_node *r = &g->nodes[i];
        if ((r->op != DC_OP_RELU && r->op != DC_OP_LEAKY_RELU) || !(r->alpha >= 0.0f)) continue;
        dc_node *c = &g->nodes[r->in[0]];
        const int can = (c->op == DC_OP_CONV2D && o->conv2d_fwd && o->conv2d_bwd) ||
                        (c->op == DC_OP_CONV_T2D && o->conv_t2d_fwd && o->conv_t2d_bwd) ||
                        (c->op == DC_OP_BATCHNORM2D && o->bn_apply_act && o->bn_bwd_act);
        if (!can || uses[r->in[0]] != 1 || c->wants_grad || c->has_fact ||
            c->requires_grad != r->requires_grad)
            continue;
        c->has_fact = 1;
        c->fact.kind = r->op == DC_OP_RELU ? DC_ACT_RELU : DC_ACT_LEAKY_RELU;
        c->fact.alpha = r->op == DC_OP_RELU ? 0.0f : r->alpha;
        c->fact.mode = DC_RELU_NORMAL;
        r->fused = 1;
        r->alias = 1;
    }
}

/* Fold each float input that feeds only a concatenation and needs no gradient into it:
 * dc_graph_set_input writes its values straight into their channel slice of every image
 * (one strided transfer), and the concatenation no longer copies them (one launch and a
 * read and write of the tensor less per forward: the completion model's image and hole). */
static void fold_inputs(dc_graph *g, const int *uses) {
    for (int i = 0; i < g->n; i++) {
        const dc_node *c = &g->nodes[i];
        if (c->op != DC_OP_CONCAT) continue;
        int coff = 0;
        for (int j = 0; j < c->n_in; j++) {
            dc_node *a = &g->nodes[c->in[j]];
            if (a->op == DC_OP_INPUT && uses[c->in[j]] == 1 && !a->requires_grad &&
                !a->wants_grad && !a->keep_buffer) {
                a->folded = 1;
                a->fold_into = i;
                a->fold_coff = coff;
            }
            coff += NC(a);
        }
    }
}

dc_status dc_graph_finalize(dc_graph *g) {
    if (!g) return DC_ERR_ARG;
    if (g->failed) return g->err.status;
    if (g->finalized) return DC_OK;
    if (g->n <= 0) return dc_set_error(&g->err, DC_ERR_STATE, "graph: no nodes to finalize");
    dc_backend *be = g->be;
    if (!dc_params_allocated(g->params) && dc_params_count(g->params) > 0) {
        if (dc_params_allocate(g->params) != DC_OK)
            return dc_set_error(&g->err, dc_params_error(g->params)->status, "graph: %s",
                                dc_params_error(g->params)->msg);
    }
    /* Which nodes need gradients: those with trainable params, those that asked, and
     * everything downstream of them. */
    for (int i = 0; i < g->n; i++) {
        dc_node *n = &g->nodes[i];
        int r = n->wants_grad;
        for (int s = 0; s < 4; s++) {
            dc_param *q = dc_graph_param_at(g, n, s);
            if (q && q->trainable) r = 1;
        }
        for (int j = 0; j < n->n_in; j++)
            if (g->nodes[n->in[j]].requires_grad) r = 1;
        if (n->op == DC_OP_INPUT_INT) r = 0;
        n->requires_grad = r;
    }
    /* how many nodes read each node: fusion and folding apply to sole consumers */
    const int nodes = g->n;
    int *uses = nodes > 0 ? calloc((size_t)nodes, sizeof *uses) : NULL;
    if (!uses) return dc_set_error(&g->err, DC_ERR_OOM, "graph: out of memory");
    for (int i = 0; i < nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++) uses[g->nodes[i].in[j]]++;
    if (g->fuse) fuse_activations(g, uses);
    fold_inputs(g, uses);
    free(uses);
    /* Sizes: outputs (aliases take no space), saved tensors, gradients, workspace. */
    size_t act = 0, grad = 0, work = 0;
#define ALIGN16(x) (((x) + 15) & ~(size_t)15)
    for (int i = 0; i < g->n; i++) {
        dc_node *n = &g->nodes[i];
        if (!n->alias && !n->folded) act += ALIGN16(n->numel);
        for (int s = 0; s < DC_MAX_SAVED; s++) act += ALIGN16(n->saved_numel[s]);
        if (n->requires_grad && !n->alias) grad += ALIGN16(n->numel);
        if (dc_op_impls[n->op]->workspace) {
            size_t w = dc_op_impls[n->op]->workspace(g, n);
            if (w > work) work = w;
        }
    }
    g->act_elems = act;
    g->grad_elems = grad;
    g->work_elems = work;
    if (DC_BE(be, alloc, (act ? act : 1) * 4, &g->act_arena) != DC_OK)
        return dc_set_error(&g->err, DC_ERR_OOM, "graph: cannot allocate activations (%zu MB): %s",
                            act * 4 >> 20, be->err.msg);
    if (grad && DC_BE(be, alloc, grad * 4, &g->grad_arena) != DC_OK)
        return dc_set_error(&g->err, DC_ERR_OOM, "graph: cannot allocate gradients (%zu MB): %s",
                            grad * 4 >> 20, be->err.msg);
    if (work && DC_BE(be, alloc, work * 4, &g->work) != DC_OK)
        return dc_set_error(&g->err, DC_ERR_OOM, "graph: cannot allocate workspace (%zu MB): %s",
                            work * 4 >> 20, be->err.msg);
    act = grad = 0;
    for (int i = 0; i < g->n; i++) {
        dc_node *n = &g->nodes[i];
        n->out.ndim = n->grad.ndim = n->ndim;
        memcpy(n->out.shape, n->shape, sizeof n->shape);
        memcpy(n->grad.shape, n->shape, sizeof n->shape);
        if (n->folded) {
            /* its place: set below, once the concatenation has its own */
        } else if (n->alias) {
            dc_node *src = &g->nodes[n->in[0]];
            n->out.buf = src->out.buf;
            n->out.off = src->out.off;
            if (n->requires_grad) {
                n->grad.buf = src->grad.buf;
                n->grad.off = src->grad.off;
            }
        } else {
            n->out.buf = g->act_arena;
            n->out.off = act;
            act += ALIGN16(n->numel);
            if (n->requires_grad) {
                n->grad.buf = g->grad_arena;
                n->grad.off = grad;
                grad += ALIGN16(n->numel);
            }
        }
        for (int s = 0; s < DC_MAX_SAVED; s++) {
            if (!n->saved_numel[s]) continue;
            n->saved[s].buf = g->act_arena;
            n->saved[s].off = act;
            n->saved[s].ndim = 1;
            n->saved[s].shape[0] = (int)n->saved_numel[s];
            act += ALIGN16(n->saved_numel[s]);
        }
    }
#undef ALIGN16
    /* a folded input's tensor starts at its slice of image 0 (a strided view: only
     * set_input, read and the concatenation address it, each image at a time) */
    for (int i = 0; i < g->n; i++) {
        dc_node *n = &g->nodes[i];
        if (!n->folded) continue;
        const dc_node *c = &g->nodes[n->fold_into];
        n->out.buf = c->out.buf;
        n->out.off = c->out.off + (size_t)n->fold_coff * NH(c) * NW(c);
    }
    g->reach = calloc((size_t)g->n, sizeof *g->reach);
    if (!g->reach) return dc_set_error(&g->err, DC_ERR_OOM, "graph: out of memory");
    if (DC_BE(be, fill, (dc_ptr){g->act_arena, 0}, g->act_elems, 0.0f) != DC_OK)
        return dc_set_error(&g->err, be->err.status, "graph: %s", be->err.msg);
    g->finalized = 1;
    return DC_OK;
}

static dc_status need_finalized(dc_graph *g, const char *what) {
    if (!g) return DC_ERR_ARG;
    if (!g->finalized)
        return dc_set_error(&g->err, DC_ERR_STATE, "%s: call dc_graph_finalize first", what);
    return DC_OK;
}

static dc_status check_node(dc_graph *g, int node, const char *what) {
    DC_TRY(need_finalized(g, what));
    if (node < 0 || node >= g->n)
        return dc_set_error(&g->err, DC_ERR_ARG, "%s: no node %d (graph has %d)", what, node, g->n);
    return DC_OK;
}

static dc_status be_fail(dc_graph *g, const dc_node *n, const char *phase) {
    return dc_set_error(&g->err, g->be->err.status ? g->be->err.status : DC_ERR_STATE,
                        "%s %s '%s': %s", dc_op_names[n->op], phase, n->name, g->be->err.msg);
}

dc_status dc_graph_set_input(dc_graph *g, int node, const float *host) {
    DC_TRY(check_node(g, node, "set_input"));
    dc_node *n = &g->nodes[node];
    if (n->op != DC_OP_INPUT)
        return dc_set_error(&g->err, DC_ERR_ARG, "set_input: '%s' is a %s node, not a float input",
                            n->name, dc_op_names[n->op]);
    if (!host) return dc_set_error(&g->err, DC_ERR_ARG, "set_input '%s': data is NULL", n->name);
    dc_status s;
    if (n->folded) {
        const dc_node *c = &g->nodes[n->fold_into];
        const size_t per = n->numel / (size_t)g->batch;
        s = DC_BE(g->be, write_rows, dc_tensor_ptr(n->out), host, (size_t)g->batch, per,
                  c->numel / (size_t)g->batch);
    } else {
        s = DC_BE(g->be, write, dc_tensor_ptr(n->out), host, n->numel * 4);
    }
    return s != DC_OK ? be_fail(g, n, "upload") : DC_OK;
}

dc_status dc_graph_set_input_int(dc_graph *g, int node, const int32_t *host) {
    DC_TRY(check_node(g, node, "set_input_int"));
    dc_node *n = &g->nodes[node];
    if (n->op != DC_OP_INPUT_INT)
        return dc_set_error(&g->err, DC_ERR_ARG, "set_input_int: '%s' is a %s node, not an int input",
                            n->name, dc_op_names[n->op]);
    if (!host) return dc_set_error(&g->err, DC_ERR_ARG, "set_input_int '%s': data is NULL", n->name);
    /* Integer inputs index classes or table rows: check the range here, once, on the host,
     * so no kernel ever reads out of bounds. */
    for (int i = g->n - 1; i > node; i--) {
        dc_node *c = &g->nodes[i];
        int limit = 0;
        if (c->op == DC_OP_XENT_LOSS && c->in[1] == node) limit = g->nodes[c->in[0]].shape[1];
        if (c->op == DC_OP_EMBEDDING && c->in[0] == node) limit = c->rows;
        if (!limit) continue;
        for (size_t j = 0; j < n->numel; j++)
            if (host[j] < 0 || host[j] >= limit)
                return dc_set_error(&g->err, DC_ERR_ARG,
                                    "input '%s': value %d at row %zu is outside [0, %d) required by "
                                    "%s '%s'",
                                    n->name, host[j], j, limit, dc_op_names[c->op], c->name);
    }
    if (DC_BE(g->be, write, dc_tensor_ptr(n->out), host, n->numel * 4) != DC_OK)
        return be_fail(g, n, "upload");
    return DC_OK;
}

dc_status dc_graph_forward(dc_graph *g, int last) {
    DC_TRY(need_finalized(g, "forward"));
    if (last < 0 || last >= g->n) last = g->n - 1;
    for (int i = 0; i <= last; i++) {
        dc_node *n = &g->nodes[i];
        if (!dc_op_impls[n->op]->forward || n->fused) continue;
        if (dc_op_impls[n->op]->forward(g, n) != DC_OK) {
            if (g->err.status == DC_OK || g->err.msg[0] == 0) return be_fail(g, n, "forward");
            return g->err.status;
        }
    }
    return DC_OK;
}

static dc_status run_backward(dc_graph *g, int root) {
    dc_backend *be = g->be;
    if (g->grad_arena && DC_BE(be, fill, (dc_ptr){g->grad_arena, 0}, g->grad_elems, 0.0f) != DC_OK)
        return dc_set_error(&g->err, be->err.status, "backward: %s", be->err.msg);
    memset(g->reach, 0, sizeof(int) * (size_t)g->n);
    for (int i = 0; i < g->n; i++) g->nodes[i].seed_scale = 0;
    g->reach[root] = 1;
    for (int i = root; i >= 0; i--) {
        if (!g->reach[i]) continue;
        dc_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_in; j++) g->reach[n->in[j]] = 1;
    }
    return DC_OK;
}

static dc_status walk_backward(dc_graph *g, int root, dc_relu_mode mode) {
    for (int i = root; i >= 0; i--) {
        dc_node *n = &g->nodes[i];
        if (g->reach[i] && n->requires_grad && dc_op_impls[n->op]->backward && !n->fused) {
            g->err.status = DC_OK;
            g->err.msg[0] = 0;
            if (dc_op_impls[n->op]->backward(g, n, mode) != DC_OK) {
                if (g->err.msg[0] == 0) return be_fail(g, n, "backward");
                return g->err.status;
            }
        }
        if (g->backward_passed && g->backward_passed(g->backward_passed_user, i, &g->err) != DC_OK)
            return g->err.status ? g->err.status : DC_ERR_IO;
    }
    return DC_OK;
}

dc_status dc_graph_backward(dc_graph *g, int loss_node, dc_relu_mode mode) {
    DC_TRY(check_node(g, loss_node, "backward"));
    dc_node *n = &g->nodes[loss_node];
    if (!is_scalar_loss(n->op))
        return dc_set_error(&g->err, DC_ERR_ARG,
                            "backward: '%s' is a %s node, not a loss (use dc_graph_backward_from)",
                            n->name, dc_op_names[n->op]);
    DC_TRY(run_backward(g, loss_node));
    n->seed_scale = 1.0f;
    return walk_backward(g, loss_node, mode);
}

dc_status dc_graph_backward_from(dc_graph *g, int node, const float *seed, dc_relu_mode mode) {
    DC_TRY(check_node(g, node, "backward_from"));
    dc_node *n = &g->nodes[node];
    if (!seed) return dc_set_error(&g->err, DC_ERR_ARG, "backward_from '%s': seed is NULL", n->name);
    if (is_scalar_loss(n->op)) {
        DC_TRY(run_backward(g, node));
        n->seed_scale = seed[0];
        return walk_backward(g, node, mode);
    }
    if (!n->requires_grad)
        return dc_set_error(&g->err, DC_ERR_ARG,
                            "backward_from '%s': no gradient flows here (no parameters upstream; "
                            "call dc_graph_require_grad on the input)",
                            n->name);
    DC_TRY(run_backward(g, node));
    if (DC_BE(g->be, write, dc_tensor_ptr(n->grad), seed, n->numel * 4) != DC_OK)
        return be_fail(g, n, "seed");
    return walk_backward(g, node, mode);
}

dc_status dc_graph_read(dc_graph *g, int node, float *host) {
    DC_TRY(check_node(g, node, "read"));
    if (!host) return dc_set_error(&g->err, DC_ERR_ARG, "read: host buffer is NULL");
    dc_node *n = &g->nodes[node];
    if (n->folded) { /* image by image out of the concatenation (not on a hot path) */
        const size_t per = n->numel / (size_t)g->batch,
                     stride = g->nodes[n->fold_into].numel / (size_t)g->batch;
        for (int i = 0; i < g->batch; i++)
            if (DC_BE(g->be, read, dc_ptr_at(dc_tensor_ptr(n->out), (size_t)i * stride),
                      host + (size_t)i * per, per * 4) != DC_OK)
                return be_fail(g, n, "read");
        return DC_OK;
    }
    if (DC_BE(g->be, read, dc_tensor_ptr(n->out), host, n->numel * 4) != DC_OK)
        return be_fail(g, n, "read");
    return DC_OK;
}

dc_status dc_graph_read_grad(dc_graph *g, int node, float *host) {
    DC_TRY(check_node(g, node, "read_grad"));
    dc_node *n = &g->nodes[node];
    if (!n->grad.buf)
        return dc_set_error(&g->err, DC_ERR_ARG,
                            "read_grad: node '%s' keeps no gradient (dc_graph_require_grad)",
                            n->name);
    if (!host) return dc_set_error(&g->err, DC_ERR_ARG, "read_grad: host buffer is NULL");
    if (DC_BE(g->be, read, dc_tensor_ptr(n->grad), host, n->numel * 4) != DC_OK)
        return be_fail(g, n, "read");
    return DC_OK;
}

int dc_graph_find(const dc_graph *g, const char *name) {
    if (!g || !name) return -1;
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->nodes[i].name, name)) return i;
    return -1;
}

const char *dc_graph_node_name(const dc_graph *g, int node) {
    return (g && node >= 0 && node < g->n) ? g->nodes[node].name : NULL;
}
const char *dc_graph_node_op(const dc_graph *g, int node) {
    return (g && node >= 0 && node < g->n) ? dc_op_names[g->nodes[node].op] : NULL;
}

int dc_graph_node_shape(const dc_graph *g, int node, int *shape) {
    if (!g || node < 0 || node >= g->n) return 0;
    if (shape) memcpy(shape, g->nodes[node].shape, sizeof(int) * g->nodes[node].ndim);
    return g->nodes[node].ndim;
}

dc_tensor dc_graph_value(const dc_graph *g, int node) {
    dc_tensor t = {0};
    /* a folded input has no contiguous tensor: read it with dc_graph_read */
    if (g && node >= 0 && node < g->n && !g->nodes[node].folded) t = g->nodes[node].out;
    return t;
}
dc_tensor dc_graph_grad(const dc_graph *g, int node) {
    dc_tensor t = {0};
    if (g && node >= 0 && node < g->n) t = g->nodes[node].grad;
    return t;
}

dc_status dc_graph_gemm_plan(const dc_graph *g, dc_gemm_visitor fn, void *ctx) {
    if (!g || !fn) return DC_ERR_ARG;
    for (int i = 0; i < g->n; i++) {
        const dc_node *n = &g->nodes[i];
        if (n->op == DC_OP_CONV2D || n->op == DC_OP_CONV_T2D)
            dc_conv_gemm_plan(g, n, i, fn, ctx);
        else if (n->op == DC_OP_DENSE)
            dc_dense_gemm_plan(g, n, i, fn, ctx);
    }
    return DC_OK;
}

dc_status dc_graph_node_info(const dc_graph *g, int node, dc_node_info *info) {
    if (!g || !info || node < 0 || node >= g->n) return DC_ERR_ARG;
    const dc_node *n = &g->nodes[node];
    memset(info, 0, sizeof *info);
    info->op = n->op;
    info->op_name = dc_op_names[n->op];
    info->name = n->name;
    memcpy(info->inputs, n->in, sizeof n->in);
    info->n_inputs = n->n_in;
    info->ndim = n->ndim;
    memcpy(info->shape, n->shape, sizeof n->shape);
    info->k = n->k;
    info->stride = n->stride;
    info->pad = n->pad;
    info->out_pad = n->out_pad;
    info->out_ch = n->out_ch;
    info->alpha = n->alpha;
    info->p = n->p;
    info->eps = n->eps;
    info->momentum = n->momentum;
    memcpy(info->param, n->param, sizeof n->param);
    info->tied_to = n->tied_to;
    info->pool_node = n->pool_node;
    return DC_OK;
}

dc_status dc_graph_set_noise_std(dc_graph *g, int node, float std) {
    if (!g || node < 0 || node >= g->n) return DC_ERR_ARG;
    dc_node *n = &g->nodes[node];
    if (n->op != DC_OP_GAUSSIAN_NOISE && !(n->op == DC_OP_REPARAM && n->prior_eval))
        return dc_set_error(&g->err, DC_ERR_ARG,
                            "set_noise_std: '%s' is not a gaussian_noise node or a reparameterize "
                            "node with a prior",
                            n->name);
    n->std = std;
    return DC_OK;
}

double dc_graph_forward_flops(const dc_graph *g) {
    double f = 0;
    for (int i = 0; g && i < g->n; i++)
        if (dc_op_impls[g->nodes[i].op]->flops) f += dc_op_impls[g->nodes[i].op]->flops(g, &g->nodes[i]);
    return f;
}

void dc_graph_print_summary(const dc_graph *g, void *file) {
    FILE *f = file ? (FILE *)file : stdout;
    size_t total = 0;
    for (int i = 0; g && i < g->n; i++) {
        const dc_node *n = &g->nodes[i];
        char shape[64], ins[32] = "";
        size_t np = 0;
        for (int s = 0; s < 4; s++) {
            const dc_param *q = n->param[s] >= 0 ? dc_params_get(g->params, n->param[s]) : NULL;
            if (!q || !q->trainable) continue;
            if (s == 0 && n->tied_to != -1) continue; /* shared weight counted once */
            np += q->numel;
        }
        total += np;
        for (int j = 0, u = 0; j < n->n_in; j++)
            u += snprintf(ins + u, sizeof ins - (size_t)u, j ? ",%d" : "%d", n->in[j]);
        fprintf(f, "%3d %-18s %-12s %-20s <- %-8s params %zu%s\n", i, dc_op_names[n->op], n->name,
                dc_shape_str(n->ndim, n->shape, shape, sizeof shape), ins, np,
                n->tied_to != -1 ? " (weight tied)" : "");
    }
    fprintf(f, "total trainable parameters: %zu\n", total);
}
