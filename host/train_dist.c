/* The data-parallel parts of training (host/train_dist.h, include/deconv/train.h): each
 * rank decodes only its share of a lazily loaded training set, and what is computed over
 * the whole set (the augmentation's fill, the data fingerprint, the near-binary share)
 * is computed from the ranks' shares, exchanged and combined in item order, so that the
 * result is the one a single process computes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/model.h"
#include "deconv/train.h"
#include "internal.h"
#include "train_dist.h"

dc_status dc_train_decode_epoch_share(const dc_dataset *train, const dc_dataset *fine,
                                      const int32_t *perm, int from_step, int steps_per_epoch,
                                      int batch, const dc_dist *dist, dc_error *err) {
    if (!train->lazy) return DC_OK;
    int local, first_slot;
    DC_TRY(dc_dist_batch_slice(dist, batch, &local, &first_slot, err));
    const int B = batch, n = train->n;
    int32_t *items = malloc(sizeof(int32_t) * ((size_t)(steps_per_epoch - from_step) * local + 1));
    if (!items) return dc_set_error(err, DC_ERR_OOM, "decoding the epoch's images: out of memory");
    int count = 0;
    for (int step = from_step; step < steps_per_epoch; step++) {
        const int first = step * B, in_batch = n - first < B ? n - first : B;
        for (int slot = first_slot; slot < first_slot + local; slot++)
            items[count++] = perm[first + slot % in_batch];
    }
    dc_status s = dc_dataset_decode_only(train, items, count, err);
    if (s == DC_OK && fine && fine->lazy) s = dc_dataset_decode_only(fine, items, count, err);
    free(items);
    return s;
}

dc_status dc_train_corner_fill(const dc_dataset *train, dc_dist *dist, float *fill, dc_error *err) {
    double *corners = calloc((size_t)train->n, sizeof(double)), corner = 0;
    dc_status s = corners ? dc_dataset_corner_means(train, dc_dist_rank(dist), dc_dist_size(dist),
                                                    corners, err)
                          : dc_set_error(err, DC_ERR_OOM, "dc_trainer: out of memory");
    if (s == DC_OK) s = dc_dist_sum(dist, corners, train->n, err);
    for (int i = 0; s == DC_OK && i < train->n; i++)
        corner += corners[i];
    free(corners);
    if (s == DC_OK) *fill = (float)(corner / train->n);
    return s;
}

/* ---------------------------------------------------------------- fingerprint */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len) {
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t fnv1a_u64(uint64_t h, uint64_t v) {
    unsigned char b[8]; /* little-endian, the same bytes on every machine */
    for (int k = 0; k < 8; k++)
        b[k] = (unsigned char)(v >> (8 * k));
    return fnv1a(h, b, sizeof b);
}

/* Every item's pixel hash on every rank: each rank hashes every N-th item, and the hashes
 * travel as four exact 16-bit parts in doubles (the other ranks add zeros). */
static dc_status all_item_hashes(const dc_dataset *ds, dc_dist *dist, uint64_t *hashes,
                                 dc_error *err) {
    const int n = ds->n;
    memset(hashes, 0, sizeof(uint64_t) * (size_t)n);
    DC_TRY(dc_dataset_item_hashes(ds, dc_dist_rank(dist), dc_dist_size(dist), hashes, err));
    if (dc_dist_size(dist) <= 1) return DC_OK;
    double *parts = calloc((size_t)n * 4 + 1, sizeof(double));
    if (!parts) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory for hashes", ds->source);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            parts[4 * i + k] = (double)((hashes[i] >> (16 * k)) & 0xffff);
    dc_status s = dc_dist_sum(dist, parts, 4 * n, err);
    for (int i = 0; s == DC_OK && i < n; i++) {
        hashes[i] = 0;
        for (int k = 0; k < 4; k++)
            hashes[i] |= (uint64_t)parts[4 * i + k] << (16 * k);
    }
    free(parts);
    return s;
}

static dc_status hash_dataset(uint64_t *h, const dc_dataset *ds, dc_dist *dist, dc_error *err) {
    const int32_t dims[4] = {ds->n, ds->c, ds->h, ds->w};
    for (int k = 0; k < 4; k++)
        *h = fnv1a_u64(*h, (uint64_t)(uint32_t)dims[k]);
    uint64_t *hashes = malloc(sizeof(uint64_t) * ((size_t)ds->n + 1));
    if (!hashes) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory for hashes", ds->source);
    dc_status s = all_item_hashes(ds, dist, hashes, err);
    for (int i = 0; s == DC_OK && i < ds->n; i++)
        *h = fnv1a_u64(*h, hashes[i]);
    free(hashes);
    for (int i = 0; s == DC_OK && ds->labels && i < ds->n; i++)
        *h = fnv1a_u64(*h, (uint64_t)(uint32_t)ds->labels[i]);
    for (int k = 0; s == DC_OK && ds->class_names && k < ds->n_classes; k++)
        *h = fnv1a(*h, ds->class_names[k], strlen(ds->class_names[k]) + 1);
    return s;
}

dc_status dc_train_data_fingerprint(const dc_dataset *train, const dc_dataset *val, dc_dist *dist,
                                    char *hex, size_t cap, dc_error *err) {
    if (!train || !val || !hex || cap < DC_DATA_FINGERPRINT_CHARS)
        return dc_set_error(err, DC_ERR_ARG, "dc_train_data_fingerprint: bad arguments");
    uint64_t h = 14695981039346656037ull;
    DC_TRY(hash_dataset(&h, train, dist, err));
    DC_TRY(hash_dataset(&h, val, dist, err));
    snprintf(hex, cap, "%s%016llx", DC_DATA_FINGERPRINT_PREFIX, (unsigned long long)h);
    return DC_OK;
}

dc_status dc_train_near_binary_share(const dc_dataset *train, dc_dist *dist, double *share,
                                     dc_error *err) {
    if (!train || !share)
        return dc_set_error(err, DC_ERR_ARG, "dc_train_near_binary_share: bad arguments");
    double near = 0; /* an integer count: exact in the sum over the ranks */
    DC_TRY(dc_dataset_near_binary_count(train, dc_dist_rank(dist), dc_dist_size(dist), &near, err));
    DC_TRY(dc_dist_sum(dist, &near, 1, err));
    const size_t n = (size_t)train->n * dc_dataset_image_numel(train);
    *share = n ? near / (double)n : 0.0;
    return DC_OK;
}
