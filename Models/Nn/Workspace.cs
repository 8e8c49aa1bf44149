namespace Hal.Models.Nn;

/// <summary>
/// The activation and scratch buffers of a model, by key: a buffer is allocated on first use and reused while its
/// shape and dtype repeat (training steps have one shape), so a step allocates nothing once warm. It also caches the
/// device-side constants modules need (a ones vector for bias gradients, permutation indices for head layouts).
/// Buffers marked <c>saved</c> during a forward are the activations backward needs; <see cref="SavedBytes"/> sums them.
/// </summary>
public sealed class Workspace : IDisposable
{
    private readonly Dictionary<string, Tensor> _buffers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> _constants = new(StringComparer.Ordinal);
    private readonly HashSet<string> _saved = new(StringComparer.Ordinal);

    /// <summary>Creates an empty workspace on the device of <paramref name="ops"/>.</summary>
    public Workspace(Ops ops)
    {
        ArgumentNullException.ThrowIfNull(ops);
        Ops = ops;
    }

    /// <summary>The entry every module runs its kernels through.</summary>
    public Ops Ops { get; }

    /// <summary>
    /// The buffer named <paramref name="key"/> with this shape and dtype (contents unspecified: whatever the last user
    /// left). <paramref name="saved"/> counts it in <see cref="SavedBytes"/> until <see cref="ResetSaved"/>.
    /// </summary>
    public Tensor Get(string key, Shape shape, DType dtype, bool saved = false)
    {
        if (_buffers.TryGetValue(key, out var t))
        {
            if (t.Shape == shape && t.DType == dtype)
            {
                if (saved)
                {
                    _saved.Add(key);
                }
                return t;
            }
            t.Dispose();
            _buffers.Remove(key);
        }
        t = Ops.Empty(shape, dtype);
        _buffers.Add(key, t);
        if (saved)
        {
            _saved.Add(key);
        }
        return t;
    }

    /// <summary>Forgets which buffers were saved (a new forward starts).</summary>
    public void ResetSaved() => _saved.Clear();

    /// <summary>Bytes of the buffers marked saved since <see cref="ResetSaved"/>.</summary>
    public long SavedBytes
    {
        get
        {
            long bytes = 0;
            foreach (string key in _saved)
            {
                bytes += _buffers[key].SizeInBytes;
            }
            return bytes;
        }
    }

    /// <summary>Bytes of every buffer held (activations and scratch, not constants).</summary>
    public long TotalBytes => _buffers.Values.Sum(t => t.SizeInBytes);

    /// <summary>A [1, n] tensor of ones (bias gradients are ones·dy, a GEMM that accumulates with beta = 1).</summary>
    public Tensor Ones(int n, DType dtype) =>
        Constant($"ones:{n}:{dtype}", () => Ops.Full(new Shape(1, n), 1, dtype));

    /// <summary>
    /// Row permutation that turns token-major heads [B, T, G, D] (G = Σ sections, as a projection writes them) into
    /// head-major sections, each [B, Gs, T, D], stored one after another. Entry r is the input row of output row r.
    /// With <paramref name="inverse"/>, the permutation back (entry r is the head-major row of token-major row r).
    /// </summary>
    public Tensor HeadMajorIndex(int batch, int time, int[] sections, bool inverse)
    {
        string key = $"heads:{batch}:{time}:{string.Join(',', sections)}:{inverse}";
        return Constant(key, () =>
        {
            int[] perm = HeadMajorPermutation(batch, time, sections);
            int[] values = perm;
            if (inverse)
            {
                values = new int[perm.Length];
                for (int r = 0; r < perm.Length; r++)
                {
                    values[perm[r]] = r;
                }
            }
            return Ops.FromArray(Array.ConvertAll(values, v => (double)v), new Shape(values.Length), DType.I32);
        });
    }

    /// <summary>The forward permutation of <see cref="HeadMajorIndex"/> on the host.</summary>
    public static int[] HeadMajorPermutation(int batch, int time, int[] sections)
    {
        ArgumentNullException.ThrowIfNull(sections);
        int groups = sections.Sum();
        var perm = new int[checked(batch * time * groups)];
        int r = 0, groupStart = 0;
        foreach (int size in sections)
        {
            for (int b = 0; b < batch; b++)
            {
                for (int h = 0; h < size; h++)
                {
                    for (int t = 0; t < time; t++)
                    {
                        perm[r++] = (((b * time) + t) * groups) + groupStart + h;
                    }
                }
            }
            groupStart += size;
        }
        return perm;
    }

    /// <summary>[B·T] I32 positions: row b·T + t holds t (the position-embedding gradient is an index-add by them).</summary>
    public Tensor Positions(int batch, int time) =>
        Constant($"positions:{batch}:{time}", () =>
        {
            var values = new double[batch * time];
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = i % time;
            }
            return Ops.FromArray(values, new Shape(values.Length), DType.I32);
        });

    /// <summary>A tensor built once per key and kept until disposal.</summary>
    public Tensor Constant(string key, Func<Tensor> create)
    {
        ArgumentNullException.ThrowIfNull(create);
        if (!_constants.TryGetValue(key, out var t))
        {
            t = create();
            _constants.Add(key, t);
        }
        return t;
    }

    /// <summary>Frees every buffer and constant.</summary>
    public void Dispose()
    {
        foreach (var t in _buffers.Values.Concat(_constants.Values))
        {
            t.Dispose();
        }
        _buffers.Clear();
        _constants.Clear();
        _saved.Clear();
    }
}
