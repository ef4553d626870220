/* Elementwise activations. ReLU's backward honours the graph's relu mode (normal,
 * guided, deconvnet), which is how the explanation methods are expressed. */
#include "graph_internal.h"

static int act_build(dc_graph *g, int x, dc_op op, float alpha) {
    if (dc_graph_check_input(g, dc_op_names[op], x)) return -1;
    dc_node *in = &g->nodes[x];
    if (in->op == DC_OP_INPUT_INT || in->ndim == 1)
        return dc_graph_fail(g, DC_ERR_ARG, "%s: input '%s' is not a float tensor", dc_op_names[op],
                             in->name);
    int id = dc_graph_add_node(g, op, &x, 1, in->ndim, in->shape);
    if (id >= 0) g->nodes[id].alpha = alpha;
    return id;
}

int dc_relu(dc_graph *g, int x) { return act_build(g, x, DC_OP_RELU, 0.0f); }
int dc_leaky_relu(dc_graph *g, int x, float slope) { return act_build(g, x, DC_OP_LEAKY_RELU, slope); }
int dc_tanh(dc_graph *g, int x) { return act_build(g, x, DC_OP_TANH, 0.0f); }
int dc_sigmoid(dc_graph *g, int x) { return act_build(g, x, DC_OP_SIGMOID, 0.0f); }
/* SiLU is never fused into a convolution or a norm: the fusion reads the backward rule from
 * the sign of the activated output, which only ReLU-like activations allow (graph.c fuses
 * DC_OP_RELU / DC_OP_LEAKY_RELU nodes only). */
int dc_silu(dc_graph *g, int x) { return act_build(g, x, DC_OP_SILU, 0.0f); }

static int act_kind(dc_op op) {
    switch (op) {
    case DC_OP_RELU: return DC_ACT_RELU;
    case DC_OP_LEAKY_RELU: return DC_ACT_LEAKY_RELU;
    case DC_OP_TANH: return DC_ACT_TANH;
    case DC_OP_SILU: return DC_ACT_SILU;
    default: return DC_ACT_SIGMOID;
    }
}

static dc_status act_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, act_fwd, act_kind(n->op), n->alpha, dc_node_out(g, n->in[0]),
                 dc_tensor_ptr(n->out), n->numel);
}

static dc_status act_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    if (!dc_node_has_grad(g, n->in[0])) return DC_OK;
    return DC_BE(g->be, act_bwd, act_kind(n->op), (int)mode, n->alpha, dc_node_out(g, n->in[0]),
                 dc_tensor_ptr(n->out), dc_tensor_ptr(n->grad), dc_node_grad(g, n->in[0]), n->numel);
}

const dc_op_impl dc_op_act = {act_forward, act_backward, NULL, NULL};
