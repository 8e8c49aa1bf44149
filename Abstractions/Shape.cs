using System.Collections;

namespace Hal;

/// <summary>
/// Immutable dimensions of a contiguous row-major tensor. Rank 0 is a scalar (one element).
/// Dimensions are non-negative; a zero dimension makes an empty tensor.
/// </summary>
public sealed class Shape : IEquatable<Shape>, IReadOnlyList<int>
{
    private readonly int[] _dims;

    /// <summary>Creates a shape from its dimensions.</summary>
    /// <exception cref="ArgumentException">a dimension is negative.</exception>
    public Shape(params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        foreach (int d in dims)
        {
            if (d < 0)
            {
                throw new ArgumentException($"shape [{string.Join(", ", dims)}] has a negative dimension", nameof(dims));
            }
        }
        _dims = (int[])dims.Clone();
        long n = 1;
        foreach (int d in _dims)
        {
            n = checked(n * d);
        }
        ElementCount = n;
    }

    /// <summary>The scalar shape (rank 0, one element).</summary>
    public static Shape Scalar { get; } = new();

    /// <summary>Number of dimensions.</summary>
    public int Rank => _dims.Length;

    /// <summary>Product of the dimensions.</summary>
    public long ElementCount { get; }

    /// <summary>Dimension i; negative i counts from the end.</summary>
    public int this[int index] => _dims[NormalizeAxis(index)];

    /// <summary>Number of dimensions (IReadOnlyList).</summary>
    public int Count => _dims.Length;

    /// <summary>The dimensions as a span.</summary>
    public ReadOnlySpan<int> Dims => _dims;

    /// <summary>Maps a possibly negative axis to 0..Rank-1.</summary>
    /// <exception cref="ArgumentOutOfRangeException">axis is outside -Rank..Rank-1.</exception>
    public int NormalizeAxis(int axis)
    {
        int a = axis < 0 ? axis + _dims.Length : axis;
        if (a < 0 || a >= _dims.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(axis), axis, $"axis {axis} is out of range for shape {this}");
        }
        return a;
    }

    /// <summary>Product of dimensions [start, end).</summary>
    public long Product(int start, int end)
    {
        long n = 1;
        for (int i = start; i < end; i++)
        {
            n *= _dims[i];
        }
        return n;
    }

    /// <summary>Row-major strides in elements.</summary>
    public long[] Strides()
    {
        var s = new long[_dims.Length];
        long acc = 1;
        for (int i = _dims.Length - 1; i >= 0; i--)
        {
            s[i] = acc;
            acc *= _dims[i];
        }
        return s;
    }

    /// <summary>This shape with dimension <paramref name="axis"/> replaced by <paramref name="size"/>.</summary>
    public Shape With(int axis, int size)
    {
        var d = (int[])_dims.Clone();
        d[NormalizeAxis(axis)] = size;
        return new Shape(d);
    }

    /// <summary>The dimensions as a new array.</summary>
    public int[] ToArray() => (int[])_dims.Clone();

    /// <summary>NumPy broadcasting of two shapes (align right; each pair equal or one of them 1).</summary>
    /// <returns>the broadcast shape, or null when the shapes do not broadcast.</returns>
    public static Shape? Broadcast(Shape a, Shape b)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        var d = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Rank ? 1 : a._dims[i - (rank - a.Rank)];
            int db = i < rank - b.Rank ? 1 : b._dims[i - (rank - b.Rank)];
            if (da != db && da != 1 && db != 1)
            {
                return null;
            }
            d[i] = da == 1 ? db : da;
        }
        return new Shape(d);
    }

    /// <inheritdoc />
    public bool Equals(Shape? other) => other is not null && _dims.AsSpan().SequenceEqual(other._dims);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as Shape);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (int d in _dims)
        {
            h.Add(d);
        }
        return h.ToHashCode();
    }

    /// <summary>Printed as [2, 3, 4].</summary>
    public override string ToString() => "[" + string.Join(", ", _dims) + "]";

    /// <inheritdoc />
    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)_dims).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _dims.GetEnumerator();

    public static bool operator ==(Shape? a, Shape? b) => a is null ? b is null : a.Equals(b);

    public static bool operator !=(Shape? a, Shape? b) => !(a == b);

    public static implicit operator Shape(int[] dims) => new(dims);
}
