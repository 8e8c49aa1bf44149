using Hal.Numerics;

namespace Hal.Backends.Cpu;

// Philox4x32-10 random numbers, element for element as Numerics.Philox specifies: element i of dst is global
// index offset + i, i.e. lane (offset + i) % 4 of block (offset + i) / 4. Each block is computed once per four lanes.
internal sealed unsafe partial class CpuKernels
{
    public void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b)
    {
        nint dp = (nint)Ptr(dst);
        var dtype = dst.DType;
        CpuParallel.For(Threads, dst.ElementCount, (s, e) =>
        {
            float* tmp = stackalloc float[StageBlock];
            for (long i = s; i < e; i += StageBlock)
            {
                int m = (int)Math.Min(StageBlock, e - i);
                ulong first = offset + (ulong)i;
                switch (dtype)
                {
                    case DType.F64:
                        FillF64(distribution, (double*)dp + i, m, seed, first, a, b);
                        break;
                    case DType.F32:
                        FillF32(distribution, (float*)dp + i, m, seed, first, (float)a, (float)b);
                        break;
                    default:
                        FillF32(distribution, tmp, m, seed, first, (float)a, (float)b);
                        CpuConvert.Store16(dtype, tmp, (ushort*)dp + i, m);
                        break;
                }
            }
        }, alignItems: 64);
    }

    /// <summary>Raw words of global indices first … first + m − 1, one Philox block per four lanes.</summary>
    private static void Words(uint* words, int m, ulong seed, ulong first)
    {
        ulong block = ulong.MaxValue;
        uint x0 = 0, x1 = 0, x2 = 0, x3 = 0;
        for (int i = 0; i < m; i++)
        {
            ulong g = first + (ulong)i;
            if (g / 4 != block)
            {
                block = g / 4;
                (x0, x1, x2, x3) = Philox.Block(seed, block);
            }
            words[i] = (g % 4) switch { 0 => x0, 1 => x1, 2 => x2, _ => x3 };
        }
    }

    private static void FillF32(RandomDistribution distribution, float* dst, int m, ulong seed, ulong first, float a, float b)
    {
        if (distribution == RandomDistribution.Uniform)
        {
            uint* words = stackalloc uint[m];
            Words(words, m, seed, first);
            float span = b - a;
            for (int i = 0; i < m; i++)
            {
                // Two roundings, no fused multiply-add: the spec's bit-exact uniform.
                float scaled = span * Philox.ToUnit(words[i]);
                dst[i] = a + scaled;
            }
            return;
        }
        // The spec's Box–Muller (Philox.Normal) with each block computed once for its four lanes.
        ulong block = ulong.MaxValue;
        uint x0 = 0, x1 = 0, x2 = 0, x3 = 0;
        for (int i = 0; i < m; i++)
        {
            ulong g = first + (ulong)i;
            if (g / 4 != block)
            {
                block = g / 4;
                (x0, x1, x2, x3) = Philox.Block(seed, block);
            }
            int lane = (int)(g % 4);
            (uint p, uint q) = lane < 2 ? (x0, x1) : (x2, x3);
            float u1 = ((p >> 8) + 1) * Philox.UnitScale;
            float u2 = (q >> 8) * Philox.UnitScale;
            float r = MathF.Sqrt(-2.0f * MathF.Log(u1));
            float theta = 2.0f * MathF.PI * u2;
            float z = (lane & 1) == 0 ? r * MathF.Cos(theta) : r * MathF.Sin(theta);
            dst[i] = a + (b * z);
        }
    }

    private static void FillF64(RandomDistribution distribution, double* dst, int m, ulong seed, ulong first, double a, double b)
    {
        if (distribution == RandomDistribution.Uniform)
        {
            uint* words = stackalloc uint[m];
            Words(words, m, seed, first);
            for (int i = 0; i < m; i++)
            {
                dst[i] = a + ((b - a) * Philox.ToUnit(words[i]));
            }
            return;
        }
        for (int i = 0; i < m; i++)
        {
            ulong g = first + (ulong)i;
            var (x0, x1, x2, x3) = Philox.Block(seed, g / 4);
            int lane = (int)(g % 4);
            (uint p, uint q) = lane < 2 ? (x0, x1) : (x2, x3);
            double u1 = ((p >> 8) + 1) * (double)Philox.UnitScale;
            double u2 = (q >> 8) * (double)Philox.UnitScale;
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            double theta = 2.0 * Math.PI * u2;
            dst[i] = a + (b * ((lane & 1) == 0 ? r * Math.Cos(theta) : r * Math.Sin(theta)));
        }
    }
}
