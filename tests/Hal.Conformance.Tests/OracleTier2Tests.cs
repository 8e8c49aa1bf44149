using Hal.Conformance.Kernels;
using Hal.Conformance.Oracle;

namespace Hal.Conformance.Tests;

/// <summary>
/// The oracle's backward functions against central finite differences of its forward functions, in fp64: for a
/// random upstream gradient dy, the gradient of L = Σ dy·f(x) by (L(x + h·e_i) − L(x − h·e_i))/(2h) must match the
/// oracle's analytic gradient. Shapes: rows × cols for the row-wise ops, attention [B, H, T, D].
/// </summary>
public sealed class OracleTier2Tests
{
    // h = 1e-5: the central difference's truncation error is h²/6·|L'''| ≈ 2e-11 for the O(1)-curvature functions
    // here, its rounding error ≈ 2⁻⁵³·|L|/h ≈ 1e-11·|L| with |L| ≲ 100; 1e-6 absolute leaves a wide margin for both
    // while a wrong term in a gradient formula (an O(0.01–1) error) cannot hide under it.
    private const double H = 1e-5;
    private const double Tolerance = 1e-6;

    private static double[] Random(ulong seed, int count, double scale = 1)
    {
        var values = new CaseValues(seed);
        var v = new double[count];
        for (int i = 0; i < count; i++)
        {
            v[i] = scale * values.NextNormal();
        }
        return v;
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * b[i];
        }
        return s;
    }

    /// <summary>Central differences of <paramref name="loss"/> with respect to every element of <paramref name="x"/> (modified in place, restored).</summary>
    private static double[] NumericGradient(Func<double> loss, double[] x)
    {
        var g = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double keep = x[i];
            x[i] = keep + H;
            double up = loss();
            x[i] = keep - H;
            double down = loss();
            x[i] = keep;
            g[i] = (up - down) / (2 * H);
        }
        return g;
    }

    private static void AssertClose(double[] numeric, double[] analytic, string what)
    {
        Assert.Equal(numeric.Length, analytic.Length);
        for (int i = 0; i < numeric.Length; i++)
        {
            Assert.True(Math.Abs(numeric[i] - analytic[i]) <= Tolerance,
                $"{what}[{i}]: finite difference {numeric[i]:R}, analytic {analytic[i]:R}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(33)]
    public void SoftmaxAndLogSoftmaxBackwardMatchFiniteDifferences(int cols)
    {
        const int rows = 3;
        ulong seed = 11 + (ulong)cols;
        double[] x = Random(seed, rows * cols, 2);
        double[] dy = Random(seed + 1, rows * cols);
        var y = RefNN.Softmax(x, rows, cols);
        AssertClose(NumericGradient(() => Dot(dy, RefNN.Softmax(x, rows, cols)), x), RefNN.SoftmaxBackward(y, dy, rows, cols), $"softmax dx (seed {seed})");
        var ly = RefNN.LogSoftmax(x, rows, cols);
        AssertClose(NumericGradient(() => Dot(dy, RefNN.LogSoftmax(x, rows, cols)), x), RefNN.LogSoftmaxBackward(ly, dy, rows, cols), $"log_softmax dx (seed {seed})");
    }

    [Theory]
    [InlineData(4, 1)]
    [InlineData(3, 8)]
    [InlineData(2, 33)]
    public void LayerNormBackwardMatchesFiniteDifferences(int rows, int cols)
    {
        ulong seed = 101 + (ulong)(rows * 100 + cols);
        double[] x = Random(seed, rows * cols, 1.5);
        double[] w = Random(seed + 1, cols);
        double[] b = Random(seed + 2, cols);
        double[] dy = Random(seed + 3, rows * cols);
        // eps 1e-3 keeps cols = 1 (variance 0, rstd = 1/√eps) smooth and O(30) in size.
        const double eps = 1e-3;
        double Loss() => Dot(dy, RefNN.LayerNorm(x, w, b, rows, cols, eps).Y);
        var (dx, dw, db) = RefNN.LayerNormBackward(dy, x, w, rows, cols, eps);
        AssertClose(NumericGradient(Loss, x), dx, $"layer_norm dx (seed {seed})");
        AssertClose(NumericGradient(Loss, w), dw, $"layer_norm dweight (seed {seed})");
        AssertClose(NumericGradient(Loss, b), db, $"layer_norm dbias (seed {seed})");
    }

    [Theory]
    [InlineData(4, 1)]
    [InlineData(3, 9)]
    [InlineData(2, 33)]
    public void RmsNormBackwardMatchesFiniteDifferences(int rows, int cols)
    {
        ulong seed = 201 + (ulong)(rows * 100 + cols);
        double[] x = Random(seed, rows * cols, 1.5);
        double[] w = Random(seed + 1, cols);
        double[] dy = Random(seed + 2, rows * cols);
        const double eps = 1e-3;
        double Loss() => Dot(dy, RefNN.RmsNorm(x, w, rows, cols, eps).Y);
        var (dx, dw) = RefNN.RmsNormBackward(dy, x, w, rows, cols, eps);
        AssertClose(NumericGradient(Loss, x), dx, $"rms_norm dx (seed {seed})");
        AssertClose(NumericGradient(Loss, w), dw, $"rms_norm dweight (seed {seed})");
    }

    [Fact]
    public void CrossEntropyBackwardMatchesFiniteDifferencesAndIgnoresNegativeTargets()
    {
        const int rows = 4, vocab = 9;
        const ulong seed = 301;
        double[] logits = Random(seed, rows * vocab, 2);
        double[] dl = Random(seed + 1, rows);
        long[] targets = [3, -1, 0, 8];
        double Loss() => Dot(dl, RefNN.CrossEntropy(logits, targets, rows, vocab).Losses);
        var d = RefNN.CrossEntropyBackward(logits, targets, dl, rows, vocab);
        AssertClose(NumericGradient(Loss, logits), d, $"cross_entropy dlogits (seed {seed})");
        var (losses, lse) = RefNN.CrossEntropy(logits, targets, rows, vocab);
        Assert.Equal(0.0, losses[1]);
        Assert.All(d[vocab..(2 * vocab)], v => Assert.Equal(0.0, v));
        // The ignored row's lse is still its log-sum-exp: log Σ exp of row 1, by a direct sum.
        Assert.Equal(Math.Log(logits[vocab..(2 * vocab)].Sum(Math.Exp)), lse[1], 1e-12);
    }

    [Theory]
    [InlineData(1, 2, 2, 3, 3, 4, false)]
    [InlineData(1, 4, 2, 3, 5, 4, true)]
    [InlineData(2, 2, 1, 5, 3, 3, true)]
    public void AttentionBackwardMatchesFiniteDifferences(int b, int h, int hkv, int tq, int tk, int d, bool causal)
    {
        ulong seed = 401 + (ulong)(h * 1000 + tq * 10 + tk);
        double[] q = Random(seed, b * h * tq * d);
        double[] k = Random(seed + 1, b * hkv * tk * d);
        double[] v = Random(seed + 2, b * hkv * tk * d);
        double[] dout = Random(seed + 3, b * h * tq * d);
        double scale = 1 / Math.Sqrt(d);
        double Loss() => Dot(dout, RefNN.Attention(q, k, v, b, h, hkv, tq, tk, d, causal, scale).Output);
        var (dq, dk, dv) = RefNN.AttentionBackward(q, k, v, dout, b, h, hkv, tq, tk, d, causal, scale);
        AssertClose(NumericGradient(Loss, q), dq, $"attention dq (seed {seed})");
        AssertClose(NumericGradient(Loss, k), dk, $"attention dk (seed {seed})");
        AssertClose(NumericGradient(Loss, v), dv, $"attention dv (seed {seed})");
    }

    [Fact]
    public void AttentionRowThatSeesNoKeyGivesZeroOutputAndNegativeInfinityLse()
    {
        // Causal with Tq = 5 > Tk = 3: query i sees keys j ≤ i − 2, so queries 0 and 1 see none.
        double[] q = Random(501, 5 * 2), k = Random(502, 3 * 2), v = Random(503, 3 * 2);
        var (output, lse) = RefNN.Attention(q, k, v, 1, 1, 1, 5, 3, 2, causal: true, 1);
        Assert.Equal(double.NegativeInfinity, lse[0]);
        Assert.Equal(double.NegativeInfinity, lse[1]);
        Assert.All(output[..4], o => Assert.Equal(0.0, o));
        // Query 2 sees key 0 only: its output is v_0 exactly and its lse the one scaled score q_2·k_0.
        Assert.Equal(v[0], output[4], 1e-15);
        Assert.Equal(v[1], output[5], 1e-15);
        Assert.Equal(q[4] * k[0] + q[5] * k[1], lse[2], 1e-15);
    }

    [Theory]
    [InlineData(UnaryOp.Relu)]
    [InlineData(UnaryOp.Tanh)]
    [InlineData(UnaryOp.Sigmoid)]
    [InlineData(UnaryOp.GeluErf)]
    [InlineData(UnaryOp.GeluTanh)]
    [InlineData(UnaryOp.Silu)]
    public void ActivationDerivativeMatchesFiniteDifferencesOfTheForward(UnaryOp op)
    {
        // Points on both sides of 0 (not 0 itself, where Relu has a kink), into the tails.
        foreach (double x in new[] { -6.0, -3.1, -1.7, -0.9, -0.3, -0.01, 0.02, 0.4, 1.1, 2.5, 4.2, 7.0 })
        {
            double numeric = (RefScalar.Unary(op, x + H) - RefScalar.Unary(op, x - H)) / (2 * H);
            double analytic = RefNN.ActivationDerivative(op, x);
            Assert.True(Math.Abs(numeric - analytic) <= Tolerance, $"{op}'({x}): finite difference {numeric:R}, analytic {analytic:R}");
        }
        Assert.True(double.IsNaN(RefNN.ActivationDerivative(op, double.NaN)), $"{op}'(NaN) must be NaN");
    }

    [Theory]
    [InlineData(0.5, 0.4795001221869535)]
    [InlineData(0.79, 0.2638965461793089)]
    [InlineData(0.81, 0.25199671940221047)]
    [InlineData(1.0, 0.15729920705028513)]
    [InlineData(2.0, 0.004677734981047265)]
    public void ErfcIsAccurateWhereGeluDerivativesReadIt(double x, double expected)
    {
        // Expected values: erfc from the C library (glibc's is within 1 ULP). GELU's derivative reads Φ from erfc;
        // a continued fraction stopped early once left erfc(0.5) ~300 ULP off. Budget 8 ULP: ~2 for the reference
        // and ~6 for the oracle (the continued fraction's recurrence, measured, above x = 3.5).
        double erfc = RefSpecial.Erfc(x);
        double ulp = Math.BitIncrement(expected) - expected;
        Assert.True(Math.Abs(erfc - expected) <= 8 * ulp, $"erfc({x}) = {erfc:R}, expected {expected:R} ({Math.Abs(erfc - expected) / ulp:F1} ULP)");
    }
}
