/* Embedding rows (GLO latents): gather y[r] = table[idx[r]] and its deterministic
 * scatter-add backward. */

/* One item per (row, dim) element. An index outside the table yields NaN rather than an
 * out-of-bounds read (table_rows is what the table's buffer holds). */
__kernel void dc_gather_rows(__global const float *table, ulong table_off, __global const int *idx,
                             ulong idx_off, __global float *y, ulong y_off, int rows, int dim,
                             uint table_rows) {
    const uint e = get_global_id(0);
    if (e >= (uint)rows * (uint)dim) return;
    const uint r = e / (uint)dim, j = e - r * (uint)dim;
    const int t = idx[idx_off + r];
    y[y_off + e] = (t >= 0 && (uint)t < table_rows) ? table[table_off + (ulong)t * dim + j] : NAN;
}

/* dtable[idx[r]] += dy[r]. One item per (batch row r, dim j); only the first batch row
 * holding a given index works, and it adds every row with that index in batch order, so
 * repeated indices need no atomics and the sum matches the CPU's order exactly. Rows
 * with an index outside the table are skipped. */
__kernel void dc_scatter_add_rows(__global float *dtable, ulong dtable_off, __global const int *idx,
                                  ulong idx_off, __global const float *dy, ulong dy_off, int rows,
                                  int dim, int table_rows) {
    const uint e = get_global_id(0);
    if (e >= (uint)rows * (uint)dim) return;
    const uint r = e / (uint)dim, j = e - r * (uint)dim;
    idx += idx_off;
    const int t = idx[r];
    if (t < 0 || t >= table_rows) return;
    for (uint q = 0; q < r; q++)
        if (idx[q] == t) return;
    __global float *dst = dtable + dtable_off + (ulong)t * dim + j;
    float acc = *dst;
    for (uint q = r; q < (uint)rows; q++)
        if (idx[q] == t) acc += dy[dy_off + (ulong)q * dim + j];
    *dst = acc;
}
