/* The OpenCL backend's table of services and primitives, generated from the primitive list:
 * services are dc_cl_<name> (backend_cl.c), primitives dc_cl_prim_<name> (one file per
 * family: memory.c, conv.c, conv_gemm.c, norm.c, elementwise.c, loss_optim.c). */
#include "launch.h"

/* No host threads to set: the device runs the kernels. */
#define dc_cl_set_threads NULL

/* Every primitive but adam_update and fill launches what is pending first, so the queue
 * keeps the order of the calls (generated from the primitive list); those two merge with
 * what is pending or flush it themselves. */
#define DC_SERVICE(ret, name, params)
#define DC_PRIM(name, params, args, flops, elems, variant)                                         \
    static dc_status clq_##name params {                                                           \
        if (DC_PRIM_ID_##name != DC_PRIM_ID_adam_update && DC_PRIM_ID_##name != DC_PRIM_ID_fill)   \
            DC_TRY(dc_cl_flush(be));                                                               \
        return dc_cl_prim_##name args;                                                             \
    }
#define DC_PRIM_OPT(name, params, args, flops, elems, variant)
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT

const dc_backend_ops dc_cl_ops = {
    .name = "opencl",
#define DC_SERVICE(ret, name, params) .name = dc_cl_##name,
#define DC_PRIM(name, params, args, flops, elems, variant) .name = clq_##name,
/* the optional (fused) ones launch what is pending themselves */
#define DC_PRIM_OPT(name, params, args, flops, elems, variant) .name = dc_cl_prim_##name,
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT
};
