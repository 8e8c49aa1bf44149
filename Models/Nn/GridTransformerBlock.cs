using Hal.Models.Transformer;
using Hal.Parallel.TensorParallel;

namespace Hal.Models.Nn;

// Legend: R rows of this rank's residual block, Ra of its inner block (R = Ra = N / row blocks), Cb = C/f residual
// features, Hl = H/f and Hkvl = Hkv/f local heads, D head size, Fl = F/f local hidden units. x [R, Cb] in and out;
// q [Ra, Hl·D], k/v [Ra, Hkvl·D], merged [Ra, Hl·D]; MLP hidden [Ra, Fl].

/// <summary>
/// One pre-norm transformer block on a 2D, 2.5D or 3D grid: norm → q, k, v grid linears → local attention on the
/// rank's heads → output grid linear (+ residual) → norm → MLP grid linears (GELU for GPT-2, SwiGLU for LLaMA)
/// (+ residual). GPT-2's c_attn is three [C, C] linears (q | k | v sections of one parameter). Owns its grid layers,
/// so its communicated bytes are its own.
/// </summary>
internal sealed class GridTransformerBlock : IDisposable
{
    private readonly Workspace _ws;
    private readonly ParameterStore _store;
    private readonly bool _gpt;
    private readonly string _scope, _prefix;
    private readonly GridLinear _in, _out;
    private readonly GridNorm _norm1, _norm2;
    private readonly GridAttention _attention;
    private readonly int _qWidth, _kvWidth, _hiddenWidth;
    private Tensor? _x;
    private int _batch, _time;

    public GridTransformerBlock(Workspace ws, ParameterStore store, GridContext grid, ModelConfig config, int index, RotaryTables? rotary)
    {
        _ws = ws;
        _store = store;
        _gpt = config.Family == ModelFamily.Gpt2;
        _scope = $"g{index}";
        _prefix = _gpt ? $"transformer.h.{index}." : $"model.layers.{index}.";
        _in = grid.Linear(fromResidual: true);
        _out = grid.Linear(fromResidual: false);
        _norm1 = grid.Norm(config.NormEps, rms: !_gpt, _scope + " norm 1");
        _norm2 = grid.Norm(config.NormEps, rms: !_gpt, _scope + " norm 2");
        int f = grid.Geometry.FeatureBlocks;
        _qWidth = config.Heads / f * config.HeadSize;
        _kvWidth = config.KvHeads / f * config.HeadSize;
        _hiddenWidth = config.Hidden / f;
        _attention = new GridAttention(ws, config.Heads / f, config.KvHeads / f, config.HeadSize, rotary, _scope + ".attn");
    }

    /// <summary>Bytes this block's grid layers have sent so far.</summary>
    public long BytesCommunicated => _in.BytesCommunicated + _out.BytesCommunicated + _norm1.BytesCommunicated + _norm2.BytesCommunicated;

    /// <summary>y [R, Cb] = block(x); x is kept (by reference) for backward.</summary>
    public void Forward(Tensor x, int batch, int time, Tensor y)
    {
        var ops = _ws.Ops;
        var dt = x.DType;
        _x = x;
        _batch = batch;
        _time = time;
        int r = x.Shape[0];
        var h1 = Saved("h1", x.Shape, dt);
        var (mean1, rstd1) = Stats("1", r, dt);
        _norm1.Forward(x, Param(Norm1), _gpt ? Param("ln_1.bias") : null, h1, mean1, rstd1);
        var q = Saved("q", new Shape(r, _qWidth), dt);
        var k = Saved("k", new Shape(r, _kvWidth), dt);
        var v = Saved("v", new Shape(r, _kvWidth), dt);
        for (int s = 0; s < 3; s++)
        {
            var (w, b) = QkvWeights(s, Param);
            _in.Forward(h1, w, b, s == 0 ? q : s == 1 ? k : v);
        }
        var merged = Saved("merged", new Shape(r, _qWidth), dt);
        _attention.Forward(q, k, v, batch, time, merged);
        // mid = x + attention output: the projection writes a temporary, the residual add is ours.
        var mid = Saved("mid", x.Shape, dt);
        _out.Forward(merged, Param(_gpt ? "attn.c_proj.weight" : "self_attn.o_proj.weight"), _gpt ? Param("attn.c_proj.bias") : null, mid);
        ops.Binary(BinaryOp.Add, mid, x, mid);
        var h2 = Saved("h2", x.Shape, dt);
        var (mean2, rstd2) = Stats("2", r, dt);
        _norm2.Forward(mid, Param(Norm2), _gpt ? Param("ln_2.bias") : null, h2, mean2, rstd2);
        var activated = Saved("act", new Shape(r, _hiddenWidth), dt);
        if (_gpt)
        {
            var u = Saved("u", activated.Shape, dt);
            _in.Forward(h2, Param("mlp.c_fc.weight"), Param("mlp.c_fc.bias"), u);
            ops.Unary(UnaryOp.GeluTanh, u, activated);
        }
        else
        {
            var gate = Saved("gate", activated.Shape, dt);
            var up = Saved("up", activated.Shape, dt);
            var silu = Saved("silu", activated.Shape, dt);
            _in.Forward(h2, Param("mlp.gate_proj.weight"), null, gate);
            _in.Forward(h2, Param("mlp.up_proj.weight"), null, up);
            ops.Unary(UnaryOp.Silu, gate, silu);
            ops.Binary(BinaryOp.Mul, silu, up, activated);
        }
        _out.Forward(activated, Param(_gpt ? "mlp.c_proj.weight" : "mlp.down_proj.weight"), _gpt ? Param("mlp.c_proj.bias") : null, y);
        ops.Binary(BinaryOp.Add, y, mid, y);
    }

    /// <summary>dx [R, Cb]: on entry the gradient of the block's output, on return the gradient of its input; parameter gradients are added.</summary>
    public void Backward(Tensor dx)
    {
        var ops = _ws.Ops;
        var dt = dx.DType;
        var x = _x ?? throw new InvalidOperationException("grid block: backward before forward");
        int r = x.Shape[0];
        var activated = Saved("act", new Shape(r, _hiddenWidth), dt);
        var dAct = _ws.Get("d.g.act", activated.Shape, dt);
        _out.Backward(activated, dx, Param(_gpt ? "mlp.c_proj.weight" : "mlp.down_proj.weight"), Grad(_gpt ? "mlp.c_proj.weight" : "mlp.down_proj.weight"),
            _gpt ? Grad("mlp.c_proj.bias") : null, dAct);
        var h2 = Saved("h2", x.Shape, dt);
        var dH = _ws.Get("d.g.h", x.Shape, dt);
        var dPart = _ws.Get("d.g.part", x.Shape, dt);
        if (_gpt)
        {
            var u = Saved("u", activated.Shape, dt);
            var du = _ws.Get("d.g.u", activated.Shape, dt);
            ops.ActivationBackward(UnaryOp.GeluTanh, u, dAct, du);
            _in.Backward(h2, du, Param("mlp.c_fc.weight"), Grad("mlp.c_fc.weight"), Grad("mlp.c_fc.bias"), dH);
        }
        else
        {
            var gate = Saved("gate", activated.Shape, dt);
            var up = Saved("up", activated.Shape, dt);
            var silu = Saved("silu", activated.Shape, dt);
            var dSilu = _ws.Get("d.g.silu", activated.Shape, dt);
            var dUp = _ws.Get("d.g.up", activated.Shape, dt);
            var dGate = _ws.Get("d.g.gate", activated.Shape, dt);
            ops.Binary(BinaryOp.Mul, dAct, up, dSilu);
            ops.Binary(BinaryOp.Mul, dAct, silu, dUp);
            ops.ActivationBackward(UnaryOp.Silu, gate, dSilu, dGate);
            _in.Backward(h2, dGate, Param("mlp.gate_proj.weight"), Grad("mlp.gate_proj.weight"), null, dH);
            _in.Backward(h2, dUp, Param("mlp.up_proj.weight"), Grad("mlp.up_proj.weight"), null, dPart);
            ops.Binary(BinaryOp.Add, dH, dPart, dH);
        }
        var mid = Saved("mid", x.Shape, dt);
        var (mean2, rstd2) = Stats("2", r, dt);
        _norm2.Backward(dH, mid, Param(Norm2), mean2, rstd2, dPart, Grad(Norm2), _gpt ? Grad("ln_2.bias") : null);
        // dx now holds d(mid): the residual path plus the MLP branch through the norm.
        ops.Binary(BinaryOp.Add, dx, dPart, dx);

        var merged = Saved("merged", new Shape(r, _qWidth), dt);
        var dMerged = _ws.Get("d.g.merged", merged.Shape, dt);
        _out.Backward(merged, dx, Param(_gpt ? "attn.c_proj.weight" : "self_attn.o_proj.weight"), Grad(_gpt ? "attn.c_proj.weight" : "self_attn.o_proj.weight"),
            _gpt ? Grad("attn.c_proj.bias") : null, dMerged);
        var dq = _ws.Get("d.g.q", new Shape(r, _qWidth), dt);
        var dk = _ws.Get("d.g.k", new Shape(r, _kvWidth), dt);
        var dv = _ws.Get("d.g.v", new Shape(r, _kvWidth), dt);
        _attention.Backward(dMerged, dq, dk, dv);
        var h1 = Saved("h1", x.Shape, dt);
        for (int s = 0; s < 3; s++)
        {
            var (w, _) = QkvWeights(s, Param);
            var (wg, bg) = QkvWeights(s, Grad);
            _in.Backward(h1, s == 0 ? dq : s == 1 ? dk : dv, w, wg, bg, s == 0 ? dH : dPart);
            if (s > 0)
            {
                ops.Binary(BinaryOp.Add, dH, dPart, dH);
            }
        }
        var (mean1, rstd1) = Stats("1", r, dt);
        _norm1.Backward(dH, x, Param(Norm1), mean1, rstd1, dPart, Grad(Norm1), _gpt ? Grad("ln_1.bias") : null);
        ops.Binary(BinaryOp.Add, dx, dPart, dx);
    }

    public void Dispose()
    {
        _in.Dispose();
        _out.Dispose();
        _norm1.Dispose();
        _norm2.Dispose();
    }

    private string Norm1 => _gpt ? "ln_1.weight" : "input_layernorm.weight";

    private string Norm2 => _gpt ? "ln_2.weight" : "post_attention_layernorm.weight";

    private Tensor Param(string suffix) => _store.Param(_prefix + suffix);

    private Tensor Grad(string suffix) => _store.Grad(_prefix + suffix);

    private Tensor Saved(string key, Shape shape, DType dtype) => _ws.Get($"{_scope}.{key}", shape, dtype, saved: true);

    private (Tensor Mean, Tensor Rstd) Stats(string which, int rows, DType dtype) =>
        (Saved("mean" + which, new Shape(rows), dtype), Saved("rstd" + which, new Shape(rows), dtype));

    /// <summary>Section s (q, k, v) of the attention input weights and bias, from the parameters or their gradients.</summary>
    private (Tensor Weight, Tensor? Bias) QkvWeights(int s, Func<string, Tensor> of)
    {
        if (!_gpt)
        {
            return (of(s == 0 ? "self_attn.q_proj.weight" : s == 1 ? "self_attn.k_proj.weight" : "self_attn.v_proj.weight"), null);
        }
        var w = of("attn.c_attn.weight");
        var b = of("attn.c_attn.bias");
        int rows = w.Shape[0] / 3, cols = w.Shape[1];
        return (w.View((long)s * rows * cols, new Shape(rows, cols)), b.View((long)s * cols, new Shape(cols)));
    }
}
