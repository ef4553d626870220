/* The in-memory dataset: creation, subsets, reproducible splits, epoch orders, batches. */
#include <math.h>
#include <stdint.h>

#include "data/data_internal.h"

static void free_strings(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

void dc_dataset_free(dc_dataset *ds) {
    if (!ds) return;
    free(ds->images);
    dc_lazy_free(ds->lazy);
    free(ds->labels);
    free_strings(ds->class_names, ds->n_classes);
    free_strings(ds->names, ds->n);
    free(ds);
}

void dc_dataset_set_source(dc_dataset *ds, const char *source) {
    dc_strlcpy(ds->source, source ? source : "", sizeof ds->source);
}

dc_status dc_dataset_create(int n, int c, int h, int w, int with_labels, dc_dataset **out,
                            dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_dataset_create: out is NULL");
    *out = NULL;
    if (n < 0 || c <= 0 || h <= 0 || w <= 0)
        return dc_set_error(err, DC_ERR_ARG, "dc_dataset_create: bad shape [%d, %d, %d, %d]",
                            n, c, h, w);
    size_t per_image = (size_t)c * (size_t)h * (size_t)w;
    if (per_image > SIZE_MAX / sizeof(float) / ((size_t)n + 1))
        return dc_set_error(err, DC_ERR_OOM, "dc_dataset_create: [%d, %d, %d, %d] is too large",
                            n, c, h, w);
    dc_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return dc_set_error(err, DC_ERR_OOM, "dc_dataset_create: out of memory");
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    if (n > 0) {
        ds->images = calloc((size_t)n * per_image, sizeof(float));
        if (with_labels) ds->labels = calloc((size_t)n, sizeof(int32_t));
        if (!ds->images || (with_labels && !ds->labels)) {
            dc_dataset_free(ds);
            return dc_set_error(err, DC_ERR_OOM,
                                "dc_dataset_create: cannot allocate %d images of [%d, %d, %d]",
                                n, c, h, w);
        }
    }
    *out = ds;
    return DC_OK;
}

dc_status dc_dataset_set_class_names(dc_dataset *ds, int count, const char *const *names,
                                     dc_error *err) {
    if (!ds || count < 0 || (count > 0 && !names))
        return dc_set_error(err, DC_ERR_ARG, "dc_dataset_set_class_names: bad arguments");
    char **copy = count ? calloc((size_t)count, sizeof(char *)) : NULL;
    if (count && !copy) return dc_set_error(err, DC_ERR_OOM, "class names: out of memory");
    for (int i = 0; i < count; i++) {
        copy[i] = dc_data_strdup(names[i] ? names[i] : "");
        if (!copy[i]) {
            free_strings(copy, count);
            return dc_set_error(err, DC_ERR_OOM, "class names: out of memory");
        }
    }
    free_strings(ds->class_names, ds->n_classes);
    ds->class_names = copy;
    ds->n_classes = count;
    return DC_OK;
}

static dc_status check_indices(const dc_dataset *ds, const int32_t *indices, int count,
                               const char *what, dc_error *err) {
    for (int i = 0; i < count; i++)
        if (indices[i] < 0 || indices[i] >= ds->n)
            return dc_set_error(err, DC_ERR_ARG,
                                "%s of dataset '%s': index %d (position %d) is outside [0, %d)",
                                what, ds->source, (int)indices[i], i, ds->n);
    return DC_OK;
}

static dc_status copy_item_names(const dc_dataset *ds, const int32_t *indices, int count,
                                 dc_dataset *sub, dc_error *err) {
    if (!ds->names || count == 0) return DC_OK;
    sub->names = calloc((size_t)count, sizeof(char *));
    if (!sub->names) return dc_set_error(err, DC_ERR_OOM, "subset names: out of memory");
    for (int i = 0; i < count; i++) {
        sub->names[i] = dc_data_strdup(ds->names[indices[i]] ? ds->names[indices[i]] : "");
        if (!sub->names[i]) return dc_set_error(err, DC_ERR_OOM, "subset names: out of memory");
    }
    return DC_OK;
}

dc_status dc_dataset_subset(const dc_dataset *ds, const int32_t *indices, int count,
                            dc_dataset **out, dc_error *err) {
    if (!ds || !out || count < 0 || (count > 0 && !indices))
        return dc_set_error(err, DC_ERR_ARG, "dc_dataset_subset: bad arguments");
    *out = NULL;
    DC_TRY(check_indices(ds, indices, count, "subset", err));
    dc_dataset *sub = NULL;
    /* a lazy dataset's subset is lazy: the items' places in the file, no pixels */
    DC_TRY(dc_dataset_create(ds->lazy ? 0 : count, ds->c, ds->h, ds->w, ds->labels != NULL, &sub,
                             err));
    dc_dataset_set_source(sub, ds->source);
    dc_status s = DC_OK;
    if (ds->lazy) {
        sub->n = count;
        s = dc_lazy_subset(ds->lazy, indices, count, &sub->lazy, err);
        if (s == DC_OK && ds->labels && count > 0 &&
            !(sub->labels = malloc((size_t)count * sizeof(int32_t))))
            s = dc_set_error(err, DC_ERR_OOM, "subset labels: out of memory");
        for (int i = 0; s == DC_OK && sub->labels && i < count; i++)
            sub->labels[i] = ds->labels[indices[i]];
    } else {
        s = dc_dataset_batch(ds, indices, count, sub->images, sub->labels, err);
    }
    if (s == DC_OK)
        s = dc_dataset_set_class_names(sub, ds->class_names ? ds->n_classes : 0,
                                       (const char *const *)ds->class_names, err);
    if (s == DC_OK) s = copy_item_names(ds, indices, count, sub, err);
    if (s != DC_OK) {
        dc_dataset_free(sub);
        return s;
    }
    sub->n_classes = ds->n_classes; /* also when the classes are unnamed */
    *out = sub;
    return DC_OK;
}

void dc_shuffle_indices(int32_t *idx, int n, dc_rng *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)dc_rng_below(rng, (uint32_t)i + 1);
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

void dc_epoch_permutation(int32_t *perm, int n, uint64_t seed, long epoch) {
    dc_rng rng;
    dc_rng_seed(&rng, dc_seed_mix(seed, (uint64_t)epoch));
    for (int i = 0; i < n; i++) perm[i] = i;
    dc_shuffle_indices(perm, n, &rng);
}

static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int validation_count(int n, float val_fraction) {
    int n_val = (int)lround((double)val_fraction * n);
    if (val_fraction > 0 && n_val == 0 && n >= 2) n_val = 1;
    if (n_val >= n) n_val = n > 0 ? n - 1 : 0; /* training always keeps an item */
    return n_val;
}

dc_status dc_dataset_split(const dc_dataset *ds, float val_fraction, uint64_t seed,
                           dc_dataset **train, dc_dataset **val, dc_error *err) {
    if (!ds || !train || !val)
        return dc_set_error(err, DC_ERR_ARG, "dc_dataset_split: NULL argument");
    *train = *val = NULL;
    if (!(val_fraction >= 0.0f && val_fraction < 1.0f))
        return dc_set_error(err, DC_ERR_ARG,
                            "split of dataset '%s': validation fraction %g is outside [0, 1)",
                            ds->source, (double)val_fraction);
    int n_val = validation_count(ds->n, val_fraction);
    int32_t *perm = malloc(((size_t)ds->n + 1) * sizeof(int32_t));
    if (!perm) return dc_set_error(err, DC_ERR_OOM, "split: out of memory");
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    for (int i = 0; i < ds->n; i++) perm[i] = i;
    dc_shuffle_indices(perm, ds->n, &rng);
    /* The shuffle only chooses who goes where; each part keeps the source order. */
    qsort(perm, (size_t)n_val, sizeof(int32_t), compare_int32);
    qsort(perm + n_val, (size_t)(ds->n - n_val), sizeof(int32_t), compare_int32);
    dc_status s = dc_dataset_subset(ds, perm + n_val, ds->n - n_val, train, err);
    if (s == DC_OK) s = dc_dataset_subset(ds, perm, n_val, val, err);
    free(perm);
    if (s != DC_OK) {
        dc_dataset_free(*train);
        *train = NULL;
        return s;
    }
    return DC_OK;
}

dc_status dc_dataset_batch(const dc_dataset *ds, const int32_t *indices, int count,
                           float *dst_images, int32_t *dst_labels, dc_error *err) {
    if (!ds || count < 0 || (count > 0 && (!indices || !dst_images)))
        return dc_set_error(err, DC_ERR_ARG, "dc_dataset_batch: bad arguments");
    if (dst_labels && !ds->labels && count > 0)
        return dc_set_error(err, DC_ERR_STATE, "batch of dataset '%s': it has no labels",
                            ds->source);
    DC_TRY(check_indices(ds, indices, count, "batch", err));
    size_t per = dc_dataset_image_numel(ds);
    for (int i = 0; i < count; i++) {
        const float *src = dc_dataset_image(ds, indices[i]);
        if (!src)
            return dc_set_error(err, DC_ERR_STATE,
                                "batch of dataset '%s': item %d is not decoded (a lazily "
                                "loaded dataset: dc_dataset_decode_only)",
                                ds->source, (int)indices[i]);
        memcpy(dst_images + (size_t)i * per, src, per * sizeof(float));
        if (dst_labels) dst_labels[i] = ds->labels[indices[i]];
    }
    return DC_OK;
}
