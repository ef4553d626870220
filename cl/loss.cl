/* Losses and softmax. A loss writes its gradient element-wise and its scalar value into
 * a device buffer through work-group reductions (dc_reduce_final in memory.cl finishes
 * the two-stage ones), so training never waits on a host read. */

/* MSE stage 1: dpred = k*w*(p - t) with k = 2*scale/n; partial[g] = sum w*(p - t)^2. */
__kernel void dc_mse_partial(__global const float *pred, ulong pred_off,
                             __global const float *target, ulong target_off,
                             __global const float *weight, ulong weight_off, int has_weight, uint n,
                             __global float *dpred, ulong dpred_off, float k,
                             __global float *partial, __local float *scratch) {
    const ulong stride = (ulong)get_local_size(0) * get_num_groups(0);
    float sum = 0.0f, comp = 0.0f;
    for (ulong i = get_global_id(0); i < n; i += stride) {
        const float w = has_weight ? weight[weight_off + i] : 1.0f;
        const float d = pred[pred_off + i] - target[target_off + i];
        DC_KAHAN_ADD(sum, comp, w * d * d);
        dpred[dpred_off + i] = k * w * d;
    }
    const float total = dc_group_sum(scratch, sum);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = total;
}

/* Binary cross-entropy of tanh(x) against t in [-1, 1] (see primitives.def) stage 1:
 * dx = k*w*(tanh x - t) with k = scale/n; partial[g] = sum w*(softplus(2x) - 2x*y). */
__kernel void dc_bce_tanh_partial(__global const float *x, ulong x_off,
                                  __global const float *target, ulong target_off,
                                  __global const float *weight, ulong weight_off, int has_weight,
                                  uint n, __global float *dx, ulong dx_off, float k,
                                  __global float *partial, __local float *scratch) {
    const ulong stride = (ulong)get_local_size(0) * get_num_groups(0);
    float sum = 0.0f, comp = 0.0f;
    for (ulong i = get_global_id(0); i < n; i += stride) {
        const float w = has_weight ? weight[weight_off + i] : 1.0f;
        const float v = x[x_off + i], t = target[target_off + i];
        const float l = 2.0f * v, y = 0.5f * (1.0f + t);
        DC_KAHAN_ADD(sum, comp, w * (fmax(l, 0.0f) - l * y + log1p(exp(-fabs(l)))));
        dx[dx_off + i] = k * w * (tanh(v) - t);
    }
    const float total = dc_group_sum(scratch, sum);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = total;
}

/* Gaussian KL stage 1: dmu = g*mu, dlv = g*0.5*(exp(lv) - 1) with g = scale/rows;
 * partial[g] = sum (1 + lv - mu^2 - exp(lv)). */
__kernel void dc_kl_partial(__global const float *mu, ulong mu_off, __global const float *lv,
                            ulong lv_off, uint n, __global float *dmu, ulong dmu_off,
                            __global float *dlv, ulong dlv_off, float g, __global float *partial,
                            __local float *scratch) {
    const ulong stride = (ulong)get_local_size(0) * get_num_groups(0);
    float sum = 0.0f, comp = 0.0f;
    for (ulong i = get_global_id(0); i < n; i += stride) {
        const float m = mu[mu_off + i], l = lv[lv_off + i];
        const float e = exp(l);
        DC_KAHAN_ADD(sum, comp, 1.0f + l - m * m - e);
        dmu[dmu_off + i] = g * m;
        dlv[dlv_off + i] = g * 0.5f * (e - 1.0f);
    }
    const float total = dc_group_sum(scratch, sum);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = total;
}

/* probs[r] = softmax(logits[r]) for one row; the sum is compensated. */
void dc_softmax_row(__global const float *l, __global float *p, int k) {
    float mx = l[0];
    for (int j = 1; j < k; j++)
        mx = l[j] > mx ? l[j] : mx;
    float sum = 0.0f, comp = 0.0f;
    for (int j = 0; j < k; j++) {
        const float e = exp(l[j] - mx);
        p[j] = e;
        DC_KAHAN_ADD(sum, comp, e);
    }
    const float inv = 1.0f / sum;
    for (int j = 0; j < k; j++)
        p[j] *= inv;
}

/* One work-item per row. */
__kernel void dc_softmax(__global const float *logits, ulong logits_off, __global float *probs,
                         ulong probs_off, int rows, int k) {
    const uint r = get_global_id(0);
    if (r >= (uint)rows) return;
    dc_softmax_row(logits + logits_off + (ulong)r * k, probs + probs_off + (ulong)r * k, k);
}

/* Softmax cross-entropy in one work-group: items take rows in turn, write probs and
 * dlogits = g*(p - onehot) (g = scale/rows), and the group sums -log p[label] into
 * loss[0] = sum/rows. A label outside [0, k) makes the loss NaN (the CPU backend
 * reports it as an error; a device cannot without a host round trip). */
__kernel void dc_softmax_xent(__global const float *logits, ulong logits_off,
                              __global const int *labels, ulong labels_off, int rows, int k,
                              __global float *probs, ulong probs_off, __global float *loss,
                              ulong loss_off, __global float *dlogits, ulong dlogits_off, float g,
                              __local float *scratch) {
    float sum = 0.0f, comp = 0.0f;
    for (uint r = get_local_id(0); r < (uint)rows; r += get_local_size(0)) {
        __global float *p = probs + probs_off + (ulong)r * k;
        __global float *d = dlogits + dlogits_off + (ulong)r * k;
        dc_softmax_row(logits + logits_off + (ulong)r * k, p, k);
        const int lab = labels[labels_off + r];
        if (lab < 0 || lab >= k) {
            DC_KAHAN_ADD(sum, comp, NAN);
            for (int j = 0; j < k; j++)
                d[j] = NAN;
            continue;
        }
        const float pl = p[lab];
        DC_KAHAN_ADD(sum, comp, -log(pl > 1e-30f ? pl : 1e-30f));
        for (int j = 0; j < k; j++)
            d[j] = g * (p[j] - (j == lab ? 1.0f : 0.0f));
    }
    const float total = dc_group_sum(scratch, sum);
    if (get_local_id(0) == 0) loss[loss_off] = total / (float)rows;
}
