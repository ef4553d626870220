/* deconv — the backend interface.
 *
 * A backend owns device memory and runs ~30 primitive kernels. Ops in host/ops/ are
 * composed only from these primitives, so each op is written once and every backend
 * runs it. Memory is addressed as (buffer, element offset): a dc_ptr. An element is
 * 4 bytes (float32, or int32 for max-pool switches and class labels).
 *
 * Conventions every backend must honour (the CPU backend is the reference):
 *  - Row-major, NCHW tensors, float32.
 *  - "accumulate" kernels add into their destination (gradients accumulate).
 *  - Kernels are enqueued in order; read() waits for completion. Nothing else blocks.
 *  - Randomness on the device comes from dc_hash_uniform() (see deconv.h) keyed by
 *    (seed, element index), so CPU and OpenCL draw identical numbers.
 *  - On failure a kernel returns a status and leaves a message in be->err.
 */
#ifndef DECONV_BACKEND_H
#define DECONV_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "deconv/deconv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dc_buffer dc_buffer; /* backend-specific */

typedef struct dc_ptr {
    dc_buffer *buf;
    size_t off; /* in 4-byte elements */
} dc_ptr;

static inline dc_ptr dc_ptr_at(dc_ptr p, size_t elems) {
    dc_ptr q = {p.buf, p.off + elems};
    return q;
}

typedef enum {
    DC_ACT_RELU = 0,
    DC_ACT_LEAKY_RELU,
    DC_ACT_TANH,
    DC_ACT_SIGMOID,
} dc_act_kind;

/* An activation fused into a convolution (optional fused primitives below): ReLU or
 * leaky ReLU with alpha >= 0, so that the output is positive exactly where the input is
 * and the backward rule can be read from the activated output. mode: dc_relu_mode. */
typedef struct dc_fused_act {
    int kind; /* DC_ACT_RELU or DC_ACT_LEAKY_RELU */
    float alpha;
    int mode; /* set for the backward call */
} dc_fused_act;

/* Geometry of a 2-D sliding window (conv, transposed conv, pooling). */
typedef struct dc_win2d {
    int n, c, h, w;     /* input batch, channels, height, width */
    int kh, kw;         /* window */
    int sh, sw;         /* stride */
    int ph, pw;         /* zero padding */
    int oh, ow;         /* output height, width */
} dc_win2d;

typedef struct dc_backend_ops {
    const char *name;

    /* ---- memory ---- */
    dc_status (*alloc)(dc_backend *be, size_t bytes, dc_buffer **out);
    void (*free)(dc_backend *be, dc_buffer *buf);
    dc_status (*write)(dc_backend *be, dc_ptr dst, const void *src, size_t bytes);
    dc_status (*read)(dc_backend *be, dc_ptr src, void *dst, size_t bytes); /* blocking */
    dc_status (*copy)(dc_backend *be, dc_ptr dst, dc_ptr src, size_t n);
    dc_status (*sync)(dc_backend *be);

    /* ---- BLAS-like ---- */
    /* dst[i] = value */
    dc_status (*fill)(dc_backend *be, dc_ptr dst, size_t n, float value);
    /* dst[i] *= alpha */
    dc_status (*scale)(dc_backend *be, dc_ptr dst, size_t n, float alpha);
    /* y[i] += alpha * x[i] */
    dc_status (*axpy)(dc_backend *be, dc_ptr y, dc_ptr x, size_t n, float alpha);
    /* y[i] = a[i] + b[i] (op 0), a[i] * b[i] (op 1); y += a*b (op 2) */
    dc_status (*binary)(dc_backend *be, int op, dc_ptr y, dc_ptr a, dc_ptr b, size_t n);
    /* y[i] = (b[i] + eps < threshold) ? 0 : a[i] / (b[i] + eps)   (threshold <= 0: no test).
     * Richardson-Lucy's relative blur. */
    dc_status (*div_filtered)(dc_backend *be, dc_ptr y, dc_ptr a, dc_ptr b, size_t n, float eps,
                              float threshold);
    /* C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is MxK, op(B) is KxN. */
    dc_status (*gemm)(dc_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha,
                      dc_ptr a, int lda, dc_ptr b, int ldb, float beta, dc_ptr c, int ldc);
    /* out[0] = sum_i x[i]*x[i]   (or sum_i x[i] when squares == 0); out[0] overwritten */
    dc_status (*reduce_sum)(dc_backend *be, dc_ptr out, dc_ptr x, size_t n, int squares);

    /* ---- convolution plumbing ----
     * Column matrix for images [n0, n0+nb): rows (ci*kh + i)*kw + j, columns
     * (n - n0)*oh*ow + oy*ow + ox; shape [c*kh*kw, nb*oh*ow]. */
    dc_status (*im2col)(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr x, dc_ptr cols);
    /* Inverse scatter: x (images n0..n0+nb) += fold(cols). Deterministic (gather form). */
    dc_status (*col2im)(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr cols, dc_ptr x);
    /* dst (NCHW, images n0..n0+nb of a batch with `c` channels and hw pixels)
     *   = beta*dst + src[c][ (n-n0)*hw + p ] (+ bias[c] when bias.buf != NULL) */
    dc_status (*cm_to_nchw)(dc_backend *be, dc_ptr src, dc_ptr bias, dc_ptr dst, int n0, int nb,
                            int c, int hw, float beta);
    /* dst[c][(n-n0)*hw + p] = src NCHW (images n0..n0+nb) */
    dc_status (*nchw_to_cm)(dc_backend *be, dc_ptr src, dc_ptr dst, int n0, int nb, int c, int hw);
    /* y[n][c][p] += bias[c] */
    dc_status (*bias_add)(dc_backend *be, dc_ptr y, dc_ptr bias, int n, int c, int hw);
    /* db[c] += sum_{n,p} dy[n][c][p] */
    dc_status (*bias_grad)(dc_backend *be, dc_ptr db, dc_ptr dy, int n, int c, int hw);

    /* ---- pooling (switches are int32 indices into the input plane: iy*w + ix) ---- */
    dc_status (*maxpool_fwd)(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr y, dc_ptr sw);
    /* dx += route dy through switches */
    dc_status (*maxpool_bwd)(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw, dc_ptr dx);
    /* Unpool: g describes the POOL that made the switches (input = unpool output).
     * y = 0; y[sw[i]] = x[i]   (y has g->h x g->w planes, x has g->oh x g->ow); where
     * overlapping windows share a switch, the first window (row-major) writes. */
    dc_status (*unpool_fwd)(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr sw, dc_ptr y);
    /* dx[i] += dy[sw[i]], but only for the first window (row-major) of its plane whose
     * switch is sw[i]: overlapping windows can share a switch and the pixel is written once. */
    dc_status (*unpool_bwd)(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw, dc_ptr dx);
    /* Global average pool: y[n][c] = mean_p x[n][c][p]; backward dx += dy/hw */
    dc_status (*gap_fwd)(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int hw);
    dc_status (*gap_bwd)(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int hw);

    /* ---- activations ----
     * fwd: y = f(x). bwd: dx += g where, with mode (dc_relu_mode) for ReLU/leaky:
     *   NORMAL:    g = dy * f'(x)
     *   GUIDED:    g = (x > 0 && dy > 0) ? dy : 0            (leaky: slope*dy for x<=0 dropped)
     *   DECONVNET: g = dy > 0 ? dy : 0
     * tanh/sigmoid use y for the derivative and ignore mode. */
    dc_status (*act_fwd)(dc_backend *be, int kind, float alpha, dc_ptr x, dc_ptr y, size_t n);
    dc_status (*act_bwd)(dc_backend *be, int kind, int mode, float alpha, dc_ptr x, dc_ptr y,
                         dc_ptr dy, dc_ptr dx, size_t n);

    /* ---- batch norm (per channel over n and hw) ----
     * stats: mean[c], var[c] (biased) of x. */
    dc_status (*bn_stats)(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c, int hw);
    /* y = gamma*(x-mean)*rsqrt(var+eps) + beta */
    dc_status (*bn_apply)(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                          dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps);
    /* Training-mode backward with batch statistics:
     * dgamma += sum dy*xhat, dbeta += sum dy,
     * dx += gamma*rstd/M * (M*dy - sum(dy) - xhat*sum(dy*xhat)) */
    dc_status (*bn_bwd)(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                        dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw,
                        float eps);
    /* Optional (NULL: no fusion of batch norm and activation): the same with an activation
     * after the normalization (see dc_fused_act): y = act(bn(x)); the backward takes the
     * activated output y and its gradient dy and applies act->mode's rule first. */
    dc_status (*bn_apply_act)(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                              dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps,
                              const dc_fused_act *act);
    dc_status (*bn_bwd_act)(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                            dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n,
                            int c, int hw, float eps, const dc_fused_act *act);

    /* ---- randomness (counter-based, identical on every backend) ---- */
    /* dst[i] = mean + std * N(0,1) drawn from dc_hash_normal(seed, i) */
    dc_status (*randn)(dc_backend *be, dc_ptr dst, size_t n, uint64_t seed, float mean, float std);
    /* mask[i] = (dc_hash_uniform(seed,i) >= p) ? 1/(1-p) : 0 */
    dc_status (*dropout_mask)(dc_backend *be, dc_ptr mask, size_t n, uint64_t seed, float p);

    /* VAE sampling: z = mu + exp(0.5*lv) * eps;  backward: dmu += dz, dlv += dz*eps*0.5*exp(0.5*lv) */
    dc_status (*reparam_fwd)(dc_backend *be, dc_ptr mu, dc_ptr lv, dc_ptr eps, dc_ptr z, size_t n);
    dc_status (*reparam_bwd)(dc_backend *be, dc_ptr lv, dc_ptr eps, dc_ptr dz, dc_ptr dmu,
                             dc_ptr dlv, size_t n);

    /* ---- losses: write the scalar loss to loss[0] and the gradient (scaled by
     *      `scale`, i.e. d(scale*loss)/dx) into dpred (overwrite) ---- */
    /* loss = sum_i w_i (p_i - t_i)^2 / n  (w == NULL: w_i = 1) */
    dc_status (*mse)(dc_backend *be, dc_ptr pred, dc_ptr target, dc_ptr weight, size_t n,
                     dc_ptr loss, dc_ptr dpred, float scale);
    /* logits [rows, k], labels int32 [rows]; loss = mean_rows -log softmax[label];
     * probs = softmax (written). */
    dc_status (*softmax_xent)(dc_backend *be, dc_ptr logits, dc_ptr labels, int rows, int k,
                              dc_ptr probs, dc_ptr loss, dc_ptr dlogits, float scale);
    /* KL(N(mu, exp(logvar)) || N(0,1)) summed over latent dims, averaged over rows:
     * loss = -0.5/rows * sum (1 + lv - mu^2 - exp(lv)) */
    dc_status (*gauss_kl)(dc_backend *be, dc_ptr mu, dc_ptr logvar, int rows, int dim, dc_ptr loss,
                          dc_ptr dmu, dc_ptr dlogvar, float scale);
    /* probs = softmax(logits) row-wise */
    dc_status (*softmax)(dc_backend *be, dc_ptr logits, dc_ptr probs, int rows, int k);

    /* ---- embedding (GLO latents): y[r] = table[idx[r]]; dtable[idx[r]] += dy[r] ---- */
    dc_status (*gather_rows)(dc_backend *be, dc_ptr table, dc_ptr idx, dc_ptr y, int rows, int dim);
    dc_status (*scatter_add_rows)(dc_backend *be, dc_ptr dtable, dc_ptr idx, dc_ptr dy, int rows,
                                  int dim, int table_rows);

    /* ---- optimizers. gscale[0] (device scalar) multiplies every gradient element:
     *      it carries gradient clipping without a host round trip. ---- */
    /* v = momentum*v + g'; g' = gscale*g + wd*p; p -= lr*v (nesterov: p -= lr*(g'+momentum*v)) */
    dc_status (*sgd_update)(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr v, size_t n, dc_ptr gscale,
                            float lr, float momentum, float wd, int nesterov);
    /* Adam (decoupled = 0: L2 added to the gradient) / AdamW (decoupled = 1).
     * bc1 = 1 - beta1^t, bc2 = 1 - beta2^t computed by the caller. */
    dc_status (*adam_update)(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr m, dc_ptr v, size_t n,
                             dc_ptr gscale, float lr, float beta1, float beta2, float eps, float wd,
                             int decoupled, float bc1, float bc2);
    /* gscale[0] = min(1, max_norm / sqrt(sumsq[0] + 1e-12)) */
    dc_status (*clip_scale)(dc_backend *be, dc_ptr sumsq, dc_ptr gscale, float max_norm);

    /* ---- optional fused convolution, in fwd/bwd pairs (either NULL: the conv op composes
     *      im2col + gemm through the workspace) ----
     * conv2d with geometry g (input [g->n, g->c, g->h, g->w], output [g->n, oc, g->oh, g->ow]),
     * weight [oc, c, kh, kw], bias [oc] or NULL.
     * fwd: y = act(conv(x) + b).  bwd: dw += ..., db += ... (when db.buf), dx += ... (when
     * dx.buf).  act NULL: no activation. With act, y is the activated output and dy its
     * gradient; the backward applies the activation's rule (act->mode) first. */
    dc_status (*conv2d_fwd)(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
                            dc_ptr b, dc_ptr y, const dc_fused_act *act);
    dc_status (*conv2d_bwd)(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
                            dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                            const dc_fused_act *act);

    /* transposed conv2d: g is the conv from the output [g->c, g->h, g->w] back to the input
     * [cin, g->oh, g->ow] (as the conv op stores it), batch `n`; weight [cin, g->c, kh, kw]. */
    dc_status (*conv_t2d_fwd)(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
                              dc_ptr w, dc_ptr b, dc_ptr y, const dc_fused_act *act);
    dc_status (*conv_t2d_bwd)(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
                              dc_ptr w, dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                              const dc_fused_act *act);

    void (*destroy)(dc_backend *be);
} dc_backend_ops;

/* The common head of every backend. Backends embed it first. */
struct dc_backend {
    const dc_backend_ops *ops;
    dc_error err;
    char device_name[128];
    size_t bytes_allocated; /* current device bytes owned through alloc/free */
    size_t bytes_peak;
};

#ifdef __cplusplus
}
#endif
#endif
