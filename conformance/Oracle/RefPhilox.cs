using Hal.Conformance.Kernels;

namespace Hal.Conformance.Oracle;

/// <summary>
/// The suite's own Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3",
/// SC'11, §3.2 and table 2), written from the paper, plus the mapping of its words to floats that the contract
/// documents on <c>Hal.Numerics.Philox</c> (stream layout, uniform and Box–Muller normal). Independent of that class's code.
/// </summary>
public static class RefPhilox
{
    // Table 2 of the paper: the Philox-4×32 multipliers and the Weyl-sequence key increments (golden ratio and √3 − 1).
    private const uint Multiplier0 = 0xD2511F53;
    private const uint Multiplier1 = 0xCD9E8D57;
    private const uint KeyStep0 = 0x9E3779B9;
    private const uint KeyStep1 = 0xBB67AE85;

    /// <summary>2⁻²⁴: the spacing of the 24-bit uniforms.</summary>
    private const double TwoPowMinus24 = 1.0 / 16777216.0;

    /// <summary>Ten rounds of Philox-4×32 on a full 128-bit counter and 64-bit key (the form of the Random123 known-answer vectors).</summary>
    public static uint[] Bijection(uint[] counter, uint[] key, int rounds = 10)
    {
        ArgumentNullException.ThrowIfNull(counter);
        ArgumentNullException.ThrowIfNull(key);
        uint x0 = counter[0], x1 = counter[1], x2 = counter[2], x3 = counter[3];
        uint k0 = key[0], k1 = key[1];
        for (int r = 0; r < rounds; r++)
        {
            // One round: the two products split into high and low halves; the high halves are mixed with the
            // other words and the round key, the low halves move into the odd positions (the paper's S-box + P-box).
            ulong product0 = (ulong)Multiplier0 * x0;
            ulong product1 = (ulong)Multiplier1 * x2;
            uint next0 = (uint)(product1 >> 32) ^ x1 ^ k0;
            uint next1 = (uint)product1;
            uint next2 = (uint)(product0 >> 32) ^ x3 ^ k1;
            uint next3 = (uint)product0;
            x0 = next0;
            x1 = next1;
            x2 = next2;
            x3 = next3;
            // The key schedule bumps the key between rounds.
            k0 += KeyStep0;
            k1 += KeyStep1;
        }
        return [x0, x1, x2, x3];
    }

    /// <summary>The four words of stream block <paramref name="block"/>: counter (lo32, hi32, 0, 0) of the block, key (lo32, hi32) of the seed.</summary>
    public static uint[] Block(ulong seed, ulong block) =>
        Bijection([(uint)(block & 0xFFFFFFFF), (uint)(block >> 32), 0, 0], [(uint)(seed & 0xFFFFFFFF), (uint)(seed >> 32)]);

    /// <summary>The raw word of global element g: lane g mod 4 of block g / 4.</summary>
    public static uint Word(ulong seed, ulong g) => Block(seed, g / 4)[(int)(g % 4)];

    /// <summary>u = (x &gt;&gt; 8)·2⁻²⁴ ∈ [0, 1), exact in every float format with a 24-bit significand or more.</summary>
    public static double Unit(uint word) => (word >> 8) * TwoPowMinus24;

    /// <summary>
    /// Element g of a uniform stream on [low, high) stored as <paramref name="dtype"/>: F64 evaluates
    /// low + (high − low)·u in F64; F32 evaluates it in F32 with each operation rounded (no fused multiply-add);
    /// F16/BF16 take the F32 value and round it once to nearest even.
    /// </summary>
    public static double Uniform(DType dtype, ulong seed, ulong g, double low, double high)
    {
        double u = Unit(Word(seed, g));
        if (dtype == DType.F64)
        {
            double span = high - low;
            double scaled = span * u;
            return low + scaled;
        }
        float lowF = (float)low;
        float spanF = (float)high - lowF;
        float scaledF = spanF * (float)u;
        float value = lowF + scaledF;
        return FloatFormat.Round(dtype, value);
    }

    /// <summary>
    /// Element g of a normal stream, exactly (in F64 arithmetic, not in the dtype's): lanes (0, 1) and (2, 3) of a
    /// block pair up as (a, b); u₁ = ((a &gt;&gt; 8) + 1)·2⁻²⁴ ∈ (0, 1], u₂ = (b &gt;&gt; 8)·2⁻²⁴, r = √(−2 ln u₁), θ = 2πu₂;
    /// the even lane is mean + std·r·cos θ, the odd lane mean + std·r·sin θ. <paramref name="radiusTimesStd"/>
    /// returns |std|·r, which the tolerance's scale needs.
    /// </summary>
    public static double Normal(ulong seed, ulong g, double mean, double std, out double radiusTimesStd)
    {
        uint[] words = Block(seed, g / 4);
        int lane = (int)(g % 4);
        uint a = words[lane < 2 ? 0 : 2];
        uint b = words[lane < 2 ? 1 : 3];
        double u1 = ((a >> 8) + 1) * TwoPowMinus24;
        double u2 = (b >> 8) * TwoPowMinus24;
        double r = Math.Sqrt(-2 * Math.Log(u1));
        double theta = 2 * Math.PI * u2;
        double z = lane % 2 == 0 ? r * Math.Cos(theta) : r * Math.Sin(theta);
        radiusTimesStd = Math.Abs(std) * r;
        return mean + std * z;
    }
}
