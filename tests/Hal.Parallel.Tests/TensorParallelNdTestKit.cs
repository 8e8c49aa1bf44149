using Hal.Parallel.TensorParallel;

namespace Hal.Parallel.Tests;

// Legend: layouts "2d" (q = 2, 4 ranks), "2.5d" (q = 2, d = 2, 8 ranks), "3d" (c = 2, 8 ranks). Layer k of a stack:
// in 3D layer 0 takes its input features on axis 2 and layer 1 on axis 1 (they alternate). N rows, In/Out features,
// e bytes per element. Host matrices are row-major double arrays.

/// <summary>One rank's grid of a layout, with the blocks and layers of a small stack of linears and layer norms.</summary>
internal sealed class GridSession : IDisposable
{
    public const int Depth25D = 2;

    private readonly Ops _ops;
    private readonly TensorGrid2D? _grid2;
    private readonly TensorGrid25D? _grid25;
    private readonly TensorGrid3D? _grid3;

    public GridSession(string layout, ICommunicator comm, Ops ops)
    {
        Layout = layout;
        _ops = ops;
        switch (layout)
        {
            case "2d":
                _grid2 = new TensorGrid2D(comm);
                break;
            case "2.5d":
                _grid25 = new TensorGrid25D(comm, Depth25D);
                break;
            case "3d":
                _grid3 = new TensorGrid3D(comm);
                break;
            default:
                throw new ArgumentException($"unknown layout {layout}", nameof(layout));
        }
    }

    public static string[] Layouts => ["2d", "2.5d", "3d"];

    public string Layout { get; }

    public static int Ranks(string layout) => layout == "2d" ? 4 : 8;

    /// <summary>True when this rank reads the bias and accumulates its gradient (row 0, or axis 0 coordinate 0).</summary>
    public bool OwnsBias => _grid2?.Row == 0 || _grid25?.Row == 0 || _grid3?.Coordinate(0) == 0;

    public GridBlock Input(int layer) => _grid3?.InputBlock(InputAxis(layer)) ?? _grid25?.ActivationBlock ?? _grid2!.MatrixBlock;

    public GridBlock Output(int layer) => _grid3?.OutputBlock(InputAxis(layer)) ?? _grid25?.ActivationBlock ?? _grid2!.MatrixBlock;

    public GridBlock Weight(int layer) => _grid3?.WeightBlock(InputAxis(layer)) ?? _grid25?.WeightBlock ?? _grid2!.MatrixBlock;

    /// <summary>The block of a vector over layer k's output features (its bias, or a layer norm after it).</summary>
    public GridBlock Vector(int layer) => _grid3?.VectorBlock(TensorGrid3D.OtherAxis(InputAxis(layer))) ?? _grid25?.VectorBlock ?? _grid2!.VectorBlock;

    public GridLinear Linear(int layer)
    {
        if (_grid2 is not null)
        {
            var l = new Linear2D(_ops, _grid2);
            return new GridLinear(l.Forward, l.Backward, () => l.BytesCommunicated, l);
        }
        if (_grid25 is not null)
        {
            var l = new Linear25D(_ops, _grid25);
            return new GridLinear(l.Forward, l.Backward, () => l.BytesCommunicated, l);
        }
        var l3 = new Linear3D(_ops, _grid3!, InputAxis(layer));
        return new GridLinear(l3.Forward, l3.Backward, () => l3.BytesCommunicated, l3);
    }

    /// <summary>A layer norm over layer k's output features.</summary>
    public GridNorm Norm(int layer, double eps)
    {
        if (_grid2 is not null)
        {
            var n = new LayerNorm2D(_ops, _grid2, eps);
            return new GridNorm(n.Forward, n.Backward, () => n.BytesCommunicated, n);
        }
        if (_grid25 is not null)
        {
            var n = new LayerNorm25D(_ops, _grid25, eps);
            return new GridNorm(n.Forward, n.Backward, () => n.BytesCommunicated, n);
        }
        var n3 = new LayerNorm3D(_ops, _grid3!, TensorGrid3D.OtherAxis(InputAxis(layer)), eps);
        return new GridNorm(n3.Forward, n3.Backward, () => n3.BytesCommunicated, n3);
    }

    /// <summary>
    /// The bytes one rank sends for a linear layer's forward and backward (with bias and dx), derived in the layer docs:
    /// 2D/2.5D: q broadcasts each of the X and W blocks per product (q − 1 blocks' worth per rank), a reduce-scatter of q
    /// blocks per backward product, the bias broadcast and all-reduce; 2.5D adds the depth all-reduce of the W block and
    /// bias; 3D: all-gathers of x and w, a reduce-scatter of y forward, and backward an all-gather of dy, the two
    /// re-gathers and two reduce-scatters. Every size here divides evenly, so no ring count is rounded.
    /// </summary>
    public static (long Forward, long Backward) LinearBytes(string layout, int n, int inFeatures, int outFeatures, int e)
    {
        switch (layout)
        {
            case "2d":
            case "2.5d":
                {
                    int q = 2, d = layout == "2d" ? 1 : Depth25D;
                    long xb = (long)n / (d * q) * (inFeatures / q) * e, wb = (long)inFeatures / q * (outFeatures / q) * e, bb = (long)outFeatures / q * e;
                    long forward = ((q - 1) * (xb + wb)) + ((q - 1) * bb / q);
                    long backward = (2 * (q - 1) * (xb + wb)) + (2 * (q - 1) * bb / q) + (2 * (d - 1) * (wb + bb) / d);
                    return (forward, backward);
                }
            default:
                {
                    int c = 2;
                    long xp = (long)n / (c * c) * (inFeatures / c) * e, wp = (long)inFeatures / (c * c) * (outFeatures / c) * e;
                    long yp = (long)n / (c * c) * (outFeatures / c) * e, bb = (long)outFeatures / c * e;
                    long forward = ((c - 1) * (xp + wp + yp)) + ((c - 1) * bb / c);
                    long backward = ((c - 1) * ((2 * xp) + (2 * wp) + yp)) + (2 * (c - 1) * bb / c);
                    return (forward, backward);
                }
        }
    }

    /// <summary>
    /// The bytes one rank sends for a layer norm (with beta) over R local rows and Hl local features: forward one
    /// all-reduce of 2R over the hidden group (g = 2 everywhere here); backward that again plus one all-reduce of 2·Hl
    /// per replica group (2D: the column; 2.5D: column and depth; 3D: axis 0 and the other feature axis).
    /// </summary>
    public static (long Forward, long Backward) NormBytes(string layout, int rows, int features, int e)
    {
        int replicaGroups = layout == "2d" ? 1 : 2;
        long forward = 2 * (2 - 1) * (2L * rows * e) / 2;
        long backward = forward + (replicaGroups * 2 * (2 - 1) * (2L * features * e) / 2);
        return (forward, backward);
    }

    public void Dispose()
    {
        _grid2?.Dispose();
        _grid25?.Dispose();
        _grid3?.Dispose();
    }

    private static int InputAxis(int layer) => layer % 2 == 0 ? 2 : 1;
}

/// <summary>A linear layer of any layout, through its Forward and Backward.</summary>
internal sealed class GridLinear(
    Action<Tensor, Tensor, Tensor?, Tensor> forward,
    Action<Tensor, Tensor, Tensor, Tensor, Tensor?, Tensor?> backward,
    Func<long> bytes,
    IDisposable layer) : IDisposable
{
    public long BytesCommunicated => bytes();

    public void Forward(Tensor x, Tensor weight, Tensor? bias, Tensor y) => forward(x, weight, bias, y);

    public void Backward(Tensor x, Tensor dy, Tensor weight, Tensor weightGrad, Tensor? biasGrad, Tensor? dx) => backward(x, dy, weight, weightGrad, biasGrad, dx);

    public void Dispose() => layer.Dispose();
}

/// <summary>A layer norm of any layout.</summary>
internal sealed class GridNorm(
    Action<Tensor, Tensor, Tensor?, Tensor, Tensor, Tensor> forward,
    Action<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor?, Tensor, Tensor?> backward,
    Func<long> bytes,
    IDisposable layer) : IDisposable
{
    public long BytesCommunicated => bytes();

    public void Forward(Tensor x, Tensor gamma, Tensor? beta, Tensor y, Tensor mean, Tensor rstd) => forward(x, gamma, beta, y, mean, rstd);

    public void Backward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor? dx, Tensor gammaGrad, Tensor? betaGrad) =>
        backward(dy, x, gamma, mean, rstd, dx, gammaGrad, betaGrad);

    public void Dispose() => layer.Dispose();
}

/// <summary>Host blocks and a layer norm reference in double loops.</summary>
internal static class GridHostMath
{
    /// <summary>Block b of a [rows, cols] matrix (a vector is one row), row-major.</summary>
    public static double[] Block(double[] full, int rows, int cols, GridBlock b)
    {
        int br = rows / b.RowBlocks, bc = cols / b.ColumnBlocks;
        var block = new double[br * bc];
        for (int i = 0; i < br; i++)
        {
            for (int j = 0; j < bc; j++)
            {
                block[(i * bc) + j] = full[(((b.RowBlock * br) + i) * cols) + (b.ColumnBlock * bc) + j];
            }
        }
        return block;
    }

    /// <summary>Block b of a vector [cols].</summary>
    public static double[] Block(double[] vector, GridBlock b) => Block(vector, 1, vector.Length, b);

    /// <summary>Uploads block b of a host matrix [rows, cols] (or of a vector when rows is 0).</summary>
    public static Tensor Upload(Ops ops, double[] full, int rows, int cols, GridBlock b, DType dtype)
    {
        var shape = b.Of(rows == 0 ? new Shape(cols) : new Shape(rows, cols));
        return ops.FromArray(Block(full, Math.Max(rows, 1), cols, b), shape, dtype);
    }

    /// <summary>y = layer norm of each row of x [rows, h] with gamma, beta; mean and rstd per row (two-pass variance).</summary>
    public static (double[] Y, double[] Mean, double[] Rstd) LayerNorm(double[] x, int rows, int h, double[] gamma, double[] beta, double eps)
    {
        var y = new double[rows * h];
        var mean = new double[rows];
        var rstd = new double[rows];
        for (int i = 0; i < rows; i++)
        {
            double sum = 0;
            for (int j = 0; j < h; j++)
            {
                sum += x[(i * h) + j];
            }
            mean[i] = sum / h;
            double squares = 0;
            for (int j = 0; j < h; j++)
            {
                double d = x[(i * h) + j] - mean[i];
                squares += d * d;
            }
            rstd[i] = 1 / Math.Sqrt((squares / h) + eps);
            for (int j = 0; j < h; j++)
            {
                y[(i * h) + j] = ((x[(i * h) + j] - mean[i]) * rstd[i] * gamma[j]) + beta[j];
            }
        }
        return (y, mean, rstd);
    }

    /// <summary>
    /// The layer norm's gradients from dy: with x̂ = (x − mean)·rstd and g = dy·gamma,
    /// dx = rstd·(g − mean_j(g) − x̂·mean_j(g·x̂)), dgamma = Σ_i dy·x̂, dbeta = Σ_i dy.
    /// </summary>
    public static (double[] Dx, double[] DGamma, double[] DBeta) LayerNormBackward(double[] x, double[] dy, int rows, int h, double[] gamma, double[] mean, double[] rstd)
    {
        var dx = new double[rows * h];
        var dgamma = new double[h];
        var dbeta = new double[h];
        for (int i = 0; i < rows; i++)
        {
            double meanG = 0, meanGx = 0;
            for (int j = 0; j < h; j++)
            {
                double xHat = (x[(i * h) + j] - mean[i]) * rstd[i];
                double g = dy[(i * h) + j] * gamma[j];
                meanG += g / h;
                meanGx += g * xHat / h;
                dgamma[j] += dy[(i * h) + j] * xHat;
                dbeta[j] += dy[(i * h) + j];
            }
            for (int j = 0; j < h; j++)
            {
                double xHat = (x[(i * h) + j] - mean[i]) * rstd[i];
                double g = dy[(i * h) + j] * gamma[j];
                dx[(i * h) + j] = rstd[i] * (g - meanG - (xHat * meanGx));
            }
        }
        return (dx, dgamma, dbeta);
    }
}
