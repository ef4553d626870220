/* CPU primitives of the U-Net ops (see the "U-Net ops" block of primitives.def): channel
 * slices for concatenation, group normalisation, nearest upsampling, the sinusoidal time
 * embedding and self-attention. Reductions accumulate in double in a fixed order, like the
 * rest of the reference backend. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_internal.h"

dc_status dc_cpu_chan_slice(dc_backend *be, int dir, dc_ptr big, int cbig, int coff, dc_ptr small,
                            int csmall, int n, int hw) {
    if (coff < 0 || csmall < 0 || coff + csmall > cbig || n < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "cpu chan_slice: channels [%d, %d) outside a %d-channel tensor", coff,
                            coff + csmall, cbig);
    float *pb = F(big), *ps = F(small);
    const size_t run = (size_t)csmall * hw; /* one image's slice is contiguous */
#pragma omp parallel for schedule(static) if ((size_t)n * run > 65536)
    for (int i = 0; i < n; i++) {
        float *b = pb + ((size_t)i * cbig + coff) * hw, *s = ps + (size_t)i * run;
        if (dir == 0)
            memcpy(b, s, run * sizeof(float));
        else
            for (size_t q = 0; q < run; q++)
                s[q] += b[q];
    }
    return DC_OK;
}

static dc_status gn_check(dc_backend *be, const char *op, int c, int groups) {
    if (groups <= 0 || c % groups)
        return dc_set_error(&be->err, DC_ERR_ARG, "cpu %s: %d channels do not split into %d groups",
                            op, c, groups);
    return DC_OK;
}

/* A group's values are contiguous: image i, group j starts at (i*c + j*cg)*hw. */
dc_status dc_cpu_gn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c, int hw,
                          int groups) {
    DC_TRY(gn_check(be, "gn_stats", c, groups));
    const float *px = F(x);
    float *pm = F(mean), *pv = F(var);
    const size_t m = (size_t)(c / groups) * hw;
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw > 32768)
    for (int gi = 0; gi < n * groups; gi++) {
        const float *d = px + (size_t)gi * m;
        double s = 0;
        for (size_t q = 0; q < m; q++)
            s += d[q];
        const double mu = s / (double)m;
        double v = 0; /* two passes: summed around the mean, not E[x^2] - mu^2 */
        for (size_t q = 0; q < m; q++)
            v += (d[q] - mu) * (d[q] - mu);
        pm[gi] = (float)mu;
        pv[gi] = (float)(v / (double)m);
    }
    return DC_OK;
}

dc_status dc_cpu_gn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                          dc_ptr beta, dc_ptr y, int n, int c, int hw, int groups, float eps) {
    DC_TRY(gn_check(be, "gn_apply", c, groups));
    const float *px = F(x), *pm = F(mean), *pv = F(var), *pg = F(gamma), *pb = F(beta);
    float *py = F(y);
    const int cg = c / groups;
#pragma omp parallel for schedule(static) collapse(2) if ((size_t)n * c * hw > 65536)
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const int gi = i * groups + ch / cg;
            /* y = a*x + b, as the batch norm's apply */
            const float a = pg[ch] / sqrtf(pv[gi] + eps);
            const float b = pb[ch] - a * pm[gi];
            const size_t o = ((size_t)i * c + ch) * hw;
            for (int p = 0; p < hw; p++)
                py[o + p] = a * px[o + p] + b;
        }
    return DC_OK;
}

dc_status dc_cpu_gn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma, dc_ptr dy,
                        dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw, int groups,
                        float eps) {
    DC_TRY(gn_check(be, "gn_bwd", c, groups));
    cpu_backend *cb = (cpu_backend *)be;
    const float *px = F(x), *pm = F(mean), *pv = F(var), *pg = F(gamma), *pdy = F(dy);
    float *pdx = F(dx), *pdg = F(dgamma), *pdb = F(dbeta);
    const int cg = c / groups, planes = n * c;
    /* per plane (i, ch): sum dy and sum dy*xhat */
    double *part = dc_cpu_red_buffer(cb, 2 * (size_t)planes);
    if (!part) return dc_set_error(&be->err, DC_ERR_OOM, "cpu gn_bwd: out of memory");
    double *sdy = part, *sdyx = part + planes;
#pragma omp parallel for schedule(static) if ((size_t)planes * hw > 32768)
    for (int pl = 0; pl < planes; pl++) {
        const int gi = (pl / c) * groups + (pl % c) / cg;
        const double mu = pm[gi], rstd = 1.0 / sqrt((double)pv[gi] + eps);
        const float *d = pdy + (size_t)pl * hw, *xv = px + (size_t)pl * hw;
        double s0 = 0, s1 = 0;
        for (int p = 0; p < hw; p++) {
            s0 += d[p];
            s1 += d[p] * ((xv[p] - mu) * rstd);
        }
        sdy[pl] = s0;
        sdyx[pl] = s1;
    }
    for (int ch = 0; ch < c; ch++) {
        pdg[ch] += (float)dc_cpu_channel_total(sdyx, n, c, ch);
        pdb[ch] += (float)dc_cpu_channel_total(sdy, n, c, ch);
    }
    const double M = (double)cg * hw;
#pragma omp parallel for schedule(static) if ((size_t)planes * hw > 32768)
    for (int gi = 0; gi < n * groups; gi++) {
        const int i = gi / groups, j = gi % groups;
        double sg = 0, sgx = 0; /* sums of g = gamma*dy and g*xhat over the group */
        for (int ch = j * cg; ch < (j + 1) * cg; ch++) {
            sg += pg[ch] * sdy[i * c + ch];
            sgx += pg[ch] * sdyx[i * c + ch];
        }
        const double mu = pm[gi], rstd = 1.0 / sqrt((double)pv[gi] + eps);
        for (int ch = j * cg; ch < (j + 1) * cg; ch++) {
            const size_t o = ((size_t)i * c + ch) * hw;
            const double k = rstd / M;
            for (int p = 0; p < hw; p++) {
                const double xh = (px[o + p] - mu) * rstd;
                pdx[o + p] += (float)(k * (M * pg[ch] * pdy[o + p] - sg - xh * sgx));
            }
        }
    }
    return DC_OK;
}

dc_status dc_cpu_upsample_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int h, int w, int s) {
    if (s <= 0) return dc_set_error(&be->err, DC_ERR_ARG, "cpu upsample_fwd: factor %d", s);
    const float *px = F(x);
    float *py = F(y);
    const int oh = h * s, ow = w * s;
#pragma omp parallel for schedule(static) if ((size_t)nc * oh * ow > 65536)
    for (int pl = 0; pl < nc; pl++)
        for (int oy = 0; oy < oh; oy++) {
            const float *src = px + ((size_t)pl * h + oy / s) * w;
            float *dst = py + ((size_t)pl * oh + oy) * ow;
            for (int ox = 0; ox < ow; ox++)
                dst[ox] = src[ox / s];
        }
    return DC_OK;
}

dc_status dc_cpu_upsample_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int h, int w, int s) {
    if (s <= 0) return dc_set_error(&be->err, DC_ERR_ARG, "cpu upsample_bwd: factor %d", s);
    const float *pdy = F(dy);
    float *pdx = F(dx);
    const int oh = h * s, ow = w * s;
#pragma omp parallel for schedule(static) if ((size_t)nc * oh * ow > 65536)
    for (int pl = 0; pl < nc; pl++)
        for (int iy = 0; iy < h; iy++)
            for (int ix = 0; ix < w; ix++) {
                float acc = 0.0f; /* the block in row-major order, as the OpenCL kernel */
                for (int a = 0; a < s; a++)
                    for (int b = 0; b < s; b++)
                        acc += pdy[((size_t)pl * oh + iy * s + a) * ow + ix * s + b];
                pdx[((size_t)pl * h + iy) * w + ix] += acc;
            }
    return DC_OK;
}

dc_status dc_cpu_time_embed(dc_backend *be, dc_ptr t, dc_ptr y, int rows, int dim, float scale,
                            float max_period) {
    if (dim <= 0 || dim % 2 || !(max_period > 0.0f))
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "cpu time_embed: dim %d must be even and > 0, max_period %g > 0", dim,
                            (double)max_period);
    const float *pt = F(t);
    float *py = F(y);
    const int half = dim / 2;
    const float lp = logf(max_period);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < half; k++) {
            const float f = expf(-lp * (float)k / (float)half);
            const float a = scale * pt[r] * f;
            py[(size_t)r * dim + k] = sinf(a);
            py[(size_t)r * dim + half + k] = cosf(a);
        }
    return DC_OK;
}

/* ---- self-attention: per image the scores and the output are two GEMMs (OpenBLAS on one
 * thread, images in parallel, as the fused convolutions), softmax rows in between. The
 * probabilities are kept for the backward (att), which recomputes nothing. ---- */
static dc_status attn_check(dc_backend *be, const char *op, int n, int c, int hw) {
    if (n < 0 || c <= 0 || hw <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "cpu %s: %d images of %d channels x %d positions",
                            op, n, c, hw);
    return DC_OK;
}

/* a[j] = exp(a[j] - max) / sum, in place: the same steps as the softmax primitive */
static void softmax_row(float *a, int k) {
    float mx = a[0];
    for (int j = 1; j < k; j++)
        mx = a[j] > mx ? a[j] : mx;
    double s = 0;
    for (int j = 0; j < k; j++)
        s += (a[j] = expf(a[j] - mx));
    const float inv = (float)(1.0 / s);
    for (int j = 0; j < k; j++)
        a[j] *= inv;
}

dc_status dc_cpu_attn_fwd(dc_backend *be, dc_ptr qkv, dc_ptr att, dc_ptr y, int n, int c, int hw,
                          float scale) {
    DC_TRY(attn_check(be, "attn_fwd", n, c, hw));
    const float *px = F(qkv);
    float *pa = F(att), *py = F(y);
    const size_t plane = (size_t)c * hw, sq = (size_t)hw * hw;
#pragma omp parallel for schedule(static) if (n > 1 && (size_t)n * sq * c > 65536)
    for (int i = 0; i < n; i++) {
        const float *q = px + 3 * plane * i, *k = q + plane, *v = k + plane;
        float *a = pa + sq * i;
        /* a [hw, hw] = scale q^T k, then each row's softmax */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hw, hw, c, scale, q, hw, k, hw, 0.0f,
                    a, hw);
        for (int p = 0; p < hw; p++)
            softmax_row(a + (size_t)hw * p, hw);
        /* y [c, hw] = v a^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c, hw, hw, 1.0f, v, hw, a, hw, 0.0f,
                    py + plane * i, hw);
    }
    return DC_OK;
}

dc_status dc_cpu_attn_bwd(dc_backend *be, dc_ptr qkv, dc_ptr att, dc_ptr dy, dc_ptr dqkv,
                          dc_ptr work, int n, int c, int hw, float scale) {
    DC_TRY(attn_check(be, "attn_bwd", n, c, hw));
    const float *px = F(qkv), *pa = F(att), *pdy = F(dy);
    float *pdx = F(dqkv), *pw = F(work);
    const size_t plane = (size_t)c * hw, sq = (size_t)hw * hw;
#pragma omp parallel for schedule(static) if (n > 1 && (size_t)n * sq * c > 32768)
    for (int i = 0; i < n; i++) {
        const float *q = px + 3 * plane * i, *k = q + plane, *v = k + plane;
        const float *a = pa + sq * i, *d = pdy + plane * i;
        float *dq = pdx + 3 * plane * i, *dk = dq + plane, *dv = dk + plane, *ds = pw + sq * i;
        /* dv += dy a */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, hw, hw, 1.0f, d, hw, a, hw, 1.0f,
                    dv, hw);
        /* the probabilities' gradient dy^T v, then the scores': a (da - rowsum(a da)) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hw, hw, c, 1.0f, d, hw, v, hw, 0.0f,
                    ds, hw);
        for (int p = 0; p < hw; p++) {
            const float *ar = a + (size_t)hw * p;
            float *row = ds + (size_t)hw * p;
            double r = 0;
            for (int j = 0; j < hw; j++)
                r += (double)ar[j] * row[j];
            const float rf = (float)r;
            for (int j = 0; j < hw; j++)
                row[j] = ar[j] * (row[j] - rf);
        }
        /* dq += scale k ds^T, dk += scale q ds */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c, hw, hw, scale, k, hw, ds, hw, 1.0f,
                    dq, hw);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, hw, hw, scale, q, hw, ds, hw,
                    1.0f, dk, hw);
    }
    return DC_OK;
}
