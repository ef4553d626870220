/* The op table, generated from ops.def: one entry per op in its order. */
#include "graph_internal.h"

/* Inputs are written by the caller: nothing to run. */
static const dc_op_impl dc_op_input = {NULL, NULL, NULL, NULL};

/* Declares each implementation once (several ops share one, e.g. the activations). */
#define X(e, name, impl) extern const dc_op_impl impl;
#include "ops.def"
#undef X

const dc_op_impl *const dc_op_impls[DC_OP_COUNT] = {
#define X(e, name, impl) &impl,
#include "ops.def"
#undef X
};
