namespace Hal.Models.Nn;

/// <summary>A position-wise feed-forward network over rows.</summary>
public interface IFeedForward
{
    /// <summary>y [N, C] = ffn(x [N, C]), or y += it when <paramref name="accumulate"/>; keeps a reference to x.</summary>
    void Forward(Tensor x, Tensor y, bool accumulate);

    /// <summary>Adds the parameter gradients from dy [N, C]; writes dx [N, C] (adds into it when <paramref name="accumulate"/>).</summary>
    void Backward(Tensor dy, Tensor dx, bool accumulate);

    /// <summary>The projection back to C channels (the row-parallel half under tensor parallelism).</summary>
    Linear OutputProjection { get; }
}

/// <summary>
/// GPT-2's MLP: c_proj(gelu_tanh(c_fc(x))). Saved: x (by reference), the pre-activation h and the activation g.
/// Legend: N rows, C channels, F hidden (4C).
/// </summary>
public sealed class GeluMlp : IFeedForward
{
    private readonly Workspace _ws;
    private readonly Linear _fc, _proj;
    private readonly string _hKey, _gKey;
    private Tensor? _x, _h, _g;

    /// <summary>An MLP of the two projections (C→F, F→C); <paramref name="scope"/> names the saved buffers.</summary>
    public GeluMlp(Workspace ws, Linear fc, Linear proj, string scope)
    {
        _ws = ws;
        _fc = fc;
        _proj = proj;
        _hKey = scope + ".h";
        _gKey = scope + ".g";
    }

    /// <inheritdoc/>
    public Linear OutputProjection => _proj;

    /// <inheritdoc/>
    public void Forward(Tensor x, Tensor y, bool accumulate)
    {
        var ops = _ws.Ops;
        var hidden = new Shape(x.Shape[0], _fc.OutFeatures);
        _x = x;
        _h = _ws.Get(_hKey, hidden, x.DType, saved: true);
        _g = _ws.Get(_gKey, hidden, x.DType, saved: true);
        _fc.Forward(ops, x, _h);
        ops.Unary(UnaryOp.GeluTanh, _h, _g);
        _proj.Forward(ops, _g, y, accumulate ? 1 : 0);
    }

    /// <inheritdoc/>
    public void Backward(Tensor dy, Tensor dx, bool accumulate)
    {
        var x = _x ?? throw new InvalidOperationException("mlp: backward before forward");
        var ops = _ws.Ops;
        var dg = _ws.Get("d.mlp.g", _h!.Shape, dy.DType);
        var dh = _ws.Get("d.mlp.h", _h.Shape, dy.DType);
        _proj.Backward(_ws, _g!, dy, dg);
        ops.ActivationBackward(UnaryOp.GeluTanh, _h, dg, dh);
        _fc.Backward(_ws, x, dh, dx, accumulate ? 1 : 0);
    }
}

/// <summary>
/// LLaMA's SwiGLU: down(silu(gate(x)) ⊙ up(x)). Saved: x (by reference), gate, up, s = silu(gate) and m = s ⊙ up.
/// Legend: N rows, C channels, F hidden.
/// </summary>
public sealed class SwiGluMlp : IFeedForward
{
    private readonly Workspace _ws;
    private readonly Linear _gate, _up, _down;
    private readonly string _gateKey, _upKey, _sKey, _mKey;
    private Tensor? _x, _gateOut, _upOut, _s, _m;

    /// <summary>A SwiGLU of the three projections (gate, up: C→F; down: F→C); <paramref name="scope"/> names the saved buffers.</summary>
    public SwiGluMlp(Workspace ws, Linear gate, Linear up, Linear down, string scope)
    {
        _ws = ws;
        _gate = gate;
        _up = up;
        _down = down;
        _gateKey = scope + ".gate";
        _upKey = scope + ".up";
        _sKey = scope + ".s";
        _mKey = scope + ".m";
    }

    /// <inheritdoc/>
    public Linear OutputProjection => _down;

    /// <inheritdoc/>
    public void Forward(Tensor x, Tensor y, bool accumulate)
    {
        var ops = _ws.Ops;
        var hidden = new Shape(x.Shape[0], _gate.OutFeatures);
        _x = x;
        _gateOut = _ws.Get(_gateKey, hidden, x.DType, saved: true);
        _upOut = _ws.Get(_upKey, hidden, x.DType, saved: true);
        _s = _ws.Get(_sKey, hidden, x.DType, saved: true);
        _m = _ws.Get(_mKey, hidden, x.DType, saved: true);
        _gate.Forward(ops, x, _gateOut);
        _up.Forward(ops, x, _upOut);
        ops.Unary(UnaryOp.Silu, _gateOut, _s);
        ops.Binary(BinaryOp.Mul, _s, _upOut, _m);
        _down.Forward(ops, _m, y, accumulate ? 1 : 0);
    }

    /// <inheritdoc/>
    public void Backward(Tensor dy, Tensor dx, bool accumulate)
    {
        var x = _x ?? throw new InvalidOperationException("swiglu: backward before forward");
        var ops = _ws.Ops;
        var shape = _m!.Shape;
        var dm = _ws.Get("d.mlp.m", shape, dy.DType);
        var ds = _ws.Get("d.mlp.s", shape, dy.DType);
        var dUp = _ws.Get("d.mlp.up", shape, dy.DType);
        _down.Backward(_ws, _m, dy, dm);
        ops.Binary(BinaryOp.Mul, dm, _upOut!, ds);
        ops.Binary(BinaryOp.Mul, dm, _s!, dUp);
        var dGate = _ws.Get("d.mlp.gate", shape, dy.DType);
        ops.ActivationBackward(UnaryOp.Silu, _gateOut!, ds, dGate);
        _gate.Backward(_ws, x, dGate, dx, accumulate ? 1 : 0);
        _up.Backward(_ws, x, dUp, dx, 1);
    }
}
