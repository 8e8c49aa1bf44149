namespace Hal.Models.Nn;

/// <summary>
/// Where one parameter lives: its name (the Hugging Face tensor name, so checkpoints need no mapping), its shape
/// (the Hugging Face layout), its element offset into the store's slabs, and the layer that owns it.
/// </summary>
/// <param name="Name">Hugging Face tensor name, e.g. <c>transformer.h.0.attn.c_attn.weight</c>.</param>
/// <param name="Shape">Shape as Hugging Face stores it.</param>
/// <param name="Offset">First element in <see cref="ParameterStore.Params"/> and <see cref="ParameterStore.Grads"/>.</param>
/// <param name="Layer">0 = embeddings, 1…L = transformer blocks, L+1 = final norm and LM head.</param>
/// <param name="Decay">Whether weight decay applies (nanoGPT's rule: tensors of two or more dimensions).</param>
public sealed record ParameterInfo(string Name, Shape Shape, long Offset, int Layer, bool Decay)
{
    /// <summary>Number of elements.</summary>
    public long ElementCount => Shape.ElementCount;
}

/// <summary>
/// All parameters of a model in one contiguous slab per role (parameters, gradients) that named tensors view, in
/// declaration order. Layers are declared in forward order, so the parameters of layers ≥ l occupy a suffix of the
/// slab (<see cref="LayerStart"/>): the gradients of a suffix become final together during backward, which is what
/// bucketed data-parallel reduction needs. Build: <see cref="Declare"/> every parameter, then <see cref="Allocate"/>.
/// </summary>
public sealed class ParameterStore : IDisposable
{
    private readonly List<ParameterInfo> _infos = [];
    private readonly Dictionary<string, int> _byName = new(StringComparer.Ordinal);
    private readonly List<Tensor> _paramViews = [];
    private readonly List<Tensor> _gradViews = [];
    private long _count;
    private Tensor? _params;
    private Tensor? _grads;
    private IParameterBacking? _backing;
    private DType _backingDType;

    /// <summary>The parameters in declaration (forward) order.</summary>
    public IReadOnlyList<ParameterInfo> Infos => _infos;

    /// <summary>Total number of parameter elements.</summary>
    public long Count => _count;

    /// <summary>Whether <see cref="Allocate"/> has run (false for a store whose tensors live in chunks: see <see cref="Backing"/>).</summary>
    public bool IsAllocated => _params is not null;

    /// <summary>The chunks that hold the tensors when <see cref="Attach"/> was used instead of <see cref="Allocate"/>; null otherwise.</summary>
    public IParameterBacking? Backing => _backing;

    /// <summary>The parameter slab [Count] in the compute dtype.</summary>
    /// <exception cref="InvalidOperationException">before <see cref="Allocate"/>, or when the tensors live in chunks.</exception>
    public Tensor Params => _params ?? throw NotAllocated();

    /// <summary>The gradient slab [Count] in the compute dtype; backward passes add into it.</summary>
    /// <exception cref="InvalidOperationException">before <see cref="Allocate"/>, or when the tensors live in chunks.</exception>
    public Tensor Grads => _grads ?? throw NotAllocated();

    /// <summary>The compute dtype of the parameters and gradients.</summary>
    public DType DType => _backing is not null ? _backingDType : Params.DType;

    /// <summary>Adds a parameter at the end of the slab.</summary>
    /// <param name="name">Unique Hugging Face name.</param>
    /// <param name="shape">Its shape (non-empty).</param>
    /// <param name="layer">Owning layer; must not be lower than the previous declaration's.</param>
    /// <param name="decay">Weight decay on or off; by default on for tensors of rank ≥ 2.</param>
    /// <exception cref="InvalidOperationException">after <see cref="Allocate"/>, a repeated name, or layers out of order.</exception>
    public ParameterInfo Declare(string name, Shape shape, int layer, bool? decay = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (_params is not null || _backing is not null)
        {
            throw new InvalidOperationException($"parameter '{name}': declare every parameter before Allocate");
        }
        if (_byName.ContainsKey(name))
        {
            throw new InvalidOperationException($"parameter '{name}' is declared twice");
        }
        if (_infos.Count > 0 && layer < _infos[^1].Layer)
        {
            throw new InvalidOperationException($"parameter '{name}' of layer {layer} follows layer {_infos[^1].Layer}: declare layers in forward order");
        }
        if (shape.ElementCount <= 0)
        {
            throw new InvalidOperationException($"parameter '{name}' has no elements ({shape})");
        }
        var info = new ParameterInfo(name, shape, _count, layer, decay ?? shape.Rank >= 2);
        _byName.Add(name, _infos.Count);
        _infos.Add(info);
        _count += shape.ElementCount;
        return info;
    }

    /// <summary>Allocates the parameter slab (uninitialised) and the gradient slab (zeros) on the device of <paramref name="ops"/>.</summary>
    /// <exception cref="InvalidOperationException">called twice or with nothing declared.</exception>
    public void Allocate(Ops ops, DType dtype = DType.F32)
    {
        ArgumentNullException.ThrowIfNull(ops);
        if (_params is not null)
        {
            throw new InvalidOperationException("the parameter store is already allocated");
        }
        if (_count == 0)
        {
            throw new InvalidOperationException("no parameters were declared");
        }
        var shape = new Shape(checked((int)_count));
        _params = ops.Empty(shape, dtype);
        try
        {
            _grads = ops.Zeros(shape, dtype);
        }
        catch
        {
            _params.Dispose();
            _params = null;
            throw;
        }
        foreach (var info in _infos)
        {
            _paramViews.Add(_params.View(info.Offset, info.Shape));
            _gradViews.Add(_grads.View(info.Offset, info.Shape));
        }
    }

    /// <summary>
    /// Instead of <see cref="Allocate"/>: the tensors live in <paramref name="backing"/>'s chunks and
    /// <see cref="Param(int)"/>/<see cref="Grad(int)"/> ask it for device views (the slabs do not exist).
    /// </summary>
    /// <exception cref="InvalidOperationException">already allocated or attached, or nothing declared.</exception>
    public void Attach(IParameterBacking backing, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(backing);
        if (_params is not null || _backing is not null)
        {
            throw new InvalidOperationException("the parameter store is already allocated or attached");
        }
        if (_count == 0)
        {
            throw new InvalidOperationException("no parameters were declared");
        }
        _backing = backing;
        _backingDType = dtype;
    }

    /// <summary>The parameter's metadata.</summary>
    /// <exception cref="KeyNotFoundException">no parameter has that name.</exception>
    public ParameterInfo Info(string name) => _infos[IndexOf(name)];

    /// <summary>Whether a parameter has that name.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>A view of the parameter.</summary>
    public Tensor Param(string name) => Param(IndexOf(name));

    /// <summary>A view of the parameter's gradient.</summary>
    public Tensor Grad(string name) => Grad(IndexOf(name));

    /// <summary>A view of the i-th declared parameter.</summary>
    public Tensor Param(int index) => _backing is not null ? _backing.Param(index) : Allocated(_paramViews)[index];

    /// <summary>A view of the i-th declared parameter's gradient.</summary>
    public Tensor Grad(int index) => _backing is not null ? _backing.Grad(index) : Allocated(_gradViews)[index];

    /// <summary>A view of the parameters at slab elements [offset, offset + shape.ElementCount) (neighbouring parameters of one layer may be viewed as one).</summary>
    public Tensor ParamRange(long offset, Shape shape) => _backing is not null ? _backing.ParamRange(offset, shape) : Params.View(offset, shape);

    /// <summary>A view of the gradients at slab elements [offset, offset + shape.ElementCount).</summary>
    public Tensor GradRange(long offset, Shape shape) => _backing is not null ? _backing.GradRange(offset, shape) : Grads.View(offset, shape);

    /// <summary>The index of the named parameter in <see cref="Infos"/>.</summary>
    /// <exception cref="KeyNotFoundException">no parameter has that name.</exception>
    public int IndexOf(string name) =>
        _byName.TryGetValue(name, out int i) ? i : throw new KeyNotFoundException($"no parameter is named '{name}'");

    /// <summary>First slab element of the parameters of layers ≥ <paramref name="layer"/> (<see cref="Count"/> when none).</summary>
    public long LayerStart(int layer)
    {
        foreach (var info in _infos)
        {
            if (info.Layer >= layer)
            {
                return info.Offset;
            }
        }
        return _count;
    }

    /// <summary>Sets every gradient to zero.</summary>
    public void ZeroGrads(Ops ops)
    {
        if (_backing is not null)
        {
            _backing.ZeroGrads();
            return;
        }
        ops.Fill(Grads, 0);
    }

    private IReadOnlyList<Tensor> Allocated(List<Tensor> views) => _params is null ? throw NotAllocated() : views;

    private InvalidOperationException NotAllocated() => _backing is not null
        ? new("the parameters live in chunks (ZeRO stage 2/3 or offload): there is no whole slab; use Param/Grad inside a layer's Begin/End")
        : new("the parameter store is not allocated yet: call Allocate");

    public void Dispose()
    {
        foreach (var t in _paramViews.Concat(_gradViews))
        {
            t.Dispose();
        }
        _paramViews.Clear();
        _gradViews.Clear();
        _params?.Dispose();
        _grads?.Dispose();
        _params = null;
        _grads = null;
    }
}
