/* The op table: one entry per op in ops.def order. */
#include "graph_internal.h"

extern const dc_op_impl dc_op_conv2d, dc_op_conv_t2d, dc_op_maxpool2d, dc_op_maxunpool2d,
    dc_op_gap, dc_op_act, dc_op_dense, dc_op_embedding, dc_op_batchnorm2d, dc_op_dropout,
    dc_op_view, dc_op_add, dc_op_mul, dc_op_noise, dc_op_reparam, dc_op_mse, dc_op_xent, dc_op_kl,
    dc_op_loss_sum, dc_op_softmax;

static const dc_op_impl input_impl_ = {NULL, NULL, NULL, NULL};

#define dc_op_impl_INPUT input_impl_
#define dc_op_impl_INPUT_INT input_impl_
#define dc_op_impl_CONV2D dc_op_conv2d
#define dc_op_impl_CONV_T2D dc_op_conv_t2d
#define dc_op_impl_MAXPOOL2D dc_op_maxpool2d
#define dc_op_impl_MAXUNPOOL2D dc_op_maxunpool2d
#define dc_op_impl_RELU dc_op_act
#define dc_op_impl_LEAKY_RELU dc_op_act
#define dc_op_impl_TANH dc_op_act
#define dc_op_impl_SIGMOID dc_op_act
#define dc_op_impl_DENSE dc_op_dense
#define dc_op_impl_RESHAPE dc_op_view
#define dc_op_impl_ADD dc_op_add
#define dc_op_impl_MUL dc_op_mul
#define dc_op_impl_GAP dc_op_gap
#define dc_op_impl_BATCHNORM2D dc_op_batchnorm2d
#define dc_op_impl_DROPOUT dc_op_dropout
#define dc_op_impl_GAUSSIAN_NOISE dc_op_noise
#define dc_op_impl_REPARAM dc_op_reparam
#define dc_op_impl_EMBEDDING dc_op_embedding
#define dc_op_impl_SOFTMAX dc_op_softmax
#define dc_op_impl_MSE_LOSS dc_op_mse
#define dc_op_impl_XENT_LOSS dc_op_xent
#define dc_op_impl_KL_LOSS dc_op_kl
#define dc_op_impl_LOSS_SUM dc_op_loss_sum

const dc_op_impl *const dc_op_impls[DC_OP_COUNT] = {
#define X(e, name) &dc_op_impl_##e,
#include "ops.def"
#undef X
};
