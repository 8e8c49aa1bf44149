using System.Text.Json;
using Hal.Models.Nn;
using Hal.Models.Transformer;

namespace Hal.Models.Checkpoints;

/// <summary>
/// Hugging Face model directories: <c>config.json</c> (model_type gpt2 or llama) to and from <see cref="ModelConfig"/>,
/// and the weights of <c>model.safetensors</c> (or the shards listed by <c>model.safetensors.index.json</c>) into a
/// <see cref="ParameterStore"/>, whose parameter names are already the Hugging Face names.
/// </summary>
public static class HuggingFace
{
    /// <summary>The config file of a model directory.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>The single weights file of a model directory.</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>The index that maps tensor names to weight shards.</summary>
    public const string WeightsIndexFile = "model.safetensors.index.json";

    /// <summary>
    /// Reads <c>config.json</c>: model_type gpt2 (n_layer, n_head, n_embd, vocab_size, n_positions; optional n_inner
    /// [default 4·n_embd] and layer_norm_epsilon [1e-5]) or llama (num_hidden_layers, num_attention_heads, hidden_size,
    /// intermediate_size, vocab_size, max_position_embeddings; optional num_key_value_heads [= heads], rms_norm_eps
    /// [1e-6], rope_theta [10 000], tie_word_embeddings [false], the defaults Hugging Face itself applies).
    /// The config's <see cref="ModelConfig.Name"/> is the directory's name.
    /// </summary>
    /// <exception cref="CheckpointException">no config.json, bad JSON, an unsupported model_type or feature, a missing field, or a shape that does not validate.</exception>
    public static ModelConfig ReadConfig(string dir)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        string path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path))
        {
            throw new CheckpointException($"{path}: missing (a model directory needs config.json)");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path}: not valid JSON ({e.Message})", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"{path}: JSON {root.ValueKind}, not an object");
            }
            string name = new DirectoryInfo(Path.GetFullPath(dir)).Name;
            string modelType = root.TryGetProperty("model_type", out var mt) && mt.ValueKind == JsonValueKind.String ? mt.GetString()! : "(none)";
            var config = modelType switch
            {
                "gpt2" => ReadGpt2(path, root, name),
                "llama" => ReadLlama(path, root, name),
                _ => throw new CheckpointException($"{path}: model_type '{modelType}' is not supported (gpt2 or llama)"),
            };
            try
            {
                config.Validate();
            }
            catch (ArgumentException e)
            {
                throw new CheckpointException($"{path}: {e.Message}", e);
            }
            return config;
        }
    }

    /// <summary>Writes <c>config.json</c> in the Hugging Face layout of the config's family (atomically), creating the directory.</summary>
    public static void WriteConfig(string dir, ModelConfig config)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        ArgumentNullException.ThrowIfNull(config);
        Directory.CreateDirectory(dir);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            if (config.Family == ModelFamily.Gpt2)
            {
                json.WriteStartArray("architectures");
                json.WriteStringValue("GPT2LMHeadModel");
                json.WriteEndArray();
                json.WriteString("model_type", "gpt2");
                json.WriteNumber("n_layer", config.Layers);
                json.WriteNumber("n_head", config.Heads);
                json.WriteNumber("n_embd", config.Channels);
                if (config.Hidden == 4 * config.Channels)
                {
                    json.WriteNull("n_inner");
                }
                else
                {
                    json.WriteNumber("n_inner", config.Hidden);
                }
                json.WriteNumber("vocab_size", config.VocabSize);
                json.WriteNumber("n_positions", config.ContextLength);
                json.WriteNumber("n_ctx", config.ContextLength);
                json.WriteNumber("layer_norm_epsilon", config.NormEps);
                json.WriteString("activation_function", "gelu_new");
                json.WriteBoolean("tie_word_embeddings", true);
            }
            else
            {
                json.WriteStartArray("architectures");
                json.WriteStringValue("LlamaForCausalLM");
                json.WriteEndArray();
                json.WriteString("model_type", "llama");
                json.WriteNumber("num_hidden_layers", config.Layers);
                json.WriteNumber("num_attention_heads", config.Heads);
                json.WriteNumber("num_key_value_heads", config.KvHeads);
                json.WriteNumber("hidden_size", config.Channels);
                json.WriteNumber("head_dim", config.HeadSize);
                json.WriteNumber("intermediate_size", config.Hidden);
                json.WriteNumber("vocab_size", config.VocabSize);
                json.WriteNumber("max_position_embeddings", config.ContextLength);
                json.WriteNumber("rms_norm_eps", config.NormEps);
                json.WriteNumber("rope_theta", config.RopeTheta);
                json.WriteBoolean("tie_word_embeddings", config.TieEmbeddings);
                json.WriteString("hidden_act", "silu");
            }
            json.WriteString("torch_dtype", "float32");
            json.WriteEndObject();
        }
        AtomicFile.Write(Path.Combine(dir, ConfigFile), stream => stream.Write(buffer.GetBuffer(), 0, (int)buffer.Length));
    }

    /// <summary>
    /// Loads the weights of <paramref name="dir"/> into the store's <see cref="ParameterStore.Params"/> by name.
    /// GPT-2 names may lack the <c>transformer.</c> prefix; the non-parameter buffers <c>*.attn.bias</c>,
    /// <c>*.attn.masked_bias</c>, <c>*.rotary_emb.inv_freq</c> and a tied <c>lm_head.weight</c> are ignored;
    /// F32/F16/BF16/F64 convert to the store's dtype. Nothing is copied unless every parameter is present with its shape.
    /// </summary>
    /// <exception cref="CheckpointException">no weights file, or parameters missing, of another shape or dtype, or unknown tensors (all listed).</exception>
    public static void LoadWeights(string dir, ParameterStore store, Ops ops)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(ops);
        var readers = new List<SafeTensorsReader>();
        try
        {
            foreach (string file in WeightFiles(dir))
            {
                readers.Add(SafeTensors.Open(file));
            }
            var plan = new Dictionary<string, (SafeTensorsReader Reader, string FileName)>(StringComparer.Ordinal);
            var problems = new ProblemList();
            foreach (var reader in readers)
            {
                foreach (var (fileName, (dtype, shape)) in reader.Tensors)
                {
                    string? target = store.Contains(fileName) ? fileName
                        : store.Contains("transformer." + fileName) ? "transformer." + fileName
                        : null;
                    if (target is null)
                    {
                        if (!IsIgnored(fileName, store))
                        {
                            problems.Add("unknown tensors", $"{fileName} ({Path.GetFileName(reader.FilePath)})");
                        }
                        continue;
                    }
                    if (!plan.TryAdd(target, (reader, fileName)))
                    {
                        problems.Add("tensors given twice", target);
                        continue;
                    }
                    var info = store.Info(target);
                    if (!SameShape(shape, info.Shape))
                    {
                        problems.Add("tensors of another shape", $"{target}: file {SafeTensorsReader.FormatShape(shape)}, model {info.Shape}");
                    }
                    else if (SafeTensors.ParseDType(dtype) is not { } d || !d.IsFloatingPoint())
                    {
                        problems.Add("tensors of a non-float dtype", $"{target}: {dtype}");
                    }
                }
            }
            foreach (var info in store.Infos)
            {
                if (!plan.ContainsKey(info.Name))
                {
                    problems.Add("missing tensors", info.Name);
                }
            }
            problems.ThrowIfAny($"{dir}: the weights do not fit the model");
            for (int i = 0; i < store.Infos.Count; i++)
            {
                var (reader, fileName) = plan[store.Infos[i].Name];
                reader.ReadInto(fileName, store.Param(i), ops);
            }
        }
        finally
        {
            foreach (var reader in readers)
            {
                reader.Dispose();
            }
        }
    }

    private static IReadOnlyList<string> WeightFiles(string dir)
    {
        string single = Path.Combine(dir, WeightsFile);
        if (File.Exists(single))
        {
            return [single];
        }
        string index = Path.Combine(dir, WeightsIndexFile);
        if (!File.Exists(index))
        {
            throw new CheckpointException(
                $"{dir}: neither {WeightsFile} nor {WeightsIndexFile} is there (pytorch_model.bin is not read: convert it to safetensors)");
        }
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(index));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"{index}: no weight_map object");
            }
            var files = new List<string>();
            foreach (var entry in map.EnumerateObject())
            {
                string? shard = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString() : null;
                if (string.IsNullOrEmpty(shard) || Path.GetFileName(shard) != shard)
                {
                    throw new CheckpointException($"{index}: weight_map entry '{entry.Name}' does not name a file in the directory");
                }
                string path = Path.Combine(dir, shard);
                if (!files.Contains(path))
                {
                    files.Add(path);
                }
            }
            return files;
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{index}: not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>Tensors a Hugging Face file may hold that are not parameters: attention masks, rotary tables, a tied head.</summary>
    private static bool IsIgnored(string name, ParameterStore store) =>
        name.EndsWith(".attn.bias", StringComparison.Ordinal)
        || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
        || name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)
        || (name == "lm_head.weight" && !store.Contains(name));

    internal static bool SameShape(long[] file, Shape model) =>
        file.Length == model.Rank && file.Select((d, i) => d == model[i]).All(same => same);

    private static ModelConfig ReadGpt2(string path, JsonElement root, string name)
    {
        int channels = RequiredInt(path, root, "n_embd");
        if (root.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.False)
        {
            throw new CheckpointException($"{path}: a GPT-2 with an untied head (tie_word_embeddings false) is not supported");
        }
        return new ModelConfig
        {
            Name = name,
            Family = ModelFamily.Gpt2,
            Layers = RequiredInt(path, root, "n_layer"),
            Heads = RequiredInt(path, root, "n_head"),
            KvHeads = RequiredInt(path, root, "n_head"),
            Channels = channels,
            Hidden = OptionalInt(path, root, "n_inner") ?? 4 * channels,
            VocabSize = RequiredInt(path, root, "vocab_size"),
            ContextLength = RequiredInt(path, root, "n_positions"),
            NormEps = OptionalDouble(path, root, "layer_norm_epsilon") ?? 1e-5,
            TieEmbeddings = true,
        };
    }

    private static ModelConfig ReadLlama(string path, JsonElement root, string name)
    {
        int heads = RequiredInt(path, root, "num_attention_heads");
        int channels = RequiredInt(path, root, "hidden_size");
        if (OptionalInt(path, root, "head_dim") is { } headDim && headDim * heads != channels)
        {
            throw new CheckpointException($"{path}: head_dim {headDim} × {heads} heads ≠ hidden_size {channels}, which is not supported");
        }
        if (root.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind != JsonValueKind.Null)
        {
            throw new CheckpointException($"{path}: rope_scaling is not supported (only plain rotary embeddings)");
        }
        return new ModelConfig
        {
            Name = name,
            Family = ModelFamily.Llama,
            Layers = RequiredInt(path, root, "num_hidden_layers"),
            Heads = heads,
            KvHeads = OptionalInt(path, root, "num_key_value_heads") ?? heads,
            Channels = channels,
            Hidden = RequiredInt(path, root, "intermediate_size"),
            VocabSize = RequiredInt(path, root, "vocab_size"),
            ContextLength = RequiredInt(path, root, "max_position_embeddings"),
            NormEps = OptionalDouble(path, root, "rms_norm_eps") ?? 1e-6,
            RopeTheta = OptionalDouble(path, root, "rope_theta") ?? 10000,
            TieEmbeddings = root.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True,
        };
    }

    private static int RequiredInt(string path, JsonElement root, string field) =>
        OptionalInt(path, root, field) ?? throw new CheckpointException($"{path}: field '{field}' is missing");

    private static int? OptionalInt(string path, JsonElement root, string field)
    {
        if (!root.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int result))
        {
            throw new CheckpointException($"{path}: field '{field}' is {value.GetRawText()}, not an integer");
        }
        return result;
    }

    private static double? OptionalDouble(string path, JsonElement root, string field)
    {
        if (!root.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Number)
        {
            throw new CheckpointException($"{path}: field '{field}' is {value.GetRawText()}, not a number");
        }
        return value.GetDouble();
    }
}
