using Hal.Models.Nn;
using Hal.Parallel.TensorParallel;

namespace Hal.Models.Transformer;

// Megatron sequence parallelism (split-gather) inside the tensor-parallel group: the trunk on this rank's rows.
// Legend: B batch, T time, C channels, L layers, p tp ranks, N = B·T rows, Nl = N/p rows of this rank (contiguous:
// rank r holds rows [r·Nl, (r+1)·Nl) of the flattened batch).
public sealed partial class TransformerModel
{
    private SplitGatherBlock[]? _splitGatherBlocks;
    private SplitGatherEmbedding? _splitGatherEmbedding;

    /// <summary>
    /// Bytes this rank has sent over the tensor-parallel group for activations and their gradients (ring count: the
    /// blocks', the head's, the vocabulary-parallel embedding's and loss's collectives); 0 on one device. The sums of
    /// partial norm gradients under sequence parallelism are not included: see <see cref="TensorParallelContext.GradientSumBytes"/>.
    /// </summary>
    public long TensorParallelBytesCommunicated
    {
        get
        {
            if (_tensorParallel is null)
            {
                return 0;
            }
            long bytes = _tensorParallel.BytesCommunicated;
            foreach (var module in _tensorParallelModules)
            {
                bytes += module switch
                {
                    VocabParallelEmbedding e => e.BytesCommunicated,
                    VocabParallelCrossEntropy l => l.BytesCommunicated,
                    SplitGatherEmbedding s => s.BytesCommunicated,
                    _ => 0,
                };
            }
            return bytes;
        }
    }

    /// <summary>Refuses sequence-parallel regions without a tensor-parallel group to split over.</summary>
    private void CheckSplitGatherOptions()
    {
        if (Options.SequenceParallelRegions && Options.TensorParallel is null)
        {
            throw new ArgumentException("sequence-parallel regions (split-gather) split the rows over the tensor-parallel group: set TensorParallel too", "options");
        }
    }

    /// <summary>Wraps the built blocks and the embedding to run on this rank's rows (sequence-parallel regions only).</summary>
    private void BuildSplitGather()
    {
        if (!Options.SequenceParallelRegions)
        {
            return;
        }
        var tp = _tensorParallel!;
        _splitGatherBlocks = new SplitGatherBlock[_blocks.Length];
        for (int i = 0; i < _blocks.Length; i++)
        {
            string scope = Options.CheckpointActivations ? "block" : $"block{i}";
            _splitGatherBlocks[i] = new SplitGatherBlock(_ws, _blocks[i], tp, scope);
        }
        bool gpt2 = Config.Family == ModelFamily.Gpt2;
        _splitGatherEmbedding = new SplitGatherEmbedding(_ws, Parameters, gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight",
            gpt2 ? "transformer.wpe.weight" : null, tp, Config.VocabSize);
        _tensorParallelModules.Add(_splitGatherEmbedding);
    }

    /// <summary>This rank's rows: Nl.</summary>
    private int LocalRows
    {
        get
        {
            int n = _batch * _time, p = _tensorParallel!.Size;
            if (n % p != 0)
            {
                throw new ArgumentException($"split-gather sequence parallelism splits the N = B·T = {_batch}·{_time} = {n} tokens over tp {p} ranks: N must be divisible by {p}");
            }
            return n / p;
        }
    }

    /// <summary>The residual stream's rows of this rank before block l (l = L: after the last block), [Nl, C].</summary>
    private Tensor LocalResidual(int l) =>
        _ws.Get("residual." + l, new Shape(LocalRows, Config.Channels), Options.ComputeDType, saved: true);

    /// <summary>Embeddings, blocks and final norm on this rank's rows; returns the normalised rows of the whole batch [N, C] the head reads.</summary>
    private Tensor RunTrunkSplitGather(Tensor ids)
    {
        int b = _batch, t = _time, c = Config.Channels, n = b * t, local = LocalRows;
        var dtype = Options.ComputeDType;
        var tp = _tensorParallel!;
        var savedIds = _ws.Get("ids", ids.Shape, ids.DType, saved: true);
        Ops.Copy(ids, savedIds);
        _splitGatherEmbedding!.Forward(savedIds, LocalResidual(0));
        for (int l = 0; l < Config.Layers; l++)
        {
            _splitGatherBlocks![l].Forward(LocalResidual(l), LocalResidual(l + 1), b, t);
        }
        // The vocabulary-parallel head needs every row: its softmax statistics reduce over the ranks row by row.
        var xfLocal = _ws.Get(SplitGatherBlock.LocalScratchKey, new Shape(local, c), dtype);
        _finalNorm!.Forward(LocalResidual(Config.Layers), xfLocal);
        var xf = _ws.Get("final.out", new Shape(n, c), dtype, saved: true);
        tp.AllGather(xfLocal, xf);
        return xf;
    }

    /// <summary>Backward on this rank's rows; the same contract as <see cref="Backward"/>.</summary>
    private void BackwardSplitGather(double lossScale, Action<long>? gradientsReadyFrom)
    {
        int layers = Config.Layers, b = _batch, t = _time, c = Config.Channels, n = b * t, local = LocalRows;
        var dtype = Options.ComputeDType;
        var tp = _tensorParallel!;
        var dFinal = _ws.Get(SplitGatherBlock.FullGradientKey, new Shape(n, c), dtype);
        _head!.Backward(lossScale, dFinal);
        // The head leaves its input gradient partial over the vocabulary: the reduce-scatter sums it and keeps our rows.
        var dFinalLocal = _ws.Get(SplitGatherBlock.LocalScratchKey, new Shape(local, c), dtype);
        tp.ReduceScatter(dFinal, dFinalLocal);
        var dResidual = _ws.Get("d.residual", new Shape(local, c), dtype);
        _finalNorm!.Backward(dFinalLocal, dResidual, accumulate: false);
        gradientsReadyFrom?.Invoke(Parameters.LayerStart(layers + 1));
        for (int l = layers - 1; l >= 0; l--)
        {
            // The shared block buffers still hold the last block's forward, so only earlier blocks recompute.
            if (Options.CheckpointActivations && l < layers - 1)
            {
                _splitGatherBlocks![l].Forward(LocalResidual(l), _ws.Get("recompute.out", new Shape(local, c), dtype), b, t);
            }
            _splitGatherBlocks![l].Backward(dResidual);
            gradientsReadyFrom?.Invoke(Parameters.LayerStart(l + 1));
        }
        _splitGatherEmbedding!.Backward(dResidual);
        gradientsReadyFrom?.Invoke(Parameters.LayerStart(0));
    }
}
