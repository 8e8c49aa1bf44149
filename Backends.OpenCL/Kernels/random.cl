// Philox4x32-10 random numbers exactly as Hal.Numerics.Philox specifies: element i of dst has global index
// g = offset + i, lane g % 4 of block g / 4 (counter (lo32, hi32, 0, 0), key (lo32(seed), hi32(seed))).
// Uniform: low + span * u with two roundings: contraction into a fused multiply-add is switched off.
#pragma OPENCL FP_CONTRACT OFF

inline uint4 philox_block(ulong seed, ulong block)
{
    uint c0 = (uint)block, c1 = (uint)(block >> 32), c2 = 0, c3 = 0;
    uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint hi0 = mul_hi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint hi1 = mul_hi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    return (uint4)(c0, c1, c2, c3);
}

inline uint lane_of(uint4 x, int lane) { return lane == 0 ? x.s0 : (lane == 1 ? x.s1 : (lane == 2 ? x.s2 : x.s3)); }

// dist 0: uniform in [a, b); 1: normal(mean a, std b). F32 math for F32 and the 16-bit types (rounded once to them).
__kernel void random_f32(int dist, __global T* dst, long dof, long n, ulong seed, ulong offset, float a, float b)
{
    long i = get_global_id(0);
    if (i >= n) {
        return;
    }
    ulong g = offset + (ulong)i;
    uint4 x = philox_block(seed, g / 4);
    int lane = (int)(g % 4);
    float v;
    if (dist == 0) {
        float u = (float)(lane_of(x, lane) >> 8) * (1.0f / 16777216.0f);
        float span = b - a;
        float scaled = span * u;
        v = a + scaled;
    } else {
        uint p = lane < 2 ? x.s0 : x.s2, q = lane < 2 ? x.s1 : x.s3;
        float u1 = (float)((p >> 8) + 1) * (1.0f / 16777216.0f);
        float u2 = (float)(q >> 8) * (1.0f / 16777216.0f);
        float r = sqrt(-2.0f * log(u1));
        float theta = 2.0f * M_PI_F * u2;
        float z = (lane & 1) == 0 ? r * cos(theta) : r * sin(theta);
        float scaled = b * z;
        v = a + scaled;
    }
    ST(dst, dof + i, v);
}

#ifdef HAS_FP64
__kernel void random_f64(int dist, __global double* dst, long dof, long n, ulong seed, ulong offset, double a, double b)
{
    long i = get_global_id(0);
    if (i >= n) {
        return;
    }
    ulong g = offset + (ulong)i;
    uint4 x = philox_block(seed, g / 4);
    int lane = (int)(g % 4);
    double v;
    if (dist == 0) {
        double u = (double)((float)(lane_of(x, lane) >> 8) * (1.0f / 16777216.0f));
        double span = b - a;
        double scaled = span * u;
        v = a + scaled;
    } else {
        uint p = lane < 2 ? x.s0 : x.s2, q = lane < 2 ? x.s1 : x.s3;
        double u1 = (double)((p >> 8) + 1) * (double)(1.0f / 16777216.0f);
        double u2 = (double)(q >> 8) * (double)(1.0f / 16777216.0f);
        double r = sqrt(-2.0 * log(u1));
        double theta = 2.0 * M_PI * u2;
        double z = (lane & 1) == 0 ? r * cos(theta) : r * sin(theta);
        double scaled = b * z;
        v = a + scaled;
    }
    dst[dof + i] = v;
}
#endif
