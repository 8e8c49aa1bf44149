// Batched GEMM: C[b] = alpha op(A[b]) op(B[b]) + beta C[b] (+ bias[n]); row-major A [M, K] ([K, M] when transA),
// B [K, N] ([N, K] when transB), C [M, N]; strideA/strideB are 0 for a broadcast batch.
// Tiling (build options, chosen on the host from the device's limits): a work-group computes a TM x TN tile of C
// with WX x WY work-items (WX = TN / RN, WY = TM / RM); each work-item keeps an RM x RN register block, its rows
// ty + i WY and columns tx + j WX (so neighbouring work-items read neighbouring local-memory words and write
// neighbouring C elements). K advances TK at a time through local memory; tiles past the edges load zeros, so
// every shape is correct. Tiles wholly inside A or B (F32/F64) load with vload4 (element alignment suffices).
#define WX (TN / RN)
#define WY (TM / RM)
#define WG (WX * WY)
#if defined(DT_F64)
#define VEC4 double4
#else
#define VEC4 float4
#endif

// Loads A's tile into As[k][m] (k-major), zero outside [M, K].
inline void load_a(__global const T* A, __local ACC* As, int transA, long m0, long k0, long M, long K, int lid)
{
    if (!transA) {
#if !defined(IS_16BIT) && (TK % 4 == 0)
        if (m0 + TM <= M && k0 + TK <= K) {
            for (int e = lid; e < TM * TK / 4; e += WG) {
                int kq = e % (TK / 4), mm = e / (TK / 4);
                VEC4 v = vload4(0, A + (m0 + mm) * K + k0 + kq * 4);
                As[(kq * 4 + 0) * TM + mm] = v.s0;
                As[(kq * 4 + 1) * TM + mm] = v.s1;
                As[(kq * 4 + 2) * TM + mm] = v.s2;
                As[(kq * 4 + 3) * TM + mm] = v.s3;
            }
            return;
        }
#endif
        for (int e = lid; e < TM * TK; e += WG) {
            int kk = e % TK, mm = e / TK;
            long m = m0 + mm, k = k0 + kk;
            As[kk * TM + mm] = (m < M && k < K) ? LD(A, m * K + k) : (ACC)0;
        }
    } else {
        for (int e = lid; e < TM * TK; e += WG) {
            int mm = e % TM, kk = e / TM;
            long m = m0 + mm, k = k0 + kk;
            As[kk * TM + mm] = (m < M && k < K) ? LD(A, k * M + m) : (ACC)0;
        }
    }
}

// Loads B's tile into Bs[k][n] (k-major), zero outside [K, N].
inline void load_b(__global const T* B, __local ACC* Bs, int transB, long n0, long k0, long N, long K, int lid)
{
    if (!transB) {
#if !defined(IS_16BIT) && (TN % 4 == 0)
        if (n0 + TN <= N && k0 + TK <= K) {
            for (int e = lid; e < TN * TK / 4; e += WG) {
                int nq = e % (TN / 4), kk = e / (TN / 4);
                vstore4(vload4(0, B + (k0 + kk) * N + n0 + nq * 4), 0, Bs + kk * TN + nq * 4);
            }
            return;
        }
#endif
        for (int e = lid; e < TN * TK; e += WG) {
            int nn = e % TN, kk = e / TN;
            long n = n0 + nn, k = k0 + kk;
            Bs[kk * TN + nn] = (n < N && k < K) ? LD(B, k * N + n) : (ACC)0;
        }
    } else {
        for (int e = lid; e < TN * TK; e += WG) {
            int kk = e % TK, nn = e / TK;
            long n = n0 + nn, k = k0 + kk;
            Bs[kk * TN + nn] = (n < N && k < K) ? LD(B, n * K + k) : (ACC)0;
        }
    }
}

__kernel __attribute__((reqd_work_group_size(WX, WY, 1)))
void gemm(__global const T* A, long ao, __global const T* B, long bo, __global T* C, long co, __global const T* bias, long biaso, int hasBias,
          int transA, int transB, long M, long N, long K, long strideA, long strideB, SCALAR alpha, SCALAR beta)
{
    __local ACC As[TK * TM];
    __local ACC Bs[TK * TN];
    int tx = get_local_id(0), ty = get_local_id(1);
    int lid = ty * WX + tx;
    long n0 = (long)get_group_id(0) * TN, m0 = (long)get_group_id(1) * TM;
    long batch = get_group_id(2);
    A += ao + batch * strideA;
    B += bo + batch * strideB;
    C += co + batch * M * N;
    ACC acc[RM][RN];
    for (int i = 0; i < RM; i++) {
        for (int j = 0; j < RN; j++) {
            acc[i][j] = 0;
        }
    }
    for (long k0 = 0; k0 < K; k0 += TK) {
        load_a(A, As, transA, m0, k0, M, K, lid);
        load_b(B, Bs, transB, n0, k0, N, K, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TK; kk++) {
            ACC a[RM], b[RN];
            for (int i = 0; i < RM; i++) {
                a[i] = As[kk * TM + ty + i * WY];
            }
            for (int j = 0; j < RN; j++) {
                b[j] = Bs[kk * TN + tx + j * WX];
            }
            for (int i = 0; i < RM; i++) {
                for (int j = 0; j < RN; j++) {
                    acc[i][j] += a[i] * b[j];
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < RM; i++) {
        long m = m0 + ty + i * WY;
        if (m >= M) {
            continue;
        }
        for (int j = 0; j < RN; j++) {
            long n = n0 + tx + j * WX;
            if (n >= N) {
                continue;
            }
            ACC v = (ACC)alpha * acc[i][j];
            // beta = 0 ignores C's previous contents, NaN included.
            if (beta != 0) {
                v += (ACC)beta * LD(C, m * N + n);
            }
            if (hasBias) {
                v += LD(bias, biaso + n);
            }
            ST(C, m * N + n, v);
        }
    }
}

// The variant for CPU devices (no local memory, no barriers): each work-item computes a 4 x 8 block of C at rows
// 4·gid(1)… and columns 8·gid(0)… with eight-wide vector accumulators, streaming A and B straight from global
// memory (the caches do the tiling). B rows load with vload8 where the eight columns are inside N.
#if defined(DT_F64)
#define VEC8 double8
#else
#define VEC8 float8
#endif

inline VEC8 load_b8(__global const T* B, int transB, long k, long n0, long N, long K)
{
#if !defined(IS_16BIT)
    if (!transB && n0 + 8 <= N) {
        return vload8(0, B + k * N + n0);
    }
#endif
    ACC v[8];
    for (int j = 0; j < 8; j++) {
        long n = n0 + j;
        v[j] = n < N ? (transB ? LD(B, n * K + k) : LD(B, k * N + n)) : (ACC)0;
    }
    return (VEC8)(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
}

__kernel void gemm_direct(__global const T* A, long ao, __global const T* B, long bo, __global T* C, long co, __global const T* bias, long biaso, int hasBias,
                          int transA, int transB, long M, long N, long K, long strideA, long strideB, SCALAR alpha, SCALAR beta)
{
    long n0 = (long)get_global_id(0) * 8, m0 = (long)get_global_id(1) * 4;
    long batch = get_global_id(2);
    if (m0 >= M || n0 >= N) {
        return;
    }
    A += ao + batch * strideA;
    B += bo + batch * strideB;
    C += co + batch * M * N;
    VEC8 acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
    long r1 = min(m0 + 1, M - 1), r2 = min(m0 + 2, M - 1), r3 = min(m0 + 3, M - 1);
    for (long k = 0; k < K; k++) {
        VEC8 b = load_b8(B, transB, k, n0, N, K);
        // Rows past M read row M-1 (in bounds) and are not stored.
        ACC a0 = transA ? LD(A, k * M + m0) : LD(A, m0 * K + k);
        ACC a1 = transA ? LD(A, k * M + r1) : LD(A, r1 * K + k);
        ACC a2 = transA ? LD(A, k * M + r2) : LD(A, r2 * K + k);
        ACC a3 = transA ? LD(A, k * M + r3) : LD(A, r3 * K + k);
        acc0 += a0 * b;
        acc1 += a1 * b;
        acc2 += a2 * b;
        acc3 += a3 * b;
    }
    ACC rows[4][8];
    vstore8(acc0, 0, rows[0]);
    vstore8(acc1, 0, rows[1]);
    vstore8(acc2, 0, rows[2]);
    vstore8(acc3, 0, rows[3]);
    for (int i = 0; i < 4; i++) {
        long m = m0 + i;
        if (m >= M) {
            break;
        }
        for (int j = 0; j < 8; j++) {
            long n = n0 + j;
            if (n >= N) {
                break;
            }
            ACC v = (ACC)alpha * rows[i][j];
            if (beta != 0) {
                v += (ACC)beta * LD(C, m * N + n);
            }
            if (hasBias) {
                v += LD(bias, biaso + n);
            }
            ST(C, m * N + n, v);
        }
    }
}
