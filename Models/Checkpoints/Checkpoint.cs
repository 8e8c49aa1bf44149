using Hal.Models.Nn;
using Hal.Models.Transformer;

namespace Hal.Models.Checkpoints;

/// <summary>
/// Training checkpoints. Layout: <c>OUT/step-00000100/</c> holding <c>config.json</c> (Hugging Face style, so a step
/// directory is also an <c>--init</c> source), <c>model.safetensors</c> (weights by Hugging Face name, F32),
/// <c>optimizer.safetensors</c> and <c>trainer.json</c> (<see cref="CheckpointState"/>); <c>OUT/latest</c> is a
/// one-line file naming the newest step directory. A step directory is built under a temporary name and renamed
/// into place, and <c>latest</c> is replaced by a rename, so a crash at any point leaves the previous checkpoint
/// whole and <c>latest</c> naming it.
/// </summary>
public static class Checkpoint
{
    /// <summary>The file naming the newest step directory.</summary>
    public const string LatestFile = "latest";

    /// <summary>Model weights by Hugging Face name.</summary>
    public const string ModelFile = "model.safetensors";

    /// <summary>Optimizer state tensors.</summary>
    public const string OptimizerFile = "optimizer.safetensors";

    /// <summary>The <see cref="CheckpointState"/>.</summary>
    public const string StateFile = "trainer.json";

    /// <summary>The store's parameters as named tensors (their Hugging Face names, declaration order), for <see cref="Save"/> and <see cref="Load"/>.</summary>
    public static IReadOnlyList<NamedTensor> ParametersOf(ParameterStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        var list = new NamedTensor[store.Infos.Count];
        for (int i = 0; i < list.Length; i++)
        {
            list[i] = new NamedTensor(store.Infos[i].Name, store.Param(i));
        }
        return list;
    }

    /// <summary>The step directory name of <paramref name="step"/>: <c>step-00000100</c>.</summary>
    public static string StepDirectoryName(long step) => $"step-{step:D8}";

    /// <summary>
    /// Writes a checkpoint of step <c>state.Step</c> under <paramref name="outDir"/>: <c>outDir/step-{step:D8}/</c>
    /// with config.json, model.safetensors (F32), optimizer.safetensors and trainer.json; built in a temporary sibling
    /// directory and renamed into place, then <c>outDir/latest</c> replaced atomically. Stale temporaries of earlier
    /// interrupted saves are deleted afterwards. An existing directory of the same step is replaced.
    /// </summary>
    /// <returns>The step directory.</returns>
    /// <exception cref="ArgumentException">repeated tensor names or a negative step.</exception>
    /// <exception cref="ObjectDisposedException">a tensor was disposed; the previous checkpoint and <c>latest</c> are untouched.</exception>
    public static string Save(string outDir, ModelConfig config, IReadOnlyList<NamedTensor> model, IReadOnlyList<NamedTensor> optimizer, CheckpointState state, Ops ops)
    {
        ArgumentException.ThrowIfNullOrEmpty(outDir);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(ops);
        return SaveCore(outDir, config, state, (building, metadata) =>
        {
            SafeTensors.Write(Path.Combine(building, ModelFile), model, ops, metadata, DType.F32);
            SafeTensors.Write(Path.Combine(building, OptimizerFile), optimizer, ops, metadata);
        });
    }

    /// <summary>
    /// As <see cref="Save"/>, from host fp32 tensors: the model states of a chunked (ZeRO 2/3, offload) run gathered
    /// tensor by tensor. The same files and names, so either kind of run resumes from either kind of checkpoint.
    /// </summary>
    public static string SaveHost(string outDir, ModelConfig config, IReadOnlyList<HostTensor> model, IReadOnlyList<HostTensor> optimizer, CheckpointState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        return SaveCore(outDir, config, state, (building, metadata) =>
        {
            SafeTensors.WriteHost(Path.Combine(building, ModelFile), model, metadata);
            SafeTensors.WriteHost(Path.Combine(building, OptimizerFile), optimizer, metadata);
        });
    }

    private static string SaveCore(string outDir, ModelConfig config, CheckpointState state, Action<string, Dictionary<string, string>> writeTensors)
    {
        ArgumentException.ThrowIfNullOrEmpty(outDir);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentOutOfRangeException.ThrowIfNegative(state.Step);
        string root = Path.GetFullPath(outDir);
        Directory.CreateDirectory(root);
        string stepName = StepDirectoryName(state.Step);
        string stepDir = Path.Combine(root, stepName);
        string building = AtomicFile.TempSibling(stepDir);
        try
        {
            Directory.CreateDirectory(building);
            HuggingFace.WriteConfig(building, config);
            var metadata = new Dictionary<string, string> { ["format"] = "pt", ["step"] = state.Step.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            writeTensors(building, metadata);
            AtomicFile.WriteText(Path.Combine(building, StateFile), CheckpointStateJson.Serialize(state));
            MoveIntoPlace(building, stepDir);
        }
        catch
        {
            AtomicFile.TryDelete(building);
            throw;
        }
        AtomicFile.WriteText(Path.Combine(root, LatestFile), stepName + "\n");
        DeleteStaleTemporaries(root);
        return stepDir;
    }

    /// <summary>
    /// <paramref name="dir"/> is a step directory (it holds trainer.json) or an output directory with <c>latest</c>.
    /// </summary>
    /// <returns>The resolved step directory.</returns>
    /// <exception cref="CheckpointException">the directory is missing, or is neither kind, or <c>latest</c> names a directory that is not there.</exception>
    public static string Resolve(string dir)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        string full = Path.GetFullPath(dir);
        if (!Directory.Exists(full))
        {
            throw new CheckpointException($"{dir}: no such checkpoint directory");
        }
        string latest = Path.Combine(full, LatestFile);
        if (File.Exists(latest))
        {
            string name = File.ReadAllText(latest).Trim();
            if (name.Length == 0 || Path.GetFileName(name) != name)
            {
                throw new CheckpointException($"{latest}: expected one line naming a step directory, found '{name}'");
            }
            string stepDir = Path.Combine(full, name);
            if (!Directory.Exists(stepDir))
            {
                throw new CheckpointException($"{latest}: names '{name}', which is not in {full}");
            }
            return stepDir;
        }
        if (File.Exists(Path.Combine(full, StateFile)))
        {
            return full;
        }
        throw new CheckpointException($"{dir}: not a checkpoint (no '{LatestFile}' file naming a step directory, and no {StateFile})");
    }

    /// <summary>
    /// Reads config and state of <paramref name="stepDir"/> and copies its tensors into <paramref name="model"/> and
    /// <paramref name="optimizer"/> (same names and shapes as saved; dtypes convert among F32/F16/BF16/F64). Nothing
    /// is copied unless every check passes.
    /// </summary>
    /// <exception cref="CheckpointException">names the file and what is wrong: a missing file, truncated or corrupt
    /// data, tensors missing, extra or of another shape, a config that differs from <paramref name="expected"/>
    /// (naming the field), or an unknown format version.</exception>
    public static CheckpointState Load(string stepDir, ModelConfig expected, IReadOnlyList<NamedTensor> model, IReadOnlyList<NamedTensor> optimizer, Ops ops)
    {
        ArgumentException.ThrowIfNullOrEmpty(stepDir);
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(ops);
        var state = CheckFiles(stepDir, expected);
        using var modelReader = SafeTensors.Open(Path.Combine(stepDir, ModelFile));
        using var optimizerReader = SafeTensors.Open(Path.Combine(stepDir, OptimizerFile));
        CheckTensors(modelReader, model);
        CheckTensors(optimizerReader, optimizer);
        foreach (var t in model)
        {
            modelReader.ReadInto(t.Name, t.Tensor, ops);
        }
        foreach (var t in optimizer)
        {
            optimizerReader.ReadInto(t.Name, t.Tensor, ops);
        }
        return state;
    }

    /// <summary>The step directory holds every file and a configuration equal to <paramref name="expected"/>; returns its trainer state.</summary>
    private static CheckpointState CheckFiles(string stepDir, ModelConfig expected)
    {
        ArgumentException.ThrowIfNullOrEmpty(stepDir);
        ArgumentNullException.ThrowIfNull(expected);
        if (!Directory.Exists(stepDir))
        {
            throw new CheckpointException($"{stepDir}: no such checkpoint directory");
        }
        foreach (string file in new[] { HuggingFace.ConfigFile, ModelFile, OptimizerFile, StateFile })
        {
            string path = Path.Combine(stepDir, file);
            if (!File.Exists(path))
            {
                throw new CheckpointException($"{path}: missing (a checkpoint holds {HuggingFace.ConfigFile}, {ModelFile}, {OptimizerFile} and {StateFile})");
            }
        }
        var state = CheckpointStateJson.Read(Path.Combine(stepDir, StateFile));
        var config = HuggingFace.ReadConfig(stepDir);
        var differences = ConfigDifferences(config, expected);
        if (differences.Count > 0)
        {
            throw new CheckpointException(
                $"{Path.Combine(stepDir, HuggingFace.ConfigFile)}: the checkpoint's model differs from the one being trained: {string.Join("; ", differences)}");
        }
        return state;
    }

    /// <summary>
    /// As <see cref="Load"/>, into host fp32 arrays: <paramref name="read"/> is called with a reader of the model file
    /// and one of the optimizer file after the files, the configuration and the tensor names were checked against
    /// <paramref name="modelNames"/> and <paramref name="optimizerNames"/>.
    /// </summary>
    public static CheckpointState LoadHost(string stepDir, ModelConfig expected, IReadOnlyList<(string Name, Shape Shape)> modelNames,
        IReadOnlyList<(string Name, Shape Shape)> optimizerNames, Action<SafeTensorsReader, SafeTensorsReader> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        var state = CheckFiles(stepDir, expected);
        using var modelReader = SafeTensors.Open(Path.Combine(stepDir, ModelFile));
        using var optimizerReader = SafeTensors.Open(Path.Combine(stepDir, OptimizerFile));
        CheckTensorNames(modelReader, modelNames);
        CheckTensorNames(optimizerReader, optimizerNames);
        read(modelReader, optimizerReader);
        return state;
    }

    /// <summary>
    /// The model config of a checkpoint (<paramref name="dir"/> as for <see cref="Resolve"/>); its name is the one
    /// recorded in trainer.json when there is one, else the step directory's.
    /// </summary>
    /// <exception cref="CheckpointException">as for <see cref="Resolve"/> and <see cref="HuggingFace.ReadConfig"/>.</exception>
    public static ModelConfig ReadConfig(string dir)
    {
        string stepDir = Resolve(dir);
        var config = HuggingFace.ReadConfig(stepDir);
        string statePath = Path.Combine(stepDir, StateFile);
        if (File.Exists(statePath) && CheckpointStateJson.Read(statePath).Model is { Length: > 0 } name)
        {
            config = config with { Name = name };
        }
        return config;
    }

    /// <summary>The structural fields in which two configs differ ("layers: checkpoint 2, expected 4"); names are not compared.</summary>
    public static IReadOnlyList<string> ConfigDifferences(ModelConfig checkpoint, ModelConfig expected)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentNullException.ThrowIfNull(expected);
        var differences = new List<string>();
        void Compare<T>(string field, T a, T b)
        {
            if (!EqualityComparer<T>.Default.Equals(a, b))
            {
                differences.Add($"{field}: checkpoint {a}, expected {b}");
            }
        }
        Compare("family", checkpoint.Family, expected.Family);
        Compare("layers", checkpoint.Layers, expected.Layers);
        Compare("heads", checkpoint.Heads, expected.Heads);
        Compare("kv heads", checkpoint.KvHeads, expected.KvHeads);
        Compare("channels", checkpoint.Channels, expected.Channels);
        Compare("hidden", checkpoint.Hidden, expected.Hidden);
        Compare("vocabulary size", checkpoint.VocabSize, expected.VocabSize);
        Compare("context length", checkpoint.ContextLength, expected.ContextLength);
        Compare("norm eps", checkpoint.NormEps, expected.NormEps);
        Compare("tie embeddings", checkpoint.TieEmbeddings, expected.TieEmbeddings);
        if (expected.Family == ModelFamily.Llama)
        {
            Compare("rope theta", checkpoint.RopeTheta, expected.RopeTheta);
        }
        return differences;
    }

    private static void CheckTensors(SafeTensorsReader reader, IReadOnlyList<NamedTensor> wanted) =>
        CheckTensors(reader, [.. wanted.Select(t => (t.Name, t.Tensor.Shape, t.Tensor.DType))]);

    private static void CheckTensorNames(SafeTensorsReader reader, IReadOnlyList<(string Name, Shape Shape)> wanted) =>
        CheckTensors(reader, [.. wanted.Select(t => (t.Name, t.Shape, DType.F32))]);

    private static void CheckTensors(SafeTensorsReader reader, IReadOnlyList<(string Name, Shape Shape, DType DType)> wanted)
    {
        var problems = new ProblemList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in wanted)
        {
            if (!names.Add(t.Name))
            {
                throw new ArgumentException($"tensor name '{t.Name}' is given twice", nameof(wanted));
            }
            if (!reader.Tensors.TryGetValue(t.Name, out var stored))
            {
                problems.Add("missing tensors", t.Name);
            }
            else if (!HuggingFace.SameShape(stored.Shape, t.Shape))
            {
                problems.Add("tensors of another shape", $"{t.Name}: file {SafeTensorsReader.FormatShape(stored.Shape)}, expected {t.Shape}");
            }
            else if (SafeTensors.ParseDType(stored.DType) is not { } d
                || (d != t.DType && !(d.IsFloatingPoint() && t.DType.IsFloatingPoint())))
            {
                problems.Add("tensors of another dtype", $"{t.Name}: file {stored.DType}, expected {t.DType.Name()}");
            }
        }
        foreach (string name in reader.Tensors.Keys)
        {
            if (!names.Contains(name))
            {
                problems.Add("extra tensors", name);
            }
        }
        problems.ThrowIfAny($"{reader.FilePath}: the tensors do not match");
    }

    /// <summary>Renames a finished directory onto <paramref name="target"/>, replacing an existing one of the same step.</summary>
    private static void MoveIntoPlace(string building, string target)
    {
        if (!Directory.Exists(target))
        {
            Directory.Move(building, target);
            return;
        }
        string old = AtomicFile.TempSibling(target);
        Directory.Move(target, old);
        Directory.Move(building, target);
        AtomicFile.TryDelete(old);
    }

    /// <summary>Deletes what interrupted saves left: <c>step-*.tmp-*</c> directories and <c>latest.tmp-*</c> files.</summary>
    private static void DeleteStaleTemporaries(string root)
    {
        foreach (string entry in Directory.EnumerateFileSystemEntries(root))
        {
            string name = Path.GetFileName(entry);
            if (name.Contains(AtomicFile.TempMarker, StringComparison.Ordinal)
                && (name.StartsWith("step-", StringComparison.Ordinal) || name.StartsWith(LatestFile + AtomicFile.TempMarker, StringComparison.Ordinal)))
            {
                AtomicFile.TryDelete(entry);
            }
        }
    }
}
