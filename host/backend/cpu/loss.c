/* CPU losses: weighted MSE, binary cross-entropy on tanh logits, softmax and its
 * cross-entropy, the Gaussian KL. */

#include <math.h>

#include "cpu_internal.h"

/* ---- losses ---- */
dc_status dc_cpu_mse(dc_backend *be, dc_ptr pred, dc_ptr target, dc_ptr weight, size_t n,
                     dc_ptr loss, dc_ptr dpred, float scale) {
    (void)be;
    const float *pp = F(pred), *pt = F(target), *pw = weight.buf ? F(weight) : NULL;
    float *pd = F(dpred);
    double s = 0;
    const float k = 2.0f * scale / (float)n;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float w = pw ? pw[i] : 1.0f, d = pp[i] - pt[i];
        s += (double)w * d * d;
        pd[i] = k * w * d;
    }
    F(loss)[0] = (float)(s / (double)n);
    return DC_OK;
}

dc_status dc_cpu_bce_tanh(dc_backend *be, dc_ptr x, dc_ptr target, dc_ptr weight, size_t n,
                          dc_ptr loss, dc_ptr dx, float scale) {
    (void)be;
    const float *px = F(x), *pt = F(target), *pw = weight.buf ? F(weight) : NULL;
    float *pd = F(dx);
    double s = 0;
    const float k = scale / (float)n;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float w = pw ? pw[i] : 1.0f, l = 2.0f * px[i], y = 0.5f * (1.0f + pt[i]);
        /* softplus(l) - l*y without overflow: max(l, 0) - l*y + log1p(exp(-|l|)) */
        s += (double)w * ((l > 0.0f ? l : 0.0f) - l * y + log1pf(expf(-fabsf(l))));
        pd[i] = k * w * (tanhf(px[i]) - pt[i]);
    }
    F(loss)[0] = (float)(s / (double)n);
    return DC_OK;
}

dc_status dc_cpu_softmax(dc_backend *be, dc_ptr logits, dc_ptr probs, int rows, int k) {
    (void)be;
    const float *pl = F(logits);
    float *pp = F(probs);
#pragma omp parallel for schedule(static) if ((size_t)rows * k > 65536)
    for (int r = 0; r < rows; r++) {
        const float *l = pl + (size_t)r * k;
        float *p = pp + (size_t)r * k;
        float mx = l[0];
        for (int j = 1; j < k; j++) mx = l[j] > mx ? l[j] : mx;
        double s = 0;
        for (int j = 0; j < k; j++) s += (p[j] = expf(l[j] - mx));
        const float inv = (float)(1.0 / s);
        for (int j = 0; j < k; j++) p[j] *= inv;
    }
    return DC_OK;
}

dc_status dc_cpu_softmax_xent(dc_backend *be, dc_ptr logits, dc_ptr labels, int rows, int k,
                              dc_ptr probs, dc_ptr loss, dc_ptr dlogits, float scale) {
    const int32_t *lab = IP(labels);
    for (int r = 0; r < rows; r++)
        if (lab[r] < 0 || lab[r] >= k)
            return dc_set_error(&be->err, DC_ERR_ARG,
                                "softmax_xent: label %d of row %d is outside [0, %d)", lab[r], r,
                                k);
    dc_cpu_softmax(be, logits, probs, rows, k);
    const float *pp = F(probs);
    float *pd = F(dlogits);
    double s = 0;
    const float g = scale / (float)rows;
    for (int r = 0; r < rows; r++) {
        const float *p = pp + (size_t)r * k;
        float *d = pd + (size_t)r * k;
        const float pl = p[lab[r]];
        s -= log(pl > 1e-30f ? pl : 1e-30f);
        for (int j = 0; j < k; j++) d[j] = g * (p[j] - (j == lab[r] ? 1.0f : 0.0f));
    }
    F(loss)[0] = (float)(s / rows);
    return DC_OK;
}

dc_status dc_cpu_gauss_kl(dc_backend *be, dc_ptr mu, dc_ptr logvar, int rows, int dim,
                          dc_ptr loss, dc_ptr dmu, dc_ptr dlogvar, float scale) {
    (void)be;
    const float *pm = F(mu), *pl = F(logvar);
    float *dm = F(dmu), *dl = F(dlogvar);
    const size_t n = (size_t)rows * dim;
    double s = 0;
    const float g = scale / (float)rows;
    for (size_t i = 0; i < n; i++) {
        const float e = expf(pl[i]);
        s += 1.0 + pl[i] - (double)pm[i] * pm[i] - e;
        dm[i] = g * pm[i];
        dl[i] = g * 0.5f * (e - 1.0f);
    }
    F(loss)[0] = (float)(-0.5 * s / rows);
    return DC_OK;
}
