// Index kernels. Data is seen as [outer, axis, inner]; indices were range-checked on the host before launch.
// Scatter-style kernels give each work-item one (outer, inner) position and walk the index in order, so repeated
// indices accumulate without atomics and in a fixed order (the same bits on every run).

// dst[o, i, in] = src[o, index[i], in]; src axis length s, index length len. One work-item per dst element.
__kernel void index_select(__global const T* src, long so, __global const IDX* index, long io, __global T* dst, long dof,
                           long outer, long s, long len, long inner)
{
    long id = get_global_id(0);
    if (id >= outer * len * inner) {
        return;
    }
    long in = id % inner, rest = id / inner, i = rest % len, o = rest / len;
    long k = (long)index[io + i];
    dst[dof + id] = src[so + (o * s + k) * inner + in];
}

// dst[o, index[i], in] += src[o, i, in] for i in order; dst axis length s.
__kernel void index_add(__global const T* src, long so, __global const IDX* index, long io, __global T* dst, long dof,
                        long outer, long s, long len, long inner)
{
    long id = get_global_id(0);
    if (id >= outer * inner) {
        return;
    }
    long o = id / inner, in = id % inner;
    for (long i = 0; i < len; i++) {
        long k = (long)index[io + i];
        long at = dof + (o * s + k) * inner + in;
        ST(dst, at, LD(dst, at) + LD(src, so + (o * len + i) * inner + in));
    }
}

// dst[o, j, in] = src[o, index[o, j, in], in]; index and dst are [outer, len, inner], src [outer, s, inner].
__kernel void gather(__global const T* src, long so, __global const IDX* index, long io, __global T* dst, long dof,
                     long outer, long s, long len, long inner)
{
    long id = get_global_id(0);
    if (id >= outer * len * inner) {
        return;
    }
    long in = id % inner, o = id / inner / len;
    long k = (long)index[io + id];
    dst[dof + id] = src[so + (o * s + k) * inner + in];
}

// dst[o, index[o, j, in], in] += src[o, j, in] for j in order; dst [outer, s, inner].
__kernel void scatter_add(__global const T* src, long so, __global const IDX* index, long io, __global T* dst, long dof,
                          long outer, long s, long len, long inner)
{
    long id = get_global_id(0);
    if (id >= outer * inner) {
        return;
    }
    long o = id / inner, in = id % inner;
    for (long j = 0; j < len; j++) {
        long e = (o * len + j) * inner + in;
        long k = (long)index[io + e];
        long at = dof + (o * s + k) * inner + in;
        ST(dst, at, LD(dst, at) + LD(src, so + e));
    }
}

#ifdef IS_FLOAT
// Rotary embedding, rotate-half: x [B, T, H, D], cos/sin [Tmax, D/2] F32; sign = 1 forward, -1 backward.
// One work-item per (b, t, h, i < D/2); it reads both halves before writing, so y may be x.
__kernel void rotary(__global const T* x, long xo, __global const float* cs, long co, __global const float* sn, long sno,
                     __global T* y, long yo, long t, long h, long d, long offset, float sign, long count)
{
    long id = get_global_id(0);
    if (id >= count) {
        return;
    }
    long hd = d / 2;
    long i = id % hd, row = id / hd;
    long pos = offset + (row / h) % t;
    ACC c = cs[co + pos * hd + i], s = sign * sn[sno + pos * hd + i];
    long base = row * d;
    ACC a = LD(x, xo + base + i), b = LD(x, xo + base + i + hd);
    ST(y, yo + base + i, a * c - b * s);
    ST(y, yo + base + i + hd, b * c + a * s);
}

#endif

// 16-bit dtypes accumulate in F32 and round once: one work-item per dst element (o, k, in) sums, in index order,
// every source slice aimed at it, starting from dst's value. Used for F16/BF16 IndexAdd (and embedding backward).
__kernel void index_add_once(__global const T* src, long so, __global const IDX* index, long io, __global T* dst, long dof,
                             long outer, long s, long len, long inner)
{
    long id = get_global_id(0);
    if (id >= outer * s * inner) {
        return;
    }
    long in = id % inner, rest = id / inner, k = rest % s, o = rest / s;
    ACC acc = LD(dst, dof + id);
    for (long i = 0; i < len; i++) {
        if ((long)index[io + i] == k) {
            acc += LD(src, so + (o * len + i) * inner + in);
        }
    }
    ST(dst, dof + id, acc);
}

// The ScatterAdd counterpart of index_add_once: index and src are [outer, len, inner].
__kernel void scatter_add_once(__global const T* src, long so, __global const IDX* index, long io, __global T* dst, long dof,
                               long outer, long s, long len, long inner)
{
    long id = get_global_id(0);
    if (id >= outer * s * inner) {
        return;
    }
    long in = id % inner, rest = id / inner, k = rest % s, o = rest / s;
    ACC acc = LD(dst, dof + id);
    for (long j = 0; j < len; j++) {
        long e = (o * len + j) * inner + in;
        if ((long)index[io + e] == k) {
            acc += LD(src, so + e);
        }
    }
    ST(dst, dof + id, acc);
}
