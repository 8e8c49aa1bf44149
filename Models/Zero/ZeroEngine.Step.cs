using Hal.Memory;
using Hal.Models.Nn;
using Hal.Models.Optim;

namespace Hal.Models.Zero;

// Gradient reduction into the owners' fp32 shards, the update where each shard lives, and initialisation.
// Shapes as in ZeroEngine.cs.
public sealed partial class ZeroEngine
{
    private float[] _gradScratch = [];
    private float[] _nvmeStaging = [];

    /// <summary>
    /// Gradient chunk [Padded] (summed over this rank's micro-batch) → reduce-scatter over the dp ranks → this rank's
    /// shard [Shard] added (or copied, for a step's first micro-batch) into its fp32 gradient slot; then freed.
    /// A partial reduction (<paramref name="final"/> false) leaves the chunk to be reduced again after its last use.
    /// </summary>
    private void Reduce(ZChunk c, bool final = true)
    {
        // A chunk this rank's batch did not touch still joins the reduction, as if it had been used.
        if (c.UsageState is TensorState.Free or TensorState.Hold)
        {
            MoveUsage(c, TensorState.Compute);
        }
        MoveUsage(c, TensorState.HoldAfterBackward);
        MoveUsage(c, TensorState.ReadyForReduce);
        MaterializeGrad(c);
        var grad = c.Grad!;
        var shape = new Shape(checked((int)c.Shard));
        Tensor? scratch = null;
        try
        {
            Tensor shard;
            if (_dp > 1)
            {
                scratch = _ops.Empty(shape, _compute);
                _comm!.ReduceScatter(grad, scratch, ReduceOp.Sum);
                shard = scratch;
            }
            else
            {
                shard = grad.View(0, shape);
            }
            Accumulate(c, shard);
        }
        finally
        {
            scratch?.Dispose();
        }
        FreeGrad(c);
        c.FirstReduce = false;
        c.ReducedThisPass = final;
        MoveUsage(c, c.Param is not null ? TensorState.Hold : TensorState.Free);
    }

    private void Accumulate(ZChunk c, Tensor shard)
    {
        var tier = _states.TierOf(c.State);
        if (tier == Tier.Device)
        {
            var dst = StateView(c, GradSlot);
            if (c.FirstReduce)
            {
                if (_compute == DType.F32)
                {
                    _ops.Copy(shard, dst);
                }
                else
                {
                    _ops.Cast(shard, dst);
                }
            }
            else if (_compute == DType.F32)
            {
                _ops.Binary(BinaryOp.Add, dst, shard, dst);
            }
            else
            {
                using var wide = _ops.Empty(shard.Shape, DType.F32);
                _ops.Cast(shard, wide);
                _ops.Binary(BinaryOp.Add, dst, wide, dst);
            }
            return;
        }
        int n = checked((int)c.Shard);
        if (_gradScratch.Length < n)
        {
            _gradScratch = new float[n];
        }
        var values = _gradScratch.AsSpan(0, n);
        DownloadAsFloat(shard, values);
        if (tier == Tier.Host)
        {
            var dst = HostSlot(c, GradSlot);
            if (c.FirstReduce)
            {
                values.CopyTo(dst);
            }
            else
            {
                HostOptimizer.Add(values, dst);
            }
            return;
        }
        if (!c.FirstReduce)
        {
            HostOptimizer.Add(ReadNvmeSlot(c, GradSlot), values);
        }
        WriteNvmeSlot(c, GradSlot, values);
    }

    /// <summary>
    /// One AdamW update of every shard, where it lives: global L2 norm of the averaged gradient (summed over ranks),
    /// skip on Inf/NaN, clipping (PyTorch's factor min(1, clip/(norm + 1e-6))), then the fused device kernel for device
    /// shards and <see cref="HostOptimizer.AdamW"/> for host and NVMe shards. Gradients hold the sum over dp ranks and
    /// micro-batches of the loss-scaled gradient, so the factor folds in 1/dp. Gathered parameters become stale.
    /// </summary>
    /// <param name="learningRate">This step's rate.</param>
    /// <param name="step">Counts from 1 (bias correction).</param>
    public StepOutcome Step(double learningRate, long step)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1L);
        DropPrefetches();
        if (!_planned)
        {
            PlanAfterWarmup();
        }
        double sumOfSquares = 0;
        foreach (var c in _chunks)
        {
            sumOfSquares += SumOfSquares(c);
        }
        if (_comm is not null && _dp > 1)
        {
            using var t = _ops.FromArray([sumOfSquares], new Shape(1), DType.F64);
            _comm.AllReduce(t, t, ReduceOp.Sum);
            sumOfSquares = _ops.ToDoubleArray(t)[0];
        }
        if (!double.IsFinite(sumOfSquares))
        {
            return new StepOutcome(Math.Sqrt(sumOfSquares), true, 1);
        }
        double gradNorm = Math.Sqrt(sumOfSquares) / _dp;
        double factor = 1.0 / _dp;
        var options = Options.Optimizer;
        if (options.Clip > 0)
        {
            factor *= Math.Min(1.0, options.Clip / (gradNorm + 1e-6));
        }
        foreach (var c in _chunks)
        {
            Update(c, learningRate, step, factor);
            c.ParamFresh = false;
        }
        return new StepOutcome(gradNorm, false, 1);
    }

    private double SumOfSquares(ZChunk c)
    {
        switch (_states.TierOf(c.State))
        {
            case Tier.Device:
            {
                var g = StateView(c, GradSlot);
                using var squares = _ops.Empty(g.Shape, DType.F32);
                using var sum = _ops.Empty(new Shape(1), DType.F32);
                _ops.Binary(BinaryOp.Mul, g, g, squares);
                _ops.Reduce(ReduceOp.Sum, squares.Reshape(1, g.Shape[0]), 1, sum.Reshape(1, 1));
                return _ops.ToDoubleArray(sum)[0];
            }
            case Tier.Host:
                return HostOptimizer.SumOfSquares(HostSlot(c, GradSlot));
            default:
                return HostOptimizer.SumOfSquares(ReadNvmeSlot(c, GradSlot));
        }
    }

    private AdamWConfig AdamConfig(double learningRate, bool decay)
    {
        var o = Options.Optimizer;
        return new AdamWConfig(learningRate, o.Beta1, o.Beta2, o.Eps, decay ? o.WeightDecay : 0);
    }

    private void Update(ZChunk c, double learningRate, long step, double factor)
    {
        var tier = _states.TierOf(c.State);
        if (tier == Tier.Nvme)
        {
            // ZeRO-Infinity's way: read the shard's states into a staging buffer of the engine's own (not the host
            // tier's, which may be full), update them on the CPU, write them back.
            int n = checked((int)c.Shard);
            if (_nvmeStaging.Length < Slots * n)
            {
                _nvmeStaging = new float[Slots * n];
            }
            var staged = _nvmeStaging.AsSpan(0, Slots * n);
            var bytes = new byte[Slots * n * sizeof(float)];
            _states.ReadAsync(c.State, 0, bytes).GetAwaiter().GetResult();
            _nvmeRead += bytes.Length;
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).CopyTo(staged);
            UpdateSlots(c, staged.Slice(MasterSlot * n, n), staged.Slice(GradSlot * n, n), staged.Slice(FirstMomentSlot * n, n), staged.Slice(SecondMomentSlot * n, n), learningRate, step, factor);
            System.Runtime.InteropServices.MemoryMarshal.AsBytes(staged).CopyTo(bytes);
            _states.WriteAsync(c.State, 0, bytes).GetAwaiter().GetResult();
            _nvmeWritten += bytes.Length;
            return;
        }
        if (tier == Tier.Host)
        {
            UpdateOnHost(c, learningRate, step, factor);
            return;
        }
        var master = StateView(c, MasterSlot);
        var grad = StateView(c, GradSlot);
        var m = StateView(c, FirstMomentSlot);
        var v = StateView(c, SecondMomentSlot);
        if (factor != 1)
        {
            using var f = _ops.FromArray([factor], new Shape(1), DType.F32);
            _ops.Binary(BinaryOp.Mul, grad, f, grad);
        }
        foreach (var (offset, length, decay) in c.Runs)
        {
            var shape = new Shape(checked((int)length));
            _ops.AdamW(master.View(offset, shape), grad.View(offset, shape), m.View(offset, shape), v.View(offset, shape), AdamConfig(learningRate, decay), step);
        }
    }

    private void UpdateOnHost(ZChunk c, double learningRate, long step, double factor) =>
        UpdateSlots(c, HostSlot(c, MasterSlot), HostSlot(c, GradSlot), HostSlot(c, FirstMomentSlot), HostSlot(c, SecondMomentSlot), learningRate, step, factor);

    private void UpdateSlots(ZChunk c, Span<float> master, Span<float> grad, Span<float> m, Span<float> v, double learningRate, long step, double factor)
    {
        if (factor != 1)
        {
            HostOptimizer.Scale(grad, (float)factor);
        }
        foreach (var (offset, length, decay) in c.Runs)
        {
            int at = checked((int)offset), n = checked((int)length);
            HostOptimizer.AdamW(master.Slice(at, n), grad.Slice(at, n), m.Slice(at, n), v.Slice(at, n), AdamConfig(learningRate, decay), step);
        }
    }

    /// <inheritdoc/>
    public void Initialize(Action<ParameterInfo, Tensor, long> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        foreach (var c in _chunks)
        {
            using var whole = _ops.Zeros(new Shape(checked((int)c.Padded)), _compute);
            if (c.TileParam >= 0)
            {
                var info = _store.Infos[c.TileParam];
                int columns = info.Shape[1];
                write(info, whole.View(0, new Shape(c.TileRows, columns)), (long)c.TileRowStart * columns);
            }
            else
            {
                for (int i = 0; i < _store.Infos.Count; i++)
                {
                    if (_chunkOfParam[i] == c)
                    {
                        var info = _store.Infos[i];
                        write(info, whole.View(info.Offset - c.Start, info.Shape), 0);
                    }
                }
            }
            SetMasterShard(c, whole.View(_rank * c.Shard, new Shape(checked((int)c.Shard))));
            c.ParamFresh = false;
        }
    }

    /// <summary>master [Shard] fp32 = src [Shard] (compute dtype, device).</summary>
    private void SetMasterShard(ZChunk c, Tensor src)
    {
        var tier = _states.TierOf(c.State);
        if (tier == Tier.Device)
        {
            var dst = StateView(c, MasterSlot);
            if (_compute == DType.F32)
            {
                _ops.Copy(src, dst);
            }
            else
            {
                _ops.Cast(src, dst);
            }
            return;
        }
        var values = new float[c.Shard];
        DownloadAsFloat(src, values);
        if (tier == Tier.Host)
        {
            values.CopyTo(HostSlot(c, MasterSlot));
        }
        else
        {
            WriteNvmeSlot(c, MasterSlot, values);
        }
    }
}
