namespace Hal.Models.Nn;

/// <summary>
/// Rotary tables cos/sin [T, D/2] (F32) for rotate-half rotary embedding: row t, column i holds the angle
/// t·θ^(−2i/D), computed in double on the host once per model.
/// Legend: T context length, D head size.
/// </summary>
public sealed class RotaryTables : IDisposable
{
    /// <summary>Builds the tables for positions 0..contextLength−1.</summary>
    /// <exception cref="ArgumentException">an odd head size.</exception>
    public RotaryTables(Ops ops, int contextLength, int headSize, double theta)
    {
        ArgumentNullException.ThrowIfNull(ops);
        if (headSize % 2 != 0)
        {
            throw new ArgumentException($"rotary embedding needs an even head size, not {headSize}", nameof(headSize));
        }
        int half = headSize / 2;
        var cos = new double[contextLength * half];
        var sin = new double[contextLength * half];
        for (int t = 0; t < contextLength; t++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = t * Math.Pow(theta, -2.0 * i / headSize);
                cos[(t * half) + i] = Math.Cos(angle);
                sin[(t * half) + i] = Math.Sin(angle);
            }
        }
        Cos = ops.FromArray(cos, new Shape(contextLength, half), DType.F32);
        Sin = ops.FromArray(sin, new Shape(contextLength, half), DType.F32);
    }

    /// <summary>cos [T, D/2] F32.</summary>
    public Tensor Cos { get; }

    /// <summary>sin [T, D/2] F32.</summary>
    public Tensor Sin { get; }

    /// <summary>Frees the tables.</summary>
    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
    }
}
