using Hal.Models.Checkpoints;
using Hal.Models.Nn;
using Hal.Models.Transformer;

namespace Hal.Models.Tests;

// Hugging Face directories: config.json of both families, and weights loaded by name into a ParameterStore.
public sealed class CheckpointHuggingFaceTests
{
    private const string Gpt2Config = """
        {
          "activation_function": "gelu_new",
          "architectures": ["GPT2LMHeadModel"],
          "attn_pdrop": 0.1,
          "bos_token_id": 50256,
          "layer_norm_epsilon": 1e-05,
          "model_type": "gpt2",
          "n_ctx": 1024,
          "n_embd": 768,
          "n_head": 12,
          "n_inner": null,
          "n_layer": 12,
          "n_positions": 1024,
          "vocab_size": 50257
        }
        """;

    private const string LlamaConfig = """
        {
          "architectures": ["LlamaForCausalLM"],
          "hidden_act": "silu",
          "hidden_size": 2048,
          "intermediate_size": 5632,
          "max_position_embeddings": 2048,
          "model_type": "llama",
          "num_attention_heads": 32,
          "num_hidden_layers": 22,
          "num_key_value_heads": 4,
          "rms_norm_eps": 1e-05,
          "rope_scaling": null,
          "rope_theta": 10000.0,
          "tie_word_embeddings": false,
          "torch_dtype": "bfloat16",
          "vocab_size": 32000
        }
        """;

    private static string ModelDir(TempDir dir, string name, string config)
    {
        string path = dir[name];
        Directory.CreateDirectory(path);
        File.WriteAllText(Path.Combine(path, "config.json"), config);
        return path;
    }

    [Fact]
    public void Gpt2ConfigIsRead()
    {
        using var dir = new TempDir();
        var config = HuggingFace.ReadConfig(ModelDir(dir, "gpt2", Gpt2Config));
        Assert.Equal(ModelConfig.Named("gpt2-124m") with { Name = "gpt2" }, config);
        Assert.Equal(124_439_808, config.ParameterCount);
    }

    [Fact]
    public void LlamaConfigIsRead()
    {
        using var dir = new TempDir();
        var config = HuggingFace.ReadConfig(ModelDir(dir, "TinyLlama-1.1B", LlamaConfig));
        var expected = new ModelConfig
        {
            Name = "TinyLlama-1.1B",
            Family = ModelFamily.Llama,
            Layers = 22,
            Heads = 32,
            KvHeads = 4,
            Channels = 2048,
            Hidden = 5632,
            VocabSize = 32000,
            ContextLength = 2048,
            NormEps = 1e-5,
            RopeTheta = 10000,
            TieEmbeddings = false,
        };
        Assert.Equal(expected, config);
    }

    [Fact]
    public void LlamaDefaultsAreHuggingFaces()
    {
        using var dir = new TempDir();
        string json = """{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"num_hidden_layers":1,"vocab_size":10,"max_position_embeddings":16}""";
        var config = HuggingFace.ReadConfig(ModelDir(dir, "m", json));
        Assert.Equal(4, config.KvHeads);
        Assert.Equal(1e-6, config.NormEps);
        Assert.Equal(10000, config.RopeTheta);
        Assert.False(config.TieEmbeddings);
    }

    [Theory]
    [InlineData("""{"model_type":"bert"}""", "model_type 'bert' is not supported")]
    [InlineData("""{"n_layer":2}""", "model_type '(none)' is not supported")]
    [InlineData("""{"model_type":"gpt2","n_layer":2,"n_head":2,"n_embd":8,"n_positions":4}""", "field 'vocab_size' is missing")]
    [InlineData("""{"model_type":"gpt2","n_layer":2.5,"n_head":2,"n_embd":8,"n_positions":4,"vocab_size":5}""", "field 'n_layer' is 2.5, not an integer")]
    [InlineData("""{"model_type":"gpt2","n_layer":2,"n_head":3,"n_embd":8,"n_positions":4,"vocab_size":5}""", "not divisible by heads 3")]
    [InlineData("""{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"num_hidden_layers":1,"vocab_size":10,"max_position_embeddings":16,"rope_scaling":{"type":"linear","factor":2.0}}""", "rope_scaling is not supported")]
    [InlineData("""{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_attention_heads":4,"num_hidden_layers":1,"vocab_size":10,"max_position_embeddings":16,"head_dim":32}""", "head_dim 32")]
    [InlineData("""{"model_type":"llama",""", "not valid JSON")]
    public void BadConfigsAreReported(string json, string expectedText)
    {
        using var dir = new TempDir();
        string path = ModelDir(dir, "m", json);
        var e = Assert.Throws<CheckpointException>(() => HuggingFace.ReadConfig(path));
        Assert.Contains(Path.Combine(path, "config.json"), e.Message);
        Assert.Contains(expectedText, e.Message);
    }

    [Fact]
    public void AMissingConfigIsReported()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<CheckpointException>(() => HuggingFace.ReadConfig(dir.Path));
        Assert.Contains("config.json: missing", e.Message);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("llama-tied")]
    [InlineData("gpt2-inner")]
    public void WrittenConfigsReadBack(string kind)
    {
        using var dir = new TempDir();
        var config = kind switch
        {
            "gpt2" => HfStores.TinyGpt2,
            "gpt2-inner" => HfStores.TinyGpt2 with { Hidden = 20, NormEps = 1e-6 },
            "llama" => HfStores.TinyLlama with { RopeTheta = 500000 },
            _ => HfStores.TinyLlama with { TieEmbeddings = true },
        };
        HuggingFace.WriteConfig(dir["out"], config);
        Assert.Equal(config with { Name = "out" }, HuggingFace.ReadConfig(dir["out"]));
        // The name is the directory's also when the path ends in a separator.
        Assert.Equal("out", HuggingFace.ReadConfig(dir["out"] + Path.DirectorySeparatorChar).Name);
    }

    /// <summary>Writes the store's parameters as a Hugging Face file, renaming and adding tensors on the way.</summary>
    private static void WriteWeights(string path, ParameterStore store, Ops ops, Func<string, string?> rename, IEnumerable<NamedTensor>? extra = null, DType storeAs = DType.F32)
    {
        var tensors = new List<NamedTensor>();
        for (int i = 0; i < store.Infos.Count; i++)
        {
            if (rename(store.Infos[i].Name) is { } name)
            {
                tensors.Add(new NamedTensor(name, store.Param(i)));
            }
        }
        tensors.AddRange(extra ?? []);
        SafeTensors.Write(path, tensors, ops, new Dictionary<string, string> { ["format"] = "pt" }, storeAs);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Gpt2WeightsLoadWithOrWithoutThePrefixIgnoringBuffers(bool prefixed)
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyGpt2;
        using var source = HfStores.Create(config, ops);
        HfStores.FillKnown(source, ops);
        // The buffers transformers saves for GPT-2 (a causal mask per block and its fill value) and a tied head.
        using var mask = ops.Zeros(new Shape(1, 1, 6, 6), DType.F32);
        using var maskedBias = ops.Full(new Shape(), -1e4, DType.F32);
        using var head = ops.Zeros(new Shape(config.VocabSize, config.Channels), DType.F32);
        string p = prefixed ? "transformer." : "";
        var extra = new List<NamedTensor>
        {
            new($"{p}h.0.attn.bias", mask), new($"{p}h.1.attn.bias", mask),
            new($"{p}h.0.attn.masked_bias", maskedBias), new("lm_head.weight", head),
        };
        string modelDir = ModelDir(dir, "gpt2", "{}");
        WriteWeights(Path.Combine(modelDir, "model.safetensors"), source, ops,
            name => prefixed ? name : name["transformer.".Length..], extra, DType.BF16);

        using var target = HfStores.Create(config, ops, fill: -7);
        HuggingFace.LoadWeights(modelDir, target, ops);
        // HfStores.Value is exact in BF16, the stored dtype: the load is exact.
        Assert.Equal(ops.ToDoubleArray(source.Params), ops.ToDoubleArray(target.Params));
    }

    [Fact]
    public void AMissingTensorIsListedAndNothingIsCopied()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyGpt2;
        using var source = HfStores.Create(config, ops, fill: 1);
        string modelDir = ModelDir(dir, "gpt2", "{}");
        WriteWeights(Path.Combine(modelDir, "model.safetensors"), source, ops,
            name => name is "transformer.h.1.mlp.c_fc.bias" or "transformer.ln_f.weight" ? null : name);

        using var target = HfStores.Create(config, ops, fill: -7);
        var e = Assert.Throws<CheckpointException>(() => HuggingFace.LoadWeights(modelDir, target, ops));
        Assert.Contains("2 missing tensors: transformer.h.1.mlp.c_fc.bias, transformer.ln_f.weight", e.Message);
        Assert.Contains(modelDir, e.Message);
        Assert.All(ops.ToDoubleArray(target.Params), v => Assert.Equal(-7.0, v));
    }

    [Fact]
    public void MisshapenAndUnknownTensorsAreListed()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyLlama;
        using var source = HfStores.Create(config, ops);
        using var wrong = ops.Zeros(new Shape(config.Channels, config.VocabSize), DType.F32);
        using var stray = ops.Zeros(new Shape(3), DType.F32);
        string modelDir = ModelDir(dir, "llama", "{}");
        WriteWeights(Path.Combine(modelDir, "model.safetensors"), source, ops,
            name => name == "lm_head.weight" ? null : name,
            [new("lm_head.weight", wrong), new("model.layers.0.self_attn.rotary_emb.inv_freq", stray), new("model.extra", stray)]);
        using var target = HfStores.Create(config, ops);
        var e = Assert.Throws<CheckpointException>(() => HuggingFace.LoadWeights(modelDir, target, ops));
        Assert.Contains("lm_head.weight: file [8, 13], model [13, 8]", e.Message);
        Assert.Contains("unknown tensors: model.extra", e.Message);
        Assert.DoesNotContain("inv_freq", e.Message);
    }

    [Fact]
    public void ATiedLlamaIgnoresAStoredHead()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyLlama with { TieEmbeddings = true };
        using var source = HfStores.Create(config, ops);
        HfStores.FillKnown(source, ops);
        using var head = ops.Zeros(new Shape(config.VocabSize, config.Channels), DType.F32);
        string modelDir = ModelDir(dir, "llama", "{}");
        WriteWeights(Path.Combine(modelDir, "model.safetensors"), source, ops, name => name, [new("lm_head.weight", head)]);
        using var target = HfStores.Create(config, ops);
        HuggingFace.LoadWeights(modelDir, target, ops);
        Assert.Equal(ops.ToDoubleArray(source.Params), ops.ToDoubleArray(target.Params));
    }

    [Fact]
    public void ShardsListedByTheIndexAreAllRead()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyLlama;
        using var source = HfStores.Create(config, ops);
        HfStores.FillKnown(source, ops);
        string modelDir = ModelDir(dir, "llama", "{}");
        bool First(string name) => name.StartsWith("model.embed", StringComparison.Ordinal) || name.StartsWith("model.layers.0.", StringComparison.Ordinal);
        string shard1 = "model-00001-of-00002.safetensors", shard2 = "model-00002-of-00002.safetensors";
        WriteWeights(Path.Combine(modelDir, shard1), source, ops, name => First(name) ? name : null, storeAs: DType.F16);
        WriteWeights(Path.Combine(modelDir, shard2), source, ops, name => First(name) ? null : name);
        var map = string.Join(",", source.Infos.Select(i => $"\"{i.Name}\":\"{(First(i.Name) ? shard1 : shard2)}\""));
        File.WriteAllText(Path.Combine(modelDir, "model.safetensors.index.json"), "{\"metadata\":{\"total_size\":0},\"weight_map\":{" + map + "}}");

        using var target = HfStores.Create(config, ops);
        HuggingFace.LoadWeights(modelDir, target, ops);
        // HfStores.Value has at most 8 significant bits, exact in F16 (11): the load is exact.
        Assert.Equal(ops.ToDoubleArray(source.Params), ops.ToDoubleArray(target.Params));
    }

    [Fact]
    public void ADirectoryWithoutSafetensorsIsReported()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        using var target = HfStores.Create(HfStores.TinyGpt2, cpu.Ops);
        File.WriteAllText(dir["pytorch_model.bin"], "");
        var e = Assert.Throws<CheckpointException>(() => HuggingFace.LoadWeights(dir.Path, target, cpu.Ops));
        Assert.Contains("neither model.safetensors nor model.safetensors.index.json", e.Message);
    }
}
