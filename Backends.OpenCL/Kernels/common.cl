// Shared prelude of every Hal OpenCL program. The host builds each program with one -DDT_<dtype> option:
//   T      storage type of one element (16-bit floats are stored as ushort bits),
//   ACC    compute/accumulate type (F32 for the 16-bit floats, F64 for F64, the type itself for integers),
//   SCALAR type of scalar kernel arguments (float, double or long),
//   LD(p,i) / ST(p,i,v) load element i as ACC / store an ACC value as element i (16-bit: round to nearest even).
// IS_FLOAT is defined for floating-point dtypes; HAS_FP64 when the device has cl_khr_fp64.
#ifdef HAS_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

// F32 -> BF16 bits, round to nearest even; NaN stays a quiet NaN with its sign.
inline ushort hal_f32_to_bf16(float f)
{
    uint b = as_uint(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return (ushort)((b >> 16) | 0x40u);
    }
    return (ushort)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

inline float hal_bf16_to_f32(ushort h) { return as_float(((uint)h) << 16); }

#if defined(DT_F32)
typedef float T;
typedef float ACC;
typedef float SCALAR;
#define IS_FLOAT 1
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#elif defined(DT_F64)
typedef double T;
typedef double ACC;
typedef double SCALAR;
#define IS_FLOAT 1
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (v))
#elif defined(DT_F16)
typedef ushort T;
typedef float ACC;
typedef float SCALAR;
#define IS_FLOAT 1
#define IS_16BIT 1
#define LD(p, i) vload_half((i), (__global const half*)(p))
#define ST(p, i, v) vstore_half_rte((v), (i), (__global half*)(p))
#elif defined(DT_BF16)
typedef ushort T;
typedef float ACC;
typedef float SCALAR;
#define IS_FLOAT 1
#define IS_16BIT 1
#define LD(p, i) hal_bf16_to_f32((p)[i])
#define ST(p, i, v) ((p)[i] = hal_f32_to_bf16(v))
#elif defined(DT_I32)
typedef int T;
typedef int ACC;
typedef long SCALAR;
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (T)(v))
#elif defined(DT_I64)
typedef long T;
typedef long ACC;
typedef long SCALAR;
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (T)(v))
#elif defined(DT_I8)
typedef char T;
typedef char ACC;
typedef long SCALAR;
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (T)(v))
#elif defined(DT_U8)
typedef uchar T;
typedef uchar ACC;
typedef long SCALAR;
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (T)(v))
#elif defined(DT_BOOL)
typedef uchar T;
typedef uchar ACC;
typedef long SCALAR;
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (uchar)((v) != 0))
#else
#error "build with one -DDT_<dtype> option"
#endif

// Index tensors are I32 or I64; the host adds -DIDX_I64 for I64 indices.
#ifdef IDX_I64
typedef long IDX;
#else
typedef int IDX;
#endif

// Identities of Max/Min reductions: -Inf/+Inf for floats, the type's extremes for integers.
#if defined(IS_FLOAT)
#define ACC_LOWEST (-INFINITY)
#define ACC_HIGHEST (INFINITY)
#elif defined(DT_I32)
#define ACC_LOWEST INT_MIN
#define ACC_HIGHEST INT_MAX
#elif defined(DT_I64)
#define ACC_LOWEST LONG_MIN
#define ACC_HIGHEST LONG_MAX
#elif defined(DT_I8)
#define ACC_LOWEST CHAR_MIN
#define ACC_HIGHEST CHAR_MAX
#else
#define ACC_LOWEST 0
#define ACC_HIGHEST UCHAR_MAX
#endif

// NaN-propagating max/min (plain max/min for integers).
#ifdef IS_FLOAT
inline ACC hal_max(ACC a, ACC b) { return (isnan(a) || isnan(b)) ? a + b : fmax(a, b); }
inline ACC hal_min(ACC a, ACC b) { return (isnan(a) || isnan(b)) ? a + b : fmin(a, b); }
#else
inline ACC hal_max(ACC a, ACC b) { return max(a, b); }
inline ACC hal_min(ACC a, ACC b) { return min(a, b); }
#endif

// Work-group reductions over get_local_size(0) values (a power of two); s holds one ACC per work-item.
// Every work-item gets the result.
inline ACC wg_sum(ACC v, __local ACC* s)
{
    int l = get_local_id(0);
    s[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = get_local_size(0) / 2; k > 0; k >>= 1) {
        if (l < k) {
            s[l] = s[l] + s[l + k];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    ACC r = s[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

inline ACC wg_max(ACC v, __local ACC* s)
{
    int l = get_local_id(0);
    s[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = get_local_size(0) / 2; k > 0; k >>= 1) {
        if (l < k) {
            s[l] = hal_max(s[l], s[l + k]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    ACC r = s[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

inline ACC wg_min(ACC v, __local ACC* s)
{
    int l = get_local_id(0);
    s[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = get_local_size(0) / 2; k > 0; k >>= 1) {
        if (l < k) {
            s[l] = hal_min(s[l], s[l + k]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    ACC r = s[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}
