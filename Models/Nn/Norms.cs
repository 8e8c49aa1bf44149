namespace Hal.Models.Nn;

/// <summary>A normalisation over the last axis that saves its input and statistics for backward.</summary>
public interface INorm
{
    /// <summary>y [N, C] = norm(x [N, C]); keeps a reference to x (the caller keeps x alive and unchanged until backward).</summary>
    void Forward(Tensor x, Tensor y);

    /// <summary>Adds dweight (and dbias) into the store's gradients; writes dx [N, C], or adds it into dx when <paramref name="accumulate"/>.</summary>
    void Backward(Tensor dy, Tensor dx, bool accumulate);
}

/// <summary>
/// LayerNorm with weight and bias [C] (GPT-2). mean and rstd [N] (F32) live in the workspace under the module's
/// scope. The fused backward overwrites its dweight/dbias, so they go to scratch and are added into the store.
/// Legend: N rows, C channels.
/// </summary>
public sealed class LayerNorm : INorm
{
    private readonly Workspace _ws;
    private readonly ParameterStore _store;
    private readonly string _weightName, _biasName, _meanKey, _rstdKey;
    private readonly double _eps;
    private Tensor? _x, _mean, _rstd;

    /// <summary>A layer norm over the named parameters; <paramref name="scope"/> names its saved statistics.</summary>
    public LayerNorm(Workspace ws, ParameterStore store, string weightName, string biasName, double eps, string scope)
    {
        _ws = ws;
        _store = store;
        _weightName = weightName;
        _biasName = biasName;
        _eps = eps;
        _meanKey = scope + ".mean";
        _rstdKey = scope + ".rstd";
    }

    /// <summary>
    /// When set, this norm sees only this rank's rows (sequence parallelism): its weight (and bias) gradient is a
    /// partial sum, summed over the group before it is added into the store (so micro-batches still accumulate).
    /// </summary>
    public TensorParallelContext? SumGradientsOver { get; init; }

    /// <inheritdoc/>
    public void Forward(Tensor x, Tensor y)
    {
        var rows = new Shape(x.Shape[0]);
        _x = x;
        _mean = _ws.Get(_meanKey, rows, DType.F32, saved: true);
        _rstd = _ws.Get(_rstdKey, rows, DType.F32, saved: true);
        _ws.Ops.LayerNorm(x, _store.Param(_weightName), _store.Param(_biasName), _eps, y, _mean, _rstd);
    }

    /// <inheritdoc/>
    public void Backward(Tensor dy, Tensor dx, bool accumulate)
    {
        var x = _x ?? throw new InvalidOperationException("layer norm: backward before forward");
        var ops = _ws.Ops;
        var gw = _store.Grad(_weightName);
        var gb = _store.Grad(_biasName);
        var dw = _ws.Get("d.norm.weight", gw.Shape, gw.DType);
        var db = _ws.Get("d.norm.bias", gb.Shape, gb.DType);
        var target = accumulate ? _ws.Get("d.norm.x", dx.Shape, dx.DType) : dx;
        ops.LayerNormBackward(dy, x, _store.Param(_weightName), _mean!, _rstd!, target, dw, db);
        SumGradientsOver?.SumGradient(dw);
        SumGradientsOver?.SumGradient(db);
        ops.Binary(BinaryOp.Add, gw, dw, gw);
        ops.Binary(BinaryOp.Add, gb, db, gb);
        if (accumulate)
        {
            ops.Binary(BinaryOp.Add, dx, target, dx);
        }
    }
}

/// <summary>
/// RMSNorm with weight [C] (LLaMA); rstd [N] (F32) is saved in the workspace under the module's scope.
/// Legend: N rows, C channels.
/// </summary>
public sealed class RmsNorm : INorm
{
    private readonly Workspace _ws;
    private readonly ParameterStore _store;
    private readonly string _weightName, _rstdKey;
    private readonly double _eps;
    private Tensor? _x, _rstd;

    /// <summary>An RMS norm over the named weight; <paramref name="scope"/> names its saved statistics.</summary>
    public RmsNorm(Workspace ws, ParameterStore store, string weightName, double eps, string scope)
    {
        _ws = ws;
        _store = store;
        _weightName = weightName;
        _eps = eps;
        _rstdKey = scope + ".rstd";
    }

    /// <summary>
    /// When set, this norm sees only this rank's rows (sequence parallelism): its weight (and bias) gradient is a
    /// partial sum, summed over the group before it is added into the store (so micro-batches still accumulate).
    /// </summary>
    public TensorParallelContext? SumGradientsOver { get; init; }

    /// <inheritdoc/>
    public void Forward(Tensor x, Tensor y)
    {
        _x = x;
        _rstd = _ws.Get(_rstdKey, new Shape(x.Shape[0]), DType.F32, saved: true);
        _ws.Ops.RmsNorm(x, _store.Param(_weightName), _eps, y, _rstd);
    }

    /// <inheritdoc/>
    public void Backward(Tensor dy, Tensor dx, bool accumulate)
    {
        var x = _x ?? throw new InvalidOperationException("rms norm: backward before forward");
        var ops = _ws.Ops;
        var gw = _store.Grad(_weightName);
        var dw = _ws.Get("d.norm.weight", gw.Shape, gw.DType);
        var target = accumulate ? _ws.Get("d.norm.x", dx.Shape, dx.DType) : dx;
        ops.RmsNormBackward(dy, x, _store.Param(_weightName), _rstd!, target, dw);
        SumGradientsOver?.SumGradient(dw);
        ops.Binary(BinaryOp.Add, gw, dw, gw);
        if (accumulate)
        {
            ops.Binary(BinaryOp.Add, dx, target, dx);
        }
    }
}
