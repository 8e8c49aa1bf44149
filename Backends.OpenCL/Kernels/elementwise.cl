// Element-wise kernels: unary ops, binary ops (same shape, and NumPy broadcasting over up to 8 merged dims),
// activation gradients and AdamW. One work-item per element; x, y, a, b are flat runs at element offsets.
// Op codes follow the enums UnaryOp and BinaryOp in declaration order.

#ifdef IS_FLOAT
// 1/(1 + e^-x) without overflow on either side.
inline ACC hal_sigmoid(ACC x)
{
    if (x >= 0) {
        return (ACC)1 / ((ACC)1 + exp(-x));
    }
    ACC e = exp(x);
    return e / ((ACC)1 + e);
}

// tanh that returns exactly ±1 where the correctly rounded result is ±1 (|x| > 9.1 in F32, 19.1 in F64): some
// implementations stop one ULP short, which turns 1 - tanh² into a spurious non-zero.
#ifdef DT_F64
#define TANH_SATURATION 19.1
#else
#define TANH_SATURATION 9.1f
#endif
inline ACC hal_tanh(ACC x) { return fabs(x) > (ACC)TANH_SATURATION ? copysign((ACC)1, x) : tanh(x); }

inline ACC hal_unary(int op, ACC x)
{
    const ACC hf = (ACC)0.5;
    switch (op) {
    case 0: return -x;
    case 1: return fabs(x);
    case 2: return exp(x);
    case 3: return log(x);
    case 4: return sqrt(x);
    case 5: return rsqrt(x);
    case 6: return hal_tanh(x);
    case 7: return hal_sigmoid(x);
    case 8: return isnan(x) ? x : (x > 0 ? x : (ACC)0);
    // Phi(x) through erfc: 1 + erf(x/sqrt2) would cancel for negative x; -Inf gives -0 rather than NaN.
    case 9: return isinf(x) && x < 0 ? (ACC)-0.0 : hf * x * erfc(-x * (ACC)0.70710678118654752440);
    // 0.5 x (1 + tanh u) written as x sigmoid(2u), which does not cancel for negative x.
    case 10: return isinf(x) && x < 0 ? (ACC)-0.0 : x * hal_sigmoid((ACC)2 * (ACC)0.79788456080286535588 * (x + (ACC)0.044715 * x * x * x));
    case 11:
#if defined(HAS_FP64) && !defined(DT_F64)
        // Below -80, 1 + e^x = 1 in F32 but e^x itself goes subnormal (x < -87) and would lose bits before the
        // product: x e^x in F64, rounded once. Devices without fp64 keep the F32 product.
        if (x < (ACC)-80 && !isinf(x)) {
            return (ACC)((double)x * exp((double)x));
        }
#endif
        return isinf(x) && x < 0 ? (ACC)-0.0 : x * hal_sigmoid(x);
    case 12: return sin(x);
    case 13: return cos(x);
    case 14: return rint(x);
    case 15: return x * x;
    default: return (ACC)1 / x;
    }
}
#else
inline ACC hal_unary(int op, ACC x)
{
    switch (op) {
    case 0: return (ACC)(-x);
    case 1: return (ACC)(x < 0 ? -x : x);
    case 8: return (ACC)(x > 0 ? x : 0);
    default: return (ACC)(x * x);
    }
}
#endif

__kernel void unary(int op, __global const T* x, long xo, __global T* y, long yo, long n)
{
    long i = get_global_id(0);
    if (i < n) {
        ST(y, yo + i, hal_unary(op, LD(x, xo + i)));
    }
}

inline ACC hal_binary(int op, ACC a, ACC b)
{
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
#ifdef IS_FLOAT
    case 3: return a / b;
    case 4: return (isnan(a) || isnan(b)) ? a + b : fmax(a, b);
    case 5: return (isnan(a) || isnan(b)) ? a + b : fmin(a, b);
    default: return pow(a, b);
#else
    // Integer division truncates toward zero; x / 0 is 0; MIN / -1 wraps to MIN (its two's-complement answer).
    case 3: return b == 0 ? (ACC)0 : (b == -1 ? (ACC)(0 - a) : (ACC)(a / b));
    case 4: return max(a, b);
    default: return min(a, b);
#endif
    }
}

__kernel void binary_same(int op, __global const T* a, long ao, __global const T* b, long bo, __global T* y, long yo, long n)
{
    long i = get_global_id(0);
    if (i < n) {
        ST(y, yo + i, hal_binary(op, LD(a, ao + i), LD(b, bo + i)));
    }
}

// dims: the output's merged dims (unused ones 1, leading); sa/sb: element strides of a and b per dim (0 = broadcast).
__kernel void binary_broadcast(int op, __global const T* a, long ao, __global const T* b, long bo, __global T* y, long yo, long n,
                               long8 dims, long8 sa, long8 sb)
{
    long i = get_global_id(0);
    if (i >= n) {
        return;
    }
    long d[8], xa[8], xb[8];
    vstore8(dims, 0, d);
    vstore8(sa, 0, xa);
    vstore8(sb, 0, xb);
    long rem = i, ia = 0, ib = 0;
    for (int k = 7; k >= 0; k--) {
        long c = rem % d[k];
        rem /= d[k];
        ia += c * xa[k];
        ib += c * xb[k];
    }
    ST(y, yo + i, hal_binary(op, LD(a, ao + ia), LD(b, bo + ib)));
}

#ifdef IS_FLOAT
// dx = dy * op'(x) for Relu (8), Tanh (6), Sigmoid (7), GeluErf (9), GeluTanh (10), Silu (11).
inline ACC hal_derivative(int op, ACC x)
{
    const ACC one = (ACC)1, hf = (ACC)0.5;
    switch (op) {
    // relu'(NaN) is NaN, so that dx = dy · NaN propagates.
    case 8: return isnan(x) ? x : (x > 0 ? one : (ACC)0);
    case 6: { ACC t = hal_tanh(x); return one - t * t; }
    case 7: { ACC s = hal_sigmoid(x); return s * (one - s); }
    case 11: {
        // Where s saturates to 0 or 1 the x(1 - s) term is 0 (so that Inf * 0 cannot make a NaN).
        ACC s = hal_sigmoid(x);
        return s == 0 ? (ACC)0 : (s == one ? one : s * (one + x * (one - s)));
    }
    case 10: {
        const ACC k = (ACC)0.79788456080286535588, c = (ACC)0.044715;
        ACC x2 = x * x;
        ACC t = hal_tanh(k * (x + c * x2 * x));
        ACC sech2 = one - t * t;
        ACC tail = sech2 == 0 ? (ACC)0 : hf * x * sech2 * k * (one + (ACC)3 * c * x2);
        return hf * (one + t) + tail;
    }
    default: {
        ACC cdf = hf * erfc(-x * (ACC)0.70710678118654752440);
        ACC pdf = exp(-hf * x * x) * (ACC)0.39894228040143267794;
        return cdf + (pdf == 0 ? (ACC)0 : x * pdf);
    }
    }
}

__kernel void activation_backward(int op, __global const T* x, long xo, __global const T* dy, long dyo, __global T* dx, long dxo, long n)
{
    long i = get_global_id(0);
    if (i < n) {
        ST(dx, dxo + i, LD(dy, dyo + i) * hal_derivative(op, LD(x, xo + i)));
    }
}

// AdamW in place; m and v are F32 states, param and grad of the program's dtype. The update is computed in OPT
// (F64 where the device has fp64, as the CPU backend does, else F32) and rounded once. c1 = 1 - beta1^step,
// c2 = 1 - beta2^step and ob1 = 1 - beta1, ob2 = 1 - beta2 come from the host in double (1 - 0.999f would be
// 4.7e-5 off in F32).
#ifdef HAS_FP64
typedef double OPT;
#else
typedef float OPT;
#endif
__kernel void adamw(__global T* p, long po, __global const T* g, long go, __global float* m, long mo, __global float* v, long vo, long n,
                    OPT lr, OPT beta1, OPT beta2, OPT eps, OPT wd, OPT c1, OPT c2, OPT ob1, OPT ob2)
{
    long i = get_global_id(0);
    if (i >= n) {
        return;
    }
    OPT gi = (OPT)LD(g, go + i);
    OPT mi = beta1 * (OPT)m[mo + i] + ob1 * gi;
    OPT vi = beta2 * (OPT)v[vo + i] + ob2 * gi * gi;
    OPT pi = (OPT)LD(p, po + i);
    pi -= lr * ((mi / c1) / (sqrt(vi / c2) + eps) + wd * pi);
    m[mo + i] = (float)mi;
    v[vo + i] = (float)vi;
    ST(p, po + i, (ACC)pi);
}
#endif
