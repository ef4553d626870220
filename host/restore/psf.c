/* Point spread functions: Gaussian, linear motion, from a file (image or text matrix),
 * and the checks every restore function runs on its PSF and image. */
#include <ctype.h>
#include <errno.h>
#include <math.h>

#include "internal.h"
#include "deconv/restore.h"

#define PSF_MAX_SIZE 4097 /* larger kernels are surely a typo (sigma 680+) */

/* Divide by the sum; the sum must be positive and finite. `what` names the PSF. */
static dc_status normalise(dc_fimage *psf, const char *what, dc_error *err) {
    const size_t n = dc_fimage_numel(psf);
    double sum = 0;
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        sum += psf->data[i];
        nonzero |= psf->data[i] != 0.0f;
    }
    if (!nonzero) return dc_set_error(err, DC_ERR_ARG, "PSF %s is all zero", what);
    if (!(sum > 0) || !isfinite(sum))
        return dc_set_error(err, DC_ERR_ARG, "PSF %s sums to %g; it must sum to a positive value",
                            what, sum);
    for (size_t i = 0; i < n; i++) psf->data[i] = (float)(psf->data[i] / sum);
    return DC_OK;
}

dc_status dc_psf_gaussian(float sigma, dc_fimage **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_psf_gaussian: out is NULL");
    *out = NULL;
    if (!(sigma > 0.0f) || !isfinite(sigma))
        return dc_set_error(err, DC_ERR_ARG, "Gaussian PSF: sigma must be positive, got %g",
                            (double)sigma);
    double r = ceil(3.0 * sigma);
    if (2 * r + 1 > PSF_MAX_SIZE)
        return dc_set_error(err, DC_ERR_ARG, "Gaussian PSF: sigma %g gives a %.0f x %.0f kernel, "
                            "more than %d", (double)sigma, 2 * r + 1, 2 * r + 1, PSF_MAX_SIZE);
    const int rad = (int)r, k = 2 * rad + 1;
    DC_TRY(dc_fimage_create(k, k, 1, out, err));
    const double inv2s2 = 1.0 / (2.0 * (double)sigma * sigma);
    for (int y = 0; y < k; y++)
        for (int x = 0; x < k; x++) {
            double dy = y - rad, dx = x - rad;
            (*out)->data[y * k + x] = (float)exp(-(dx * dx + dy * dy) * inv2s2);
        }
    dc_status s = normalise(*out, "gaussian", err);
    if (s != DC_OK) {
        dc_fimage_free(*out);
        *out = NULL;
    }
    return s;
}

dc_status dc_psf_motion(float length, float angle_deg, dc_fimage **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_psf_motion: out is NULL");
    *out = NULL;
    if (!(length >= 1.0f) || !isfinite(length) || length > PSF_MAX_SIZE - 2)
        return dc_set_error(err, DC_ERR_ARG, "motion PSF: length must be in [1, %d] pixels, got %g",
                            PSF_MAX_SIZE - 2, (double)length);
    if (!isfinite(angle_deg))
        return dc_set_error(err, DC_ERR_ARG, "motion PSF: angle %g is not finite",
                            (double)angle_deg);
    const double a = fmod((double)angle_deg, 360.0) * (3.14159265358979323846 / 180.0);
    const double ca = cos(a), sa = sin(a), half = 0.5 * length;
    /* Unit vectors in (x, y) with y pointing down: u along the motion, v across it. */
    const double ux = ca, uy = -sa, vx = sa, vy = ca;
    /* Half extents of the rotated 1-pixel-wide rectangle, then the pixels it can touch. */
    const double hx = fabs(ca) * half + 0.5 * fabs(sa), hy = fabs(sa) * half + 0.5 * fabs(ca);
    int rx = (int)ceil(hx - 0.5 - 1e-9), ry = (int)ceil(hy - 0.5 - 1e-9);
    if (rx < 0) rx = 0;
    if (ry < 0) ry = 0;
    const int kw = 2 * rx + 1, kh = 2 * ry + 1;
    DC_TRY(dc_fimage_create(kh, kw, 1, out, err));
    enum { SS = 16 };
    for (int y = 0; y < kh; y++)
        for (int x = 0; x < kw; x++) {
            int inside = 0;
            for (int sy = 0; sy < SS; sy++)
                for (int sx = 0; sx < SS; sx++) {
                    double px = x - rx - 0.5 + (sx + 0.5) / SS;
                    double py = y - ry - 0.5 + (sy + 0.5) / SS;
                    double s = px * ux + py * uy, t = px * vx + py * vy;
                    inside += fabs(s) <= half && fabs(t) <= 0.5;
                }
            (*out)->data[y * kw + x] = (float)inside / (SS * SS);
        }
    dc_status s = normalise(*out, "motion", err);
    if (s != DC_OK) {
        dc_fimage_free(*out);
        *out = NULL;
    }
    return s;
}

static int has_text_extension(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return 0;
    static const char *const exts[] = {".txt", ".csv", ".tsv", ".dat"};
    for (size_t i = 0; i < DC_ARRAY_LEN(exts); i++) {
        const char *e = exts[i];
        size_t n = strlen(e);
        if (strlen(dot) != n) continue;
        size_t j = 0;
        while (j < n && tolower((unsigned char)dot[j]) == e[j]) j++;
        if (j == n) return 1;
    }
    return 0;
}

/* Read a whole text file into a NUL-terminated buffer. */
static dc_status slurp(const char *path, char **out, dc_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dc_set_error(err, DC_ERR_IO, "cannot open PSF '%s': %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (len + 1 < cap) break;
        char *nb = cap < ((size_t)64 << 20) ? realloc(buf, cap * 2) : NULL;
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return dc_set_error(err, DC_ERR_IO, "PSF '%s' is too large (64 MiB at most)", path);
    if (bad) {
        free(buf);
        return dc_set_error(err, DC_ERR_IO, "cannot read PSF '%s'", path);
    }
    buf[len] = 0;
    *out = buf;
    return DC_OK;
}

static int is_separator(char c) { return c == ' ' || c == '\t' || c == ',' || c == ';' || c == '\r'; }

/* Text matrix: rows of numbers. Two passes: count the shape, then fill. */
static dc_status load_text(const char *path, dc_fimage **out, dc_error *err) {
    char *text;
    DC_TRY(slurp(path, &text, err));
    dc_status s = DC_OK;
    int rows = 0, cols = 0;
    float *vals = NULL;
    size_t nvals = 0, cap = 0;
    int line_no = 0;
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        line_no++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        int count = 0;
        char *p = line;
        for (;;) {
            while (*p && is_separator(*p)) p++;
            if (!*p) break;
            char *end;
            errno = 0;
            double v = strtod(p, &end);
            if (end == p || (*end && !is_separator(*end))) {
                char tok[32];
                size_t n = strcspn(p, " \t,;\r");
                dc_strlcpy(tok, p, n + 1 < sizeof tok ? n + 1 : sizeof tok);
                s = dc_set_error(err, DC_ERR_FORMAT, "PSF '%s' line %d: '%s' is not a number",
                                 path, line_no, tok);
                goto done;
            }
            if (!isfinite(v)) {
                s = dc_set_error(err, DC_ERR_NUMERIC,
                                 "PSF '%s' line %d: non-finite value (%g)", path, line_no, v);
                goto done;
            }
            if (nvals == cap) {
                size_t ncap = cap ? cap * 2 : 256;
                float *nv = realloc(vals, ncap * sizeof *nv);
                if (!nv) {
                    s = dc_set_error(err, DC_ERR_OOM, "PSF '%s': out of memory", path);
                    goto done;
                }
                vals = nv;
                cap = ncap;
            }
            vals[nvals++] = (float)v;
            count++;
            p = end;
        }
        if (count) {
            if (rows && count != cols) {
                s = dc_set_error(err, DC_ERR_FORMAT,
                                 "PSF '%s' line %d has %d values but the rows above have %d",
                                 path, line_no, count, cols);
                goto done;
            }
            cols = count;
            rows++;
        }
        line = next;
    }
    if (!rows) {
        s = dc_set_error(err, DC_ERR_FORMAT, "PSF '%s' holds no numbers", path);
        goto done;
    }
    if (rows > PSF_MAX_SIZE || cols > PSF_MAX_SIZE) {
        s = dc_set_error(err, DC_ERR_SHAPE, "PSF '%s' is %d x %d, more than %d", path, rows, cols,
                         PSF_MAX_SIZE);
        goto done;
    }
    s = dc_fimage_create(rows, cols, 1, out, err);
    if (s == DC_OK) memcpy((*out)->data, vals, nvals * sizeof(float));
done:
    free(vals);
    free(text);
    return s;
}

dc_status dc_psf_load(const char *path, dc_fimage **out, dc_error *err) {
    if (!path || !out) return dc_set_error(err, DC_ERR_ARG, "dc_psf_load: NULL argument");
    *out = NULL;
    dc_status s;
    if (has_text_extension(path)) {
        s = load_text(path, out, err);
    } else {
        dc_fimage *im = NULL;
        s = dc_fimage_load(path, &im, err);
        if (s != DC_OK) return dc_wrap_error(err, s, "PSF");
        if (im->c == 3) {
            /* Luminance, Rec. 601 weights (what stb uses for its own gray conversion). */
            s = dc_fimage_create(im->h, im->w, 1, out, err);
            if (s == DC_OK) {
                const size_t hw = (size_t)im->h * im->w;
                const float *r = dc_fimage_plane(im, 0), *g = dc_fimage_plane(im, 1),
                            *b = dc_fimage_plane(im, 2);
                for (size_t i = 0; i < hw; i++)
                    (*out)->data[i] = 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i];
            }
            dc_fimage_free(im);
        } else {
            *out = im;
        }
        if (s == DC_OK && ((*out)->h > PSF_MAX_SIZE || (*out)->w > PSF_MAX_SIZE))
            s = dc_set_error(err, DC_ERR_SHAPE, "PSF '%s' is %d x %d, more than %d", path,
                             (*out)->h, (*out)->w, PSF_MAX_SIZE);
    }
    if (s == DC_OK) {
        char what[600];
        snprintf(what, sizeof what, "'%s'", path);
        s = normalise(*out, what, err);
    }
    if (s != DC_OK) {
        dc_fimage_free(*out);
        *out = NULL;
    }
    return s;
}

static int parse_float(const char *s, char stop, float *v, const char **end_out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || (*end != stop && !(stop == 0 && *end == 0))) return 0;
    *v = (float)x;
    if (end_out) *end_out = end;
    return 1;
}

dc_status dc_psf_from_option(const char *option, const char *value, dc_fimage **out,
                             dc_error *err) {
    if (!option || !value || !out)
        return dc_set_error(err, DC_ERR_ARG, "dc_psf_from_option: NULL argument");
    *out = NULL;
    if (!strcmp(option, "psf")) return dc_psf_load(value, out, err);
    if (!strcmp(option, "gaussian")) {
        float sigma;
        if (!parse_float(value, 0, &sigma, NULL))
            return dc_set_error(err, DC_ERR_ARG, "--gaussian expects SIGMA (pixels), got '%s'",
                                value);
        return dc_psf_gaussian(sigma, out, err);
    }
    if (!strcmp(option, "motion")) {
        float len, angle = 0.0f;
        const char *end;
        if (parse_float(value, ',', &len, &end)) {
            if (!parse_float(end + 1, 0, &angle, NULL))
                return dc_set_error(err, DC_ERR_ARG,
                                    "--motion expects LEN,ANGLE (pixels, degrees), got '%s'",
                                    value);
        } else if (!parse_float(value, 0, &len, NULL)) {
            return dc_set_error(err, DC_ERR_ARG,
                                "--motion expects LEN,ANGLE (pixels, degrees), got '%s'", value);
        }
        return dc_psf_motion(len, angle, out, err);
    }
    return dc_set_error(err, DC_ERR_ARG, "unknown PSF option '%s' (use psf, gaussian or motion)",
                        option);
}

dc_status dc_psf_check(const dc_fimage *psf, const dc_fimage *image, dc_error *err) {
    if (!psf) return dc_set_error(err, DC_ERR_ARG, "no PSF given");
    if (!image) return dc_set_error(err, DC_ERR_ARG, "no image given");
    if (psf->c != 1)
        return dc_set_error(err, DC_ERR_SHAPE, "the PSF must have 1 channel, not %d", psf->c);
    if (psf->h > image->h || psf->w > image->w)
        return dc_set_error(err, DC_ERR_SHAPE,
                            "PSF %d x %d is larger than the image %d x %d (height x width)",
                            psf->h, psf->w, image->h, image->w);
    DC_TRY(dc_fimage_check_finite(psf, "PSF", err));
    int nonzero = 0;
    for (size_t i = 0, n = dc_fimage_numel(psf); i < n && !nonzero; i++)
        nonzero = psf->data[i] != 0.0f;
    if (!nonzero) return dc_set_error(err, DC_ERR_ARG, "PSF is all zero");
    return dc_fimage_check_finite(image, "image", err);
}

dc_status dc_psf_save_text(const dc_fimage *psf, const char *path, dc_error *err) {
    if (!psf || !path) return dc_set_error(err, DC_ERR_ARG, "dc_psf_save_text: NULL argument");
    if (psf->c != 1)
        return dc_set_error(err, DC_ERR_SHAPE, "'%s': a PSF has 1 channel, not %d", path, psf->c);
    FILE *f = fopen(path, "w");
    if (!f) return dc_set_error(err, DC_ERR_IO, "cannot write PSF '%s': %s", path, strerror(errno));
    fprintf(f, "# PSF %d x %d (rows x columns)\n", psf->h, psf->w);
    for (int y = 0; y < psf->h; y++)
        for (int x = 0; x < psf->w; x++)
            fprintf(f, "%.9g%c", (double)psf->data[y * psf->w + x], x + 1 < psf->w ? ' ' : '\n');
    if (fclose(f) != 0) return dc_set_error(err, DC_ERR_IO, "cannot write PSF '%s'", path);
    return DC_OK;
}
