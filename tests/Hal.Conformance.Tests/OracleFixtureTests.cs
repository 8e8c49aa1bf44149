using System.Globalization;
using System.Text.Json;
using Hal.Conformance.Oracle;
using Xunit.Abstractions;

namespace Hal.Conformance.Tests;

// The oracle checked from the outside: PyTorch (float64, autograd for every gradient) computed these fixtures
// with conformance/fixtures/generate_torch_fixtures.py; here RefNN and RefScalar recompute them from the same
// inputs. Layouts as in the fixtures: rows × cols for row-wise ops, attention q [B, H, Tq, D], k/v [B, Hkv, Tk, D],
// lse [B, H, Tq].

/// <summary>The fp64 oracle agrees with PyTorch on GELU, softmax, log-softmax, layer norm, RMS norm, cross-entropy and attention, forward and backward.</summary>
public sealed class OracleFixtureTests(ITestOutputHelper testLog)
{
    // Both sides evaluate the same formula in F64, each in its own order. Every fixture is small (rows of at most
    // 65, attention dot products of at most 8 terms and 6 keys), and each computed value is a chain of a few
    // sums and elementary functions whose intermediates are bounded by the output's largest magnitude (inputs are
    // O(1) and the outputs are well conditioned) or, where a formula cancels, by the case's own scale (|x| for
    // GELU, |x| and |lse| for log-domain values). Either side's error is then a few tens of unit roundoffs of
    // that magnitude (Higham §3.1: γ(m) ≈ m·u for m roundings, the longest chain here short of 32 once the
    // sums' typical √n growth is counted), so two correct implementations differ by at most
    // 64·u·(|b| + scale), u = 2⁻⁵³. A wrong formula misses by far more than that.
    private const double Unit = 1.0 / (1L << 53);
    private const double Roundings = 64;

    /// <summary>Names of the cases of one fixture file (for the theories below).</summary>
    public static TheoryData<string> CaseNames(string file)
    {
        var data = new TheoryData<string>();
        foreach (var c in Fixture.Load(file).Cases)
        {
            data.Add(c.GetProperty("name").GetString()!);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseNames), "gelu")]
    public void GeluForwardAndDerivativeMatchTorch(string name)
    {
        var c = Fixture.Load("gelu").Case(name);
        var op = c.GetProperty("form").GetString() == "erf" ? UnaryOp.GeluErf : UnaryOp.GeluTanh;
        double[] x = Fixture.Doubles(c, "x");
        // 0.5·x·(1 + erf) cancels for x < 0: the absolute error is u·|x|, not u·|y|; likewise the derivative's
        // x·pdf term (|x|·pdf ≤ 0.25 at its largest, so |x| + 1 covers it).
        double[] scale = Array.ConvertAll(x, v => Math.Abs(v) + 1);
        var check = new FixtureCheck(testLog, $"gelu/{name}");
        check.Compare("y", Array.ConvertAll(x, v => RefScalar.Unary(op, v)), Fixture.Doubles(c, "y"), scale);
        check.Compare("dydx", Array.ConvertAll(x, v => RefNN.ActivationDerivative(op, v)), Fixture.Doubles(c, "dydx"), scale);
        check.AssertPassed(2 * x.Length);
    }

    [Theory]
    [MemberData(nameof(CaseNames), "softmax")]
    public void SoftmaxForwardAndBackwardMatchTorch(string name)
    {
        var c = Fixture.Load("softmax").Case(name);
        int rows = c.GetProperty("rows").GetInt32();
        int cols = c.GetProperty("cols").GetInt32();
        double[] x = Fixture.Doubles(c, "x");
        double[] y = Fixture.Doubles(c, "y");
        double[] dy = Fixture.Doubles(c, "dy");
        double[] dx = Fixture.Doubles(c, "dx");
        var check = new FixtureCheck(testLog, $"softmax/{name}");
        // y: exp's argument x − max is exact up to u·|x − max| in either order, so y's relative error grows with
        // |x − max| (≤ ~1800 in the large case): scale = y·|x − max| per element, plus the row's largest y.
        check.Compare("y", RefNN.Softmax(x, rows, cols), y, ShiftedScale(x, y, rows, cols));
        // dx = y(dy − Σdy·y), from torch's y: |dx| ≤ |y|(|dy| + Σ|dy·y|) bounds every term.
        check.Compare("dx", RefNN.SoftmaxBackward(y, dy, rows, cols), dx, RowScale(dx, rows, cols, dy));
        check.AssertPassed(2 * rows * cols);
    }

    [Theory]
    [MemberData(nameof(CaseNames), "log_softmax")]
    public void LogSoftmaxForwardAndBackwardMatchTorch(string name)
    {
        var c = Fixture.Load("log_softmax").Case(name);
        int rows = c.GetProperty("rows").GetInt32();
        int cols = c.GetProperty("cols").GetInt32();
        double[] x = Fixture.Doubles(c, "x");
        double[] y = Fixture.Doubles(c, "y");
        double[] dy = Fixture.Doubles(c, "dy");
        var check = new FixtureCheck(testLog, $"log_softmax/{name}");
        // y = x − max − log Σ: an absolute error of u·(|x| + |max| + |log Σ|): the row's largest |x| and |y|.
        check.Compare("y", RefNN.LogSoftmax(x, rows, cols), y, RowScale(x, rows, cols, y));
        check.Compare("dx", RefNN.LogSoftmaxBackward(y, dy, rows, cols), Fixture.Doubles(c, "dx"), RowScale(dy, rows, cols));
        check.AssertPassed(2 * rows * cols);
    }

    [Theory]
    [MemberData(nameof(CaseNames), "layer_norm")]
    public void LayerNormForwardAndBackwardMatchTorch(string name)
    {
        var c = Fixture.Load("layer_norm").Case(name);
        int rows = c.GetProperty("rows").GetInt32();
        int cols = c.GetProperty("cols").GetInt32();
        double eps = c.GetProperty("eps").GetDouble();
        double[] x = Fixture.Doubles(c, "x");
        double[] w = Fixture.Doubles(c, "weight");
        double[] dy = Fixture.Doubles(c, "dy");
        var (y, mean, rstd) = RefNN.LayerNorm(x, w, Fixture.Doubles(c, "bias"), rows, cols, eps);
        var (dx, dw, db) = RefNN.LayerNormBackward(dy, x, w, rows, cols, eps);
        var check = new FixtureCheck(testLog, $"layer_norm/{name}");
        // Scales are the terms' magnitudes (the formulas evaluated on absolute values), because several outputs
        // cancel to (nearly) nothing: with one column x̂ = x − μ is 0 and dx, dweight vanish exactly, while an
        // implementation that forms x̂ as x·rstd − μ·rstd leaves u·|x|·rstd behind.
        double maxRstd = MaxAbs(rstd);
        double centred = (MaxAbs(x) + MaxAbs(mean)) * maxRstd;   // |x̂| as its two parts
        double wdy = MaxAbs(w) * MaxAbs(dy);
        check.Compare("mean", mean, Fixture.Doubles(c, "mean"), TensorScale(x));
        check.Compare("rstd", rstd, Fixture.Doubles(c, "rstd"), TensorScale(Fixture.Doubles(c, "rstd")));
        check.Compare("y", y, Fixture.Doubles(c, "y"), Repeat(centred * MaxAbs(w) + MaxAbs(Fixture.Doubles(c, "bias")), y.Length));
        // dx = rstd·(w·dy − mean(w·dy) − x̂·mean(w·dy·x̂)): terms up to rstd·|w·dy|·(1 + |x̂|²).
        check.Compare("dx", dx, Fixture.Doubles(c, "dx"), Repeat(maxRstd * wdy * (1 + centred * centred), dx.Length));
        // dweight = Σ_rows dy·x̂, dbias = Σ_rows dy.
        check.Compare("dweight", dw, Fixture.Doubles(c, "dweight"), Repeat(rows * MaxAbs(dy) * centred, dw.Length));
        check.Compare("dbias", db, Fixture.Doubles(c, "dbias"), Repeat(rows * MaxAbs(dy), db.Length));
        check.AssertPassed(2 * rows * cols + 2 * rows + 2 * cols);
    }

    [Theory]
    [MemberData(nameof(CaseNames), "rms_norm")]
    public void RmsNormForwardAndBackwardMatchTorch(string name)
    {
        var c = Fixture.Load("rms_norm").Case(name);
        int rows = c.GetProperty("rows").GetInt32();
        int cols = c.GetProperty("cols").GetInt32();
        double eps = c.GetProperty("eps").GetDouble();
        double[] x = Fixture.Doubles(c, "x");
        double[] w = Fixture.Doubles(c, "weight");
        double[] dy = Fixture.Doubles(c, "dy");
        var (y, rstd) = RefNN.RmsNorm(x, w, rows, cols, eps);
        var (dx, dw) = RefNN.RmsNormBackward(dy, x, w, rows, cols, eps);
        var check = new FixtureCheck(testLog, $"rms_norm/{name}");
        // No subtraction in the forward; the backward's w·dy − x̂·mean(w·dy·x̂) cancels to the scale of its terms,
        // |w·dy|·rstd and |x̂|·mean|w·dy·x̂|·rstd, which the tensor's largest |dy|·|w|·rstd bounds.
        check.Compare("y", y, Fixture.Doubles(c, "y"), TensorScale(Fixture.Doubles(c, "y")));
        check.Compare("rstd", rstd, Fixture.Doubles(c, "rstd"), TensorScale(Fixture.Doubles(c, "rstd")));
        double termScale = MaxAbs(dy) * MaxAbs(w) * MaxAbs(rstd);
        double[] dxTorch = Fixture.Doubles(c, "dx");
        check.Compare("dx", dx, dxTorch, Repeat(MaxAbs(dxTorch) + termScale, dx.Length));
        double[] dwTorch = Fixture.Doubles(c, "dweight");
        check.Compare("dweight", dw, dwTorch, TensorScale(dwTorch));
        check.AssertPassed(2 * rows * cols + rows + cols);
    }

    [Theory]
    [MemberData(nameof(CaseNames), "cross_entropy")]
    public void CrossEntropyForwardAndBackwardMatchTorch(string name)
    {
        var c = Fixture.Load("cross_entropy").Case(name);
        int rows = c.GetProperty("rows").GetInt32();
        int vocab = c.GetProperty("vocab").GetInt32();
        double[] logits = Fixture.Doubles(c, "logits");
        // torch's ignore_index −100 is negative: ignored under Hal's contract too, so the targets pass unchanged.
        long[] targets = c.GetProperty("targets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        double[] dlosses = Fixture.Doubles(c, "dlosses");
        var (losses, lse) = RefNN.CrossEntropy(logits, targets, rows, vocab);
        double[] dlogits = RefNN.CrossEntropyBackward(logits, targets, dlosses, rows, vocab);
        var check = new FixtureCheck(testLog, $"cross_entropy/{name}");
        // lse = max + log Σ exp(x − max) and loss = lse − x_t: absolute errors of u·(|max| + |lse| + |x_t|).
        double[] logScale = Enumerable.Repeat(MaxAbs(logits) + 1, rows).ToArray();
        check.Compare("losses", losses, Fixture.Doubles(c, "losses"), logScale);
        check.Compare("lse", lse, Fixture.Doubles(c, "lse"), logScale);
        // p = exp(x − lse) carries lse's absolute error as a relative one: scale |dl|·(1 + |x − lse|) ≤ row-wise bound.
        double[] dlScale = new double[rows * vocab];
        for (int r = 0; r < rows; r++)
        {
            for (int v = 0; v < vocab; v++)
            {
                dlScale[r * vocab + v] = Math.Abs(dlosses[r]) * (1 + MaxAbs(logits) * 2 + Math.Abs(lse[r]));
            }
        }
        check.Compare("dlogits", dlogits, Fixture.Doubles(c, "dlogits"), dlScale);
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] < 0)
            {
                Assert.True(losses[r] == 0, $"cross_entropy/{name}: ignored row {r} has loss {losses[r]}");
            }
        }
        check.AssertPassed(2 * rows + rows * vocab);
    }

    [Theory]
    [MemberData(nameof(CaseNames), "attention")]
    public void AttentionForwardAndBackwardMatchTorch(string name)
    {
        var c = Fixture.Load("attention").Case(name);
        int batch = c.GetProperty("batch").GetInt32();
        int heads = c.GetProperty("heads").GetInt32();
        int kvHeads = c.GetProperty("kvHeads").GetInt32();
        int tq = c.GetProperty("tq").GetInt32();
        int tk = c.GetProperty("tk").GetInt32();
        int headDim = c.GetProperty("headDim").GetInt32();
        bool causal = c.GetProperty("causal").GetBoolean();
        double scale = c.GetProperty("scale").GetDouble();
        double[] q = Fixture.Doubles(c, "q");
        double[] k = Fixture.Doubles(c, "k");
        double[] v = Fixture.Doubles(c, "v");
        double[] dOut = Fixture.Doubles(c, "dOutput");
        var (output, lse) = RefNN.Attention(q, k, v, batch, heads, kvHeads, tq, tk, headDim, causal, scale);
        var (dq, dk, dv) = RefNN.AttentionBackward(q, k, v, dOut, batch, heads, kvHeads, tq, tk, headDim, causal, scale);
        var check = new FixtureCheck(testLog, $"attention/{name}");
        // A score s = scale·q·k carries an absolute error u·|scale|·Σ|q||k| into exp, i.e. a relative error of the
        // probabilities: the scores' largest magnitude (≤ |scale|·D·max|q|·max|k|) times the tensor's scale.
        double scoreScale = 1 + Math.Abs(scale) * headDim * MaxAbs(q) * MaxAbs(k);
        double[] outTorch = Fixture.Doubles(c, "output");
        check.Compare("output", output, outTorch, Enumerable.Repeat(MaxAbs(v) * scoreScale, output.Length).ToArray());
        check.Compare("lse", lse, Fixture.Doubles(c, "lse"), Enumerable.Repeat(scoreScale + MaxAbs(Finite(lse)), lse.Length).ToArray());
        double gradScale = scoreScale * MaxAbs(dOut) * (MaxAbs(v) + MaxAbs(outTorch)) * (1 + Math.Abs(scale) * (MaxAbs(q) + MaxAbs(k)) * Math.Max(tq, tk));
        check.Compare("dq", dq, Fixture.Doubles(c, "dq"), Enumerable.Repeat(gradScale, dq.Length).ToArray());
        check.Compare("dk", dk, Fixture.Doubles(c, "dk"), Enumerable.Repeat(gradScale, dk.Length).ToArray());
        check.Compare("dv", dv, Fixture.Doubles(c, "dv"), Enumerable.Repeat(gradScale, dv.Length).ToArray());
        if (causal && tq > tk)
        {
            // Query i < Tq − Tk sees no key: output 0 and lse −∞ (checked exactly by Compare), present in this case.
            Assert.Contains(double.NegativeInfinity, lse);
        }
        check.AssertPassed(output.Length + lse.Length + dq.Length + dk.Length + dv.Length);
    }

    [Fact]
    public void EveryFixtureRecordsTorchVersionAndCommand()
    {
        foreach (string file in new[] { "gelu", "softmax", "log_softmax", "layer_norm", "rms_norm", "cross_entropy", "attention" })
        {
            var f = Fixture.Load(file);
            Assert.StartsWith("1.", f.Root.GetProperty("torch").GetString(), StringComparison.Ordinal);
            Assert.Contains("generate_torch_fixtures.py", f.Root.GetProperty("command").GetString(), StringComparison.Ordinal);
            Assert.True(f.Cases.Count >= 2, $"{file}: {f.Cases.Count} cases");
        }
    }

    [Fact]
    public void ComparisonCatchesAWrongFormula()
    {
        // The bound must be tight enough to see a real mistake: layer norm with the unbiased variance (n − 1) on
        // the fixture's own inputs differs from torch by far more than the bound.
        var c = Fixture.Load("layer_norm").Case("small");
        int rows = c.GetProperty("rows").GetInt32();
        int cols = c.GetProperty("cols").GetInt32();
        double[] x = Fixture.Doubles(c, "x");
        double[] w = Fixture.Doubles(c, "weight");
        double[] b = Fixture.Doubles(c, "bias");
        double eps = c.GetProperty("eps").GetDouble();
        var wrong = new double[x.Length];
        for (int r = 0; r < rows; r++)
        {
            double mu = x.Skip(r * cols).Take(cols).Average();
            double var = x.Skip(r * cols).Take(cols).Sum(t => (t - mu) * (t - mu)) / (cols - 1);
            for (int j = 0; j < cols; j++)
            {
                wrong[r * cols + j] = (x[r * cols + j] - mu) / Math.Sqrt(var + eps) * w[j] + b[j];
            }
        }
        double[] yTorch = Fixture.Doubles(c, "y");
        var check = new FixtureCheck(testLog, "layer_norm/small (unbiased)");
        check.Compare("y", wrong, yTorch, TensorScale(yTorch));
        Assert.True(check.Failures.Count > 0, "a layer norm with the unbiased variance passed the fixture comparison");
    }

    // ---- scales ----------------------------------------------------------------------------------------------------

    private static double MaxAbs(IEnumerable<double> values) => values.Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Max();

    private static double[] Finite(double[] values) => values.Where(double.IsFinite).ToArray();

    /// <summary>Every element gets the tensor's largest finite magnitude.</summary>
    private static double[] TensorScale(double[] values) => Enumerable.Repeat(MaxAbs(values), values.Length).ToArray();

    private static double[] Repeat(double value, int count) => Enumerable.Repeat(value, count).ToArray();

    /// <summary>Per element, the largest finite magnitude in its row over the given tensors.</summary>
    private static double[] RowScale(double[] a, int rows, int cols, double[]? b = null)
    {
        var s = new double[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            double m = MaxAbs(a.Skip(r * cols).Take(cols));
            if (b is not null)
            {
                m += MaxAbs(b.Skip(r * cols).Take(cols));
            }
            Array.Fill(s, m, r * cols, cols);
        }
        return s;
    }

    /// <summary>Softmax: y·|x − max| per element plus the row's largest y.</summary>
    private static double[] ShiftedScale(double[] x, double[] y, int rows, int cols)
    {
        var s = new double[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            double max = x.Skip(r * cols).Take(cols).Max();
            double maxY = MaxAbs(y.Skip(r * cols).Take(cols));
            for (int j = 0; j < cols; j++)
            {
                int i = r * cols + j;
                s[i] = maxY + (double.IsFinite(x[i]) ? Math.Abs(y[i] * (x[i] - max)) : 0);
            }
        }
        return s;
    }

    /// <summary>Collects element mismatches between the oracle (a) and torch (b) under |a − b| ≤ 64·u·(|b| + scale).</summary>
    private sealed class FixtureCheck(ITestOutputHelper log, string what)
    {
        public List<string> Failures { get; } = [];

        public int Compared { get; private set; }

        public double WorstRatio { get; private set; }

        public void Compare(string output, double[] oracle, double[] torch, double[] scale)
        {
            Assert.True(oracle.Length == torch.Length, $"{what} {output}: the oracle gave {oracle.Length} values, torch {torch.Length}");
            for (int i = 0; i < torch.Length; i++)
            {
                Compared++;
                double a = oracle[i];
                double b = torch[i];
                if (!double.IsFinite(b) || !double.IsFinite(a))
                {
                    // NaN must be NaN, an infinity the same infinity (lse of a row that sees no key is −∞).
                    if (!(double.IsNaN(a) && double.IsNaN(b)) && a != b)
                    {
                        Failures.Add(Describe(output, i, a, b, double.PositiveInfinity));
                    }
                    continue;
                }
                double allowed = Roundings * Unit * (Math.Abs(b) + scale[i]);
                double err = Math.Abs(a - b);
                double ratio = allowed > 0 ? err / allowed : (err == 0 ? 0 : double.PositiveInfinity);
                WorstRatio = Math.Max(WorstRatio, ratio);
                if (ratio > 1)
                {
                    Failures.Add(Describe(output, i, a, b, allowed));
                }
            }
        }

        private string Describe(string output, int i, double a, double b, double allowed) =>
            string.Create(CultureInfo.InvariantCulture, $"{what} {output}[{i}]: oracle {a:R}, torch {b:R}, |diff| {Math.Abs(a - b):G3} > allowed {allowed:G3}");

        public void AssertPassed(int expectedCount)
        {
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what}: {Compared} elements, worst |diff|/allowed = {WorstRatio:G3}"));
            Assert.True(Failures.Count == 0, string.Join("\n", Failures.Take(12)) + $"\n({Failures.Count} of {Compared} elements out of bounds)");
            Assert.Equal(expectedCount, Compared);
        }
    }

    /// <summary>A fixture file: the document, its cases, and readers for its number lists.</summary>
    private sealed class Fixture
    {
        private static readonly Dictionary<string, Fixture> Cache = [];
        private static readonly Lock CacheLock = new();

        private Fixture(JsonElement root)
        {
            Root = root;
            Cases = [.. root.GetProperty("cases").EnumerateArray()];
        }

        public JsonElement Root { get; }

        public List<JsonElement> Cases { get; }

        public static Fixture Load(string file)
        {
            lock (CacheLock)
            {
                if (!Cache.TryGetValue(file, out var f))
                {
                    string path = Path.Combine(AppContext.BaseDirectory, "fixtures", "torch", file + ".json");
                    Assert.True(File.Exists(path), $"fixture {path} is missing (conformance/fixtures/torch is copied to the test output)");
                    using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
                    f = new Fixture(doc.RootElement.Clone());
                    Cache[file] = f;
                }
                return f;
            }
        }

        public JsonElement Case(string name) => Cases.Single(c => c.GetProperty("name").GetString() == name);

        /// <summary>A flat number list; "NaN", "Infinity" and "-Infinity" are written as strings.</summary>
        public static double[] Doubles(JsonElement c, string property) =>
            c.GetProperty(property).EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String
                ? double.Parse(e.GetString()!, NumberStyles.Float, CultureInfo.InvariantCulture)
                : e.GetDouble()).ToArray();
    }
}
