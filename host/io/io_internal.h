/* Helpers shared by the weight writers and readers in host/io/ (safetensors, npz, onnx). */
#ifndef DECONV_IO_INTERNAL_H
#define DECONV_IO_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "deconv/deconv.h"

/* A file written atomically: bytes go to "<path>.tmp.<pid>.<unique>" in the same folder; commit
 * flushes, fsyncs, renames over <path> and fsyncs the folder, so readers see either the
 * old file or the complete new one. abort removes the temporary file. */
typedef struct dc_atomic_file {
    FILE *f;
    char *path, *tmp;
    int failed; /* a write failed: commit refuses */
} dc_atomic_file;

dc_status dc_atomic_open(dc_atomic_file *af, const char *path, dc_error *err);
dc_status dc_atomic_write(dc_atomic_file *af, const void *data, size_t n, dc_error *err);
dc_status dc_atomic_commit(dc_atomic_file *af, dc_error *err);
void dc_atomic_abort(dc_atomic_file *af); /* NULL-safe, idempotent */

/* Little-endian encoding (files are little-endian whatever the host is). */
static inline int dc_host_is_le(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}
static inline void dc_put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void dc_put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void dc_put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t dc_get_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
/* In-place byte swap of float32 values between host order and little-endian (no-op on
 * little-endian hosts). */
void dc_f32_to_le(float *x, size_t n);

#endif
