namespace Hal.Parallel.Sequence;

// Legend: B batch, H query heads, Hkv key/value heads, Tl local tokens, D head size.

/// <summary>Argument checks shared by the sequence-parallel attentions, made before any rank communicates.</summary>
internal static class SequenceChecks
{
    public static void SameDevice(Ops ops, ICommunicator group)
    {
        if (!ReferenceEquals(ops.Device, group.Device))
        {
            throw new ArgumentException($"ops work on {ops.Device.Id} but rank {group.Rank} communicates on {group.Device.Id}", nameof(ops));
        }
    }

    /// <summary>q [B, H, Tl, D], k and v [B, Hkv, Tk, D] with H a multiple of Hkv, output like q, lse [B, H, Tl] F32.</summary>
    public static void Attention(string op, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, bool requireSameLength)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(lse);
        if (q.Rank != 4 || k.Rank != 4)
        {
            throw new ShapeMismatchException(op, q.Shape, k.Shape, "q, k and v must be [B, H, T, D]");
        }
        if (k.Shape != v.Shape)
        {
            throw new ShapeMismatchException(op, k.Shape, v.Shape, "v must have k's shape");
        }
        if (k.Shape[0] != q.Shape[0] || k.Shape[3] != q.Shape[3] || (requireSameLength && k.Shape[2] != q.Shape[2]))
        {
            throw new ShapeMismatchException(op, q.Shape, k.Shape, "k and v must have q's batch, local length and head size");
        }
        if (k.Shape[1] == 0 || q.Shape[1] % k.Shape[1] != 0)
        {
            throw new ShapeMismatchException(op, q.Shape, k.Shape, $"query heads ({q.Shape[1]}) must be a multiple of key/value heads ({k.Shape[1]})");
        }
        if (k.DType != q.DType || v.DType != q.DType || output.DType != q.DType)
        {
            throw new DTypeMismatchException(op, q.DType, k.DType != q.DType ? k.DType : v.DType != q.DType ? v.DType : output.DType);
        }
        if (output.Shape != q.Shape)
        {
            throw new ShapeMismatchException(op, q.Shape, output.Shape, "output must have q's shape");
        }
        var lseShape = new Shape(q.Shape[0], q.Shape[1], q.Shape[2]);
        if (lse.Shape != lseShape || lse.DType != DType.F32)
        {
            throw new ShapeMismatchException(op, lseShape, lse.Shape, $"lse must be [B, H, Tl] F32 (got {lse.DType.Name()})");
        }
    }

    /// <summary>dOutput and dq like q; dk and dv like k.</summary>
    public static void Gradients(string op, Tensor q, Tensor k, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv)
    {
        ArgumentNullException.ThrowIfNull(dOutput);
        ArgumentNullException.ThrowIfNull(dq);
        ArgumentNullException.ThrowIfNull(dk);
        ArgumentNullException.ThrowIfNull(dv);
        foreach (var (t, like, name) in new[] { (dOutput, q, "dOutput"), (dq, q, "dq"), (dk, k, "dk"), (dv, k, "dv") })
        {
            if (t.Shape != like.Shape)
            {
                throw new ShapeMismatchException(op, like.Shape, t.Shape, $"{name} must have the shape of {(ReferenceEquals(like, q) ? "q" : "k")}");
            }
            if (t.DType != like.DType)
            {
                throw new DTypeMismatchException(op, like.DType, t.DType);
            }
        }
    }
}
