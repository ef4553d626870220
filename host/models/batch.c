/* Host-side batch preparation: gather, augment, mask, upload. */
#include "deconv/complete.h"
#include "deconv/data.h"
#include "deconv/model.h"
#include "internal.h"
#include "models/kinds.h"

dc_status dc_batch_alloc(const dc_model *m, dc_batch *b, dc_error *err) {
    memset(b, 0, sizeof *b);
    const dc_model_spec *s = &m->spec;
    b->n = m->batch;
    b->image_numel = (size_t)s->channels * s->size * s->size;
    const size_t n = (size_t)b->n * b->image_numel, planes = (size_t)b->n * s->size * s->size;
    b->x = malloc(n * sizeof(float));
    b->target = malloc(n * sizeof(float));
    b->weight = malloc(n * sizeof(float));
    b->mask = malloc(planes * sizeof(float));
    b->labels = calloc((size_t)b->n, sizeof(int32_t));
    b->index = calloc((size_t)b->n, sizeof(int32_t));
    b->t = calloc((size_t)b->n, sizeof(float));
    b->aug = calloc((size_t)b->n * DC_AUGMENT_PARAMS, sizeof(float));
    if (m->cond >= 0) b->cond = calloc(n + planes, sizeof(float));
    if (!b->x || !b->target || !b->weight || !b->mask || !b->labels || !b->index || !b->t ||
        !b->aug || (m->cond >= 0 && !b->cond)) {
        dc_batch_free(b);
        return dc_set_error(err, DC_ERR_OOM, "batch of %d images: out of memory", m->batch);
    }
    return DC_OK;
}

void dc_batch_free(dc_batch *b) {
    if (!b) return;
    free(b->x);
    free(b->target);
    free(b->weight);
    free(b->mask);
    free(b->labels);
    free(b->index);
    free(b->t);
    free(b->aug);
    free(b->cond);
    memset(b, 0, sizeof *b);
}

dc_status dc_model_fill_batch(const dc_model *m, const dc_dataset *ds, const int32_t *idx,
                              int count, const dc_augment_config *aug, uint64_t seed,
                              dc_batch *b, dc_error *err) {
    if (count > b->n)
        return dc_set_error(err, DC_ERR_ARG, "batch: %d items for a batch of %d", count, b->n);
    return dc_model_fill_batch_slice(m, ds, idx, count, b->n, aug, seed, 0, b, err);
}

dc_status dc_model_fill_batch_slice(const dc_model *m, const dc_dataset *ds, const int32_t *idx,
                                    int count, int global_n, const dc_augment_config *aug,
                                    uint64_t seed, int first_slot, dc_batch *b, dc_error *err) {
    const dc_model_spec *s = &m->spec;
    if (!ds || !idx || count <= 0 || count > global_n || first_slot < 0 ||
        first_slot + b->n > global_n)
        return dc_set_error(err, DC_ERR_ARG,
                            "batch: %d items, slots %d..%d of a global batch of %d", count,
                            first_slot, first_slot + b->n - 1, global_n);
    if (ds->c != s->channels || ds->h != s->size || ds->w != s->size)
        return dc_set_error(err, DC_ERR_SHAPE,
                            "dataset '%s' holds %dx%dx%d images, the model expects %dx%dx%d",
                            ds->source, ds->c, ds->h, ds->w, s->channels, s->size, s->size);
    if (dc_model_kind_has(s->kind, DC_KIND_CLASSIFIES) && !ds->labels)
        return dc_set_error(err, DC_ERR_ARG, "dataset '%s' has no labels; a classifier needs them",
                            ds->source);
    if (s->cond_classes > 0 && !ds->labels)
        return dc_set_error(err, DC_ERR_ARG,
                            "dataset '%s' has no labels; a model conditioned on %d classes needs "
                            "them",
                            ds->source, s->cond_classes);
    const int hw = s->size * s->size;
    for (int slot = 0; slot < b->n; slot++) {
        /* the global slot keys the item and its random draws: a rank's slice of a global
         * batch holds exactly what those slots hold in one process */
        const int global_slot = first_slot + slot;
        const int32_t item = idx[global_slot % count];
        if (item < 0 || item >= ds->n)
            return dc_set_error(err, DC_ERR_ARG, "batch: item %d outside dataset '%s' (%d items)",
                                item, ds->source, ds->n);
        const float *src = dc_dataset_image(ds, item);
        if (!src)
            return dc_set_error(err, DC_ERR_STATE,
                                "batch: item %d of dataset '%s' is not decoded on this rank "
                                "(lazily loaded: dc_dataset_decode_only)",
                                item, ds->source);
        float *tgt = b->target + (size_t)slot * b->image_numel;
        dc_rng rng;
        dc_rng_seed(&rng, dc_seed_mix(seed, (uint64_t)global_slot));
        float *params = b->aug + (size_t)slot * DC_AUGMENT_PARAMS;
        if (aug && aug->fine) {
            const float *fine_src = item < aug->fine->n ? dc_dataset_image(aug->fine, item) : NULL;
            if (!fine_src)
                return dc_set_error(err, DC_ERR_STATE,
                                    "batch: item %d of the augmentation's fine copy of '%s' is "
                                    "missing or not decoded on this rank",
                                    item, ds->source);
            dc_status st = dc_augment_image_fine(src, fine_src, tgt, s->channels, s->size, aug,
                                                 &rng, params, err);
            if (st != DC_OK) return st;
        } else if (aug) {
            dc_augment_image_params(src, tgt, s->channels, s->size, s->size, aug, &rng, params);
        } else {
            memcpy(tgt, src, b->image_numel * sizeof(float));
            memset(params, 0, sizeof(float) * DC_AUGMENT_PARAMS);
        }
        float *mask = b->mask + (size_t)slot * hw;
        dc_mask_make(s->mask, s->size, s->size, &rng, mask);
        dc_mask_apply(tgt, mask, s->channels, s->size, s->size, 0.0f, s->visible_weight,
                      s->loss_full, b->x + (size_t)slot * b->image_numel,
                      b->weight + (size_t)slot * b->image_numel);
        b->labels[slot] = ds->labels ? ds->labels[item] : 0;
        b->index[slot] = item;
    }
    const dc_kind_row *row = dc_kind_row_get(s->kind);
    return row && row->fill_batch ? row->fill_batch(m, b, seed, first_slot, err) : DC_OK;
}

dc_status dc_model_set_batch(dc_model *m, const dc_batch *b, dc_error *err) {
    dc_graph *g = m->g;
    dc_status s = DC_OK;
    if (m->x >= 0 && (s = dc_graph_set_input(g, m->x, b->x))) goto fail;
    if (m->target >= 0 && (s = dc_graph_set_input(g, m->target, b->target))) goto fail;
    if (m->weight >= 0 && (s = dc_graph_set_input(g, m->weight, b->weight))) goto fail;
    if (m->labels >= 0 && (s = dc_graph_set_input_int(g, m->labels, b->labels))) goto fail;
    if (m->index >= 0 && (s = dc_graph_set_input_int(g, m->index, b->index))) goto fail;
    if (m->time >= 0 && (s = dc_graph_set_input(g, m->time, b->t))) goto fail;
    if (m->aug >= 0 && (s = dc_graph_set_input(g, m->aug, b->aug))) goto fail;
    if (m->cond >= 0 && (s = dc_graph_set_input(g, m->cond, b->cond))) goto fail;
    if (m->hole >= 0 && (s = dc_graph_set_input(g, m->hole, b->mask))) goto fail;
    return DC_OK;
fail:
    return dc_set_error(err, s, "%s", dc_graph_error(g)->msg);
}
