using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// activation_backward: dx = dy · f'(x) element-wise. Shapes: x, dy, dx [n].
public static partial class Tier2Cases
{
    private static readonly UnaryOp[] Activations = [UnaryOp.Relu, UnaryOp.Tanh, UnaryOp.Sigmoid, UnaryOp.GeluErf, UnaryOp.GeluTanh, UnaryOp.Silu];

    private static IEnumerable<KernelCase> ActivationCases()
    {
        foreach (var dtype in FloatDTypes)
        {
            foreach (var act in Activations)
            {
                string opName = KernelNames.Snake(act.ToString());
                foreach (int n in new[] { 1, 7, 8, 9, 33, 65, 257 })
                {
                    foreach (var kind in new[] { ValueKind.Normal, ValueKind.Edge, ValueKind.Large })
                    {
                        bool quick = (n == 33 && kind == ValueKind.Edge) || (n == 1 && kind == ValueKind.Normal);
                        foreach (var c in Both(FusedOp.ActivationBackward, dtype, Dims(n), $"{opName}-{KindName(kind)}", quick,
                            $"dx = dy·{opName}'(x), {kind} x",
                            ctx => RunActivationBackward(ctx, dtype, act, n, kind)))
                        {
                            yield return c;
                        }
                    }
                }
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunActivationBackward(CaseContext ctx, DType dtype, UnaryOp act, int n, ValueKind kind)
    {
        double[] x = ctx.Values.Floats(n, kind, dtype);
        double[] dy = ctx.Values.Floats(n, ValueKind.Normal, dtype);
        var tx = ctx.Upload(x, new Shape(n), dtype);
        var tdy = ctx.Upload(dy, new Shape(n), dtype);
        var tdx = ctx.Output(new Shape(n), dtype);
        ctx.Ops.ActivationBackward(act, tx, tdy, tdx);
        var expected = new double[n];
        var scale = new double[n];
        for (int i = 0; i < n; i++)
        {
            expected[i] = dy[i] * RefNN.ActivationDerivative(act, x[i]);
            scale[i] = Math.Abs(dy[i]) * DerivativeMagnitude(act, x[i]);
        }
        return [Out("dx", KernelNames.Of(FusedOp.ActivationBackward), dtype, ctx.Download(tdx), expected, 0, scale)];
    }

    /// <summary>
    /// The magnitude f'(x)'s rounding errors scale with: its terms on absolute values, each widened by the relative
    /// error its inputs carry (an argument's rounding moves exp/tanh/erf by u·|argument|·|derivative|).
    /// </summary>
    private static double DerivativeMagnitude(UnaryOp act, double x)
    {
        if (double.IsInfinity(x) || double.IsNaN(x))
        {
            return 0;
        }
        switch (act)
        {
            case UnaryOp.Tanh:
                {
                    double t = Math.Tanh(x);
                    return 1 + t * t + Math.Abs(x) * (1 - t * t);
                }
            case UnaryOp.Sigmoid:
                {
                    double s = RefNN.Sigmoid(x);
                    return s * (1 + s) * (1 + Math.Abs(x));
                }
            case UnaryOp.Silu:
                {
                    double s = RefNN.Sigmoid(x);
                    return s * (1 + Math.Abs(x)) * (1 + Math.Abs(x));
                }
            case UnaryOp.GeluErf:
                {
                    // Φ from 1 + erf cancels for x < 0: erf's absolute error near −1 (≤ 16 ULP of 1) is allowed, as for
                    // unary.gelu_erf; x·φ(x) with φ's argument rounding u·x²/2.
                    double pdf = Math.Exp(-0.5 * x * x) / Math.Sqrt(2 * Math.PI);
                    return 2 + Math.Abs(x) * pdf * (1 + x * x);
                }
            case UnaryOp.GeluTanh:
                {
                    double k = Math.Sqrt(2 / Math.PI);
                    const double c = 0.044715;
                    double z = k * (x + c * x * x * x);
                    double t = Math.Tanh(z);
                    double tErr = 1 + Math.Abs(z) * (1 - t * t);
                    return tErr + Math.Abs(x) * k * (1 + 3 * c * x * x) * (1 - t * t + 2 * Math.Abs(t) * tErr);
                }
            default:
                return 0;
        }
    }
}
