/* Lazily loaded datasets (include/deconv/data.h, dc_load_options.lazy): the labels and
 * names stay in the dataset, the pixels of only the items last asked for sit in a store of
 * slots. The pixels come from an IDX images file or from a folder's image files. Data-parallel
 * training asks, at each epoch's start, for the items its rank's slices of that epoch's batches
 * hold, so a rank keeps about 1/N of the images in memory and decodes nothing else. */
#include <math.h>
#include <stdint.h>

#include "data/data_internal.h"

struct dc_lazy_images {
    char *path;         /* the IDX images file, or the folder that holds files */
    char **files;       /* image folders: per record, its file's name relative to path; NULL
                           for IDX */
    int64_t max_pixels; /* image folders: the load's pixel cap per file */
    int rows, cols;     /* its images' size */
    int channels, size;
    int n;
    int32_t *record; /* per item: its image's place in the file */
    int32_t *slot;   /* per item: its place in store, -1 when not decoded */
    int32_t *owner;  /* per slot: the item it holds, -1 when free */
    float *store;    /* slot_cap decoded images */
    int slot_cap, decoded;
    size_t per; /* floats per image */
};

void dc_lazy_free(dc_lazy_images *lazy) {
    if (!lazy) return;
    for (int i = 0; lazy->files && i < lazy->n; i++)
        free(lazy->files[i]);
    free(lazy->files);
    free(lazy->path);
    free(lazy->record);
    free(lazy->slot);
    free(lazy->owner);
    free(lazy->store);
    free(lazy);
}

static dc_status lazy_new(const char *path, int rows, int cols, int n, int channels, int size,
                          dc_lazy_images **out, dc_error *err) {
    *out = NULL;
    dc_lazy_images *z = calloc(1, sizeof *z);
    if (z) {
        z->path = dc_data_strdup(path);
        z->record = malloc(((size_t)n + 1) * sizeof(int32_t));
        z->slot = malloc(((size_t)n + 1) * sizeof(int32_t));
    }
    if (!z || !z->path || !z->record || !z->slot) {
        dc_lazy_free(z);
        return dc_set_error(err, DC_ERR_OOM, "%s: out of memory for %d items", path, n);
    }
    z->rows = rows, z->cols = cols, z->channels = channels, z->size = size, z->n = n;
    z->per = (size_t)channels * (size_t)size * (size_t)size;
    for (int i = 0; i < n; i++)
        z->slot[i] = -1;
    *out = z;
    return DC_OK;
}

dc_status dc_lazy_create(const char *path, int rows, int cols, int n, int channels, int size,
                         dc_lazy_images **out, dc_error *err) {
    DC_TRY(lazy_new(path, rows, cols, n, channels, size, out, err));
    for (int i = 0; i < n; i++)
        (*out)->record[i] = i;
    return DC_OK;
}

/* files[i] = a copy of names[i] for i < n (records of a folder are its file list). */
static dc_status copy_files(dc_lazy_images *z, char *const *names, const int32_t *pick, int n,
                            dc_error *err) {
    z->files = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; z->files && i < n; i++)
        if (!(z->files[i] = dc_data_strdup(names[pick ? pick[i] : i])))
            return dc_set_error(err, DC_ERR_OOM, "%s: out of memory for %d file names", z->path, n);
    if (!z->files)
        return dc_set_error(err, DC_ERR_OOM, "%s: out of memory for %d file names", z->path, n);
    return DC_OK;
}

dc_status dc_lazy_create_folder(const char *dir, char *const *files, int n, int channels, int size,
                                int64_t max_pixels, dc_lazy_images **out, dc_error *err) {
    DC_TRY(dc_lazy_create(dir, 0, 0, n, channels, size, out, err));
    (*out)->max_pixels = max_pixels;
    dc_status s = copy_files(*out, files, NULL, n, err);
    if (s != DC_OK) {
        dc_lazy_free(*out);
        *out = NULL;
    }
    return s;
}

dc_status dc_lazy_subset(const dc_lazy_images *lazy, const int32_t *indices, int count,
                         dc_lazy_images **out, dc_error *err) {
    DC_TRY(
        lazy_new(lazy->path, lazy->rows, lazy->cols, count, lazy->channels, lazy->size, out, err));
    dc_lazy_images *z = *out;
    z->max_pixels = lazy->max_pixels;
    for (int i = 0; i < count; i++)
        z->record[i] = lazy->files ? i : lazy->record[indices[i]];
    if (!lazy->files) return DC_OK;
    /* a folder's subset keeps the names of its own files only */
    int32_t *pick = malloc(((size_t)count + 1) * sizeof(int32_t));
    dc_status s = pick ? DC_OK : dc_set_error(err, DC_ERR_OOM, "%s: out of memory", lazy->path);
    for (int i = 0; s == DC_OK && i < count; i++)
        pick[i] = lazy->record[indices[i]];
    if (s == DC_OK) s = copy_files(z, lazy->files, pick, count, err);
    free(pick);
    if (s != DC_OK) {
        dc_lazy_free(z);
        *out = NULL;
    }
    return s;
}

/* Records (ascending) into dst[k]: the IDX file's images, or the folder's files decoded and
 * fitted as a whole load does it (folder.c, load_one); a file that no longer reads is an
 * error naming it. */
static dc_status decode_records(const dc_lazy_images *z, const int32_t *records, int count,
                                float *const *dst, dc_error *err) {
    if (!z->files)
        return dc_idx_decode_records(z->path, z->rows, z->cols, z->channels, z->size, records,
                                     count, dst, err);
    for (int k = 0; k < count; k++) {
        const char *name = z->files[records[k]];
        const size_t len = strlen(z->path) + strlen(name) + 2;
        char *path = malloc(len);
        if (!path) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", z->path);
        snprintf(path, len, "%s/%s", z->path, name);
        float *planes = NULL;
        int h = 0, w = 0;
        dc_status s = dc_image_decode_file(path, z->channels, z->max_pixels, &planes, &h, &w, err);
        if (s == DC_OK) s = dc_image_fit(planes, z->channels, h, w, dst[k], z->size, err);
        if (s != DC_OK && s != DC_ERR_OOM && !strstr(err ? err->msg : "", path))
            dc_wrap_error(err, s, "%s", path);
        free(planes);
        free(path);
        if (s != DC_OK) return s;
    }
    return DC_OK;
}

float *dc_dataset_lazy_image(const dc_dataset *ds, int i) {
    const dc_lazy_images *z = ds ? ds->lazy : NULL;
    if (!z || i < 0 || i >= z->n || z->slot[i] < 0) return NULL;
    return z->store + (size_t)z->slot[i] * z->per;
}

int dc_dataset_decoded_count(const dc_dataset *ds) {
    if (!ds) return 0;
    return ds->lazy ? ds->lazy->decoded : ds->n;
}

typedef struct item_record {
    int32_t record, item;
} item_record;

static int by_record(const void *a, const void *b) {
    const int32_t x = ((const item_record *)a)->record, y = ((const item_record *)b)->record;
    return (x > y) - (x < y);
}

dc_status dc_dataset_decode_only(const dc_dataset *ds, const int32_t *items, int count,
                                 dc_error *err) {
    if (!ds || count < 0 || (count > 0 && !items))
        return dc_set_error(err, DC_ERR_ARG, "dc_dataset_decode_only: bad arguments");
    for (int k = 0; k < count; k++)
        if (items[k] < 0 || items[k] >= ds->n)
            return dc_set_error(err, DC_ERR_ARG,
                                "decoding items of dataset '%s': item %d (position %d) is "
                                "outside [0, %d)",
                                ds->source, (int)items[k], k, ds->n);
    dc_lazy_images *z = ds->lazy;
    if (!z) return DC_OK;
    unsigned char *want = calloc((size_t)z->n + 1, 1);
    if (!want) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", ds->source);
    int needed = 0, fresh = 0;
    for (int k = 0; k < count; k++)
        if (!want[items[k]]) {
            want[items[k]] = 1, needed++;
            fresh += z->slot[items[k]] < 0;
        }
    /* free the slots of the items no longer wanted */
    for (int s = 0; s < z->slot_cap; s++)
        if (z->owner[s] >= 0 && !want[z->owner[s]]) {
            z->slot[z->owner[s]] = -1;
            z->owner[s] = -1;
            z->decoded--;
        }
    dc_status st = DC_OK;
    if (needed > z->slot_cap) {
        float *store = realloc(z->store, (size_t)needed * z->per * sizeof(float));
        if (store) z->store = store;
        int32_t *owner = store ? realloc(z->owner, (size_t)needed * sizeof(int32_t)) : NULL;
        if (owner) z->owner = owner;
        if (!store || !owner) {
            st = dc_set_error(err, DC_ERR_OOM, "%s: cannot hold %d decoded images", ds->source,
                              needed);
        } else {
            for (int s = z->slot_cap; s < needed; s++)
                z->owner[s] = -1;
            z->slot_cap = needed;
        }
    }
    /* the new items in file order (one forward pass through it), each in a free slot */
    item_record *order = st == DC_OK ? malloc(((size_t)fresh + 1) * sizeof *order) : NULL;
    int32_t *records = order ? malloc(((size_t)fresh + 1) * sizeof(int32_t)) : NULL;
    float **dst = records ? malloc(((size_t)fresh + 1) * sizeof(float *)) : NULL;
    if (st == DC_OK && !dst) st = dc_set_error(err, DC_ERR_OOM, "%s: out of memory", ds->source);
    int m = 0;
    if (st == DC_OK) {
        for (int i = 0; i < z->n; i++)
            if (want[i] && z->slot[i] < 0) order[m].record = z->record[i], order[m++].item = i;
        qsort(order, (size_t)m, sizeof *order, by_record);
        for (int k = 0, free_slot = 0; k < m; k++, free_slot++) {
            while (z->owner[free_slot] >= 0)
                free_slot++;
            z->owner[free_slot] = order[k].item;
            z->slot[order[k].item] = free_slot;
            records[k] = order[k].record;
            dst[k] = z->store + (size_t)free_slot * z->per;
        }
        st = decode_records(z, records, m, dst, err);
        if (st != DC_OK) /* the half-decoded items hold nothing */
            for (int k = 0; k < m; k++) {
                z->owner[z->slot[order[k].item]] = -1;
                z->slot[order[k].item] = -1;
            }
        else
            z->decoded += m;
        if (st != DC_OK) dc_wrap_error(err, st, "dataset '%s'", ds->source);
    }
    free(want);
    free(order);
    free(records);
    free(dst);
    return st;
}

dc_status dc_dataset_decode_all(dc_dataset *ds, dc_error *err) {
    if (!ds) return dc_set_error(err, DC_ERR_ARG, "dc_dataset_decode_all: no dataset");
    dc_lazy_images *z = ds->lazy;
    if (!z) return DC_OK;
    const size_t per = z->per;
    float *images = ds->n ? malloc((size_t)ds->n * per * sizeof(float)) : NULL;
    int32_t *all = malloc(((size_t)ds->n + 1) * sizeof(int32_t));
    dc_status st = (ds->n && !images) || !all
                       ? dc_set_error(err, DC_ERR_OOM, "dataset '%s': cannot decode %d images",
                                      ds->source, ds->n)
                       : DC_OK;
    /* a part at a time, so memory never holds the images twice */
    const int part = 4096;
    for (int first = 0; st == DC_OK && first < ds->n; first += part) {
        const int count = ds->n - first < part ? ds->n - first : part;
        for (int k = 0; k < count; k++)
            all[k] = first + k;
        st = dc_dataset_decode_only(ds, all, count, err);
        for (int k = 0; st == DC_OK && k < count; k++)
            memcpy(images + (size_t)(first + k) * per, dc_dataset_lazy_image(ds, first + k),
                   per * sizeof(float));
    }
    free(all);
    if (st != DC_OK) {
        free(images);
        return st;
    }
    ds->images = images;
    ds->lazy = NULL;
    dc_lazy_free(z);
    return DC_OK;
}

/* What a walk over items first, first + stride, ... does with each decoded image. */
typedef void (*item_visit)(const dc_dataset *ds, int item, const float *image, void *user);

/* Visits items first, first + stride, ... < n; a lazily loaded dataset decodes them a part
 * at a time (and afterwards holds the last part only). A part holds up to 4096 images and
 * 64 MiB of pixels, so that large images do not make a walk's store outgrow a rank's
 * share of an epoch. */
static dc_status walk_items(const dc_dataset *ds, int first, int stride, item_visit visit,
                            void *user, const char *what, dc_error *err) {
    if (!ds || first < 0 || stride < 1)
        return dc_set_error(err, DC_ERR_ARG, "%s: bad arguments", what);
    const size_t image_bytes = dc_dataset_image_numel(ds) * sizeof(float);
    const size_t fit = image_bytes ? ((size_t)64 << 20) / image_bytes : 4096;
    const int part = fit < 1 ? 1 : (fit > 4096 ? 4096 : (int)fit);
    int32_t *chunk = malloc(sizeof(int32_t) * part);
    if (!chunk) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", what);
    dc_status st = DC_OK;
    for (int i = first; st == DC_OK && i < ds->n;) {
        int count = 0;
        for (; i < ds->n && count < part; i += stride)
            chunk[count++] = i;
        st = dc_dataset_decode_only(ds, chunk, count, err);
        for (int k = 0; st == DC_OK && k < count; k++)
            visit(ds, chunk[k], dc_dataset_image(ds, chunk[k]), user);
    }
    free(chunk);
    return st;
}

static void visit_corner_mean(const dc_dataset *ds, int item, const float *im, void *user) {
    const int S = ds->w, H = ds->h;
    /* the float sum, then a double: the expression the trainer has always used */
    ((double *)user)[item] = (im[0] + im[S - 1] + im[(H - 1) * S] + im[H * S - 1]) / 4.0;
}

dc_status dc_dataset_corner_means(const dc_dataset *ds, int first, int stride, double *values,
                                  dc_error *err) {
    if (!values) return dc_set_error(err, DC_ERR_ARG, "dc_dataset_corner_means: bad arguments");
    return walk_items(ds, first, stride, visit_corner_mean, values, "dc_dataset_corner_means", err);
}

static void visit_item_hash(const dc_dataset *ds, int item, const float *im, void *user) {
    uint64_t h = 14695981039346656037ull; /* FNV-1a, 64 bits */
    const unsigned char *b = (const unsigned char *)im;
    const size_t len = sizeof(float) * dc_dataset_image_numel(ds);
    for (size_t k = 0; k < len; k++)
        h = (h ^ b[k]) * 1099511628211ull;
    ((uint64_t *)user)[item] = h;
}

dc_status dc_dataset_item_hashes(const dc_dataset *ds, int first, int stride, uint64_t *hashes,
                                 dc_error *err) {
    if (!hashes) return dc_set_error(err, DC_ERR_ARG, "dc_dataset_item_hashes: bad arguments");
    return walk_items(ds, first, stride, visit_item_hash, hashes, "dc_dataset_item_hashes", err);
}

static void visit_near_binary(const dc_dataset *ds, int item, const float *im, void *user) {
    (void)item;
    const size_t n = dc_dataset_image_numel(ds);
    size_t near = 0;
    for (size_t k = 0; k < n; k++)
        near += fabsf(fabsf(im[k]) - 1.0f) <= 0.1f; /* dc_near_binary_share's test */
    *(double *)user += (double)near;
}

dc_status dc_dataset_near_binary_count(const dc_dataset *ds, int first, int stride, double *near,
                                       dc_error *err) {
    if (!near) return dc_set_error(err, DC_ERR_ARG, "dc_dataset_near_binary_count: bad arguments");
    return walk_items(ds, first, stride, visit_near_binary, near, "dc_dataset_near_binary_count",
                      err);
}
