namespace Hal.Models.Nn;

/// <summary>
/// Where a <see cref="ParameterStore"/>'s tensors live when they are not one slab on the device: chunks that are
/// gathered, fetched from host memory or NVMe, and released around each layer's compute. The model brackets every
/// layer's use with Begin/End calls (layer numbers as <see cref="ParameterInfo.Layer"/>); between them
/// <see cref="Param"/> and <see cref="Grad"/> give device views of that layer's tensors. Parameters that are too
/// large to be resident whole (a [V, C] vocabulary matrix) are reached a row tile at a time through
/// <see cref="RowTiles"/> instead.
/// </summary>
public interface IParameterBacking
{
    /// <summary>A device view of the i-th declared parameter; valid between the Begin and End of a layer that uses it.</summary>
    Tensor Param(int index);

    /// <summary>A device view of the i-th declared parameter's gradient (backward adds into it); valid between BeginBackward and EndBackward of its layer.</summary>
    Tensor Grad(int index);

    /// <summary>A device view of slab elements [offset, offset + shape.ElementCount) of one layer's parameters (as <see cref="Param"/>).</summary>
    Tensor ParamRange(long offset, Shape shape);

    /// <summary>A device view of the gradients at slab elements [offset, offset + shape.ElementCount) (as <see cref="Grad"/>).</summary>
    Tensor GradRange(long offset, Shape shape);

    /// <summary>The row tiles of the i-th parameter when it is reached by tiles; null when it is resident whole with its layer.</summary>
    IRowTileSource? RowTiles(int index);

    /// <summary>Makes the parameters of <paramref name="layer"/> resident for its forward.</summary>
    void BeginForward(int layer);

    /// <summary>The forward of <paramref name="layer"/> is done with its parameters.</summary>
    void EndForward(int layer);

    /// <summary>Makes the parameters and gradients of <paramref name="layer"/> resident for its backward (and any recomputation).</summary>
    void BeginBackward(int layer);

    /// <summary>The backward of <paramref name="layer"/> is done: gradients whose last contribution it was are final.</summary>
    void EndBackward(int layer);

    /// <summary>Sets every gradient to zero before a step's first backward.</summary>
    void ZeroGrads();

    /// <summary>
    /// Writes initial values: calls <paramref name="write"/> once per resident piece of each parameter with the piece
    /// (a device tensor to fill) and the element offset of its first element inside the parameter; stores the result.
    /// </summary>
    void Initialize(Action<ParameterInfo, Tensor, long> write);
}
