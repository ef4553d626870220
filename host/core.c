/* Status names, error messages, the host PRNG, shapes. */
#include <math.h>
#include <stdarg.h>

#include "internal.h"

const char *dc_status_name(dc_status s) {
    switch (s) {
    case DC_OK: return "ok";
    case DC_ERR_ARG: return "invalid argument";
    case DC_ERR_IO: return "I/O error";
    case DC_ERR_SHAPE: return "shape mismatch";
    case DC_ERR_OOM: return "out of memory";
    case DC_ERR_CL: return "OpenCL error";
    case DC_ERR_FORMAT: return "bad format";
    case DC_ERR_STATE: return "wrong state";
    case DC_ERR_UNSUPPORTED: return "unsupported";
    case DC_ERR_NOT_FOUND: return "not found";
    case DC_ERR_INTERRUPTED: return "interrupted";
    case DC_ERR_NUMERIC: return "non-finite value";
    }
    return "unknown status";
}

dc_status dc_set_error(dc_error *err, dc_status s, const char *fmt, ...) {
    if (!err) return s;
    err->status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return s;
}

dc_status dc_wrap_error(dc_error *err, dc_status s, const char *fmt, ...) {
    if (!err) return s;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = 0;
    err->status = s;
    /* prefix, then as much of the old message as fits */
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 1) n = sizeof err->msg - 1;
    memcpy(err->msg, prefix, n);
    if (old[0] && n + 2 < sizeof err->msg) {
        err->msg[n++] = ':';
        err->msg[n++] = ' ';
        size_t m = strlen(old);
        if (m > sizeof err->msg - 1 - n) m = sizeof err->msg - 1 - n;
        memcpy(err->msg + n, old, m);
        n += m;
    }
    err->msg[n] = 0;
    return s;
}

void dc_error_clear(dc_error *err) {
    if (!err) return;
    err->status = DC_OK;
    err->msg[0] = 0;
}

void dc_strlcpy(char *dst, const char *src, size_t cap) {
    if (!cap) return;
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = 0;
}

/* ---- PRNG: splitmix64 to seed xoshiro256** (Blackman & Vigna). ---- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dc_rng_seed(dc_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dc_rng_next(dc_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float dc_rng_uniform(dc_rng *r) { return (float)(dc_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

float dc_rng_normal(dc_rng *r) {
    /* Box-Muller in double for accuracy; one value per call keeps the stream simple. */
    double u1 = ((double)(dc_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(dc_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t dc_rng_below(dc_rng *r, uint32_t n) {
    if (n == 0) return 0;
    uint64_t lim = (0x100000000ULL / n) * n;
    for (;;) {
        uint64_t x = dc_rng_next(r) >> 32;
        if (x < lim) return (uint32_t)(x % n);
    }
}

uint64_t dc_seed_mix(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b * 0xd1342543de82ef95ULL);
    return splitmix64(&x);
}

size_t dc_shape_numel(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)(shape[i] < 0 ? 0 : shape[i]);
    return n;
}

const char *dc_shape_str(int ndim, const int *shape, char *buf, size_t cap) {
    size_t used = 0;
    if (!cap) return buf;
    buf[0] = 0;
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ", %d" : "%d", shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}
