/* The classifier: `blocks` x [2 x (conv -> batch norm -> relu), maxpool 2 between blocks] ->
 * global average pool -> dropout -> dense -> softmax cross-entropy. */
#include "internal.h"
#include "models/kinds.h"

void dc_kind_classifier_defaults(dc_model_spec *s) {
    s->mask = DC_MASK_NONE;
    s->noise = 0.0f;
    s->base = 32;
    s->blocks = 3;
    s->batchnorm = 1;
}

dc_status dc_kind_classifier_check(const dc_model_spec *s, dc_error *err) {
    if (s->classes < 2)
        return dc_set_error(err, DC_ERR_ARG, "classifier: --classes %d must be >= 2", s->classes);
    return DC_OK;
}

void dc_kind_classifier_build(dc_model *m) {
    const dc_model_spec *s = &m->spec;
    dc_graph *g = m->g;
    const int C = s->channels, S = s->size;
    m->x = dc_input(g, "x", C, S, S);
    m->labels = dc_input_int(g, "labels");
    /* the explanation methods read d(score)/d(pixel); for a 1- or 3-channel input this
     * costs one small GEMM per step */
    dc_graph_require_grad(g, m->x);
    int h = m->x, ch = s->base;
    char name[32];
    for (int b = 0; b < s->blocks; b++) {
        for (int j = 0; j < 2; j++) {
            snprintf(name, sizeof name, "conv%d_%d", b + 1, j + 1);
            dc_name(g, name);
            h = dc_conv2d_ex(g, h, ch, s->kernel, 1, s->kernel / 2, !s->batchnorm);
            if (s->batchnorm) {
                snprintf(name, sizeof name, "bn%d_%d", b + 1, j + 1);
                dc_name(g, name);
                h = dc_batchnorm2d(g, h, 0.1f, 1e-5f);
            }
            snprintf(name, sizeof name, "relu%d_%d", b + 1, j + 1);
            dc_name(g, name);
            h = dc_relu(g, h);
        }
        m->last_conv = h;
        if (b + 1 < s->blocks) {
            snprintf(name, sizeof name, "pool%d", b + 1);
            dc_name(g, name);
            h = dc_maxpool2d(g, h, 2, 2, 0);
        }
        ch *= 2;
    }
    dc_name(g, "gap");
    h = dc_global_avgpool(g, h);
    if (s->dropout > 0) h = dc_dropout(g, h, s->dropout);
    dc_name(g, "fc");
    m->out = dc_dense(g, h, s->classes);
    dc_name(g, "loss");
    m->loss = dc_softmax_xent_loss(g, m->out, m->labels);
}
