namespace Hal.Models.Transformer;

/// <summary>How a tp group splits the model: 1-D Megatron, or the 2D (SUMMA), 2.5D (Tesseract) and 3D grids.</summary>
public enum TensorParallelMode
{
    /// <summary>1-D Megatron: column- then row-parallel linears, activations replicated (<c>1d</c>).</summary>
    OneD,

    /// <summary>A q×q grid, q² = tp: activations and weights block-partitioned (<c>2d</c>).</summary>
    TwoD,

    /// <summary>d layers of a q×q grid, q²·d = tp: the batch split over the layers, weights replicated over them (<c>2.5d</c>).</summary>
    TwoAndHalfD,

    /// <summary>A c×c×c cube, c³ = tp: batch, input and output features each split over one axis (<c>3d</c>).</summary>
    ThreeD,
}

/// <summary>The command-line spelling of <see cref="TensorParallelMode"/> (<c>1d</c>, <c>2d</c>, <c>2.5d</c>, <c>3d</c>).</summary>
public static class TensorParallelModes
{
    /// <summary>The mode spelled <paramref name="text"/>, or null when it is none of 1d, 2d, 2.5d, 3d.</summary>
    public static TensorParallelMode? Parse(string text) => text switch
    {
        "1d" => TensorParallelMode.OneD,
        "2d" => TensorParallelMode.TwoD,
        "2.5d" => TensorParallelMode.TwoAndHalfD,
        "3d" => TensorParallelMode.ThreeD,
        _ => null,
    };

    /// <summary>The spelling of <paramref name="mode"/>.</summary>
    public static string Name(this TensorParallelMode mode) => mode switch
    {
        TensorParallelMode.TwoD => "2d",
        TensorParallelMode.TwoAndHalfD => "2.5d",
        TensorParallelMode.ThreeD => "3d",
        _ => "1d",
    };
}
