/* Device randomness from the counter hash (common.cl), drawing exactly the numbers the
 * CPU backend draws, and the VAE reparameterisation that consumes them. */

/* dst[i] = mean + std * sqrt(-2 log u1) * cos(2 pi u2), u1/u2 from counters 2i, 2i+1. */
__kernel void dc_randn(__global float *d, ulong d_off, uint n, uint seed_lo, uint seed_hi,
                       float mean, float std) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float u1 =
        ((float)(dc_hash_bits(seed_lo, seed_hi, 2u * i) >> 8) + 0.5f) * (1.0f / 16777216.0f);
    const float u2 =
        (float)(dc_hash_bits(seed_lo, seed_hi, 2u * i + 1u) >> 8) * (1.0f / 16777216.0f);
    d[d_off + i] = mean + std * sqrt(-2.0f * log(u1)) * cos(6.2831853f * u2);
}

/* mask[i] = uniform(seed, i) >= p ? keep : 0, keep = 1/(1-p) computed by the host. */
__kernel void dc_dropout_mask(__global float *d, ulong d_off, uint n, uint seed_lo, uint seed_hi,
                              float p, float keep) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    d[d_off + i] = dc_hash_uniform(seed_lo, seed_hi, i) >= p ? keep : 0.0f;
}

/* z = mu + exp(0.5*lv) * eps */
__kernel void dc_reparam_fwd(__global const float *mu, ulong mu_off, __global const float *lv,
                             ulong lv_off, __global const float *eps, ulong eps_off,
                             __global float *z, ulong z_off, uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    z[z_off + i] = mu[mu_off + i] + exp(0.5f * lv[lv_off + i]) * eps[eps_off + i];
}

/* dmu += dz; dlv += dz * eps * 0.5 * exp(0.5*lv) */
__kernel void dc_reparam_bwd(__global const float *lv, ulong lv_off, __global const float *eps,
                             ulong eps_off, __global const float *dz, ulong dz_off,
                             __global float *dmu, ulong dmu_off, __global float *dlv, ulong dlv_off,
                             uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float g = dz[dz_off + i];
    dmu[dmu_off + i] += g;
    dlv[dlv_off + i] += g * eps[eps_off + i] * 0.5f * exp(0.5f * lv[lv_off + i]);
}
