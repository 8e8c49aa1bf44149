using Hal.Backends.Cpu;
using Hal.Models.Checkpoints;
using Hal.Models.Nn;
using Hal.Models.Transformer;

namespace Hal.Models.Tests;

/// <summary>A fresh directory under the system temp directory, deleted with everything in it on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "hal-ckpt-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}

/// <summary>A CPU device and its ops for one test.</summary>
internal sealed class CpuFixture : IDisposable
{
    private readonly IDevice _device = new CpuBackend().Open(0);

    public CpuFixture() => Ops = new Ops(_device);

    public Ops Ops { get; }

    public void Dispose() => _device.Dispose();
}

/// <summary>Parameter stores with the Hugging Face names of a config, declared by hand as the model will.</summary>
internal static class HfStores
{
    public static readonly ModelConfig TinyGpt2 = ModelConfig.Gpt2("tiny-gpt2", layers: 2, heads: 2, channels: 8, vocabSize: 11, contextLength: 6);

    public static readonly ModelConfig TinyLlama = ModelConfig.Llama("tiny-llama", layers: 2, heads: 4, kvHeads: 2, channels: 8, vocabSize: 13, contextLength: 6);

    /// <summary>The parameter names and shapes of <paramref name="config"/>, in forward order with their layers.</summary>
    public static List<(string Name, int[] Shape, int Layer)> Parameters(ModelConfig config)
    {
        int c = config.Channels, f = config.Hidden, v = config.VocabSize, kv = config.KvHeads * config.HeadSize, last = config.Layers + 1;
        var list = new List<(string, int[], int)>();
        if (config.Family == ModelFamily.Gpt2)
        {
            list.Add(("transformer.wte.weight", [v, c], 0));
            list.Add(("transformer.wpe.weight", [config.ContextLength, c], 0));
            for (int i = 0; i < config.Layers; i++)
            {
                string p = $"transformer.h.{i}.";
                list.Add((p + "ln_1.weight", [c], i + 1));
                list.Add((p + "ln_1.bias", [c], i + 1));
                list.Add((p + "attn.c_attn.weight", [c, 3 * c], i + 1));
                list.Add((p + "attn.c_attn.bias", [3 * c], i + 1));
                list.Add((p + "attn.c_proj.weight", [c, c], i + 1));
                list.Add((p + "attn.c_proj.bias", [c], i + 1));
                list.Add((p + "ln_2.weight", [c], i + 1));
                list.Add((p + "ln_2.bias", [c], i + 1));
                list.Add((p + "mlp.c_fc.weight", [c, f], i + 1));
                list.Add((p + "mlp.c_fc.bias", [f], i + 1));
                list.Add((p + "mlp.c_proj.weight", [f, c], i + 1));
                list.Add((p + "mlp.c_proj.bias", [c], i + 1));
            }
            list.Add(("transformer.ln_f.weight", [c], last));
            list.Add(("transformer.ln_f.bias", [c], last));
            return list;
        }
        list.Add(("model.embed_tokens.weight", [v, c], 0));
        for (int i = 0; i < config.Layers; i++)
        {
            string p = $"model.layers.{i}.";
            list.Add((p + "input_layernorm.weight", [c], i + 1));
            list.Add((p + "self_attn.q_proj.weight", [config.Heads * config.HeadSize, c], i + 1));
            list.Add((p + "self_attn.k_proj.weight", [kv, c], i + 1));
            list.Add((p + "self_attn.v_proj.weight", [kv, c], i + 1));
            list.Add((p + "self_attn.o_proj.weight", [c, config.Heads * config.HeadSize], i + 1));
            list.Add((p + "post_attention_layernorm.weight", [c], i + 1));
            list.Add((p + "mlp.gate_proj.weight", [f, c], i + 1));
            list.Add((p + "mlp.up_proj.weight", [f, c], i + 1));
            list.Add((p + "mlp.down_proj.weight", [c, f], i + 1));
        }
        list.Add(("model.norm.weight", [c], last));
        if (!config.TieEmbeddings)
        {
            list.Add(("lm_head.weight", [v, c], last));
        }
        return list;
    }

    /// <summary>An allocated store of <paramref name="config"/>'s parameters, every element set to <paramref name="fill"/>.</summary>
    public static ParameterStore Create(ModelConfig config, Ops ops, DType dtype = DType.F32, double fill = 0)
    {
        var store = new ParameterStore();
        foreach (var (name, shape, layer) in Parameters(config))
        {
            store.Declare(name, new Shape(shape), layer);
        }
        store.Allocate(ops, dtype);
        ops.Fill(store.Params, fill);
        return store;
    }

    /// <summary>Deterministic values for a parameter: its index in the store plus a small position term, exact in BF16 for fewer than 32 parameters (5 + 3 significant bits).</summary>
    public static double Value(int parameter, long element) => parameter + ((element % 8) / 8.0);

    /// <summary>Sets every parameter to <see cref="Value"/> (its dtype represents these exactly: at most 8 significant bits).</summary>
    public static void FillKnown(ParameterStore store, Ops ops)
    {
        for (int i = 0; i < store.Infos.Count; i++)
        {
            var t = store.Param(i);
            var values = new double[t.ElementCount];
            for (long e = 0; e < values.Length; e++)
            {
                values[e] = Value(i, e);
            }
            ops.Upload(values, t);
        }
    }

    /// <summary>The store's parameters as named tensors.</summary>
    public static List<NamedTensor> Named(ParameterStore store) =>
        store.Infos.Select((info, i) => new NamedTensor(info.Name, store.Param(i))).ToList();
}
