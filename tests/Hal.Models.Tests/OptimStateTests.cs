using Hal.Models.Optim;
using Hal.Models.Training;

namespace Hal.Models.Tests;

// Shapes: w [2, 3] (decayed) and b [3]; state views are shaped like their parameter.

/// <summary>Checkpoint state (named state tensors, scalars) and argument validation of <see cref="Optimizer"/>.</summary>
public sealed class OptimStateTests
{
    private static readonly (string, int[])[] Parameters = [("w", [2, 3]), ("b", [3])];

    [Theory]
    [InlineData(OptimizerKind.AdamW, DType.F32, new[] { "w.exp_avg", "w.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq" })]
    [InlineData(OptimizerKind.Lamb, DType.F32, new[] { "w.exp_avg", "w.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq" })]
    [InlineData(OptimizerKind.Sgd, DType.F32, new[] { "w.momentum_buffer", "b.momentum_buffer" })]
    [InlineData(OptimizerKind.Lars, DType.BF16, new[] { "w.momentum_buffer", "w.master", "b.momentum_buffer", "b.master" })]
    [InlineData(OptimizerKind.AdamW, DType.F16, new[] { "w.exp_avg", "w.exp_avg_sq", "w.master", "b.exp_avg", "b.exp_avg_sq", "b.master" })]
    public void StateTensorsAreNamedPerParameterInAFixedOrder(OptimizerKind kind, DType dtype, string[] names)
    {
        var precision = dtype switch { DType.BF16 => Precision.Bf16, DType.F16 => Precision.Fp16, _ => Precision.Fp32 };
        using var h = new OptimHarness(Parameters, dtype);
        using var optimizer = new Optimizer(h.Ops, h.Store, new OptimizerOptions { Kind = kind, Precision = precision });
        Assert.Equal(names, optimizer.StateTensors.Select(s => s.Name));
        foreach (var (name, tensor) in optimizer.StateTensors)
        {
            string param = name[..name.IndexOf('.')];
            Assert.Equal(h.Store.Info(param).Shape, tensor.Shape);
            Assert.Equal(DType.F32, tensor.DType);
        }
    }

    [Fact]
    public void AdamMomentsAfterTheFirstStepAreTheScaledGradients()
    {
        using var h = new OptimHarness(Parameters);
        h.SetParams([[1, 2, 3, 4, 5, 6], [1, 1, 1]]);
        var gw = new[] { 0.5, -0.25, 0.125, 1, -1, 0 };
        h.SetGrads([gw, [2, 0, -2]]);
        using var optimizer = new Optimizer(h.Ops, h.Store, new OptimizerOptions { Beta1 = 0.75, Beta2 = 0.5, Clip = 0 });
        optimizer.Step(1e-3, 1);
        var state = optimizer.StateTensors.ToDictionary(s => s.Name, s => h.Ops.ToDoubleArray(s.Tensor));
        // m = (1 − β1)·g and v = (1 − β2)·g², exact in float32 for these values.
        Assert.Equal(gw.Select(g => 0.25 * g), state["w.exp_avg"]);
        Assert.Equal(gw.Select(g => 0.5 * g * g), state["w.exp_avg_sq"]);
        Assert.Equal([0.5, 0, -0.5], state["b.exp_avg"]);
        Assert.Equal([2.0, 0, 2], state["b.exp_avg_sq"]);
    }

    [Fact]
    public void WritingAStateTensorRestoresTheState()
    {
        using var h = new OptimHarness(Parameters);
        h.SetParams([new double[6], new double[3]]);
        using var optimizer = new Optimizer(h.Ops, h.Store, new OptimizerOptions { Kind = OptimizerKind.Sgd, Momentum = 0.5, Clip = 0 });
        var buffer = optimizer.StateTensors.Single(s => s.Name == "b.momentum_buffer").Tensor;
        h.Ops.Upload([1, 2, 4], buffer);
        h.SetGrads([new double[6], new double[3]]);
        optimizer.Step(1.0, 1);
        // buf = 0.5·buf + 0, p = 0 − buf: exact.
        Assert.Equal([-0.5, -1, -2], h.Param(1));
        Assert.Equal(new double[6], h.Param(0));
    }

    [Fact]
    public void ScalarStateRoundTripsUnderFp16AndIsIgnoredWithoutDynamicScaling()
    {
        using var h16 = new OptimHarness(Parameters, DType.F16);
        using var fp16 = new Optimizer(h16.Ops, h16.Store, new OptimizerOptions { Precision = Precision.Fp16 });
        Assert.Equal(65536, fp16.ScalarState["loss_scale"]);
        Assert.Equal(0, fp16.ScalarState["clean_steps"]);
        fp16.LoadScalarState(new Dictionary<string, double> { ["loss_scale"] = 128, ["clean_steps"] = 17 });
        Assert.Equal(128, fp16.LossScale);
        Assert.Equal(17, fp16.CleanSteps);
        Assert.Equal(128, fp16.ScalarState["loss_scale"]);
        Assert.Equal(17, fp16.ScalarState["clean_steps"]);
        Assert.Throws<ArgumentOutOfRangeException>(() => fp16.LoadScalarState(new Dictionary<string, double> { ["loss_scale"] = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => fp16.LoadScalarState(new Dictionary<string, double> { ["loss_scale"] = double.PositiveInfinity }));
        Assert.Throws<ArgumentOutOfRangeException>(() => fp16.LoadScalarState(new Dictionary<string, double> { ["clean_steps"] = -1 }));

        using var h32 = new OptimHarness(Parameters);
        using var fp32 = new Optimizer(h32.Ops, h32.Store, new OptimizerOptions());
        Assert.Equal(1, fp32.LossScale);
        fp32.LoadScalarState(new Dictionary<string, double> { ["loss_scale"] = 128 });
        Assert.Equal(1, fp32.LossScale);

        using var fixedFp16 = new Optimizer(h16.Ops, h16.Store, new OptimizerOptions { Precision = Precision.Fp16, DynamicLossScaling = false });
        Assert.Equal(1, fixedFp16.LossScale);
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        using var h = new OptimHarness(Parameters);
        Assert.Throws<ArgumentException>(() => new Optimizer(h.Ops, h.Store, new OptimizerOptions { Precision = Precision.Bf16 }));
        Assert.Throws<ArgumentException>(() => new Optimizer(h.Ops, h.Store, new OptimizerOptions { Precision = Precision.Fp16 }));
        using var unallocated = new Nn.ParameterStore();
        unallocated.Declare("x", new Shape(2), 0);
        Assert.Throws<ArgumentException>(() => new Optimizer(h.Ops, unallocated, new OptimizerOptions()));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Optimizer(h.Ops, h.Store, new OptimizerOptions { Clip = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Optimizer(h.Ops, h.Store, new OptimizerOptions { Beta1 = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Optimizer(h.Ops, h.Store, new OptimizerOptions { WeightDecay = double.NaN }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Optimizer(h.Ops, h.Store, new OptimizerOptions { InitialLossScale = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Optimizer(h.Ops, h.Store, new OptimizerOptions { Kind = (OptimizerKind)9 }));

        var optimizer = new Optimizer(h.Ops, h.Store, new OptimizerOptions());
        Assert.Throws<ArgumentOutOfRangeException>(() => optimizer.Step(1e-3, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => optimizer.Step(-1e-3, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => optimizer.Step(double.NaN, 1));
        optimizer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => optimizer.Step(1e-3, 1));
    }
}

/// <summary><see cref="Optimizer.StateBytes"/> against the allocator's count.</summary>
public sealed class OptimMemoryTests
{
    [Theory]
    [InlineData(OptimizerKind.AdamW, Precision.Fp32, DType.F32)]
    [InlineData(OptimizerKind.Lamb, Precision.Fp32, DType.F64)]
    [InlineData(OptimizerKind.Sgd, Precision.Bf16, DType.BF16)]
    [InlineData(OptimizerKind.Lars, Precision.Fp16, DType.F16)]
    [InlineData(OptimizerKind.AdamW, Precision.Fp16, DType.F16)]
    public void StateBytesIsWhatTheOptimizerAllocates(OptimizerKind kind, Precision precision, DType dtype)
    {
        using var h = new OptimHarness([("w", [7, 9]), ("b", [9])], dtype);
        var options = new OptimizerOptions { Kind = kind, Precision = precision };
        long before = h.Device.Allocator.Stats.BytesInUse;
        using var optimizer = new Optimizer(h.Ops, h.Store, options);
        Assert.Equal(Optimizer.StateBytes(options, h.Store.Count, dtype), h.Device.Allocator.Stats.BytesInUse - before);
        // AdamW at fp16: m, v, master, fp32 gradients and the norm's scratch (72 squares + 1 partial sum), 4 bytes each.
        if (kind == OptimizerKind.AdamW && dtype == DType.F16)
        {
            Assert.Equal(((4 * 72) + 72 + 1) * 4, Optimizer.StateBytes(options, 72, dtype));
        }
        optimizer.Dispose();
        Assert.Equal(before, h.Device.Allocator.Stats.BytesInUse);
    }
}
