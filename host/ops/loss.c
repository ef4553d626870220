/* Losses (scalar nodes) and softmax. Each loss computes its value and its gradient in
 * one kernel during forward; backward scales that saved gradient by d(root)/d(loss),
 * which is known on the host (losses sit at the end of the graph). */
#include "graph_internal.h"

static int same_shape(const dc_node *a, const dc_node *b) {
    return a->numel == b->numel && a->ndim == b->ndim && !memcmp(a->shape, b->shape, sizeof(int) * a->ndim);
}

static int scalar_node(dc_graph *g, dc_op op, const int *in, int n_in) {
    int shape[1] = {1};
    return dc_graph_add_node(g, op, in, n_in, 1, shape);
}

/* The checks and node of the element-wise losses (mse, bce_tanh): prediction, target and
 * optional weight of one shape. */
static int pixel_loss(dc_graph *g, dc_op op, const char *what, int pred, int target, int weight) {
    if (dc_graph_check_input(g, what, pred) || dc_graph_check_input(g, what, target)) return -1;
    if (weight >= 0 && dc_graph_check_input(g, what, weight)) return -1;
    dc_node *p = &g->nodes[pred], *t = &g->nodes[target];
    char a[64], b[64];
    if (!same_shape(p, t))
        return dc_graph_fail(g, DC_ERR_SHAPE, "%s: prediction '%s' %s and target '%s' %s differ",
                             what, p->name, dc_shape_str(p->ndim, p->shape, a, sizeof a), t->name,
                             dc_shape_str(t->ndim, t->shape, b, sizeof b));
    if (weight >= 0 && !same_shape(p, &g->nodes[weight]))
        return dc_graph_fail(g, DC_ERR_SHAPE, "%s: weight '%s' %s must match prediction %s", what,
                             g->nodes[weight].name,
                             dc_shape_str(g->nodes[weight].ndim, g->nodes[weight].shape, a,
                                          sizeof a),
                             dc_shape_str(p->ndim, p->shape, b, sizeof b));
    int in[3] = {pred, target, weight};
    const size_t numel = p->numel; /* p may move when the node array grows below */
    int id = scalar_node(g, op, in, weight >= 0 ? 3 : 2);
    if (id >= 0) g->nodes[id].saved_numel[0] = numel;
    return id;
}

int dc_mse_loss(dc_graph *g, int pred, int target, int weight) {
    return pixel_loss(g, DC_OP_MSE_LOSS, "mse_loss", pred, target, weight);
}

static dc_status mse_forward(dc_graph *g, dc_node *n) {
    dc_ptr w = n->n_in > 2 ? dc_node_out(g, n->in[2]) : dc_null_ptr();
    return DC_BE(g->be, mse, dc_node_out(g, n->in[0]), dc_node_out(g, n->in[1]), w,
                 g->nodes[n->in[0]].numel, dc_tensor_ptr(n->out), dc_tensor_ptr(n->saved[0]), 1.0f);
}

/* d(root)/d(pred) += seed_scale * saved gradient (the target gets no gradient) */
static dc_status loss_backward1(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    if (!dc_node_has_grad(g, n->in[0]) || n->seed_scale == 0.0f) return DC_OK;
    return DC_BE(g->be, axpy, dc_node_grad(g, n->in[0]), dc_tensor_ptr(n->saved[0]),
                 g->nodes[n->in[0]].numel, n->seed_scale);
}

int dc_bce_tanh_loss(dc_graph *g, int x, int target, int weight) {
    return pixel_loss(g, DC_OP_BCE_TANH_LOSS, "bce_tanh_loss", x, target, weight);
}

static dc_status bce_tanh_forward(dc_graph *g, dc_node *n) {
    dc_ptr w = n->n_in > 2 ? dc_node_out(g, n->in[2]) : dc_null_ptr();
    return DC_BE(g->be, bce_tanh, dc_node_out(g, n->in[0]), dc_node_out(g, n->in[1]), w,
                 g->nodes[n->in[0]].numel, dc_tensor_ptr(n->out), dc_tensor_ptr(n->saved[0]),
                 1.0f);
}

int dc_softmax_xent_loss(dc_graph *g, int logits, int labels) {
    if (dc_graph_check_input(g, "softmax_xent_loss", logits) ||
        dc_graph_check_input(g, "softmax_xent_loss", labels))
        return -1;
    dc_node *l = &g->nodes[logits], *y = &g->nodes[labels];
    if (y->op != DC_OP_INPUT_INT)
        return dc_graph_fail(g, DC_ERR_ARG, "softmax_xent_loss: labels '%s' must be an integer input",
                             y->name);
    if (l->numel / (size_t)g->batch < 2)
        return dc_graph_fail(g, DC_ERR_SHAPE, "softmax_xent_loss: logits '%s' need at least 2 classes",
                             l->name);
    int in[2] = {logits, labels};
    int id = scalar_node(g, DC_OP_XENT_LOSS, in, 2);
    if (id < 0) return -1;
    l = &g->nodes[logits]; /* the node array may have moved */
    g->nodes[id].saved_numel[0] = l->numel; /* d loss / d logits */
    g->nodes[id].saved_numel[1] = l->numel; /* probabilities */
    return id;
}

static dc_status xent_forward(dc_graph *g, dc_node *n) {
    dc_node *l = &g->nodes[n->in[0]];
    const int k = (int)(l->numel / (size_t)g->batch);
    return DC_BE(g->be, softmax_xent, dc_tensor_ptr(l->out), dc_node_out(g, n->in[1]), g->batch, k,
                 dc_tensor_ptr(n->saved[1]), dc_tensor_ptr(n->out), dc_tensor_ptr(n->saved[0]), 1.0f);
}

int dc_gaussian_kl_loss(dc_graph *g, int mu, int logvar) {
    if (dc_graph_check_input(g, "gaussian_kl_loss", mu) ||
        dc_graph_check_input(g, "gaussian_kl_loss", logvar))
        return -1;
    dc_node *m = &g->nodes[mu], *v = &g->nodes[logvar];
    if (!same_shape(m, v)) {
        char a[64], b[64];
        return dc_graph_fail(g, DC_ERR_SHAPE, "gaussian_kl_loss: mu '%s' %s and logvar '%s' %s differ",
                             m->name, dc_shape_str(m->ndim, m->shape, a, sizeof a), v->name,
                             dc_shape_str(v->ndim, v->shape, b, sizeof b));
    }
    int in[2] = {mu, logvar};
    int id = scalar_node(g, DC_OP_KL_LOSS, in, 2);
    if (id < 0) return -1;
    m = &g->nodes[mu]; /* the node array may have moved */
    g->nodes[id].saved_numel[0] = m->numel;
    g->nodes[id].saved_numel[1] = m->numel;
    return id;
}

static dc_status kl_forward(dc_graph *g, dc_node *n) {
    dc_node *m = &g->nodes[n->in[0]];
    return DC_BE(g->be, gauss_kl, dc_tensor_ptr(m->out), dc_node_out(g, n->in[1]), g->batch,
                 (int)(m->numel / (size_t)g->batch), dc_tensor_ptr(n->out), dc_tensor_ptr(n->saved[0]),
                 dc_tensor_ptr(n->saved[1]), 1.0f);
}

static dc_status kl_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    for (int i = 0; i < 2; i++)
        if (dc_node_has_grad(g, n->in[i]) && n->seed_scale != 0.0f)
            DC_TRY(DC_BE(g->be, axpy, dc_node_grad(g, n->in[i]), dc_tensor_ptr(n->saved[i]),
                         g->nodes[n->in[i]].numel, n->seed_scale));
    return DC_OK;
}

static int is_scalar(const dc_node *n) { return n->ndim == 1 && n->shape[0] == 1; }

int dc_loss_sum(dc_graph *g, int a, float ca, int b, float cb) {
    if (dc_graph_check_input(g, "loss_sum", a) || dc_graph_check_input(g, "loss_sum", b)) return -1;
    if (!is_scalar(&g->nodes[a]) || !is_scalar(&g->nodes[b]))
        return dc_graph_fail(g, DC_ERR_SHAPE, "loss_sum: '%s' and '%s' must both be scalar losses",
                             g->nodes[a].name, g->nodes[b].name);
    int in[2] = {a, b};
    int id = scalar_node(g, DC_OP_LOSS_SUM, in, 2);
    if (id < 0) return -1;
    g->nodes[id].coef[0] = ca;
    g->nodes[id].coef[1] = cb;
    return id;
}

static dc_status sum_forward(dc_graph *g, dc_node *n) {
    dc_backend *be = g->be;
    dc_ptr y = dc_tensor_ptr(n->out);
    DC_TRY(DC_BE(be, fill, y, 1, 0.0f));
    DC_TRY(DC_BE(be, axpy, y, dc_node_out(g, n->in[0]), 1, n->coef[0]));
    return DC_BE(be, axpy, y, dc_node_out(g, n->in[1]), 1, n->coef[1]);
}

static dc_status sum_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    g->nodes[n->in[0]].seed_scale += n->coef[0] * n->seed_scale;
    g->nodes[n->in[1]].seed_scale += n->coef[1] * n->seed_scale;
    return DC_OK;
}

int dc_softmax(dc_graph *g, int logits) {
    if (dc_graph_check_input(g, "softmax", logits)) return -1;
    dc_node *l = &g->nodes[logits];
    if (l->op == DC_OP_INPUT_INT || l->ndim < 2)
        return dc_graph_fail(g, DC_ERR_ARG, "softmax: '%s' is not a float tensor", l->name);
    return dc_graph_add_node(g, DC_OP_SOFTMAX, &logits, 1, l->ndim, l->shape);
}

static dc_status softmax_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, softmax, dc_node_out(g, n->in[0]), dc_tensor_ptr(n->out), g->batch,
                 (int)(n->numel / (size_t)g->batch));
}

static dc_status softmax_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    return dc_set_error(&g->err, DC_ERR_UNSUPPORTED,
                        "softmax '%s': no backward; train with softmax_xent_loss on the logits and "
                        "explain from the logits",
                        n->name);
}

const dc_op_impl dc_op_mse = {mse_forward, loss_backward1, NULL, NULL};
const dc_op_impl dc_op_bce_tanh = {bce_tanh_forward, loss_backward1, NULL, NULL};
const dc_op_impl dc_op_xent = {xent_forward, loss_backward1, NULL, NULL};
const dc_op_impl dc_op_kl = {kl_forward, kl_backward, NULL, NULL};
const dc_op_impl dc_op_loss_sum = {sum_forward, sum_backward, NULL, NULL};
const dc_op_impl dc_op_softmax = {softmax_forward, softmax_backward, NULL, NULL};
