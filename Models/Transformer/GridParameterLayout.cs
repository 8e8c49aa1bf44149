using Hal.Models.Nn;
using Hal.Parallel.TensorParallel;

namespace Hal.Models.Transformer;

// Legend: a full tensor has its Hugging Face shape; its source matrix is what the grid cuts: the full tensor, its
// transpose for LLaMA's [out, in] linears (the grid linears take [in, out]), or one of S equal column sections (GPT-2's
// c_attn [C, 3C] is q | k | v, three [C, C] weights, and its bias three [C] vectors). A local tensor is this rank's block
// of each section, the sections one after another: [S·rows, cols] (1-D: [S·n]). A [V, C] table is cut as [Vp, C], V
// padded to a multiple of its vocabulary blocks: the padding rows exist only in the local blocks, zero on a split and
// dropped on a gather.

/// <summary>How one Hugging Face parameter maps onto a grid: its kind, sections and whether the grid takes its transpose.</summary>
public sealed record GridParameter(string Name, Shape FullShape, GridTensorKind Kind, int Sections, bool Transposed, int Layer, bool Decay)
{
    /// <summary>One section of the source matrix (1-D stays 1-D).</summary>
    public Shape SectionShape => FullShape.Rank == 1
        ? new Shape(FullShape[0] / Sections)
        : Transposed ? new Shape(FullShape[1], FullShape[0]) : new Shape(FullShape[0], FullShape[1] / Sections);

    /// <summary>The section the grid cuts on <paramref name="geometry"/>: <see cref="SectionShape"/>, a table's rows padded to Vp.</summary>
    public Shape GridSectionShape(GridGeometry geometry)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        return Kind == GridTensorKind.Table ? new Shape(geometry.PaddedVocabSize(FullShape[0]), FullShape[1]) : SectionShape;
    }

    /// <summary>The local shape on <paramref name="geometry"/> (every rank's is the same).</summary>
    public Shape LocalShape(GridGeometry geometry)
    {
        var block = geometry.Block(Kind, 0).Of(GridSectionShape(geometry));
        if (Sections == 1)
        {
            return block;
        }
        return block.Rank == 1 ? new Shape(Sections * block[0]) : new Shape(Sections * block[0], block[1]);
    }
}

/// <summary>
/// The grid layout of every parameter of a GPT-2 or LLaMA model, and the exact copies between full tensors and a
/// rank's blocks (for initialisation, --init, checkpoints and tests). Copies run through the host in double, which
/// holds every fp32/bf16/fp16 value exactly.
/// </summary>
public static class GridParameterLayout
{
    /// <summary>Every parameter of <paramref name="config"/>, in declaration order, with its grid mapping.</summary>
    public static IReadOnlyList<GridParameter> Of(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        using var full = new ParameterStore();
        TransformerModel.DeclareParameters(full, config);
        return [.. full.Infos.Select(info => Map(info))];
    }

    private static GridParameter Map(ParameterInfo info)
    {
        string n = info.Name;
        (GridTensorKind Kind, int Sections, bool Transposed) m = n switch
        {
            _ when n.EndsWith("wte.weight", StringComparison.Ordinal) || n.EndsWith("embed_tokens.weight", StringComparison.Ordinal) || n == "lm_head.weight" => (GridTensorKind.Table, 1, false),
            _ when n.EndsWith("wpe.weight", StringComparison.Ordinal) => (GridTensorKind.Positions, 1, false),
            _ when n.EndsWith("attn.c_attn.weight", StringComparison.Ordinal) => (GridTensorKind.WeightIn, 3, false),
            _ when n.EndsWith("attn.c_attn.bias", StringComparison.Ordinal) => (GridTensorKind.BiasIn, 3, false),
            _ when n.EndsWith("mlp.c_fc.weight", StringComparison.Ordinal) => (GridTensorKind.WeightIn, 1, false),
            _ when n.EndsWith("mlp.c_fc.bias", StringComparison.Ordinal) => (GridTensorKind.BiasIn, 1, false),
            _ when n.EndsWith("c_proj.weight", StringComparison.Ordinal) => (GridTensorKind.WeightOut, 1, false),
            _ when n.EndsWith("c_proj.bias", StringComparison.Ordinal) => (GridTensorKind.BiasOut, 1, false),
            _ when n.EndsWith("_proj.weight", StringComparison.Ordinal) && (n.Contains("o_proj", StringComparison.Ordinal) || n.Contains("down_proj", StringComparison.Ordinal)) => (GridTensorKind.WeightOut, 1, true),
            _ when n.EndsWith("_proj.weight", StringComparison.Ordinal) => (GridTensorKind.WeightIn, 1, true),
            _ => (GridTensorKind.VectorResidual, 1, false),
        };
        return new GridParameter(n, info.Shape, m.Kind, m.Sections, m.Transposed, info.Layer, info.Decay);
    }

    /// <summary>Declares the local blocks of every parameter under their Hugging Face names.</summary>
    public static void Declare(ParameterStore store, IReadOnlyList<GridParameter> layout, GridGeometry geometry)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(layout);
        foreach (var p in layout)
        {
            store.Declare(p.Name, p.LocalShape(geometry), p.Layer, p.Decay);
        }
    }

    /// <summary>local = <paramref name="rank"/>'s blocks of <paramref name="full"/> (the Hugging Face tensor).</summary>
    public static void Split(Ops ops, GridParameter parameter, GridGeometry geometry, int rank, Tensor full, Tensor local)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(parameter);
        double[] source = ops.ToDoubleArray(full);
        var values = new double[local.ElementCount];
        Copy(parameter, parameter.GridSectionShape(geometry), geometry.Block(parameter.Kind, rank), source, values, toLocal: true);
        ops.Upload(values, local);
    }

    /// <summary>full (on every rank) = the blocks of every tp rank put back in place. Collective over <paramref name="tp"/>.</summary>
    public static void Gather(Ops ops, GridParameter parameter, GridGeometry geometry, ICommunicator tp, Tensor local, Tensor full)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(parameter);
        ArgumentNullException.ThrowIfNull(tp);
        int count = (int)local.ElementCount;
        using var stacked = ops.Empty(new Shape(tp.Size, count), local.DType);
        tp.AllGather(local, stacked);
        double[] all = ops.ToDoubleArray(stacked);
        var values = new double[full.ElementCount];
        var gridSection = parameter.GridSectionShape(geometry);
        // Highest rank first, so where ranks share a block the lowest one's copy stays: a bias's owner (row 0, a0 = 0).
        for (int r = tp.Size - 1; r >= 0; r--)
        {
            Copy(parameter, gridSection, geometry.Block(parameter.Kind, r), values, all.AsSpan(r * count, count).ToArray(), toLocal: false);
        }
        ops.Upload(values, full);
    }

    /// <summary>
    /// Moves one rank's block values between the full tensor and its local layout (either direction). The block is cut
    /// from <paramref name="gridSection"/>; its rows at or past the Hugging Face section's (a table's padding) have no
    /// full element: they stay zero in a fresh local array and are skipped on the way back.
    /// </summary>
    private static void Copy(GridParameter p, Shape gridSection, GridBlock block, double[] full, double[] local, bool toLocal)
    {
        var section = p.SectionShape;
        var localSection = block.Of(gridSection);
        int cols = section.Rank == 1 ? section[0] : section[1];
        int realRows = section.Rank == 1 ? 1 : section[0];
        int lr = localSection.Rank == 1 ? 1 : localSection[0], lc = localSection.Rank == 1 ? localSection[0] : localSection[1];
        int fullCols = p.FullShape.Rank == 1 ? p.FullShape[0] : p.FullShape[1];
        int r0 = block.RowBlock * lr, c0 = block.ColumnBlock * lc;
        for (int s = 0; s < p.Sections; s++)
        {
            for (int r = 0; r < lr && r0 + r < realRows; r++)
            {
                for (int c = 0; c < lc; c++)
                {
                    int sr = r0 + r, sc = c0 + c;
                    // The source matrix element (sr, sc) of section s, as a position in the full tensor.
                    long f = p.Transposed ? ((long)sc * fullCols) + sr : ((long)sr * fullCols) + (s * cols) + sc;
                    long l = ((long)s * lr * lc) + ((long)r * lc) + c;
                    if (toLocal)
                    {
                        local[l] = full[f];
                    }
                    else
                    {
                        full[f] = local[l];
                    }
                }
            }
        }
    }
}
