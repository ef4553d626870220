/* Graph internals shared by host/graph.c and the op files in host/ops/. */
#ifndef DECONV_GRAPH_INTERNAL_H
#define DECONV_GRAPH_INTERNAL_H

#include "internal.h"

typedef enum dc_op {
#define X(e, name, impl) DC_OP_##e,
#include "ops.def"
#undef X
    DC_OP_COUNT
} dc_op;

#define DC_MAX_SAVED 4

typedef struct dc_node {
    dc_op op;
    char name[48];
    char param_base[48];           /* its parameters' names: NAME.weight, ... (dc_graph_share_scope) */
    int in[3];
    int n_in;
    int ndim;
    int shape[DC_MAX_DIMS];
    size_t numel;
    dc_tensor out, grad;           /* grad.buf == NULL: no gradient kept */
    dc_tensor saved[DC_MAX_SAVED]; /* switches, statistics, masks, loss gradients */
    size_t saved_numel[DC_MAX_SAVED];
    int param[4];                  /* dc_params indices: weight, bias, (bn) running stats */
    /* attributes */
    int k, stride, pad, out_pad, out_ch, rows;
    float alpha, p, eps, momentum, std, coef[2];
    int always, tied_to, pool_node;
    int prior_eval;                /* reparameterize: eval mode draws std * N(0, 1) */
    dc_win2d win;                  /* conv/pool geometry (see each op) */
    /* analysis */
    int requires_grad, wants_grad, alias; /* alias: output is a view of input 0 */
    /* activation fusion (dc_graph_set_fusion): a conv with has_fact applies fact itself;
     * the activation node it absorbed is `fused` (an alias, skipped forward and backward) */
    int has_fact, fused;
    dc_fused_act fact;
    /* a float input folded into the concatenation that is its only consumer (and that needs
     * no gradient): it has no buffer of its own; its values live in channels fold_coff..
     * of node fold_into's output, where dc_graph_set_input writes them */
    int folded, fold_into, fold_coff;
    int keep_buffer; /* an input never folded (dc_graph_keep_buffer) */
    float seed_scale;              /* scalar nodes: d(root)/d(node), host-side */
} dc_node;

struct dc_graph {
    dc_backend *be;
    dc_params *params;
    int batch;
    dc_error err;
    int failed;
    dc_node *nodes;
    int n, cap;
    char next_name[48];
    char scope[16]; /* dc_graph_share_scope: node names SCOPE/NAME, parameters NAME.* */
    int counters[DC_OP_COUNT];
    dc_buffer *act_arena, *grad_arena, *work;
    size_t act_elems, grad_elems, work_elems;
    int train, fuse;
    uint64_t seed;
    int finalized;
    int *reach; /* scratch for backward */
    /* Synchronised batch norm (data-parallel training, host/dist/mpi.c): when set, the
     * training-mode batch norm sums its per-channel statistics over every rank with it
     * (values[0..n) in place), so they are the global batch's. NULL: per-rank statistics. */
    dc_status (*batch_sum)(void *user, double *values, int n, dc_error *err);
    void *batch_sum_user;
    /* Called as backward passes each node (i falls from the root to 0; skipped nodes too):
     * a parameter's gradient is complete once i is at or below the lowest node that uses
     * it, so data-parallel training starts that bucket's all-reduce while backward goes on
     * (host/dist/mpi.c). An error stops the backward pass. NULL: nobody listens. */
    dc_status (*backward_passed)(void *user, int node, dc_error *err);
    void *backward_passed_user;
};

/* Per-op behaviour, one entry per op in ops.def order. */
typedef struct dc_op_impl {
    dc_status (*forward)(dc_graph *g, dc_node *n);
    dc_status (*backward)(dc_graph *g, dc_node *n, dc_relu_mode mode);
    /* elements of workspace needed (conv), and saved buffers sizes set at build time */
    size_t (*workspace)(const dc_graph *g, const dc_node *n);
    double (*flops)(const dc_graph *g, const dc_node *n);
} dc_op_impl;

extern const dc_op_impl *const dc_op_impls[DC_OP_COUNT];
extern const char *const dc_op_names[DC_OP_COUNT];

/* Builder helpers (graph.c) */
int dc_graph_add_node(dc_graph *g, dc_op op, const int *inputs, int n_in, int ndim,
                      const int *shape);
int dc_graph_fail(dc_graph *g, dc_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Input check: returns 0 if ok, otherwise records an error and returns -1. */
int dc_graph_check_input(dc_graph *g, const char *op, int x);
/* Declare NAME.suffix for node n. */
int dc_graph_param(dc_graph *g, dc_node *n, int slot, const char *suffix, int ndim,
                   const int *shape, dc_init init, int fan_in, int fan_out, int trainable,
                   int decay);
static inline dc_node *dc_node_at(dc_graph *g, int i) { return &g->nodes[i]; }
static inline dc_ptr dc_node_out(dc_graph *g, int i) { return dc_tensor_ptr(g->nodes[i].out); }
static inline dc_ptr dc_node_grad(dc_graph *g, int i) { return dc_tensor_ptr(g->nodes[i].grad); }
static inline int dc_node_has_grad(dc_graph *g, int i) { return g->nodes[i].grad.buf != NULL; }
dc_param *dc_graph_param_at(dc_graph *g, const dc_node *n, int slot);
static inline dc_ptr dc_work(dc_graph *g, size_t off) {
    dc_ptr p = {g->work, off};
    return p;
}
/* The activation fused into node n (dc_graph_set_fusion) for a call in ReLU mode `mode`,
 * written to *tmp; NULL when none. */
static inline const dc_fused_act *dc_node_act(const dc_node *n, dc_relu_mode mode,
                                              dc_fused_act *tmp) {
    if (!n->has_fact) return NULL;
    *tmp = n->fact;
    tmp->mode = (int)mode;
    return tmp;
}
/* The GEMM products of one training step of a conv / transposed-conv node (conv.c) and of a
 * dense node (dense.c); see dc_graph_gemm_plan. */
void dc_conv_gemm_plan(const dc_graph *g, const dc_node *n, int id, dc_gemm_visitor fn, void *ctx);
void dc_dense_gemm_plan(const dc_graph *g, const dc_node *n, int id, dc_gemm_visitor fn, void *ctx);
/* Seed for node n's randomness this step. */
uint64_t dc_graph_node_seed(const dc_graph *g, const dc_node *n);

/* Channels/height/width of a 4-D node output. */
#define NC(n) ((n)->shape[1])
#define NH(n) ((n)->shape[2])
#define NW(n) ((n)->shape[3])

#endif
