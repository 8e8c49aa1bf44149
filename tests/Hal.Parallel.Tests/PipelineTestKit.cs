using Hal.Parallel.Pipeline;

namespace Hal.Parallel.Tests;

// Legend: N batch rows, n = N/m rows per micro-batch, C width. Layer l: y = tanh(x·W_l + b_l), W_l [C, C], b_l [C];
// loss = mean over the N·C outputs of (y − target)².

/// <summary>A stack of linear+tanh layers and its data, on the host in double, with the plain-loop reference gradients.</summary>
internal sealed class TinyMlp
{
    public TinyMlp(int layers, int width, int batch, int seed)
    {
        Layers = layers;
        Width = width;
        Batch = batch;
        Seed = seed;
        var random = new Random(seed);
        // Weights of scale 1/√C keep tanh away from saturation, so every layer's gradient is far from zero.
        double scale = 1.5 / Math.Sqrt(width);
        Weights = [.. Enumerable.Range(0, layers).Select(_ => Uniform(random, width * width, scale))];
        Biases = [.. Enumerable.Range(0, layers).Select(_ => Uniform(random, width, 0.3))];
        Input = Uniform(random, batch * width, 1);
        Target = Uniform(random, batch * width, 0.8);
    }

    private TinyMlp(TinyMlp whole, int firstRow, int rows)
    {
        Layers = whole.Layers;
        Width = whole.Width;
        Batch = rows;
        Seed = whole.Seed;
        Weights = whole.Weights;
        Biases = whole.Biases;
        Input = whole.Input[(firstRow * Width)..((firstRow + rows) * Width)];
        Target = whole.Target[(firstRow * Width)..((firstRow + rows) * Width)];
    }

    public int Layers { get; }
    public int Width { get; }
    public int Batch { get; }
    public int Seed { get; }
    public double[][] Weights { get; }
    public double[][] Biases { get; }
    public double[] Input { get; }
    public double[] Target { get; }

    /// <summary>The same layers with rows [firstRow, firstRow + rows) of the batch: one data-parallel replica's share.</summary>
    public TinyMlp Rows(int firstRow, int rows) => new(this, firstRow, rows);

    /// <summary>The loss and every layer's (dW, db), by plain loops in double over the whole batch.</summary>
    public (double Loss, double[][] DWeights, double[][] DBiases) Reference()
    {
        int c = Width, rows = Batch;
        var activations = new double[Layers + 1][];
        activations[0] = Input;
        for (int l = 0; l < Layers; l++)
        {
            var x = activations[l];
            var y = new double[rows * c];
            for (int r = 0; r < rows; r++)
            {
                for (int j = 0; j < c; j++)
                {
                    double z = Biases[l][j];
                    for (int k = 0; k < c; k++)
                    {
                        z += x[(r * c) + k] * Weights[l][(k * c) + j];
                    }
                    y[(r * c) + j] = Math.Tanh(z);
                }
            }
            activations[l + 1] = y;
        }
        var output = activations[Layers];
        double loss = 0;
        var dy = new double[rows * c];
        for (int i = 0; i < rows * c; i++)
        {
            double d = output[i] - Target[i];
            loss += d * d / (rows * c);
            dy[i] = 2 * d / (rows * c);
        }
        var dWeights = new double[Layers][];
        var dBiases = new double[Layers][];
        for (int l = Layers - 1; l >= 0; l--)
        {
            var x = activations[l];
            var y = activations[l + 1];
            var dz = new double[rows * c];
            for (int i = 0; i < rows * c; i++)
            {
                dz[i] = dy[i] * (1 - (y[i] * y[i]));
            }
            dWeights[l] = new double[c * c];
            dBiases[l] = new double[c];
            var dx = new double[rows * c];
            for (int r = 0; r < rows; r++)
            {
                for (int j = 0; j < c; j++)
                {
                    dBiases[l][j] += dz[(r * c) + j];
                    for (int k = 0; k < c; k++)
                    {
                        dWeights[l][(k * c) + j] += x[(r * c) + k] * dz[(r * c) + j];
                        dx[(r * c) + k] += dz[(r * c) + j] * Weights[l][(k * c) + j];
                    }
                }
            }
            dy = dx;
        }
        return (loss, dWeights, dBiases);
    }

    private static double[] Uniform(Random random, int count, double scale) =>
        [.. Enumerable.Range(0, count).Select(_ => ((2 * random.NextDouble()) - 1) * scale)];
}

/// <summary>
/// One pipeline stage of a <see cref="TinyMlp"/>: the layers of its local chunks (from a <see cref="StagePartition"/>)
/// on this rank's device, gradients accumulated over micro-batches, the loss of each micro-batch kept on the host.
/// </summary>
internal sealed class TinyMlpStage : IPipelineStage, IDisposable
{
    private readonly Ops _ops;
    private readonly TinyMlp _model;
    private readonly StagePartition _partition;
    private readonly int _stage;
    private readonly DType _dtype;
    private readonly int _microBatches;
    private readonly int _rows;
    private readonly Dictionary<int, (Tensor W, Tensor B, Tensor DW, Tensor DB)> _layers = [];
    // Per (chunk, micro): the input of each of the chunk's layers, then the chunk's output.
    private readonly Dictionary<(int Chunk, int Micro), List<Tensor>> _saved = [];
    private readonly Tensor _one;

    public TinyMlpStage(Ops ops, TinyMlp model, StagePartition partition, int stage, DType dtype, int microBatches)
    {
        _ops = ops;
        _model = model;
        _partition = partition;
        _stage = stage;
        _dtype = dtype;
        _microBatches = microBatches;
        _rows = model.Batch / microBatches;
        _one = ops.Full(new Shape(1), 1, dtype);
        int c = model.Width;
        for (int k = 0; k < partition.ChunksPerStage; k++)
        {
            var (start, count) = partition.LayersOf(partition.ModelChunk(stage, k));
            for (int l = start; l < start + count; l++)
            {
                _layers[l] = (ops.FromArray(model.Weights[l], new Shape(c, c), dtype), ops.FromArray(model.Biases[l], new Shape(c), dtype),
                    ops.Zeros(new Shape(c, c), dtype), ops.Zeros(new Shape(c), dtype));
            }
        }
    }

    public int ChunkCount => _partition.ChunksPerStage;

    /// <summary>Loss of each micro-batch this stage computed (the last model chunk's stage only), already divided by m.</summary>
    public Dictionary<int, double> Losses { get; } = [];

    public IEnumerable<int> LayerIndices => _layers.Keys;

    public PipelineTensorSpec InputSpec(int chunk) => new(new Shape(_rows, _model.Width), _dtype);

    public PipelineTensorSpec OutputSpec(int chunk) => new(new Shape(_rows, _model.Width), _dtype);

    public (double[] DW, double[] DB) Gradients(int layer) => (_ops.ToDoubleArray(_layers[layer].DW), _ops.ToDoubleArray(_layers[layer].DB));

    public Tensor? Forward(int chunk, int micro, Tensor? input)
    {
        int modelChunk = _partition.ModelChunk(_stage, chunk);
        int c = _model.Width;
        var x = input ?? _ops.FromArray(_model.Input.AsSpan(micro * _rows * c, _rows * c), new Shape(_rows, c), _dtype);
        var saved = new List<Tensor> { x };
        var (start, count) = _partition.LayersOf(modelChunk);
        for (int l = start; l < start + count; l++)
        {
            var y = _ops.Empty(new Shape(_rows, c), _dtype);
            _ops.Gemm(x, _layers[l].W, y, bias: _layers[l].B);
            _ops.Unary(UnaryOp.Tanh, y, y);
            saved.Add(y);
            x = y;
        }
        _saved[(chunk, micro)] = saved;
        if (modelChunk == _partition.ChunkCount - 1)
        {
            var output = _ops.ToDoubleArray(x);
            double loss = 0;
            for (int i = 0; i < output.Length; i++)
            {
                double d = output[i] - _model.Target[(micro * _rows * c) + i];
                loss += d * d;
            }
            Losses[micro] = loss / (_rows * c) / _microBatches;
            return null;
        }
        var sent = _ops.Empty(x.Shape, _dtype);
        _ops.Copy(x, sent);
        return sent;
    }

    public Tensor? Backward(int chunk, int micro, Tensor? outputGradient)
    {
        int modelChunk = _partition.ModelChunk(_stage, chunk);
        int c = _model.Width;
        var saved = _saved[(chunk, micro)];
        _saved.Remove((chunk, micro));
        var dy = outputGradient;
        if (dy is null)
        {
            // d(loss)/dy = 2(y − target)/(n·C·m): the micro-batch mean, and the mean over micro-batches.
            using var target = _ops.FromArray(_model.Target.AsSpan(micro * _rows * c, _rows * c), new Shape(_rows, c), _dtype);
            using var scale = _ops.Full(new Shape(1), 2.0 / (_rows * c) / _microBatches, _dtype);
            dy = _ops.Empty(new Shape(_rows, c), _dtype);
            _ops.Binary(BinaryOp.Sub, saved[^1], target, dy);
            _ops.Binary(BinaryOp.Mul, dy, scale, dy);
        }
        var (start, count) = _partition.LayersOf(modelChunk);
        using var dbRow = _ops.Empty(new Shape(1, c), _dtype);
        for (int l = start + count - 1; l >= start; l--)
        {
            var x = saved[l - start];
            var y = saved[l - start + 1];
            // dz = dy ⊙ (1 − y²), in place in y (its last use).
            _ops.Unary(UnaryOp.Square, y, y);
            _ops.Binary(BinaryOp.Sub, _one, y, y);
            _ops.Binary(BinaryOp.Mul, dy, y, y);
            var dz = y;
            var (w, _, dw, db) = _layers[l];
            _ops.Gemm(x, dz, dw, transA: true, beta: 1);
            _ops.Reduce(ReduceOp.Sum, dz, 0, dbRow);
            using (var dbView = dbRow.Reshape(c))
            {
                _ops.Binary(BinaryOp.Add, db, dbView, db);
            }
            dy.Dispose();
            if (l == 0)
            {
                dy = null;
                break;
            }
            dy = _ops.Empty(new Shape(_rows, c), _dtype);
            _ops.Gemm(dz, w, dy, transB: true);
        }
        foreach (var t in saved)
        {
            t.Dispose();
        }
        return dy;
    }

    public void Dispose()
    {
        foreach (var (w, b, dw, db) in _layers.Values)
        {
            w.Dispose();
            b.Dispose();
            dw.Dispose();
            db.Dispose();
        }
        foreach (var list in _saved.Values)
        {
            foreach (var t in list)
            {
                t.Dispose();
            }
        }
        _one.Dispose();
    }
}
