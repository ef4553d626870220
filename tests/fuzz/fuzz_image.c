/* libFuzzer target: the image decoder path of the data loader on arbitrary bytes: the
 * structure checks (host/data/image_check.c), stb_image behind them (8-bit and the
 * 16-bit path the restoration images take) and the fit into a square. A small pixel cap
 * keeps each run fast; the cap path itself is part of what is fuzzed. Built and run by
 * ci/fuzz. */
#include <stdint.h>
#include <stdlib.h>

#include "data/data_internal.h"

#define FUZZ_MAX_PIXELS (1 << 18)
#define FUZZ_SIZE 12

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dc_error err = {0};
    float *planes = NULL;
    int h = 0, w = 0;
    /* one input byte picks gray or RGB so both conversions run */
    int channels = size > 0 && (data[size - 1] & 1) ? 3 : 1;
    if (dc_image_decode_planes("fuzz", data, size, channels, FUZZ_MAX_PIXELS, &planes, &h, &w,
                               &err) == DC_OK) {
        float fitted[3 * FUZZ_SIZE * FUZZ_SIZE];
        if (dc_image_fit(planes, channels, h, w, fitted, FUZZ_SIZE, &err) != DC_OK) abort();
        free(planes);
    }
    void *pix = NULL;
    int comp = 0, wide = 0;
    if (dc_image_decode_memory("fuzz", data, size, 1, FUZZ_MAX_PIXELS, &pix, &h, &w, &comp,
                               &wide, &err) == DC_OK) {
        /* touch every sample so a short buffer shows under ASan */
        size_t n = (size_t)h * (size_t)w * (size_t)comp * (wide ? 2 : 1);
        volatile unsigned sum = 0;
        for (size_t i = 0; i < n; i++) sum += ((const unsigned char *)pix)[i];
        dc_image_raw_free(pix);
    }
    return 0;
}
