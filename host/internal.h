/* Internal helpers shared by host/ sources. Not installed. */
#ifndef DECONV_INTERNAL_H
#define DECONV_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/backend.h"
#include "deconv/deconv.h"

#define DC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Propagate a failing status. */
#define DC_TRY(expr)                      \
    do {                                  \
        dc_status dc_try_s_ = (expr);     \
        if (dc_try_s_ != DC_OK) return dc_try_s_; \
    } while (0)

/* The one way to call a backend entry outside the backends: DC_BE(be, NAME, args...) is
 * be->ops->NAME(be, args...). One macro rather than one wrapper per entry, so adding a
 * primitive to primitives.def needs nothing here, and `be` is written once at the call.
 * (`, ##__VA_ARGS__` drops the comma for entries without arguments, e.g. DC_BE(be, sync);
 * GCC and Clang both accept it.) Testing an optional entry stays be->ops->NAME != NULL. */
#define DC_BE(be, name, ...) ((be)->ops->name((be), ##__VA_ARGS__))

static inline dc_ptr dc_tensor_ptr(dc_tensor t) {
    dc_ptr p = {t.buf, t.off};
    return p;
}
static inline dc_ptr dc_null_ptr(void) {
    dc_ptr p = {NULL, 0};
    return p;
}

/* Safe string copy that always terminates. */
void dc_strlcpy(char *dst, const char *src, size_t cap);

/* Arena accessors for the optimizer / checkpoint code. */
dc_ptr dc_params_values_ptr(dc_params *p);
dc_ptr dc_params_grads_ptr(dc_params *p);
dc_ptr dc_params_moment_ptr(dc_params *p, int which); /* 0: m, 1: v; allocated lazily */
dc_status dc_params_ensure_moments(dc_params *p);
/* The exponential moving average of the values (EMA weights, for sampling): allocated on
 * demand from the current values (see dc_params_has_ema / dc_params_swap_ema). */
dc_ptr dc_params_ema_ptr(dc_params *p);
dc_status dc_params_ensure_ema(dc_params *p);
dc_error *dc_params_err(dc_params *p);

/* Decode an image file (stb_image, compiled once in host/data/image_file.c): interleaved
 * samples at the file's size with its *comp components (1 gray, 2 gray+alpha, 3 RGB,
 * 4 RGBA), 16-bit (*wide = 1) when allow16 and the file has 16-bit samples, else 8-bit.
 * Free *pix with dc_image_raw_free. Errors name the file and the decoder's reason. */
dc_status dc_image_decode_raw(const char *path, int allow16, void **pix, int *h, int *w,
                              int *comp, int *wide, dc_error *err);
/* The same for bytes in memory (name for messages), with a pixel cap (<= 0: the default
 * DC_IMAGE_MAX_PIXELS_DEFAULT of deconv/data.h). Both check the file's structure first and
 * refuse formats the loader cannot check (deconv/data.h). */
dc_status dc_image_decode_memory(const char *name, const unsigned char *bytes, size_t len,
                                 int allow16, int64_t max_pixels, void **pix, int *h, int *w,
                                 int *comp, int *wide, dc_error *err);
void dc_image_raw_free(void *pix);

#endif
