/* Data-parallel training over MPI (include/deconv/dist.h): the batch slice of a rank, the
 * gradient all-reduce in buckets of whole layers staged through host memory, GLO's
 * touched latent rows, the averaged non-trainable state and the small agreements (loss,
 * stop) the training loop needs. Without MPI in the build only the one-process answers
 * remain. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deconv/dist.h"
#include "graph_internal.h"
#include "internal.h"

#ifdef DECONV_HAVE_MPI
#include <mpi.h>
#endif

int dc_dist_available(void) {
#ifdef DECONV_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int dc_dist_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

dc_status dc_dist_batch_slice(const dc_dist *d, int global_batch, int *local, int *first_slot,
                              dc_error *err) {
    const int n = dc_dist_size(d), r = dc_dist_rank(d);
    if (global_batch < n || global_batch % n)
        return dc_set_error(err, DC_ERR_ARG,
                            "batch %d cannot be split evenly over %d ranks: give a multiple of %d",
                            global_batch, n, n);
    *local = global_batch / n;
    *first_slot = r * *local;
    return DC_OK;
}

uint64_t dc_dist_draw_seed(const dc_dist *d, uint64_t seed) {
    const int rank = dc_dist_rank(d);
    return rank == 0 ? seed : dc_seed_mix(seed, 0x72616e6b00000000ULL + (uint64_t)rank);
}

#ifndef DECONV_HAVE_MPI
/* ------------------------------------------------------------ built without MPI */
struct dc_dist {
    int unused;
};
dc_status dc_dist_create(const dc_dist_options *opt, dc_dist **out, dc_error *err) {
    (void)opt;
    if (out) *out = NULL;
    return dc_set_error(err, DC_ERR_UNSUPPORTED,
                        "this build has no MPI: install Open MPI (libopenmpi-dev) and rebuild "
                        "with -DDECONV_MPI=ON");
}
void dc_dist_free(dc_dist *d) {
    (void)d;
}
int dc_dist_rank(const dc_dist *d) {
    (void)d;
    return 0;
}
int dc_dist_size(const dc_dist *d) {
    (void)d;
    return 1;
}
void dc_dist_abort(dc_dist *d, int code, const char *message) {
    (void)d, (void)code, (void)message;
}
dc_status dc_dist_reduce_step(dc_dist *d, dc_model *m, const dc_batch *b, dc_error *err) {
    (void)d, (void)m, (void)b, (void)err;
    return DC_OK;
}
dc_status dc_dist_attach(dc_dist *d, dc_model *m, dc_error *err) {
    (void)d, (void)m, (void)err;
    return DC_OK;
}
dc_status dc_dist_backward_begin(dc_dist *d, dc_model *m, dc_error *err) {
    (void)d, (void)m, (void)err;
    return DC_OK;
}
dc_status dc_dist_mean(dc_dist *d, float *values, int n, dc_error *err) {
    (void)d, (void)values, (void)n, (void)err;
    return DC_OK;
}
dc_status dc_dist_sum(dc_dist *d, double *values, int n, dc_error *err) {
    (void)d, (void)values, (void)n, (void)err;
    return DC_OK;
}
int dc_dist_any(dc_dist *d, int flag) {
    (void)d;
    return flag != 0;
}
dc_status dc_dist_broadcast_params(dc_dist *d, dc_params *p, dc_error *err) {
    (void)d, (void)p, (void)err;
    return DC_OK;
}
void dc_dist_get_stats(const dc_dist *d, dc_dist_stats *out) {
    (void)d;
    memset(out, 0, sizeof *out);
}
#else
/* ---------------------------------------------------------------------- MPI */
#define DEFAULT_BUCKET_BYTES ((size_t)4 << 20)

struct dc_dist {
    MPI_Comm comm; /* a duplicate of MPI_COMM_WORLD: our messages never meet the caller's */
    int rank, size;
    int finalize; /* we initialised MPI, so we finalise it */
    size_t bucket_bytes;
    int sync_batchnorm;
    float *stage; /* host staging of the gradients, the latent rows or the state */
    size_t stage_cap;
    int32_t *rows; /* every rank's latent rows of this step */
    size_t rows_cap;
    MPI_Request *req;
    int req_cap;
    dc_dist_stats stats;
    int overlap; /* start buckets during backward (dc_dist_backward_begin) */
    /* the dense exchange of the step in progress: the parameters are staged from the last
     * back (next counts down), buckets close at layer boundaries */
    dc_model *armed; /* whose backward is watched; NULL: none */
    int *done_at;    /* per parameter: the lowest node using it (INT_MAX: none) */
    int done_cap;
    int skip, next, buckets;
    size_t total, at, bucket_start;
    const char *last_name;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static dc_status mpi_fail(dc_error *err, int code, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "code %d", code);
    return dc_set_error(err, DC_ERR_IO, "MPI: %s: %s", what, text);
}

dc_status dc_dist_create(const dc_dist_options *opt, dc_dist **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_dist_create: out is NULL");
    *out = NULL;
    dc_dist *d = calloc(1, sizeof *d);
    if (!d) return dc_set_error(err, DC_ERR_OOM, "dc_dist_create: out of memory");
    d->bucket_bytes = opt && opt->bucket_bytes ? opt->bucket_bytes : DEFAULT_BUCKET_BYTES;
    d->sync_batchnorm = opt && opt->sync_batchnorm;
    d->overlap = !(opt && opt->serial_exchange);
    d->comm = MPI_COMM_NULL;
    int initialized = 0, rc;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided;
        /* the backends' OpenMP threads never call MPI: only the main thread does */
        if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS) {
            free(d);
            return mpi_fail(err, rc, "MPI_Init_thread");
        }
        d->finalize = 1;
    }
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &d->comm)) != MPI_SUCCESS) {
        dc_status s = mpi_fail(err, rc, "MPI_Comm_dup");
        dc_dist_free(d);
        return s;
    }
    /* failures come back to us as codes (the default handler would abort without a word
     * about what we were doing) */
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    *out = d;
    return DC_OK;
}

void dc_dist_free(dc_dist *d) {
    if (!d) return;
    if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    free(d->stage);
    free(d->rows);
    free(d->req);
    free(d->done_at);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (d->finalize && !finalized) MPI_Finalize();
    free(d);
}

int dc_dist_rank(const dc_dist *d) {
    return d ? d->rank : 0;
}
int dc_dist_size(const dc_dist *d) {
    return d ? d->size : 1;
}

void dc_dist_abort(dc_dist *d, int code, const char *message) {
    if (!d || d->size < 2) return;
    fprintf(stderr, "deconv: rank %d of %d: %s; ending every rank\n", d->rank, d->size,
            message ? message : "failed");
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
}

static dc_status stage_reserve(dc_dist *d, size_t floats, dc_error *err) {
    if (floats <= d->stage_cap) return DC_OK;
    float *p = realloc(d->stage, floats * sizeof(float));
    if (!p) return dc_set_error(err, DC_ERR_OOM, "all-reduce staging of %zu floats", floats);
    d->stage = p;
    d->stage_cap = floats;
    return DC_OK;
}

static dc_status req_reserve(dc_dist *d, int n, dc_error *err) {
    if (n <= d->req_cap) return DC_OK;
    MPI_Request *p = realloc(d->req, (size_t)n * sizeof *p);
    if (!p) return dc_set_error(err, DC_ERR_OOM, "all-reduce requests: out of memory");
    d->req = p;
    d->req_cap = n;
    return DC_OK;
}

/* Length of the layer part of a parameter name ("enc1.weight" -> "enc1"). */
static size_t layer_len(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}
static int same_layer(const char *a, const char *b) {
    const size_t la = layer_len(a);
    return la == layer_len(b) && !strncmp(a, b, la);
}

static dc_status be_fail(dc_backend *be, dc_error *err, const char *what, const char *name) {
    return dc_set_error(err, be->err.status ? be->err.status : DC_ERR_IO, "%s '%s': %s", what, name,
                        be->err.msg);
}

/* The dense gradients: buckets of whole layers, from the last parameter back (the order
 * backward finishes them). dense_begin resets the cursor; dense_advance stages every
 * parameter whose gradient is complete once backward has passed `node` (-1: all of them)
 * and starts each bucket as a non-blocking all-reduce as soon as it is full, so the
 * exchange moves while backward (or the next bucket's device read) goes on; dense_finish
 * waits for all buckets and writes the means back. The buckets are the same whether they
 * start during backward or after it. */
static dc_status dense_begin(dc_dist *d, dc_params *p, int skip, dc_error *err) {
    const int count = dc_params_count(p);
    d->total = 0;
    for (int i = 0; i < count; i++) {
        const dc_param *q = dc_params_get(p, i);
        if (q->trainable && i != skip) d->total += q->numel;
    }
    d->skip = skip;
    d->next = count - 1;
    d->at = d->bucket_start = 0;
    d->buckets = 0;
    d->last_name = NULL;
    DC_TRY(stage_reserve(d, d->total ? d->total : 1, err));
    return req_reserve(d, count + 1, err);
}

static dc_status start_bucket(dc_dist *d, dc_error *err) {
    int rc =
        MPI_Iallreduce(MPI_IN_PLACE, d->stage + d->bucket_start, (int)(d->at - d->bucket_start),
                       MPI_FLOAT, MPI_SUM, d->comm, &d->req[d->buckets]);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "all-reduce of a gradient bucket");
    d->buckets++;
    d->bucket_start = d->at;
    if (d->armed) d->stats.early_buckets++;
    return DC_OK;
}

static dc_status dense_advance(dc_dist *d, dc_params *p, int node, dc_error *err) {
    dc_backend *be = dc_params_backend(p);
    const int first = d->next;
    for (; d->next >= 0; d->next--) {
        dc_param *q = dc_params_get(p, d->next);
        if (!q->trainable || d->next == d->skip) continue;
        if (node >= 0 && d->done_at && node > d->done_at[d->next]) break; /* not complete */
        /* a bucket closes at a layer boundary once it holds bucket_bytes */
        if (d->last_name && !same_layer(d->last_name, q->name) &&
            (d->at - d->bucket_start) * sizeof(float) >= d->bucket_bytes)
            DC_TRY(start_bucket(d, err));
        if (DC_BE(be, read, dc_tensor_ptr(q->grad), d->stage + d->at, q->numel * sizeof(float)))
            return be_fail(be, err, "reading the gradient of", q->name);
        d->at += q->numel;
        d->last_name = q->name;
    }
    if (d->buckets && (first != d->next || node < 0)) {
        int done; /* progress: Open MPI moves non-blocking collectives inside MPI calls */
        MPI_Testall(d->buckets, d->req, &done, MPI_STATUSES_IGNORE);
    }
    return DC_OK;
}

static dc_status dense_finish(dc_dist *d, dc_params *p, double *bytes, dc_error *err) {
    if (d->total == 0) return DC_OK;
    DC_TRY(dense_advance(d, p, -1, err));
    DC_TRY(start_bucket(d, err));
    int rc = MPI_Waitall(d->buckets, d->req, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "all-reduce of the gradients");
    dc_backend *be = dc_params_backend(p);
    const float inv = 1.0f / (float)d->size;
    for (size_t k = 0; k < d->total; k++)
        d->stage[k] *= inv;
    size_t at = 0;
    for (int i = dc_params_count(p) - 1; i >= 0; i--) {
        dc_param *q = dc_params_get(p, i);
        if (!q->trainable || i == d->skip) continue;
        if (DC_BE(be, write, dc_tensor_ptr(q->grad), d->stage + at, q->numel * sizeof(float)))
            return be_fail(be, err, "writing the gradient of", q->name);
        at += q->numel;
    }
    *bytes += (double)d->total * sizeof(float);
    return DC_OK;
}

static int cmp_i32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* GLO's latent table: every rank's touched rows are gathered; only the union of those
 * rows is summed (the other rows' gradients are zero on every rank). */
static dc_status reduce_rows(dc_dist *d, dc_params *p, int pi, const dc_batch *b, double *bytes,
                             dc_error *err) {
    dc_backend *be = dc_params_backend(p);
    dc_param *q = dc_params_get(p, pi);
    const size_t width = q->ndim >= 2 ? (size_t)q->shape[1] : 1;
    const size_t rows_all = (size_t)b->n * d->size;
    if (rows_all > d->rows_cap) {
        int32_t *r = realloc(d->rows, rows_all * sizeof *r);
        if (!r) return dc_set_error(err, DC_ERR_OOM, "latent rows: out of memory");
        d->rows = r;
        d->rows_cap = rows_all;
    }
    int rc = MPI_Allgather(b->index, b->n, MPI_INT32_T, d->rows, b->n, MPI_INT32_T, d->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "gathering the latent rows of the step");
    qsort(d->rows, rows_all, sizeof *d->rows, cmp_i32);
    size_t unique = 0;
    for (size_t k = 0; k < rows_all; k++)
        if (k == 0 || d->rows[k] != d->rows[unique - 1]) d->rows[unique++] = d->rows[k];
    const int table_rows = q->shape[0];
    DC_TRY(stage_reserve(d, unique * width, err));
    for (size_t k = 0; k < unique; k++) {
        if (d->rows[k] < 0 || d->rows[k] >= table_rows)
            return dc_set_error(err, DC_ERR_ARG, "'%s': row %d outside its %d rows", q->name,
                                d->rows[k], table_rows);
        const dc_ptr row = dc_ptr_at(dc_tensor_ptr(q->grad), (size_t)d->rows[k] * width);
        if (DC_BE(be, read, row, d->stage + k * width, width * sizeof(float)))
            return be_fail(be, err, "reading the gradient of", q->name);
    }
    if ((rc = MPI_Allreduce(MPI_IN_PLACE, d->stage, (int)(unique * width), MPI_FLOAT, MPI_SUM,
                            d->comm)) != MPI_SUCCESS)
        return mpi_fail(err, rc, "all-reduce of the latent rows");
    const float inv = 1.0f / (float)d->size;
    for (size_t k = 0; k < unique * width; k++)
        d->stage[k] *= inv;
    for (size_t k = 0; k < unique; k++) {
        const dc_ptr row = dc_ptr_at(dc_tensor_ptr(q->grad), (size_t)d->rows[k] * width);
        if (DC_BE(be, write, row, d->stage + k * width, width * sizeof(float)))
            return be_fail(be, err, "writing the gradient of", q->name);
    }
    *bytes += (double)unique * width * sizeof(float) + (double)rows_all * sizeof(int32_t);
    return DC_OK;
}

/* Non-trainable values (batch-norm running statistics), averaged so every rank keeps the
 * same state and rank 0's checkpoint holds the mean of the ranks'. */
static dc_status reduce_state(dc_dist *d, dc_params *p, double *bytes, dc_error *err) {
    dc_backend *be = dc_params_backend(p);
    size_t total = 0;
    for (int i = 0; i < dc_params_count(p); i++)
        if (!dc_params_get(p, i)->trainable) total += dc_params_get(p, i)->numel;
    if (total == 0) return DC_OK;
    DC_TRY(stage_reserve(d, total, err));
    size_t at = 0;
    for (int i = 0; i < dc_params_count(p); i++) {
        dc_param *q = dc_params_get(p, i);
        if (q->trainable) continue;
        if (DC_BE(be, read, dc_tensor_ptr(q->value), d->stage + at, q->numel * sizeof(float)))
            return be_fail(be, err, "reading", q->name);
        at += q->numel;
    }
    int rc = MPI_Allreduce(MPI_IN_PLACE, d->stage, (int)total, MPI_FLOAT, MPI_SUM, d->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "all-reduce of the running statistics");
    const float inv = 1.0f / (float)d->size;
    at = 0;
    for (int i = 0; i < dc_params_count(p); i++) {
        dc_param *q = dc_params_get(p, i);
        if (q->trainable) continue;
        for (size_t k = 0; k < q->numel; k++)
            d->stage[at + k] *= inv;
        if (DC_BE(be, write, dc_tensor_ptr(q->value), d->stage + at, q->numel * sizeof(float)))
            return be_fail(be, err, "writing", q->name);
        at += q->numel;
    }
    *bytes += (double)total * sizeof(float);
    return DC_OK;
}

/* GLO's latent table is exchanged by its rows, apart from the dense gradients. */
static int latents_param(const dc_model *m) {
    return dc_model_kind_has(m->spec.kind, DC_KIND_LEARNED_LATENTS)
               ? dc_params_find(m->params, "latents.weight")
               : -1;
}

/* The graph's backward_passed hook while a training step's backward runs. */
static dc_status backward_passed(void *user, int node, dc_error *err) {
    dc_dist *d = user;
    const double t0 = now_s();
    dc_status s = dense_advance(d, d->armed->params, node, err);
    d->stats.overlap_s += now_s() - t0;
    return s;
}

static void disarm(dc_dist *d) {
    if (d->armed) d->armed->g->backward_passed = NULL, d->armed->g->backward_passed_user = NULL;
    d->armed = NULL;
}

dc_status dc_dist_backward_begin(dc_dist *d, dc_model *m, dc_error *err) {
    if (!d || d->size < 2 || !d->overlap) return DC_OK;
    if (!m || !m->g) return dc_set_error(err, DC_ERR_ARG, "dc_dist_backward_begin: no model");
    disarm(d);
    const int count = dc_params_count(m->params);
    if (count > d->done_cap) {
        int *p = realloc(d->done_at, (size_t)count * sizeof *p);
        if (!p) return dc_set_error(err, DC_ERR_OOM, "overlapped all-reduce: out of memory");
        d->done_at = p;
        d->done_cap = count;
    }
    /* a parameter's gradient is complete when backward has passed every node that uses
     * it (a tied weight has two) */
    for (int i = 0; i < count; i++)
        d->done_at[i] = INT_MAX;
    for (int j = 0; j < m->g->n; j++)
        for (int k = 0; k < 4; k++) {
            const int q = m->g->nodes[j].param[k];
            if (q >= 0 && q < count && j < d->done_at[q]) d->done_at[q] = j;
        }
    DC_TRY(dense_begin(d, m->params, latents_param(m), err));
    d->armed = m;
    m->g->backward_passed = backward_passed;
    m->g->backward_passed_user = d;
    return DC_OK;
}

dc_status dc_dist_reduce_step(dc_dist *d, dc_model *m, const dc_batch *b, dc_error *err) {
    if (!d || d->size < 2) return DC_OK;
    if (!m || !b) return dc_set_error(err, DC_ERR_ARG, "dc_dist_reduce_step: model and batch");
    const int overlapped = d->armed == m;
    disarm(d);
    /* a barrier first, so the exchange's time is not mixed with waiting for a slower
     * rank (load imbalance, another job on the cores); buckets started during backward
     * move on meanwhile */
    const double t_wait = now_s();
    int rc = MPI_Barrier(d->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "waiting for the other ranks");
    const double t0 = now_s();
    d->stats.wait_s += t0 - t_wait;
    double bytes = 0;
    const int latents = latents_param(m);
    dc_status s = overlapped ? DC_OK : dense_begin(d, m->params, latents, err);
    if (s == DC_OK) s = dense_finish(d, m->params, &bytes, err);
    if (s == DC_OK && latents >= 0) s = reduce_rows(d, m->params, latents, b, &bytes, err);
    if (s == DC_OK) s = reduce_state(d, m->params, &bytes, err);
    if (s != DC_OK) return dc_wrap_error(err, s, "rank %d of %d", d->rank, d->size);
    d->stats.steps++;
    d->stats.bytes_per_step = bytes;
    d->stats.comm_s += now_s() - t0;
    return DC_OK;
}

/* The graph's batch_sum hook: synchronised batch norm's sums over the ranks. */
static dc_status batch_sum(void *user, double *values, int n, dc_error *err) {
    dc_dist *d = user;
    int rc = MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, d->comm);
    return rc == MPI_SUCCESS ? DC_OK : mpi_fail(err, rc, "summing batch-norm statistics");
}

dc_status dc_dist_attach(dc_dist *d, dc_model *m, dc_error *err) {
    if (!d || d->size < 2 || !d->sync_batchnorm) return DC_OK;
    if (!m || !m->g) return dc_set_error(err, DC_ERR_ARG, "dc_dist_attach: no model");
    m->g->batch_sum = batch_sum;
    m->g->batch_sum_user = d;
    return DC_OK;
}

dc_status dc_dist_sum(dc_dist *d, double *values, int n, dc_error *err) {
    if (!d || d->size < 2) return DC_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, d->comm);
    return rc == MPI_SUCCESS ? DC_OK : mpi_fail(err, rc, "summing over the ranks");
}

dc_status dc_dist_mean(dc_dist *d, float *values, int n, dc_error *err) {
    if (!d || d->size < 2) return DC_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_FLOAT, MPI_SUM, d->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "averaging the loss");
    for (int i = 0; i < n; i++)
        values[i] /= (float)d->size;
    return DC_OK;
}

int dc_dist_any(dc_dist *d, int flag) {
    if (!d || d->size < 2) return flag != 0;
    int in = flag != 0, out = 1;
    if (MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, d->comm) != MPI_SUCCESS) return 1;
    return out;
}

dc_status dc_dist_broadcast_params(dc_dist *d, dc_params *p, dc_error *err) {
    if (!d || d->size < 2) return DC_OK;
    for (int i = 0; i < dc_params_count(p); i++) {
        dc_param *q = dc_params_get(p, i);
        DC_TRY(stage_reserve(d, q->numel, err));
        if (d->rank == 0 && dc_params_read(p, i, d->stage) != DC_OK)
            return dc_set_error(err, DC_ERR_IO, "reading '%s'", q->name);
        int rc = MPI_Bcast(d->stage, (int)q->numel, MPI_FLOAT, 0, d->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, q->name);
        if (d->rank != 0 && dc_params_write(p, i, d->stage) != DC_OK)
            return dc_set_error(err, DC_ERR_IO, "writing '%s'", q->name);
    }
    return DC_OK;
}

void dc_dist_get_stats(const dc_dist *d, dc_dist_stats *out) {
    memset(out, 0, sizeof *out);
    if (d) *out = d->stats;
}
#endif
