// Casts between every pair of dtypes in one program (built once per device, with -DDT_F32 for the prelude).
// Float sources load exactly into FL (double where the device has fp64, else float); integer and bool sources into
// long. Each target is written with one rounding: float targets round to nearest even (BF16 from a wider value
// rounds to odd first so that the final rounding is a single one); integer targets truncate toward zero and
// saturate, NaN -> 0; bool is (x != 0).
// Shapes: src and dst are flat runs of n elements at element offsets so and dof.
#ifdef HAS_FP64
typedef double FL;
#define FL_RTZ_F32(v) convert_float_rtz(v)
#else
typedef float FL;
#define FL_RTZ_F32(v) (v)
#endif

inline FL load_F32(__global const void* p, long i) { return ((__global const float*)p)[i]; }
#ifdef HAS_FP64
inline FL load_F64(__global const void* p, long i) { return ((__global const double*)p)[i]; }
#endif
inline FL load_F16(__global const void* p, long i) { return vload_half(i, (__global const half*)p); }
inline FL load_BF16(__global const void* p, long i) { return hal_bf16_to_f32(((__global const ushort*)p)[i]); }
inline long load_I32(__global const void* p, long i) { return ((__global const int*)p)[i]; }
inline long load_I64(__global const void* p, long i) { return ((__global const long*)p)[i]; }
inline long load_I8(__global const void* p, long i) { return ((__global const char*)p)[i]; }
inline long load_U8(__global const void* p, long i) { return ((__global const uchar*)p)[i]; }
inline long load_BOOL(__global const void* p, long i) { return ((__global const uchar*)p)[i] != 0 ? 1 : 0; }

// BF16 from a value wider than F32: truncate to F32, make it odd when inexact, then round to nearest even once.
inline ushort bf16_from_fl(FL v)
{
#ifdef HAS_FP64
    if (isnan(v)) {
        return hal_f32_to_bf16((float)v);
    }
    float f = convert_float_rtz(v);
    if ((double)f != v) {
        return hal_f32_to_bf16(as_float(as_uint(f) | 1u));
    }
    return hal_f32_to_bf16(f);
#else
    return hal_f32_to_bf16(v);
#endif
}

inline ushort bf16_from_long(long v)
{
    float f = convert_float_rtz(v);
    if ((long)f != v) {
        return hal_f32_to_bf16(as_float(as_uint(f) | 1u));
    }
    return hal_f32_to_bf16(f);
}

inline void storef_F32(__global void* p, long i, FL v) { ((__global float*)p)[i] = convert_float_rte(v); }
#ifdef HAS_FP64
inline void storef_F64(__global void* p, long i, FL v) { ((__global double*)p)[i] = v; }
inline void storel_F64(__global void* p, long i, long v) { ((__global double*)p)[i] = convert_double_rte(v); }
#endif
inline void storef_F16(__global void* p, long i, FL v) { vstore_half_rte(v, i, (__global half*)p); }
inline void storef_BF16(__global void* p, long i, FL v) { ((__global ushort*)p)[i] = bf16_from_fl(v); }
inline void storef_I32(__global void* p, long i, FL v) { ((__global int*)p)[i] = convert_int_sat_rtz(v); }
inline void storef_I64(__global void* p, long i, FL v) { ((__global long*)p)[i] = convert_long_sat_rtz(v); }
inline void storef_I8(__global void* p, long i, FL v) { ((__global char*)p)[i] = convert_char_sat_rtz(v); }
inline void storef_U8(__global void* p, long i, FL v) { ((__global uchar*)p)[i] = convert_uchar_sat_rtz(v); }
inline void storef_BOOL(__global void* p, long i, FL v) { ((__global uchar*)p)[i] = v != 0 ? 1 : 0; }

inline void storel_F32(__global void* p, long i, long v) { ((__global float*)p)[i] = convert_float_rte(v); }
// |v| > 2^24 is beyond F16's range either way, so rounding to F32 first never rounds twice.
inline void storel_F16(__global void* p, long i, long v) { vstore_half_rte(convert_float_rte(v), i, (__global half*)p); }
inline void storel_BF16(__global void* p, long i, long v) { ((__global ushort*)p)[i] = bf16_from_long(v); }
inline void storel_I32(__global void* p, long i, long v) { ((__global int*)p)[i] = convert_int_sat(v); }
inline void storel_I64(__global void* p, long i, long v) { ((__global long*)p)[i] = v; }
inline void storel_I8(__global void* p, long i, long v) { ((__global char*)p)[i] = convert_char_sat(v); }
inline void storel_U8(__global void* p, long i, long v) { ((__global uchar*)p)[i] = convert_uchar_sat(v); }
inline void storel_BOOL(__global void* p, long i, long v) { ((__global uchar*)p)[i] = v != 0 ? 1 : 0; }

#define CAST(S, K, D) \
    __kernel void cast_##S##_##D(__global const void* src, long so, __global void* dst, long dof, long n) \
    { \
        long i = get_global_id(0); \
        if (i < n) { \
            store##K##_##D(dst, dof + i, load_##S(src, so + i)); \
        } \
    }

#ifdef HAS_FP64
#define CAST_ALL_FROM(S, K) \
    CAST(S, K, F32) CAST(S, K, F64) CAST(S, K, F16) CAST(S, K, BF16) CAST(S, K, I32) CAST(S, K, I64) CAST(S, K, I8) CAST(S, K, U8) CAST(S, K, BOOL)
CAST_ALL_FROM(F64, f)
#else
#define CAST_ALL_FROM(S, K) \
    CAST(S, K, F32) CAST(S, K, F16) CAST(S, K, BF16) CAST(S, K, I32) CAST(S, K, I64) CAST(S, K, I8) CAST(S, K, U8) CAST(S, K, BOOL)
#endif

CAST_ALL_FROM(F32, f)
CAST_ALL_FROM(F16, f)
CAST_ALL_FROM(BF16, f)
CAST_ALL_FROM(I32, l)
CAST_ALL_FROM(I64, l)
CAST_ALL_FROM(I8, l)
CAST_ALL_FROM(U8, l)
CAST_ALL_FROM(BOOL, l)
