/* Safetensors checkpoints: the native save format.
 *
 * Layout: 8-byte little-endian header length N; N bytes of JSON (padded with spaces to a
 * multiple of 8) mapping each tensor name to {"dtype":"F32","shape":[...],
 * "data_offsets":[begin,end]} plus "__metadata__" (string -> string); then the raw
 * little-endian C-order data, each tensor at data_offsets relative to the byte after
 * the header. Parameter names and layouts are dc_params' (PyTorch's). Optimizer state:
 * "optim.m.<name>" / "optim.v.<name>" for every trainable parameter and metadata
 * "optim.step" / "optim.kind".
 *
 * The reader trusts nothing: every length, offset and shape is checked against the file
 * size before any byte is read, and a load validates everything before it touches the
 * model, so a rejected file leaves the parameters as they were. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "deconv/io.h"
#include "internal.h"
#include "io/io_internal.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the reference implementation's limit */
#define ST_MAX_DIMS 8
#define ST_MAX_INT ((uint64_t)1 << 53)      /* integers JSON doubles hold exactly */

typedef struct st_entry {
    const char *name; /* owned by the parsed JSON */
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

typedef struct st_file {
    const char *path;
    FILE *f;
    uint64_t file_size, header_len, data_start, data_size;
    cJSON *root;
    st_entry *e;      /* in header order */
    st_entry **by_name;
    int n;
    dc_meta meta;
} st_file;

static void st_close(st_file *sf) {
    if (sf->f) fclose(sf->f);
    cJSON_Delete(sf->root);
    free(sf->e);
    free(sf->by_name);
    dc_meta_clear(&sf->meta);
    memset(sf, 0, sizeof *sf);
}

static const char *shape_str_u64(int ndim, const uint64_t *shape, char *buf, size_t cap) {
    size_t u = 0;
    int w = snprintf(buf, cap, "[");
    u = w > 0 ? (size_t)w : 0;
    for (int d = 0; d < ndim && u < cap; d++) {
        w = snprintf(buf + u, cap - u, d ? ", %" PRIu64 : "%" PRIu64, shape[d]);
        if (w < 0) break;
        u += (size_t)w;
    }
    if (u < cap) snprintf(buf + u, cap - u, "]");
    return buf;
}

/* A JSON number that is a non-negative integer JSON doubles hold exactly. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > (double)ST_MAX_INT || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

static int cmp_offsets(const void *a, const void *b) {
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static const st_entry *st_find(const st_file *sf, const char *name) {
    st_entry key = {0};
    key.name = name;
    const st_entry *kp = &key;
    st_entry *const *r = bsearch(&kp, sf->by_name, (size_t)sf->n, sizeof *sf->by_name, cmp_name);
    return r ? *r : NULL;
}

static dc_status parse_metadata(st_file *sf, const cJSON *md, dc_error *err) {
    const char *p = sf->path;
    if (!cJSON_IsObject(md))
        return dc_set_error(err, DC_ERR_FORMAT, "'%s': \"__metadata__\" is not a JSON object", p);
    for (const cJSON *c = md->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring)
            return dc_set_error(err, DC_ERR_FORMAT, "'%s': metadata \"%.60s\" is not a string", p,
                                c->string ? c->string : "");
        if (!c->string || !c->string[0] || strlen(c->string) >= sizeof sf->meta.key[0])
            return dc_set_error(err, DC_ERR_FORMAT,
                                "'%s': metadata key \"%.60s\" is empty or longer than %zu characters",
                                p, c->string ? c->string : "", sizeof sf->meta.key[0] - 1);
        if (dc_meta_get(&sf->meta, c->string))
            return dc_set_error(err, DC_ERR_FORMAT, "'%s': metadata key \"%s\" appears twice", p,
                                c->string);
        if (sf->meta.n >= (int)DC_ARRAY_LEN(sf->meta.value))
            return dc_set_error(err, DC_ERR_FORMAT, "'%s': more than %zu metadata entries", p,
                                DC_ARRAY_LEN(sf->meta.value));
        dc_status s = dc_meta_set(&sf->meta, c->string, c->valuestring);
        if (s != DC_OK) return dc_set_error(err, s, "'%s': cannot store metadata \"%s\"", p, c->string);
    }
    return DC_OK;
}

static dc_status parse_entry(st_file *sf, const cJSON *t, st_entry *e, dc_error *err) {
    const char *p = sf->path, *name = t->string;
    char sh[256];
    e->name = name;
    if (!cJSON_IsObject(t))
        return dc_set_error(err, DC_ERR_FORMAT, "'%s': tensor '%s': entry is not a JSON object", p, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offs ? "data_offsets" : NULL;
    if (missing)
        return dc_set_error(err, DC_ERR_FORMAT, "'%s': tensor '%s': missing \"%s\"", p, name, missing);
    if (!cJSON_IsString(dtype) || !dtype->valuestring)
        return dc_set_error(err, DC_ERR_FORMAT, "'%s': tensor '%s': \"dtype\" is not a string", p, name);
    if (strcmp(dtype->valuestring, "F32"))
        return dc_set_error(err, DC_ERR_FORMAT, "'%s': tensor '%s' has dtype %.16s; deconv reads only F32",
                            p, name, dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return dc_set_error(err, DC_ERR_FORMAT, "'%s': tensor '%s': \"shape\" is not an array", p, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS)
        return dc_set_error(err, DC_ERR_FORMAT, "'%s': tensor '%s' has %d dimensions (at most %d)", p,
                            name, nd, ST_MAX_DIMS);
    e->ndim = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        if (!json_uint(d, &e->shape[e->ndim]))
            return dc_set_error(err, DC_ERR_FORMAT,
                                "'%s': tensor '%s': \"shape\" holds something other than a "
                                "non-negative integer",
                                p, name);
        e->ndim++;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &e->begin) ||
        !json_uint(offs->child->next, &e->end))
        return dc_set_error(err, DC_ERR_FORMAT,
                            "'%s': tensor '%s': \"data_offsets\" must be two non-negative integers",
                            p, name);
    if (e->end < e->begin)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "'%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
                            p, name, e->begin, e->end);
    /* bytes = 4 * prod(shape), refusing overflow */
    uint64_t bytes = 4;
    int overflow = 0;
    for (int d = 0; d < e->ndim; d++) {
        if (e->shape[d] && bytes > UINT64_MAX / e->shape[d]) overflow = 1;
        else bytes *= e->shape[d];
    }
    if (overflow || bytes != e->end - e->begin)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "'%s': tensor '%s': shape %s needs %s%" PRIu64 " bytes of F32, but "
                            "data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64 " bytes",
                            p, name, shape_str_u64(e->ndim, e->shape, sh, sizeof sh),
                            overflow ? "more than " : "", overflow ? UINT64_MAX : bytes, e->begin,
                            e->end, e->end - e->begin);
    if (e->end > sf->data_size)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "'%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the "
                            "end of the data (%" PRIu64 " bytes follow the header)",
                            p, name, e->begin, e->end, sf->data_size);
    return DC_OK;
}

/* Open and validate the whole header: sizes, JSON, every entry, and that the tensors
 * tile the data area exactly (no overlap, no gap, nothing after the last). */
static dc_status st_open(const char *path, st_file *sf, dc_error *err) {
    memset(sf, 0, sizeof *sf);
    sf->path = path;
    if (!path) return dc_set_error(err, DC_ERR_ARG, "checkpoint: no path given");
    sf->f = fopen(path, "rb");
    if (!sf->f) return dc_set_error(err, DC_ERR_IO, "cannot open checkpoint '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(sf->f), &st) != 0 || !S_ISREG(st.st_mode))
        return dc_set_error(err, DC_ERR_IO, "'%s' is not a regular file", path);
    sf->file_size = (uint64_t)st.st_size;
    if (sf->file_size < 8)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "'%s' is %" PRIu64 " bytes: shorter than the 8-byte header length of a "
                            "safetensors file (truncated?)",
                            path, sf->file_size);
    uint8_t len8[8];
    if (fread(len8, 1, 8, sf->f) != 8)
        return dc_set_error(err, DC_ERR_IO, "'%s': cannot read the header length", path);
    sf->header_len = dc_get_le64(len8);
    if (sf->header_len > ST_MAX_HEADER)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "'%s': header length %" PRIu64 " is absurdly large (limit %" PRIu64
                            " bytes): not a safetensors file",
                            path, sf->header_len, ST_MAX_HEADER);
    if (sf->header_len > sf->file_size - 8)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "'%s': header length %" PRIu64 " runs past the end of the file (%" PRIu64
                            " bytes; truncated?)",
                            path, sf->header_len, sf->file_size);
    sf->data_start = 8 + sf->header_len;
    sf->data_size = sf->file_size - sf->data_start;
    size_t hl = (size_t)sf->header_len;
    char *text = malloc(hl + 1);
    if (!text) return dc_set_error(err, DC_ERR_OOM, "'%s': no memory for a %zu-byte header", path, hl);
    if (fread(text, 1, hl, sf->f) != hl) {
        free(text);
        return dc_set_error(err, DC_ERR_IO, "'%s': cannot read the %zu-byte header", path, hl);
    }
    text[hl] = 0;
    const char *end = NULL;
    sf->root = cJSON_ParseWithLengthOpts(text, hl, &end, 0);
    if (!sf->root) {
        long at = end && end >= text && end <= text + hl ? (long)(end - text) : -1;
        free(text);
        return dc_set_error(err, DC_ERR_FORMAT, "'%s': the header is not valid JSON (error near byte %ld)",
                            path, at);
    }
    for (const char *c = end; c && c < text + hl; c++)
        if (*c != ' ' && *c != '\n' && *c != '\r' && *c != '\t') {
            long at = (long)(c - text);
            free(text);
            return dc_set_error(err, DC_ERR_FORMAT,
                                "'%s': the header is not valid JSON (unexpected bytes after the "
                                "object at byte %ld)",
                                path, at);
        }
    free(text);
    if (!cJSON_IsObject(sf->root))
        return dc_set_error(err, DC_ERR_FORMAT, "'%s': the header is valid JSON but not an object", path);
    int count = 0;
    for (const cJSON *c = sf->root->child; c; c = c->next) count++;
    sf->e = calloc((size_t)count + 1, sizeof *sf->e);
    sf->by_name = calloc((size_t)count + 1, sizeof *sf->by_name);
    st_entry **by_off = calloc((size_t)count + 1, sizeof *by_off);
    dc_status s = DC_OK;
    if (!sf->e || !sf->by_name || !by_off) {
        s = dc_set_error(err, DC_ERR_OOM, "'%s': out of memory for %d header entries", path, count);
        goto out;
    }
    int seen_meta = 0;
    for (const cJSON *c = sf->root->child; c; c = c->next) {
        if (!c->string) {
            s = dc_set_error(err, DC_ERR_FORMAT, "'%s': header entry without a name", path);
            goto out;
        }
        if (!strcmp(c->string, "__metadata__")) {
            if (seen_meta++) {
                s = dc_set_error(err, DC_ERR_FORMAT, "'%s': \"__metadata__\" appears twice", path);
                goto out;
            }
            if ((s = parse_metadata(sf, c, err)) != DC_OK) goto out;
            continue;
        }
        st_entry *e = &sf->e[sf->n];
        if ((s = parse_entry(sf, c, e, err)) != DC_OK) goto out;
        sf->by_name[sf->n] = by_off[sf->n] = e;
        sf->n++;
    }
    qsort(sf->by_name, (size_t)sf->n, sizeof *sf->by_name, cmp_name);
    for (int i = 1; i < sf->n; i++)
        if (!strcmp(sf->by_name[i - 1]->name, sf->by_name[i]->name)) {
            s = dc_set_error(err, DC_ERR_FORMAT, "'%s': tensor '%s' appears twice in the header", path,
                             sf->by_name[i]->name);
            goto out;
        }
    qsort(by_off, (size_t)sf->n, sizeof *by_off, cmp_offsets);
    uint64_t expect = 0;
    for (int i = 0; i < sf->n; i++) {
        const st_entry *e = by_off[i];
        if (e->begin < expect) {
            const st_entry *prev = by_off[i - 1]; /* i > 0: expect starts at 0 */
            s = dc_set_error(err, DC_ERR_FORMAT,
                             "'%s': tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64
                             ", %" PRIu64 "] overlap",
                             path, prev->name, prev->begin, prev->end, e->name, e->begin, e->end);
            goto out;
        }
        if (e->begin > expect) {
            s = dc_set_error(err, DC_ERR_FORMAT,
                             "'%s': gap of %" PRIu64 " bytes in the data before tensor '%s' "
                             "(data_offsets [%" PRIu64 ", %" PRIu64 "]; tensors must be contiguous "
                             "from offset 0)",
                             path, e->begin - expect, e->name, e->begin, e->end);
            goto out;
        }
        expect = e->end;
    }
    if (expect != sf->data_size)
        s = dc_set_error(err, DC_ERR_FORMAT,
                         "'%s': %" PRIu64 " bytes after the last tensor's data are described by no "
                         "header entry (the data holds %" PRIu64 " bytes, the tensors %" PRIu64 ")",
                         path, sf->data_size - expect, sf->data_size, expect);
out:
    free(by_off);
    return s;
}

/* ------------------------------------------------------------------ reading */

dc_status dc_checkpoint_read_meta(const char *path, dc_meta *meta, dc_error *err) {
    if (!meta) return dc_set_error(err, DC_ERR_ARG, "dc_checkpoint_read_meta: NULL meta");
    st_file sf;
    dc_status s = st_open(path, &sf, err);
    if (s == DC_OK) {
        dc_meta_clear(meta);
        *meta = sf.meta;
        memset(&sf.meta, 0, sizeof sf.meta);
    }
    st_close(&sf);
    return s;
}

/* The model kind named by a "model" metadata value: a spec JSON object's "kind", or the
 * value itself when it is a plain name. */
static void model_kind(const char *value, char *out, size_t cap) {
    out[0] = 0;
    if (!value) return;
    cJSON *j = cJSON_Parse(value);
    if (cJSON_IsObject(j)) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "kind");
        if (cJSON_IsString(k) && k->valuestring) dc_strlcpy(out, k->valuestring, cap);
    } else if (!j) {
        dc_strlcpy(out, value, cap);
    }
    cJSON_Delete(j);
}

static int shape_matches(const st_entry *e, const dc_param *q) {
    if (e->ndim != q->ndim) return 0;
    for (int d = 0; d < q->ndim; d++)
        if (e->shape[d] != (uint64_t)q->shape[d]) return 0;
    return 1;
}

static dc_status check_shape(const st_file *sf, const char *name, const st_entry *e,
                             const dc_param *q, dc_error *err) {
    char a[256], b[128];
    if (!e) return dc_set_error(err, DC_ERR_NOT_FOUND, "'%s': missing tensor '%s'", sf->path, name);
    if (!shape_matches(e, q))
        return dc_set_error(err, DC_ERR_SHAPE, "'%s': '%s' has shape %s in the file, the model expects %s",
                            sf->path, name, shape_str_u64(e->ndim, e->shape, a, sizeof a),
                            dc_shape_str(q->ndim, q->shape, b, sizeof b));
    return DC_OK;
}

static dc_status read_tensor(st_file *sf, const st_entry *e, float *dst, dc_error *err) {
    size_t bytes = (size_t)(e->end - e->begin);
    if (bytes == 0) return DC_OK;
    if (fseeko(sf->f, (off_t)(sf->data_start + e->begin), SEEK_SET) != 0 || fread(dst, 1, bytes, sf->f) != bytes)
        return dc_set_error(err, DC_ERR_IO, "'%s': reading tensor '%s' failed (file changed while reading?)",
                            sf->path, e->name);
    dc_f32_to_le(dst, bytes / 4); /* little-endian -> host: the same swap */
    return DC_OK;
}

/* The index of the first NaN or infinity in x, or -1. */
static long first_non_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}

static dc_status refuse_non_finite(const char *path, const char *what, const char *name,
                                   const float *x, size_t n, dc_error *err) {
    const long i = first_non_finite(x, n);
    if (i < 0) return DC_OK;
    return dc_set_error(err, DC_ERR_NUMERIC,
                        "'%s': %s '%s' holds %g at element %ld (%zu values): a diverged run's "
                        "weights are refused",
                        path, what, name, (double)x[i], i, n);
}

static const char *optim_kind_name(dc_optim_kind k) {
    return k == DC_OPTIM_SGD ? "sgd" : k == DC_OPTIM_ADAM ? "adam" : k == DC_OPTIM_ADAMW ? "adamw" : "unknown";
}

dc_status dc_checkpoint_load(const char *path, dc_params *params, dc_optim *opt, dc_meta *meta,
                             dc_error *err) {
    if (!params) return dc_set_error(err, DC_ERR_ARG, "dc_checkpoint_load: NULL params");
    if (!dc_params_allocated(params) && dc_params_count(params) > 0 && dc_params_allocate(params) != DC_OK)
        return dc_set_error(err, dc_params_error(params)->status, "loading '%s': %s", path ? path : "",
                            dc_params_error(params)->msg);
    st_file sf;
    dc_status s = st_open(path, &sf, err);
    float *vals = NULL, *mom[2] = {NULL, NULL}, *ema = NULL;
    char tmpname[96];
    if (s != DC_OK) goto out;

    /* Which model: a caller that states the kind it expects gets a clear refusal. */
    const char *want = meta ? dc_meta_get(meta, "model") : NULL;
    const char *have = dc_meta_get(&sf.meta, "model");
    if (want && have) {
        char wk[64], hk[64];
        model_kind(want, wk, sizeof wk);
        model_kind(have, hk, sizeof hk);
        if (wk[0] && hk[0] && strcmp(wk, hk)) {
            s = dc_set_error(err, DC_ERR_FORMAT, "'%s': checkpoint is a '%s', not a '%s'", path, hk, wk);
            goto out;
        }
    }

    /* Every parameter present with the model's shape. */
    const int np = dc_params_count(params);
    for (int i = 0; i < np; i++) {
        const dc_param *q = dc_params_get(params, i);
        if ((s = check_shape(&sf, q->name, st_find(&sf, q->name), q, err)) != DC_OK) goto out;
    }
    /* Nothing in the file the model lacks (optimizer state counts only with an optimizer). */
    int n_optim = 0, n_ema = 0;
    for (int i = 0; i < sf.n; i++) {
        const char *nm = sf.e[i].name;
        if (dc_params_find(params, nm) >= 0) continue;
        if (!strncmp(nm, "ema.", 4)) {
            const int pi = dc_params_find(params, nm + 4);
            if (pi < 0) {
                s = dc_set_error(err, DC_ERR_FORMAT,
                                 "'%s': tensor '%s' in the file averages no parameter of the model",
                                 path, nm);
                goto out;
            }
            if ((s = check_shape(&sf, nm, &sf.e[i], dc_params_get(params, pi), err)) != DC_OK)
                goto out;
            n_ema++;
            continue;
        }
        if (!strncmp(nm, "optim.", 6)) {
            if (!opt) continue;
            int pi = -1;
            if (!strncmp(nm, "optim.m.", 8) || !strncmp(nm, "optim.v.", 8)) pi = dc_params_find(params, nm + 8);
            const dc_param *q = dc_params_get(params, pi);
            if (!q || !q->trainable) {
                s = dc_set_error(err, DC_ERR_FORMAT,
                                 "'%s': tensor '%s' in the file is no optimizer state of this model's "
                                 "parameters",
                                 path, nm);
                goto out;
            }
            n_optim++;
            continue;
        }
        s = dc_set_error(err, DC_ERR_FORMAT,
                         "'%s': tensor '%s' in the file is not a parameter of the model (a "
                         "checkpoint of another model?)",
                         path, nm);
        goto out;
    }
    long step = 0;
    if (opt && n_optim > 0) {
        for (int i = 0; i < np; i++) {
            const dc_param *q = dc_params_get(params, i);
            if (!q->trainable) continue;
            for (int w = 0; w < 2; w++) {
                snprintf(tmpname, sizeof tmpname, "optim.%c.%s", w ? 'v' : 'm', q->name);
                if ((s = check_shape(&sf, tmpname, st_find(&sf, tmpname), q, err)) != DC_OK) goto out;
            }
        }
        const char *st = dc_meta_get(&sf.meta, "optim.step");
        char *endp = NULL;
        errno = 0;
        if (st) step = strtol(st, &endp, 10);
        if (!st || errno || endp == st || *endp || step < 0) {
            s = dc_set_error(err, DC_ERR_FORMAT,
                             "'%s': optimizer state without a valid \"optim.step\" in the metadata (%s)",
                             path, st ? st : "missing");
            goto out;
        }
        const char *fk = dc_meta_get(&sf.meta, "optim.kind");
        const char *mk = optim_kind_name(dc_optim_get_config(opt)->kind);
        if (fk && strcmp(fk, mk)) {
            s = dc_set_error(err, DC_ERR_FORMAT,
                             "'%s': the optimizer state is %s's, the optimizer given is %s (load "
                             "without an optimizer to start its state afresh)",
                             path, fk, mk);
            goto out;
        }
    }

    /* Everything checks: stage all values on the host, then write them. */
    const size_t total = dc_params_total(params);
    vals = calloc(total ? total : 1, sizeof *vals);
    if (!vals) {
        s = dc_set_error(err, DC_ERR_OOM, "'%s': out of memory (%zu parameters)", path, total);
        goto out;
    }
    if (n_ema && n_ema != np) {
        s = dc_set_error(err, DC_ERR_FORMAT, "'%s': the weight average (\"ema.*\") covers %d of the "
                         "model's %d parameters", path, n_ema, np);
        goto out;
    }
    /* Without an optimizer (sampling, evaluation, export) the averaged weights, when the file
     * has them, are the model's weights; a resumed training reads both. */
    const int values_from_ema = n_ema && !opt;
    for (int i = 0; i < np; i++) {
        const dc_param *q = dc_params_get(params, i);
        const char *src = q->name;
        if (values_from_ema) {
            snprintf(tmpname, sizeof tmpname, "ema.%s", q->name);
            src = tmpname;
        }
        if ((s = read_tensor(&sf, st_find(&sf, src), vals + q->off, err)) != DC_OK ||
            (s = refuse_non_finite(path, "tensor", src, vals + q->off, q->numel, err)) != DC_OK)
            goto out;
    }
    dc_backend *be = dc_params_backend(params);
    if (opt && n_ema) {
        ema = malloc((total ? total : 1) * sizeof(float));
        if (!ema) {
            s = dc_set_error(err, DC_ERR_OOM, "'%s': out of memory for the weight average", path);
            goto out;
        }
        for (int i = 0; i < np; i++) {
            const dc_param *q = dc_params_get(params, i);
            snprintf(tmpname, sizeof tmpname, "ema.%s", q->name);
            if ((s = read_tensor(&sf, st_find(&sf, tmpname), ema + q->off, err)) != DC_OK ||
                (s = refuse_non_finite(path, "weight average", tmpname, ema + q->off, q->numel,
                                       err)) != DC_OK)
                goto out;
        }
    }
    if (opt && n_optim > 0) {
        if ((s = dc_params_ensure_moments(params)) != DC_OK) {
            s = dc_set_error(err, s, "'%s': %s", path, dc_params_error(params)->msg);
            goto out;
        }
        for (int w = 0; w < 2; w++) {
            mom[w] = malloc((total ? total : 1) * sizeof(float));
            if (!mom[w]) {
                s = dc_set_error(err, DC_ERR_OOM, "'%s': out of memory for optimizer state", path);
                goto out;
            }
            /* start from the current state: non-trainable slices keep theirs */
            if (total && DC_BE(be, read, dc_params_moment_ptr(params, w), mom[w], total * sizeof(float)) != DC_OK) {
                s = dc_set_error(err, be->err.status, "'%s': reading optimizer state: %s", path, be->err.msg);
                goto out;
            }
            for (int i = 0; i < np; i++) {
                const dc_param *q = dc_params_get(params, i);
                if (!q->trainable) continue;
                snprintf(tmpname, sizeof tmpname, "optim.%c.%s", w ? 'v' : 'm', q->name);
                if ((s = read_tensor(&sf, st_find(&sf, tmpname), mom[w] + q->off, err)) != DC_OK ||
                    (s = refuse_non_finite(path, "optimizer state", tmpname, mom[w] + q->off, q->numel,
                                           err)) != DC_OK)
                    goto out;
            }
        }
    }
    for (int i = 0; i < np; i++) {
        const dc_param *q = dc_params_get(params, i);
        if ((s = dc_params_write(params, i, vals + q->off)) != DC_OK) {
            s = dc_set_error(err, s, "'%s': writing '%s' to the device: %s", path, q->name,
                             dc_params_error(params)->msg);
            goto out;
        }
    }
    if (mom[0]) {
        for (int w = 0; w < 2; w++)
            if (total && DC_BE(be, write, dc_params_moment_ptr(params, w), mom[w], total * sizeof(float)) != DC_OK) {
                s = dc_set_error(err, be->err.status, "'%s': writing optimizer state: %s", path, be->err.msg);
                goto out;
            }
        dc_optim_set_steps(opt, step);
    }
    if (opt && total && (ema || dc_params_has_ema(params))) {
        /* the file's average, or (a file without one) the average restarts at the weights */
        if ((s = dc_params_ensure_ema(params)) != DC_OK) {
            s = dc_set_error(err, s, "'%s': %s", path, dc_params_error(params)->msg);
            goto out;
        }
        if ((ema ? DC_BE(be, write, dc_params_ema_ptr(params), ema, total * sizeof(float))
                 : DC_BE(be, copy, dc_params_ema_ptr(params), dc_params_values_ptr(params), total)) !=
            DC_OK) {
            s = dc_set_error(err, be->err.status, "'%s': writing the weight average: %s", path,
                             be->err.msg);
            goto out;
        }
    }
    if (meta) {
        dc_meta_clear(meta);
        *meta = sf.meta;
        memset(&sf.meta, 0, sizeof sf.meta);
    }
out:
    free(vals);
    free(ema);
    free(mom[0]);
    free(mom[1]);
    st_close(&sf);
    return s;
}

/* ------------------------------------------------------------------ writing */

static dc_status add_entry(cJSON *root, const char *name, const dc_param *q, uint64_t *off) {
    cJSON *t = cJSON_CreateObject();
    cJSON *shape = cJSON_CreateArray();
    cJSON *offs = cJSON_CreateArray();
    if (!t || !shape || !offs) goto oom;
    if (!cJSON_AddStringToObject(t, "dtype", "F32")) goto oom;
    for (int d = 0; d < q->ndim; d++)
        if (!cJSON_AddItemToArray(shape, cJSON_CreateNumber(q->shape[d]))) goto oom;
    if (!cJSON_AddItemToObject(t, "shape", shape)) goto oom;
    shape = NULL;
    const uint64_t end = *off + 4 * (uint64_t)q->numel;
    if (!cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)*off)) ||
        !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)end)))
        goto oom;
    if (!cJSON_AddItemToObject(t, "data_offsets", offs)) goto oom;
    offs = NULL;
    if (!cJSON_AddItemToObject(root, name, t)) goto oom;
    *off = end;
    return DC_OK;
oom:
    cJSON_Delete(t);
    cJSON_Delete(shape);
    cJSON_Delete(offs);
    return DC_ERR_OOM;
}

dc_status dc_checkpoint_save(const char *path, dc_params *params, dc_optim *opt, const dc_meta *meta,
                             dc_error *err) {
    if (!path || !params) return dc_set_error(err, DC_ERR_ARG, "dc_checkpoint_save: NULL argument");
    const int np = dc_params_count(params);
    if (np > 0 && !dc_params_allocated(params))
        return dc_set_error(err, DC_ERR_STATE, "saving '%s': the parameters are not allocated yet", path);
    if (opt && np > 0 && dc_params_ensure_moments(params) != DC_OK)
        return dc_set_error(err, dc_params_error(params)->status, "saving '%s': %s", path,
                            dc_params_error(params)->msg);
    dc_status s = DC_OK;
    char *text = NULL;
    float *buf = NULL;
    dc_atomic_file af = {0};
    char name[96];
    cJSON *root = cJSON_CreateObject();
    cJSON *md = cJSON_CreateObject();
    if (!root || !md) goto oom;
    /* metadata: the caller's, plus what makes the file self-describing */
    for (int i = 0; meta && i < meta->n && i < (int)DC_ARRAY_LEN(meta->value); i++) {
        if (opt && (!strcmp(meta->key[i], "optim.step") || !strcmp(meta->key[i], "optim.kind"))) continue;
        if (!cJSON_AddStringToObject(md, meta->key[i], meta->value[i] ? meta->value[i] : "")) goto oom;
    }
    if (!cJSON_GetObjectItemCaseSensitive(md, "format") && !cJSON_AddStringToObject(md, "format", "deconv"))
        goto oom;
    if (!cJSON_GetObjectItemCaseSensitive(md, "version") &&
        !cJSON_AddStringToObject(md, "version", DECONV_VERSION))
        goto oom;
    if (opt) {
        char step[32];
        snprintf(step, sizeof step, "%ld", dc_optim_steps(opt));
        if (!cJSON_AddStringToObject(md, "optim.step", step) ||
            !cJSON_AddStringToObject(md, "optim.kind", optim_kind_name(dc_optim_get_config(opt)->kind)))
            goto oom;
    }
    if (!cJSON_AddItemToObject(root, "__metadata__", md)) goto oom;
    md = NULL;
    uint64_t off = 0;
    size_t maxn = 1;
    for (int i = 0; i < np; i++) {
        const dc_param *q = dc_params_get(params, i);
        if (add_entry(root, q->name, q, &off) != DC_OK) goto oom;
        if (q->numel > maxn) maxn = q->numel;
    }
    for (int w = 0; opt && w < 2; w++)
        for (int i = 0; i < np; i++) {
            const dc_param *q = dc_params_get(params, i);
            if (!q->trainable) continue;
            snprintf(name, sizeof name, "optim.%c.%s", w ? 'v' : 'm', q->name);
            if (add_entry(root, name, q, &off) != DC_OK) goto oom;
        }
    const int with_ema = dc_params_has_ema(params);
    for (int i = 0; with_ema && i < np; i++) {
        const dc_param *q = dc_params_get(params, i);
        snprintf(name, sizeof name, "ema.%s", q->name);
        if (add_entry(root, name, q, &off) != DC_OK) goto oom;
    }
    text = cJSON_PrintUnformatted(root);
    if (!text) goto oom;
    size_t tl = strlen(text), hl = (tl + 7) & ~(size_t)7;
    buf = malloc(maxn * sizeof(float) > hl ? maxn * sizeof(float) : hl);
    if (!buf) goto oom;
    uint8_t len8[8];
    dc_put_le64(len8, hl);
    memcpy(buf, text, tl);
    memset((char *)buf + tl, ' ', hl - tl);
    if ((s = dc_atomic_open(&af, path, err)) != DC_OK) goto out;
    if ((s = dc_atomic_write(&af, len8, 8, err)) != DC_OK || (s = dc_atomic_write(&af, buf, hl, err)) != DC_OK)
        goto out;
    for (int i = 0; i < np; i++) {
        const dc_param *q = dc_params_get(params, i);
        if ((s = dc_params_read(params, i, buf)) != DC_OK) {
            s = dc_set_error(err, s, "saving '%s': reading '%s': %s", path, q->name, dc_params_error(params)->msg);
            goto out;
        }
        /* never replace a checkpoint with weights no load would accept */
        if ((s = refuse_non_finite(path, "tensor", q->name, buf, q->numel, err)) != DC_OK) {
            dc_wrap_error(err, s, "not saved");
            goto out;
        }
        dc_f32_to_le(buf, q->numel);
        if ((s = dc_atomic_write(&af, buf, q->numel * sizeof(float), err)) != DC_OK) goto out;
    }
    dc_backend *be = dc_params_backend(params);
    for (int w = 0; opt && w < 2; w++)
        for (int i = 0; i < np; i++) {
            const dc_param *q = dc_params_get(params, i);
            if (!q->trainable) continue;
            if (DC_BE(be, read, dc_ptr_at(dc_params_moment_ptr(params, w), q->off), buf,
                              q->numel * sizeof(float)) != DC_OK) {
                s = dc_set_error(err, be->err.status, "saving '%s': reading optimizer state of '%s': %s",
                                 path, q->name, be->err.msg);
                goto out;
            }
            snprintf(name, sizeof name, "optim.%c.%s", w ? 'v' : 'm', q->name);
            if ((s = refuse_non_finite(path, "optimizer state", name, buf, q->numel, err)) != DC_OK) {
                dc_wrap_error(err, s, "not saved");
                goto out;
            }
            dc_f32_to_le(buf, q->numel);
            if ((s = dc_atomic_write(&af, buf, q->numel * sizeof(float), err)) != DC_OK) goto out;
        }
    for (int i = 0; with_ema && i < np; i++) {
        const dc_param *q = dc_params_get(params, i);
        if (DC_BE(be, read, dc_ptr_at(dc_params_ema_ptr(params), q->off), buf,
                  q->numel * sizeof(float)) != DC_OK) {
            s = dc_set_error(err, be->err.status, "saving '%s': reading the weight average of '%s': %s",
                             path, q->name, be->err.msg);
            goto out;
        }
        snprintf(name, sizeof name, "ema.%s", q->name);
        if ((s = refuse_non_finite(path, "weight average", name, buf, q->numel, err)) != DC_OK) {
            dc_wrap_error(err, s, "not saved");
            goto out;
        }
        dc_f32_to_le(buf, q->numel);
        if ((s = dc_atomic_write(&af, buf, q->numel * sizeof(float), err)) != DC_OK) goto out;
    }
    s = dc_atomic_commit(&af, err);
    goto out;
oom:
    s = dc_set_error(err, DC_ERR_OOM, "saving '%s': out of memory", path);
out:
    dc_atomic_abort(&af);
    cJSON_Delete(md);
    cJSON_Delete(root);
    free(text);
    free(buf);
    return s;
}
