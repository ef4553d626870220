/* The data-parallel parts of the trainer (host/train.c): which images a rank decodes, and
 * the figures over the whole training set that the ranks compute from their shares. Not
 * installed. */
#ifndef DECONV_TRAIN_DIST_H
#define DECONV_TRAIN_DIST_H

#include "deconv/data.h"
#include "deconv/dist.h"

/* A lazily loaded training set (and its copy at the oversampled size, fine, when that is
 * lazy too) decodes the items this rank's slices of the epoch's batches from step
 * from_step on hold (picked from perm as dc_model_fill_batch_slice picks them) and drops
 * the others. Nothing to do for an ordinary set. */
dc_status dc_train_decode_epoch_share(const dc_dataset *train, const dc_dataset *fine,
                                      const int32_t *perm, int from_step, int steps_per_epoch,
                                      int batch, const dc_dist *dist, dc_error *err);

/* The augmentation's fill: the mean over the training images of their corner means
 * (dc_dataset_corner_means). Each rank takes every N-th image, the per-image values are
 * exchanged (exactly: the other ranks add zeros) and summed in image order, as one process
 * sums them. */
dc_status dc_train_corner_fill(const dc_dataset *train, dc_dist *dist, float *fill, dc_error *err);

#endif
