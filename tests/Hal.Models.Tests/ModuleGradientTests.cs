using Hal.Models.Nn;
using static Hal.Models.Tests.GradientCheck;

namespace Hal.Models.Tests;

// Every module's backward against central finite differences in F64 (bounds in GradientCheck).
// Legend: B batch, T time, C channels, H heads, Hkv key/value heads, D head size, F hidden, V vocabulary, N rows.
public sealed class ModuleGradientTests : IDisposable
{
    private const DType F64 = DType.F64;
    private readonly Ops _ops = CpuOps();
    private readonly Workspace _ws;
    private readonly ParameterStore _store = new();

    public ModuleGradientTests()
    {
        _ws = new Workspace(_ops);
    }

    public void Dispose()
    {
        _ws.Dispose();
        _store.Dispose();
    }

    private Tensor Input(Shape shape, int seed) => _ops.FromArray(Normal((int)shape.ElementCount, seed), shape, F64);

    /// <summary>Runs forward, backward with dy = w, then the finite-difference check over parameters and inputs.</summary>
    private int CheckModule(Func<Tensor> forward, Action<Tensor, Tensor?> backward, Tensor? input, int seed)
    {
        var y = forward();
        var w = Normal((int)y.ElementCount, seed + 1000);
        using var dy = _ops.FromArray(w, y.Shape, F64);
        using var dx = input is null ? null : _ops.Zeros(input.Shape, F64);
        _store.ZeroGrads(_ops);
        backward(dy, dx);
        var targets = ParameterTargets(_ops, _store);
        if (input is not null)
        {
            targets.Add(new GradientTarget("x", input, _ops.ToDoubleArray(dx!)));
        }
        int n = Check(_ops, targets, () => Dot(_ops, forward(), w), seed);
        Assert.True(n > 0, $"nothing checked (seed {seed})");
        return n;
    }

    [Theory]
    [InlineData(LinearLayout.InOut, true, 1)]
    [InlineData(LinearLayout.InOut, false, 7)]
    [InlineData(LinearLayout.OutIn, true, 9)]
    [InlineData(LinearLayout.OutIn, false, 16)]
    public void LinearBackwardMatchesFiniteDifferences(LinearLayout layout, bool bias, int rows)
    {
        const int inF = 5, outF = 7;
        _store.Declare("w", layout == LinearLayout.InOut ? new Shape(inF, outF) : new Shape(outF, inF), 1);
        if (bias)
        {
            _store.Declare("b", new Shape(outF), 1);
        }
        _store.Allocate(_ops, F64);
        Randomize(_ops, _store, 11);
        var linear = new Linear(_store, "w", bias ? "b" : null, layout);
        using var x = Input(new Shape(rows, inF), 12);
        using var y = _ops.Empty(new Shape(rows, outF), F64);
        CheckModule(() => { linear.Forward(_ops, x, y); return y; }, (dy, dx) => linear.Backward(_ws, x, dy, dx), x, 13);
    }

    [Fact]
    public void FusedLinearEqualsSeparateProjections()
    {
        _store.Declare("q", new Shape(6, 4), 1);
        _store.Declare("k", new Shape(2, 4), 1);
        _store.Allocate(_ops, F64);
        Randomize(_ops, _store, 21);
        var fused = new Linear(_store, ["q", "k"], null, LinearLayout.OutIn);
        Assert.Equal(8, fused.OutFeatures);
        using var x = Input(new Shape(3, 4), 22);
        using var y = _ops.Empty(new Shape(3, 8), F64);
        fused.Forward(_ops, x, y);
        double[] got = _ops.ToDoubleArray(y), xs = _ops.ToDoubleArray(x);
        double[] q = _ops.ToDoubleArray(_store.Param("q")), k = _ops.ToDoubleArray(_store.Param("k"));
        for (int r = 0; r < 3; r++)
        {
            for (int o = 0; o < 8; o++)
            {
                double expected = 0;
                for (int i = 0; i < 4; i++)
                {
                    expected += xs[(r * 4) + i] * (o < 6 ? q[(o * 4) + i] : k[((o - 6) * 4) + i]);
                }
                // Four products in F64: a few ulps.
                Assert.True(Math.Abs(got[(r * 8) + o] - expected) <= 1e-13, $"row {r} out {o}: {got[(r * 8) + o]} vs {expected}");
            }
        }
        Assert.Throws<ArgumentException>(() => new Linear(_store, ["k", "q"], null, LinearLayout.OutIn));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void EmbeddingBackwardAddsRowsAndPositions(bool positions)
    {
        const int v = 11, c = 8, context = 7, b = 2, t = 5;
        _store.Declare("wte", new Shape(v, c), 0);
        if (positions)
        {
            _store.Declare("wpe", new Shape(context, c), 0);
        }
        _store.Allocate(_ops, F64);
        Randomize(_ops, _store, 31);
        var embedding = new Embedding(_ws, _store, "wte", positions ? "wpe" : null);
        // Repeated ids (3 and 10) make the backward sum rows.
        using var ids = _ops.FromArray([3, 10, 3, 0, 7, 10, 10, 1, 3, 5], new Shape(b, t), DType.I32);
        using var y = _ops.Empty(new Shape(b, t, c), F64);
        CheckModule(() => { embedding.Forward(ids, y); return y; }, (dy, _) => embedding.Backward(dy), null, 32);
        if (positions)
        {
            // Rows t ≥ T of the position table get no gradient.
            double[] g = _ops.ToDoubleArray(_store.Grad("wpe"));
            Assert.All(g.Skip(t * c), value => Assert.Equal(0.0, value));
        }
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(false, 17)]
    [InlineData(true, 9)]
    public void NormBackwardMatchesFiniteDifferences(bool rms, int rows)
    {
        const int c = 8;
        _store.Declare("w", new Shape(c), 1);
        if (!rms)
        {
            _store.Declare("b", new Shape(c), 1);
        }
        _store.Allocate(_ops, F64);
        Randomize(_ops, _store, 41);
        INorm norm = rms ? new RmsNorm(_ws, _store, "w", 1e-5, "n") : new LayerNorm(_ws, _store, "w", "b", 1e-5, "n");
        using var x = Input(new Shape(rows, c), 42);
        using var y = _ops.Empty(x.Shape, F64);
        CheckModule(() => { norm.Forward(x, y); return y; }, (dy, dx) => norm.Backward(dy, dx!, accumulate: false), x, 43);
    }

    [Fact]
    public void NormBackwardAccumulateAddsIntoDx()
    {
        const int c = 8, rows = 4;
        _store.Declare("w", new Shape(c), 1);
        _store.Allocate(_ops, F64);
        Randomize(_ops, _store, 51);
        var norm = new RmsNorm(_ws, _store, "w", 1e-5, "n");
        using var x = Input(new Shape(rows, c), 52);
        using var y = _ops.Empty(x.Shape, F64);
        using var dy = Input(x.Shape, 53);
        using var dxPlain = _ops.Empty(x.Shape, F64);
        using var dxAcc = Input(x.Shape, 54);
        double[] before = _ops.ToDoubleArray(dxAcc);
        norm.Forward(x, y);
        norm.Backward(dy, dxPlain, accumulate: false);
        norm.Backward(dy, dxAcc, accumulate: true);
        double[] plain = _ops.ToDoubleArray(dxPlain), acc = _ops.ToDoubleArray(dxAcc);
        for (int i = 0; i < acc.Length; i++)
        {
            // One F64 addition: exact to half an ulp.
            Assert.Equal(before[i] + plain[i], acc[i], 15);
        }
    }

    [Theory]
    [InlineData(false, 2, 2, 8, 5)]
    [InlineData(false, 2, 2, 8, 1)]
    [InlineData(true, 4, 2, 16, 5)]
    [InlineData(true, 4, 2, 16, 9)]
    [InlineData(true, 2, 1, 8, 8)]
    public void AttentionBackwardMatchesFiniteDifferences(bool llama, int heads, int kvHeads, int c, int t)
    {
        const int b = 2, context = 9;
        int d = c / heads;
        using var rotary = llama ? new RotaryTables(_ops, context, d, 10000) : null;
        Linear qkv, proj;
        if (llama)
        {
            _store.Declare("q", new Shape(heads * d, c), 1);
            _store.Declare("k", new Shape(kvHeads * d, c), 1);
            _store.Declare("v", new Shape(kvHeads * d, c), 1);
            _store.Declare("o", new Shape(c, heads * d), 1);
            _store.Allocate(_ops, F64);
            qkv = new Linear(_store, ["q", "k", "v"], null, LinearLayout.OutIn);
            proj = new Linear(_store, "o", null, LinearLayout.OutIn);
        }
        else
        {
            _store.Declare("c_attn.weight", new Shape(c, 3 * c), 1);
            _store.Declare("c_attn.bias", new Shape(3 * c), 1);
            _store.Declare("c_proj.weight", new Shape(c, c), 1);
            _store.Declare("c_proj.bias", new Shape(c), 1);
            _store.Allocate(_ops, F64);
            qkv = new Linear(_store, "c_attn.weight", "c_attn.bias", LinearLayout.InOut);
            proj = new Linear(_store, "c_proj.weight", "c_proj.bias", LinearLayout.InOut);
        }
        Randomize(_ops, _store, 61, std: 0.5);
        var attention = new CausalSelfAttention(_ws, qkv, proj, heads, kvHeads, d, rotary, "a");
        using var x = Input(new Shape(b, t, c), 62);
        using var y = _ops.Empty(x.Shape, F64);
        CheckModule(() => { attention.Forward(x, y, accumulate: false); return y; },
            (dy, dx) => attention.Backward(dy, dx!, accumulate: false), x, 63);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MlpBackwardMatchesFiniteDifferences(bool swiGlu)
    {
        const int c = 8, rows = 6;
        IFeedForward mlp;
        if (swiGlu)
        {
            const int f = 12;
            _store.Declare("gate", new Shape(f, c), 1);
            _store.Declare("up", new Shape(f, c), 1);
            _store.Declare("down", new Shape(c, f), 1);
            _store.Allocate(_ops, F64);
            mlp = new SwiGluMlp(_ws, new Linear(_store, "gate", null, LinearLayout.OutIn), new Linear(_store, "up", null, LinearLayout.OutIn),
                new Linear(_store, "down", null, LinearLayout.OutIn), "m");
        }
        else
        {
            const int f = 32;
            _store.Declare("fc.w", new Shape(c, f), 1);
            _store.Declare("fc.b", new Shape(f), 1);
            _store.Declare("proj.w", new Shape(f, c), 1);
            _store.Declare("proj.b", new Shape(c), 1);
            _store.Allocate(_ops, F64);
            mlp = new GeluMlp(_ws, new Linear(_store, "fc.w", "fc.b", LinearLayout.InOut), new Linear(_store, "proj.w", "proj.b", LinearLayout.InOut), "m");
        }
        Randomize(_ops, _store, 71, std: 0.5);
        using var x = Input(new Shape(rows, c), 72);
        using var y = _ops.Empty(x.Shape, F64);
        CheckModule(() => { mlp.Forward(x, y, accumulate: false); return y; }, (dy, dx) => mlp.Backward(dy, dx!, accumulate: false), x, 73);
    }

    [Fact]
    public void BlockBackwardMatchesFiniteDifferences()
    {
        const int b = 2, t = 5, c = 8, h = 2;
        _store.Declare("ln_1.weight", new Shape(c), 1);
        _store.Declare("ln_1.bias", new Shape(c), 1);
        _store.Declare("c_attn.weight", new Shape(c, 3 * c), 1);
        _store.Declare("c_attn.bias", new Shape(3 * c), 1);
        _store.Declare("attn.c_proj.weight", new Shape(c, c), 1);
        _store.Declare("attn.c_proj.bias", new Shape(c), 1);
        _store.Declare("ln_2.weight", new Shape(c), 1);
        _store.Declare("ln_2.bias", new Shape(c), 1);
        _store.Declare("c_fc.weight", new Shape(c, 4 * c), 1);
        _store.Declare("c_fc.bias", new Shape(4 * c), 1);
        _store.Declare("mlp.c_proj.weight", new Shape(4 * c, c), 1);
        _store.Declare("mlp.c_proj.bias", new Shape(c), 1);
        _store.Allocate(_ops, F64);
        Randomize(_ops, _store, 81, std: 0.4);
        var block = new Block(_ws,
            new LayerNorm(_ws, _store, "ln_1.weight", "ln_1.bias", 1e-5, "b.ln1"),
            new CausalSelfAttention(_ws, new Linear(_store, "c_attn.weight", "c_attn.bias", LinearLayout.InOut),
                new Linear(_store, "attn.c_proj.weight", "attn.c_proj.bias", LinearLayout.InOut), h, h, c / h, null, "b.attn"),
            new LayerNorm(_ws, _store, "ln_2.weight", "ln_2.bias", 1e-5, "b.ln2"),
            new GeluMlp(_ws, new Linear(_store, "c_fc.weight", "c_fc.bias", LinearLayout.InOut),
                new Linear(_store, "mlp.c_proj.weight", "mlp.c_proj.bias", LinearLayout.InOut), "b.mlp"),
            "b");
        using var x = Input(new Shape(b, t, c), 82);
        using var y = _ops.Empty(x.Shape, F64);
        CheckModule(() => { block.Forward(x, y); return y; },
            (dy, dx) => { _ops.Copy(dy, dx!); block.Backward(dx!); }, x, 83);
    }

    [Fact]
    public void LmHeadBackwardMatchesFiniteDifferences()
    {
        const int rows = 9, c = 8, v = 11;
        _store.Declare("w", new Shape(v, c), 1);
        _store.Allocate(_ops, F64);
        Randomize(_ops, _store, 91);
        var head = new LmHead(_ws, _store, "w");
        using var x = Input(new Shape(rows, c), 92);
        // A negative target contributes nothing but still counts in the mean.
        using var targets = _ops.FromArray([0, 10, 5, -1, 3, 3, 7, 1, 9], new Shape(rows), DType.I32);
        double Loss() => _ops.ToDoubleArray(head.Forward(x, targets)).Sum() / rows;
        Loss();
        using var dx = _ops.Empty(x.Shape, F64);
        _store.ZeroGrads(_ops);
        head.Backward(1.0, dx);
        var targetsToCheck = ParameterTargets(_ops, _store);
        targetsToCheck.Add(new GradientTarget("x", x, _ops.ToDoubleArray(dx)));
        Assert.True(Check(_ops, targetsToCheck, Loss, 93) > 0);
        double[] dxs = _ops.ToDoubleArray(dx);
        Assert.All(dxs.Skip(3 * c).Take(c), value => Assert.Equal(0.0, value));
    }
}
