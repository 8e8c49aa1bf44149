// Reductions and row-wise fused kernels. Shapes: x[outer, n, inner] for Reduce/ArgMax; row kernels see
// x[rows, C] and run one work-group per row (get_group_id(0) = row), the work-items striding over C and
// combining through local memory (scratch: one ACC per work-item).

// Reduce ops: 0 Sum, 1 Mean, 2 Max, 3 Min. inner == 1: one work-group per output.
__kernel void reduce_rows(int op, __global const T* x, long xo, __global T* y, long yo, long n, __local ACC* scratch)
{
    long row = get_group_id(0);
    int l = get_local_id(0), ls = get_local_size(0);
    __global const T* xr = x + xo;
    long base = row * n;
    ACC r;
    if (op <= 1) {
        ACC acc = 0;
        for (long j = l; j < n; j += ls) {
            acc += LD(xr, base + j);
        }
        r = wg_sum(acc, scratch);
        if (op == 1) {
            r = r / (ACC)n;
        }
    } else if (op == 2) {
        ACC acc = ACC_LOWEST;
        for (long j = l; j < n; j += ls) {
            acc = hal_max(acc, LD(xr, base + j));
        }
        r = wg_max(acc, scratch);
    } else {
        ACC acc = ACC_HIGHEST;
        for (long j = l; j < n; j += ls) {
            acc = hal_min(acc, LD(xr, base + j));
        }
        r = wg_min(acc, scratch);
    }
    if (l == 0) {
        ST(y, yo + row, r);
    }
}

// inner > 1: one work-item per (outer, inner) output, walking the axis (reads coalesce across inner).
__kernel void reduce_strided(int op, __global const T* x, long xo, __global T* y, long yo, long outer, long n, long inner)
{
    long id = get_global_id(0);
    if (id >= outer * inner) {
        return;
    }
    long o = id / inner, in = id % inner;
    long base = xo + o * n * inner + in;
    ACC acc = op <= 1 ? (ACC)0 : (op == 2 ? (ACC)ACC_LOWEST : (ACC)ACC_HIGHEST);
    for (long j = 0; j < n; j++) {
        ACC v = LD(x, base + j * inner);
        acc = op <= 1 ? (ACC)(acc + v) : (op == 2 ? hal_max(acc, v) : hal_min(acc, v));
    }
    if (op == 1) {
        acc = acc / (ACC)n;
    }
    ST(y, yo + id, acc);
}

// First index of the maximum along the axis; a NaN counts as the maximum (its first occurrence wins).
__kernel void argmax(__global const T* x, long xo, __global long* idx, long io, long outer, long n, long inner)
{
    long id = get_global_id(0);
    if (id >= outer * inner) {
        return;
    }
    long o = id / inner, in = id % inner;
    long base = xo + o * n * inner + in;
    ACC best = LD(x, base);
    long bi = 0;
    for (long j = 1; j < n; j++) {
#ifdef IS_FLOAT
        if (isnan(best)) {
            break;
        }
        ACC v = LD(x, base + j * inner);
        if (isnan(v) || v > best) {
#else
        ACC v = LD(x, base + j * inner);
        if (v > best) {
#endif
            best = v;
            bi = j;
        }
    }
    idx[io + id] = bi;
}

#ifdef IS_FLOAT
// mode 0: softmax, 1: log-softmax.
__kernel void softmax(int mode, __global const T* x, long xo, __global T* y, long yo, long c, __local ACC* scratch)
{
    long base = get_group_id(0) * c;
    int l = get_local_id(0), ls = get_local_size(0);
    ACC m = -INFINITY;
    for (long j = l; j < c; j += ls) {
        m = hal_max(m, LD(x, xo + base + j));
    }
    m = wg_max(m, scratch);
    ACC s = 0;
    for (long j = l; j < c; j += ls) {
        s += exp(LD(x, xo + base + j) - m);
    }
    s = wg_sum(s, scratch);
    if (mode == 0) {
        ACC inv = (ACC)1 / s;
        for (long j = l; j < c; j += ls) {
            ST(y, yo + base + j, exp(LD(x, xo + base + j) - m) * inv);
        }
    } else {
        ACC lse = m + log(s);
        for (long j = l; j < c; j += ls) {
            ST(y, yo + base + j, LD(x, xo + base + j) - lse);
        }
    }
}

// mode 0: dx = y (dy - sum(dy y)); mode 1 (log-softmax): dx = dy - exp(y) sum(dy).
__kernel void softmax_backward(int mode, __global const T* y, long yo, __global const T* dy, long dyo, __global T* dx, long dxo, long c, __local ACC* scratch)
{
    long base = get_group_id(0) * c;
    int l = get_local_id(0), ls = get_local_size(0);
    ACC s = 0;
    for (long j = l; j < c; j += ls) {
        ACC g = LD(dy, dyo + base + j);
        s += mode == 0 ? g * LD(y, yo + base + j) : g;
    }
    s = wg_sum(s, scratch);
    for (long j = l; j < c; j += ls) {
        ACC yv = LD(y, yo + base + j), g = LD(dy, dyo + base + j);
        ST(dx, dxo + base + j, mode == 0 ? yv * (g - s) : g - exp(yv) * s);
    }
}

// LayerNorm (hasBias, two-pass variance) and RMSNorm (isRms): mean/rstd are F32 [rows].
__kernel void norm_forward(int isRms, __global const T* x, long xo, __global const T* w, long wo, __global const T* b, long bo, int hasBias,
                           SCALAR eps, __global T* y, long yo, __global float* mean, long mo, __global float* rstd, long ro, long c, __local ACC* scratch)
{
    long row = get_group_id(0), base = row * c;
    int l = get_local_id(0), ls = get_local_size(0);
    ACC mu = 0;
    if (!isRms) {
        ACC s = 0;
        for (long j = l; j < c; j += ls) {
            s += LD(x, xo + base + j);
        }
        mu = wg_sum(s, scratch) / (ACC)c;
    }
    ACC q = 0;
    for (long j = l; j < c; j += ls) {
        ACC d = LD(x, xo + base + j) - mu;
        q += d * d;
    }
    ACC r = (ACC)1 / sqrt(wg_sum(q, scratch) / (ACC)c + (ACC)eps);
    for (long j = l; j < c; j += ls) {
        ACC v = (LD(x, xo + base + j) - mu) * r * LD(w, wo + j);
        if (hasBias) {
            v += LD(b, bo + j);
        }
        ST(y, yo + base + j, v);
    }
    if (l == 0) {
        if (!isRms) {
            mean[mo + row] = (float)mu;
        }
        rstd[ro + row] = (float)r;
    }
}

// dx for LayerNorm / RMSNorm: xhat = (x - mean) rstd, g = dy w;
// LayerNorm: dx = rstd (g - mean(g) - xhat mean(g xhat)); RMSNorm: dx = rstd (g - xhat mean(g xhat)).
__kernel void norm_backward_dx(int isRms, __global const T* dy, long dyo, __global const T* x, long xo, __global const T* w, long wo,
                               __global const float* mean, long mo, __global const float* rstd, long ro, __global T* dx, long dxo, long c, __local ACC* scratch)
{
    long row = get_group_id(0), base = row * c;
    int l = get_local_id(0), ls = get_local_size(0);
    ACC mu = isRms ? (ACC)0 : (ACC)mean[mo + row];
    ACC r = rstd[ro + row];
    ACC sg = 0, sgx = 0;
    for (long j = l; j < c; j += ls) {
        ACC g = LD(dy, dyo + base + j) * LD(w, wo + j);
        ACC xh = (LD(x, xo + base + j) - mu) * r;
        sg += g;
        sgx += g * xh;
    }
    sg = wg_sum(sg, scratch) / (ACC)c;
    sgx = wg_sum(sgx, scratch) / (ACC)c;
    if (isRms) {
        sg = 0;
    }
    for (long j = l; j < c; j += ls) {
        ACC g = LD(dy, dyo + base + j) * LD(w, wo + j);
        ACC xh = (LD(x, xo + base + j) - mu) * r;
        ST(dx, dxo + base + j, r * (g - sg - xh * sgx));
    }
}

// dweight[c] = sum over rows of dy xhat, dbias[c] = sum of dy: one work-item per column, rows in order.
__kernel void norm_backward_dw(int isRms, __global const T* dy, long dyo, __global const T* x, long xo,
                               __global const float* mean, long mo, __global const float* rstd, long ro,
                               __global T* dw, long dwo, __global T* db, long dbo, int hasBias, long rows, long c)
{
    long j = get_global_id(0);
    if (j >= c) {
        return;
    }
    ACC sw = 0, sb = 0;
    for (long n = 0; n < rows; n++) {
        ACC g = LD(dy, dyo + n * c + j);
        ACC mu = isRms ? (ACC)0 : (ACC)mean[mo + n];
        sw += g * (LD(x, xo + n * c + j) - mu) * (ACC)rstd[ro + n];
        sb += g;
    }
    ST(dw, dwo + j, sw);
    if (hasBias) {
        ST(db, dbo + j, sb);
    }
}

// losses[n] = lse - logits[target] (0 for a negative target), lse[n] = logsumexp(logits[n]); both F32.
__kernel void cross_entropy(__global const T* x, long xo, __global const IDX* t, long to, __global float* loss, long lo, __global float* lse, long so,
                            long v, __local ACC* scratch)
{
    long row = get_group_id(0), base = row * v;
    int l = get_local_id(0), ls = get_local_size(0);
    ACC m = -INFINITY;
    for (long j = l; j < v; j += ls) {
        m = hal_max(m, LD(x, xo + base + j));
    }
    m = wg_max(m, scratch);
    ACC s = 0;
    for (long j = l; j < v; j += ls) {
        s += exp(LD(x, xo + base + j) - m);
    }
    s = wg_sum(s, scratch);
    if (l == 0) {
        // An all -Inf row has log-sum-exp -Inf (exp(x - m) with m = -Inf is NaN, so s cannot be used).
        ACC z = isinf(m) && m < 0 ? m : m + log(s);
        long target = (long)t[to + row];
        lse[so + row] = (float)z;
        loss[lo + row] = target < 0 ? 0.0f : (float)(z - LD(x, xo + base + target));
    }
}

// dlogits[n, j] = (exp(logits - lse[n]) - (j == target)) * dlosses[n]; zero rows for negative targets.
// The saved lse is F32; an F64 row recomputes it so that its gradient keeps F64 accuracy.
__kernel void cross_entropy_backward(__global const T* x, long xo, __global const IDX* t, long to, __global const float* lse, long so,
                                     __global const float* dl, long dlo, __global T* dx, long dxo, long v, __local ACC* scratch)
{
    long row = get_group_id(0), base = row * v;
    int l = get_local_id(0), ls = get_local_size(0);
    long target = (long)t[to + row];
    if (target < 0) {
        for (long j = l; j < v; j += ls) {
            ST(dx, dxo + base + j, (ACC)0);
        }
        return;
    }
#ifdef DT_F64
    ACC m = -INFINITY;
    for (long j = l; j < v; j += ls) {
        m = hal_max(m, LD(x, xo + base + j));
    }
    m = wg_max(m, scratch);
    ACC s = 0;
    for (long j = l; j < v; j += ls) {
        s += exp(LD(x, xo + base + j) - m);
    }
    s = wg_sum(s, scratch);
    ACC z = isinf(m) && m < 0 ? m : m + log(s);
#else
    ACC z = lse[so + row];
#endif
    ACC g = dl[dlo + row];
    for (long j = l; j < v; j += ls) {
        ACC p = exp(LD(x, xo + base + j) - z) * g;
        ST(dx, dxo + base + j, j == target ? p - g : p);
    }
}
#endif
