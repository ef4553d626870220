/* deconv — synchronous data-parallel training over MPI (Open MPI), as PyTorch DDP does it.
 *
 * Every rank holds the whole model. A global batch of B images is split into N equal
 * slices (B must be a multiple of N): rank r prepares only slots r*B/N .. (r+1)*B/N - 1 of
 * each global batch (augmentation, masks, noise: dc_model_fill_batch_slice), runs forward
 * and backward on them, and the gradients are averaged over the ranks by MPI all-reduce in
 * buckets of whole layers, staged through host memory (OpenCL buffers included), before
 * every rank takes the same optimizer step; a bucket starts as soon as backward has
 * finished its layers, so the exchange overlaps the rest of the backward pass. GLO's latent table
 * is not all-reduced: the rows the ranks' slices touched are gathered, and only those rows are
 * exchanged. Non-trainable state (batch-norm running statistics) is averaged after every step, so
 * the ranks' weights stay identical. Batch norm normalises by per-rank statistics unless
 * sync_batchnorm is set: then every training-mode forward and backward exchanges each
 * batch-norm layer's sums, so it must run on all ranks at once (the trainer's steps do).
 *
 * Determinism: N ranks compute the same sum of per-image gradients as one process with
 * the same global batch, in another order (per-rank partial sums, then MPI's sum), so
 * weights agree up to float rounding, not bit for bit; README.md states the tolerance the
 * tests hold. Random draws inside the graph (dropout, the completion model's code noise,
 * the VAE's sampling) and self-feedback's picks come from a stream per rank
 * (dc_dist_draw_seed): the same distribution as one process, not the same draws.
 *
 * A trainer runs data-parallel when dc_train_config.dist is set: rank 0 alone holds the
 * run folder's lock and writes the checkpoint and loss.csv; the stop request (should_stop)
 * is agreed by all ranks after every step. A failing rank must end the others:
 * dc_dist_abort prints the message and calls MPI_Abort.
 *
 * Built when CMake finds MPI (DECONV_MPI); otherwise dc_dist_create returns
 * DC_ERR_UNSUPPORTED and every other function treats a NULL dist as one process. */
#ifndef DECONV_DIST_H
#define DECONV_DIST_H

#include "deconv/deconv.h"
#include "deconv/model.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

typedef struct dc_dist dc_dist;

typedef struct dc_dist_options {
    size_t bucket_bytes; /* gradients per all-reduce bucket, whole layers; 0: 4 MiB */
    int sync_batchnorm;  /* batch norm normalises by the global batch's statistics (summed
                            over the ranks in forward and backward); 0: per rank */
    int serial_exchange; /* 1: all-reduce the gradients after backward, not during it
                            (the same buckets and sums; for measuring the overlap) */
} dc_dist_options;

/* 1 when this build has MPI. */
int dc_dist_available(void);
/* 1 when the environment says the process was started by mpirun / mpiexec (Open MPI, MPICH
 * or a PMI launcher). */
int dc_dist_launched(void);

/* All processes of MPI_COMM_WORLD. Initialises MPI when nobody has (and then finalises it in
 * dc_dist_free); MPI errors come back as DC_ERR_IO with MPI's message. opt NULL: defaults. */
dc_status dc_dist_create(const dc_dist_options *opt, dc_dist **out, dc_error *err);
void dc_dist_free(dc_dist *d);
/* 0 and 1 for NULL (one process). */
int dc_dist_rank(const dc_dist *d);
int dc_dist_size(const dc_dist *d);
/* Prints "deconv: rank R of N: message" to stderr and ends every rank (MPI_Abort with
 * `code`). Returns at once for NULL or a single rank (the caller exits by itself). */
void dc_dist_abort(dc_dist *d, int code, const char *message);

/* Prepare a model for data-parallel training: with sync_batchnorm, its graph's batch-norm
 * layers sum their statistics over the ranks. Nothing to do for NULL or one rank. */
dc_status dc_dist_attach(dc_dist *d, dc_model *m, dc_error *err);

/* This rank's share of a global batch: local = global_batch / N slots from first_slot.
 * DC_ERR_ARG naming both numbers when global_batch is not a multiple of N. */
dc_status dc_dist_batch_slice(const dc_dist *d, int global_batch, int *local, int *first_slot,
                              dc_error *err);

/* Right before the training step's backward: the graph reports each node backward has
 * passed, and every bucket of gradients starts its all-reduce (MPI_Iallreduce) as soon as
 * backward has completed all its layers, overlapping the exchange with the rest of the
 * backward pass; dc_dist_reduce_step then waits for the buckets. Staging reads gradients
 * from the device mid-backward (OpenCL: a blocking read per layer; the CPU backend: a
 * copy). Nothing to do for NULL, one rank or serial_exchange. */
dc_status dc_dist_backward_begin(dc_dist *d, dc_model *m, dc_error *err);

/* After backward: average the gradients over the ranks (buckets of whole layers, the last
 * layers first, as backward produces them; those dc_dist_backward_begin started are waited
 * for), GLO's latent rows that b's slices touched (all ranks' b->index) and the
 * non-trainable state. Nothing to do for NULL or one rank. */
dc_status dc_dist_reduce_step(dc_dist *d, dc_model *m, const dc_batch *b, dc_error *err);
/* The seed of this rank's random draws inside the graph (dropout, code noise, sampling):
 * `seed` itself on rank 0 and in one process, an independent stream on the others (a
 * draw is keyed by its element's place in the rank's tensor, so equal seeds would give
 * every rank the same draws). */
uint64_t dc_dist_draw_seed(const dc_dist *d, uint64_t seed);
/* values[0..n) = their sum over the ranks (in place). */
dc_status dc_dist_sum(dc_dist *d, double *values, int n, dc_error *err);
/* values[0..n) = their mean over the ranks (in place). */
dc_status dc_dist_mean(dc_dist *d, float *values, int n, dc_error *err);
/* 1 on every rank when `flag` is nonzero on any rank. A failing exchange counts as 1. */
int dc_dist_any(dc_dist *d, int flag);
/* Rank 0's parameter values to every rank. */
dc_status dc_dist_broadcast_params(dc_dist *d, dc_params *p, dc_error *err);

/* What the exchanges cost so far (dc_dist_reduce_step calls). */
typedef struct dc_dist_stats {
    long steps;
    double bytes_per_step; /* bytes all-reduced by this rank in the last step */
    double wait_s;         /* seconds waiting at the step's start for the slowest rank */
    double comm_s;         /* seconds in the exchange after backward: staging what is left,
                              waiting for the all-reduce, write-back */
    double overlap_s;      /* seconds of the exchange spent inside backward: staging,
                              starting buckets, moving them on (dc_dist_backward_begin) */
    long early_buckets;    /* gradient buckets started before backward ended */
} dc_dist_stats;
void dc_dist_get_stats(const dc_dist *d, dc_dist_stats *out);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
