/* reshape/flatten (views), elementwise add, multiply and where, gaussian noise, the VAE
 * reparameterisation. */
#include "graph_internal.h"

int dc_reshape(dc_graph *g, int x, int c, int h, int w) {
    if (dc_graph_check_input(g, "reshape", x)) return -1;
    dc_node *in = &g->nodes[x];
    size_t want = (size_t)g->batch * (size_t)(c > 0 ? c : 0) * (size_t)(h > 0 ? h : 0) *
                  (size_t)(w > 0 ? w : 0);
    if (in->op == DC_OP_INPUT_INT || want != in->numel) {
        char a[64];
        return dc_graph_fail(g, DC_ERR_SHAPE,
                             "reshape: '%s' %s has %zu elements, [%d, %d, %d, %d] needs %zu", in->name,
                             dc_shape_str(in->ndim, in->shape, a, sizeof a), in->numel, g->batch, c, h,
                             w, want);
    }
    int shape[4] = {g->batch, c, h, w};
    int id = dc_graph_add_node(g, DC_OP_RESHAPE, &x, 1, 4, shape);
    if (id >= 0) g->nodes[id].alias = 1;
    return id;
}

int dc_flatten(dc_graph *g, int x) {
    if (dc_graph_check_input(g, "flatten", x)) return -1;
    return dc_reshape(g, x, (int)(g->nodes[x].numel / (size_t)g->batch), 1, 1);
}

/* Views share the input's memory and gradient: nothing to run. */
static dc_status view_forward(dc_graph *g, dc_node *n) {
    (void)g;
    (void)n;
    return DC_OK;
}

/* 0 when a and b are float tensors of one shape, otherwise records an error and returns -1 */
static int same_float_shape(dc_graph *g, int a, int b, dc_op op) {
    if (dc_graph_check_input(g, dc_op_names[op], a) || dc_graph_check_input(g, dc_op_names[op], b))
        return -1;
    dc_node *na = &g->nodes[a], *nb = &g->nodes[b];
    if (na->numel != nb->numel || na->ndim != nb->ndim ||
        memcmp(na->shape, nb->shape, sizeof(int) * na->ndim)) {
        char s1[64], s2[64];
        return dc_graph_fail(g, DC_ERR_SHAPE, "%s: '%s' %s and '%s' %s differ", dc_op_names[op],
                             na->name, dc_shape_str(na->ndim, na->shape, s1, sizeof s1), nb->name,
                             dc_shape_str(nb->ndim, nb->shape, s2, sizeof s2));
    }
    if (na->op == DC_OP_INPUT_INT || nb->op == DC_OP_INPUT_INT)
        return dc_graph_fail(g, DC_ERR_ARG, "%s: integer inputs cannot be combined", dc_op_names[op]);
    return 0;
}

static int binary_build(dc_graph *g, int a, int b, dc_op op) {
    if (same_float_shape(g, a, b, op)) return -1;
    int in[2] = {a, b};
    return dc_graph_add_node(g, op, in, 2, g->nodes[a].ndim, g->nodes[a].shape);
}

int dc_add(dc_graph *g, int a, int b) { return binary_build(g, a, b, DC_OP_ADD); }
int dc_mul(dc_graph *g, int a, int b) { return binary_build(g, a, b, DC_OP_MUL); }

static dc_status add_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, binary, 0, dc_tensor_ptr(n->out), dc_node_out(g, n->in[0]),
                 dc_node_out(g, n->in[1]), n->numel);
}

static dc_status add_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    for (int i = 0; i < 2; i++)
        if (dc_node_has_grad(g, n->in[i]))
            DC_TRY(DC_BE(g->be, axpy, dc_node_grad(g, n->in[i]), dc_tensor_ptr(n->grad), n->numel, 1.0f));
    return DC_OK;
}

static dc_status mul_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, binary, 1, dc_tensor_ptr(n->out), dc_node_out(g, n->in[0]),
                 dc_node_out(g, n->in[1]), n->numel);
}

static dc_status mul_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    for (int i = 0; i < 2; i++)
        if (dc_node_has_grad(g, n->in[i]))
            DC_TRY(DC_BE(g->be, binary, 2, dc_node_grad(g, n->in[i]), dc_tensor_ptr(n->grad),
                         dc_node_out(g, n->in[1 - i]), n->numel));
    return DC_OK;
}

/* where: y = mask > 0.5 ? a : b per pixel, one mask plane per image shared by the channels */
int dc_where(dc_graph *g, int mask, int a, int b) {
    if (same_float_shape(g, a, b, DC_OP_WHERE) || dc_graph_check_input(g, "where", mask))
        return -1;
    const dc_node *nm = &g->nodes[mask], *na = &g->nodes[a];
    if (na->ndim != 4 || nm->ndim != 4 || nm->op == DC_OP_INPUT_INT || NC(nm) != 1 ||
        NH(nm) != NH(na) || NW(nm) != NW(na)) {
        char s1[64], s2[64];
        return dc_graph_fail(g, DC_ERR_SHAPE,
                             "where: the mask '%s' %s must be one float plane per image of "
                             "'%s' %s, [N, 1, H, W]",
                             nm->name, dc_shape_str(nm->ndim, nm->shape, s1, sizeof s1), na->name,
                             dc_shape_str(na->ndim, na->shape, s2, sizeof s2));
    }
    int in[3] = {mask, a, b};
    return dc_graph_add_node(g, DC_OP_WHERE, in, 3, 4, na->shape);
}

static dc_status where_forward(dc_graph *g, dc_node *n) {
    return DC_BE(g->be, select_planes, 0, dc_node_out(g, n->in[0]), 0.5f, dc_node_out(g, n->in[1]),
                 dc_node_out(g, n->in[2]), dc_tensor_ptr(n->out), g->batch, NC(n),
                 NH(n) * NW(n));
}

/* the mask gets no gradient (a step function's is zero almost everywhere) */
static dc_status where_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    const dc_ptr none = {0};
    const int ga = dc_node_has_grad(g, n->in[1]), gb = dc_node_has_grad(g, n->in[2]);
    if (!ga && !gb) return DC_OK;
    return DC_BE(g->be, select_planes, 1, dc_node_out(g, n->in[0]), 0.5f,
                 ga ? dc_node_grad(g, n->in[1]) : none, gb ? dc_node_grad(g, n->in[2]) : none,
                 dc_tensor_ptr(n->grad), g->batch, NC(n), NH(n) * NW(n));
}

int dc_gaussian_noise(dc_graph *g, int x, float std, int always) {
    if (dc_graph_check_input(g, "gaussian_noise", x)) return -1;
    dc_node *in = &g->nodes[x];
    if (!(std >= 0.0f))
        return dc_graph_fail(g, DC_ERR_ARG, "gaussian_noise: std %g must be >= 0", (double)std);
    int id = dc_graph_add_node(g, DC_OP_GAUSSIAN_NOISE, &x, 1, in->ndim, in->shape);
    if (id < 0) return -1;
    g->nodes[id].std = std;
    g->nodes[id].always = always;
    g->nodes[id].saved_numel[0] = g->nodes[x].numel; /* `in` may have moved */
    return id;
}

static dc_status noise_forward(dc_graph *g, dc_node *n) {
    dc_backend *be = g->be;
    dc_ptr x = dc_node_out(g, n->in[0]), y = dc_tensor_ptr(n->out), eps = dc_tensor_ptr(n->saved[0]);
    if (n->std == 0.0f || !(g->train || n->always)) return DC_BE(be, copy, y, x, n->numel);
    DC_TRY(DC_BE(be, randn, eps, n->numel, dc_graph_node_seed(g, n), 0.0f, n->std));
    return DC_BE(be, binary, 0, y, x, eps, n->numel);
}

static dc_status pass_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    if (!dc_node_has_grad(g, n->in[0])) return DC_OK;
    return DC_BE(g->be, axpy, dc_node_grad(g, n->in[0]), dc_tensor_ptr(n->grad), n->numel, 1.0f);
}

int dc_reparameterize(dc_graph *g, int mu, int logvar, int always) {
    int id = binary_build(g, mu, logvar, DC_OP_REPARAM);
    if (id < 0) return -1;
    g->nodes[id].always = always;
    g->nodes[id].saved_numel[0] = g->nodes[id].numel;
    return id;
}

int dc_reparameterize_prior(dc_graph *g, int mu, int logvar, float std) {
    if (!(std >= 0.0f))
        return dc_graph_fail(g, DC_ERR_ARG, "reparameterize: prior std %g must be >= 0", (double)std);
    int id = dc_reparameterize(g, mu, logvar, 0);
    if (id < 0) return -1;
    g->nodes[id].prior_eval = 1;
    g->nodes[id].std = std;
    return id;
}

static dc_status reparam_forward(dc_graph *g, dc_node *n) {
    dc_backend *be = g->be;
    dc_ptr eps = dc_tensor_ptr(n->saved[0]);
    /* a conditional model's prior: mu and logvar (from the full image) play no part */
    if (n->prior_eval && !g->train)
        return DC_BE(be, randn, dc_tensor_ptr(n->out), n->numel, dc_graph_node_seed(g, n), 0.0f,
                     n->std);
    if (g->train || n->always)
        DC_TRY(DC_BE(be, randn, eps, n->numel, dc_graph_node_seed(g, n), 0.0f, 1.0f));
    else
        DC_TRY(DC_BE(be, fill, eps, n->numel, 0.0f));
    return DC_BE(be, reparam_fwd, dc_node_out(g, n->in[0]), dc_node_out(g, n->in[1]), eps,
                 dc_tensor_ptr(n->out), n->numel);
}

static dc_status reparam_backward(dc_graph *g, dc_node *n, dc_relu_mode mode) {
    (void)mode;
    dc_ptr dmu = dc_node_grad(g, n->in[0]), dlv = dc_node_grad(g, n->in[1]);
    if (!dmu.buf || !dlv.buf)
        return dc_set_error(&g->err, DC_ERR_STATE,
                            "reparameterize '%s': mu and logvar must both carry gradients", n->name);
    return DC_BE(g->be, reparam_bwd, dc_node_out(g, n->in[1]), dc_tensor_ptr(n->saved[0]),
                 dc_tensor_ptr(n->grad), dmu, dlv, n->numel);
}

const dc_op_impl dc_op_view = {view_forward, NULL, NULL, NULL};
const dc_op_impl dc_op_add = {add_forward, add_backward, NULL, NULL};
const dc_op_impl dc_op_mul = {mul_forward, mul_backward, NULL, NULL};
const dc_op_impl dc_op_where = {where_forward, where_backward, NULL, NULL};
const dc_op_impl dc_op_noise = {noise_forward, pass_backward, NULL, NULL};
const dc_op_impl dc_op_reparam = {reparam_forward, reparam_backward, NULL, NULL};
