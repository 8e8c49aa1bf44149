namespace Hal.Numerics;

/// <summary>
/// The one random-number specification every backend follows, bit for bit: Philox4x32-10 (Salmon et al., SC'11).
/// <para>
/// Stream: the element with global index g = offset + i comes from block b = g / 4, lane g % 4, where the block's
/// counter is (lo32(b), hi32(b), 0, 0) and the key is (lo32(seed), hi32(seed)).
/// </para>
/// <para>
/// Uniform: u = (x &gt;&gt; 8) · 2⁻²⁴ ∈ [0, 1) from the lane's 32-bit word x; the value is low + (high − low) · u evaluated
/// in F32 with two roundings (no fused multiply-add), so uniforms are bit-identical on every backend.
/// F64 tensors use the same u, evaluated in F64.
/// </para>
/// <para>
/// Normal (Box–Muller, F32): lanes (0, 1) and (2, 3) of a block are pairs (x₀, x₁); u₁ = ((x₀ &gt;&gt; 8) + 1) · 2⁻²⁴ ∈ (0, 1],
/// u₂ = (x₁ &gt;&gt; 8) · 2⁻²⁴, r = √(−2 ln u₁), θ = 2π u₂; the even lane gets mean + std · r cos θ, the odd lane
/// mean + std · r sin θ. These involve transcendentals, so backends agree within their ULP bounds, not bitwise.
/// </para>
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53;
    private const uint M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9;
    private const uint W1 = 0xBB67AE85;

    /// <summary>2⁻²⁴.</summary>
    public const float UnitScale = 1.0f / 16777216.0f;

    /// <summary>The four 32-bit words of block <paramref name="block"/> for <paramref name="seed"/>.</summary>
    public static (uint X0, uint X1, uint X2, uint X3) Block(ulong seed, ulong block)
    {
        uint c0 = (uint)block, c1 = (uint)(block >> 32), c2 = 0, c3 = 0;
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        for (int round = 0; round < 10; round++)
        {
            if (round > 0)
            {
                k0 += W0;
                k1 += W1;
            }
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0;
            uint hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
            c0 = hi1 ^ c1 ^ k0;
            c1 = lo1;
            c2 = hi0 ^ c3 ^ k1;
            c3 = lo0;
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>The raw 32-bit word for global element index <paramref name="index"/>.</summary>
    public static uint Raw(ulong seed, ulong index)
    {
        var (x0, x1, x2, x3) = Block(seed, index / 4);
        return (index % 4) switch { 0 => x0, 1 => x1, 2 => x2, _ => x3 };
    }

    /// <summary>u ∈ [0, 1) from a raw word.</summary>
    public static float ToUnit(uint x) => (x >> 8) * UnitScale;

    /// <summary>The F32 uniform value of element <paramref name="index"/> in [low, high).</summary>
    public static float Uniform(ulong seed, ulong index, float low, float high)
    {
        float span = high - low;
        float scaled = span * ToUnit(Raw(seed, index));
        return low + scaled;
    }

    /// <summary>The F32 normal value of element <paramref name="index"/>.</summary>
    public static float Normal(ulong seed, ulong index, float mean, float std)
    {
        var (x0, x1, x2, x3) = Block(seed, index / 4);
        int lane = (int)(index % 4);
        (uint a, uint b) = lane < 2 ? (x0, x1) : (x2, x3);
        float u1 = ((a >> 8) + 1) * UnitScale;
        float u2 = (b >> 8) * UnitScale;
        float r = MathF.Sqrt(-2.0f * MathF.Log(u1));
        float theta = 2.0f * MathF.PI * u2;
        float z = (lane & 1) == 0 ? r * MathF.Cos(theta) : r * MathF.Sin(theta);
        return mean + (std * z);
    }

    /// <summary>Fills <paramref name="dst"/> with uniforms for elements offset … offset + length − 1.</summary>
    public static void FillUniform(Span<float> dst, ulong seed, ulong offset, float low, float high)
    {
        float span = high - low;
        for (int i = 0; i < dst.Length; i++)
        {
            float scaled = span * ToUnit(Raw(seed, offset + (ulong)i));
            dst[i] = low + scaled;
        }
    }

    /// <summary>Fills <paramref name="dst"/> with normals for elements offset … offset + length − 1.</summary>
    public static void FillNormal(Span<float> dst, ulong seed, ulong offset, float mean, float std)
    {
        for (int i = 0; i < dst.Length; i++)
        {
            dst[i] = Normal(seed, offset + (ulong)i, mean, std);
        }
    }
}
