using Hal.Models.Checkpoints;
using Hal.Models.Nn;
using Hal.Models.Transformer;

namespace Hal.Models.Tests;

// Save/Load of step directories: a ParameterStore of Hugging Face names (L layers, C channels) plus optimizer moments.
public sealed class CheckpointSaveLoadTests
{
    private static CheckpointState State(long step) => new()
    {
        Step = step,
        BatchesDrawn = step * 3,
        Seed = ulong.MaxValue - 5,
        Model = "tiny-gpt2",
        Optimizer = "adamw",
        Precision = "bf16",
        Dp = 2,
        OptimizerScalars = new Dictionary<string, double> { ["step"] = step, ["loss_scale"] = 65536 },
        Losses = [4.5, 3.25, double.NaN, double.PositiveInfinity, 1e-300],
    };

    /// <summary>Optimizer moments named after each parameter, filled with known values.</summary>
    private static List<NamedTensor> Moments(ParameterStore store, Ops ops, double scale)
    {
        var list = new List<NamedTensor>();
        for (int i = 0; i < store.Infos.Count; i++)
        {
            var info = store.Infos[i];
            foreach (string kind in new[] { "m", "v" })
            {
                var values = new double[info.ElementCount];
                for (long e = 0; e < values.Length; e++)
                {
                    values[e] = scale * (HfStores.Value(i, e) + (kind == "v" ? 0.5 : 0));
                }
                list.Add(new NamedTensor($"{kind}.{info.Name}", ops.FromArray(values, info.Shape, DType.F32)));
            }
        }
        return list;
    }

    private static void DisposeAll(IEnumerable<NamedTensor> tensors)
    {
        foreach (var t in tensors)
        {
            t.Tensor.Dispose();
        }
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    public void SaveThenLoadRestoresTensorsAndState(DType modelDType)
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyGpt2;
        using var saved = HfStores.Create(config, ops, modelDType);
        HfStores.FillKnown(saved, ops);
        var savedMoments = Moments(saved, ops, 0.25);
        Assert.Equal(HfStores.Named(saved), Checkpoint.ParametersOf(saved));
        string stepDir = Checkpoint.Save(dir.Path, config, Checkpoint.ParametersOf(saved), savedMoments, State(40), ops);

        Assert.Equal(Path.Combine(dir.Path, "step-00000040"), stepDir);
        Assert.Equal("step-00000040", File.ReadAllText(dir["latest"]).Trim());
        Assert.Equal(stepDir, Checkpoint.Resolve(dir.Path));
        Assert.Equal(stepDir, Checkpoint.Resolve(stepDir));
        using (var model = SafeTensors.Open(Path.Combine(stepDir, "model.safetensors")))
        {
            // Model weights are stored in F32 whatever the compute dtype, under their Hugging Face names.
            Assert.All(model.Tensors.Values, t => Assert.Equal("F32", t.DType));
            Assert.Equal(saved.Infos.Select(i => i.Name), model.Tensors.Keys);
            Assert.Equal("pt", model.Metadata["format"]);
        }

        using var loaded = HfStores.Create(config, ops, modelDType, fill: -1);
        var loadedMoments = Moments(loaded, ops, 0);
        var state = Checkpoint.Load(stepDir, config, HfStores.Named(loaded), loadedMoments, ops);

        // The values are exact in BF16 (HfStores.Value), so every comparison is exact.
        Assert.Equal(ops.ToDoubleArray(saved.Params), ops.ToDoubleArray(loaded.Params));
        for (int i = 0; i < savedMoments.Count; i++)
        {
            Assert.Equal(ops.ToDoubleArray(savedMoments[i].Tensor), ops.ToDoubleArray(loadedMoments[i].Tensor));
        }
        var expected = State(40);
        Assert.Equal(expected.Step, state.Step);
        Assert.Equal(expected.BatchesDrawn, state.BatchesDrawn);
        Assert.Equal(expected.Seed, state.Seed);
        Assert.Equal((expected.Model, expected.Optimizer, expected.Precision, expected.Dp), (state.Model, state.Optimizer, state.Precision, state.Dp));
        Assert.Equal(expected.OptimizerScalars, state.OptimizerScalars);
        Assert.Equal(expected.Losses, state.Losses);
        Assert.Equal(1, state.FormatVersion);
        DisposeAll(savedMoments);
        DisposeAll(loadedMoments);
    }

    [Fact]
    public void AStepDirectoryIsAValidInitSource()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyLlama;
        using var saved = HfStores.Create(config, ops);
        HfStores.FillKnown(saved, ops);
        string stepDir = Checkpoint.Save(dir.Path, config, HfStores.Named(saved), [], State(7) with { Model = "tiny-llama" }, ops);

        var read = HuggingFace.ReadConfig(stepDir);
        Assert.Equal(config with { Name = "step-00000007" }, read);
        Assert.Equal(config, Checkpoint.ReadConfig(dir.Path));
        using var initialised = HfStores.Create(read, ops);
        HuggingFace.LoadWeights(stepDir, initialised, ops);
        Assert.Equal(ops.ToDoubleArray(saved.Params), ops.ToDoubleArray(initialised.Params));
    }

    [Fact]
    public void ACrashMidSaveKeepsThePreviousCheckpointAndLatest()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyGpt2;
        using var store = HfStores.Create(config, ops);
        HfStores.FillKnown(store, ops);
        string first = Checkpoint.Save(dir.Path, config, HfStores.Named(store), [], State(10), ops);
        var firstBytes = File.ReadAllBytes(Path.Combine(first, "model.safetensors"));

        // The last optimizer tensor is disposed: the save fails while writing optimizer.safetensors, after
        // config.json and model.safetensors of step 20 were already written in the temporary directory.
        var gone = ops.FromArray(new double[] { 1, 2 }, new Shape(2), DType.F32);
        gone.Dispose();
        ops.Fill(store.Params, 3);
        Assert.Throws<ObjectDisposedException>(() =>
            Checkpoint.Save(dir.Path, config, HfStores.Named(store), [new("m.ok", store.Param(0)), new("m.gone", gone)], State(20), ops));

        Assert.Equal("step-00000010", File.ReadAllText(dir["latest"]).Trim());
        Assert.Equal(first, Checkpoint.Resolve(dir.Path));
        Assert.False(Directory.Exists(dir["step-00000020"]));
        Assert.Equal(firstBytes, File.ReadAllBytes(Path.Combine(first, "model.safetensors")));
        Assert.Equal(["latest", "step-00000010"], Entries(dir));
    }

    [Fact]
    public void StaleTemporariesOfAKilledSaveAreRemovedByTheNextSave()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyGpt2;
        using var store = HfStores.Create(config, ops);
        // What a killed process leaves: a half-built step directory and a half-written latest.
        Directory.CreateDirectory(dir["step-00000005.tmp-123-abc"]);
        File.WriteAllText(Path.Combine(dir["step-00000005.tmp-123-abc"], "config.json"), "{");
        File.WriteAllText(dir["latest.tmp-123-def"], "step-0000");
        File.WriteAllText(dir["notes.txt"], "not ours");
        Checkpoint.Save(dir.Path, config, HfStores.Named(store), [], State(6), ops);
        Assert.Equal(["latest", "notes.txt", "step-00000006"], Entries(dir));
    }

    [Fact]
    public void SavingAStepAgainReplacesItAndLatestFollowsTheNewestSave()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyGpt2;
        using var store = HfStores.Create(config, ops, fill: 1);
        Checkpoint.Save(dir.Path, config, HfStores.Named(store), [], State(1), ops);
        Checkpoint.Save(dir.Path, config, HfStores.Named(store), [], State(2), ops);
        ops.Fill(store.Params, 2);
        Checkpoint.Save(dir.Path, config, HfStores.Named(store), [], State(1) with { BatchesDrawn = 99 }, ops);
        Assert.Equal(["latest", "step-00000001", "step-00000002"], Entries(dir));
        Assert.Equal(dir["step-00000001"], Checkpoint.Resolve(dir.Path));
        using var loaded = HfStores.Create(config, ops);
        var state = Checkpoint.Load(Checkpoint.Resolve(dir.Path), config, HfStores.Named(loaded), [], ops);
        Assert.Equal(99, state.BatchesDrawn);
        Assert.All(ops.ToDoubleArray(loaded.Params), v => Assert.Equal(2.0, v));
    }

    [Fact]
    public void AConfigMismatchNamesTheField()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        using var store = HfStores.Create(HfStores.TinyGpt2, ops);
        string stepDir = Checkpoint.Save(dir.Path, HfStores.TinyGpt2, HfStores.Named(store), [], State(3), ops);
        var other = HfStores.TinyGpt2 with { VocabSize = 12 };
        using var target = HfStores.Create(other, ops);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(stepDir, other, HfStores.Named(target), [], ops));
        Assert.Contains("vocabulary size: checkpoint 11, expected 12", e.Message);
        Assert.Contains("config.json", e.Message);

        var deeper = HfStores.TinyGpt2 with { Layers = 3, NormEps = 1e-6 };
        var differences = Checkpoint.ConfigDifferences(HfStores.TinyGpt2, deeper);
        Assert.Equal(["layers: checkpoint 2, expected 3", "norm eps: checkpoint 1E-05, expected 1E-06"], differences);
    }

    [Fact]
    public void MissingExtraAndMisshapenTensorsAreAllListed()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var config = HfStores.TinyGpt2;
        using var store = HfStores.Create(config, ops);
        using var a = ops.Zeros(new Shape(4), DType.F32);
        using var b = ops.Zeros(new Shape(3), DType.F32);
        string stepDir = Checkpoint.Save(dir.Path, config, HfStores.Named(store), [new("m.a", a), new("m.b", b)], State(3), ops);

        using var c = ops.Zeros(new Shape(2, 2), DType.F32);
        using var d = ops.Zeros(new Shape(5), DType.F32);
        var e = Assert.Throws<CheckpointException>(() =>
            Checkpoint.Load(stepDir, config, HfStores.Named(store), [new("m.a", c), new("m.d", d)], ops));
        Assert.Contains("optimizer.safetensors", e.Message);
        Assert.Contains("missing tensors: m.d", e.Message);
        Assert.Contains("extra tensors: m.b", e.Message);
        Assert.Contains("m.a: file [4], expected [2, 2]", e.Message);

        var fewer = HfStores.Named(store).Skip(1).ToList();
        var m = Assert.Throws<CheckpointException>(() => Checkpoint.Load(stepDir, config, fewer, [new("m.a", a), new("m.b", b)], ops));
        Assert.Contains("model.safetensors", m.Message);
        Assert.Contains("extra tensors: transformer.wte.weight", m.Message);
    }

    [Theory]
    [InlineData("config.json")]
    [InlineData("model.safetensors")]
    [InlineData("optimizer.safetensors")]
    [InlineData("trainer.json")]
    public void AMissingFileIsNamed(string file)
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        using var store = HfStores.Create(HfStores.TinyGpt2, ops);
        string stepDir = Checkpoint.Save(dir.Path, HfStores.TinyGpt2, HfStores.Named(store), [], State(3), ops);
        File.Delete(Path.Combine(stepDir, file));
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(stepDir, HfStores.TinyGpt2, HfStores.Named(store), [], ops));
        Assert.Contains(Path.Combine(stepDir, file), e.Message);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void ATruncatedModelFileIsReportedAndNothingIsCopied()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        using var store = HfStores.Create(HfStores.TinyGpt2, ops, fill: 1);
        string stepDir = Checkpoint.Save(dir.Path, HfStores.TinyGpt2, HfStores.Named(store), [], State(3), ops);
        string model = Path.Combine(stepDir, "model.safetensors");
        using (var stream = new FileStream(model, FileMode.Open))
        {
            stream.SetLength(stream.Length - 10);
        }
        using var target = HfStores.Create(HfStores.TinyGpt2, ops, fill: 5);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(stepDir, HfStores.TinyGpt2, HfStores.Named(target), [], ops));
        Assert.Contains(model, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.All(ops.ToDoubleArray(target.Params), v => Assert.Equal(5.0, v));
    }

    [Theory]
    [InlineData("\"format_version\": 1", "\"format_version\": 2", "format version 2 is unknown")]
    [InlineData("\"format_version\": 1,", "", "'format_version' is missing")]
    [InlineData("\"batches_drawn\": 9", "\"batches_drawn\": \"nine\"", "'batches_drawn' has the wrong type")]
    [InlineData("\"seed\": 18446744073709551610", "\"seed\": -1", "'seed' has the wrong type")]
    [InlineData("1E-300", "\"tiny\"", "losses[4] is \"tiny\"")]
    public void ABadTrainerJsonIsReported(string find, string replace, string expectedText)
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        using var store = HfStores.Create(HfStores.TinyGpt2, ops);
        string stepDir = Checkpoint.Save(dir.Path, HfStores.TinyGpt2, HfStores.Named(store), [], State(3), ops);
        string path = Path.Combine(stepDir, "trainer.json");
        string text = File.ReadAllText(path);
        Assert.Contains(find, text);
        int at = text.IndexOf(find, StringComparison.Ordinal);
        File.WriteAllText(path, text[..at] + replace + text[(at + find.Length)..]);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(stepDir, HfStores.TinyGpt2, HfStores.Named(store), [], ops));
        Assert.Contains(path, e.Message);
        Assert.Contains(expectedText, e.Message);
    }

    [Fact]
    public void ATrainerJsonThatIsNotAnObjectIsReported()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        using var store = HfStores.Create(HfStores.TinyGpt2, ops);
        string stepDir = Checkpoint.Save(dir.Path, HfStores.TinyGpt2, HfStores.Named(store), [], State(3), ops);
        File.WriteAllText(Path.Combine(stepDir, "trainer.json"), "[1]");
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(stepDir, HfStores.TinyGpt2, HfStores.Named(store), [], ops));
        Assert.Contains("not an object", e.Message);
        File.WriteAllText(Path.Combine(stepDir, "trainer.json"), "{\"step\":");
        e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(stepDir, HfStores.TinyGpt2, HfStores.Named(store), [], ops));
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void ResolveExplainsWhatIsNotACheckpoint()
    {
        using var dir = new TempDir();
        Assert.Contains("no such checkpoint directory", Assert.Throws<CheckpointException>(() => Checkpoint.Resolve(dir["nope"])).Message);
        Assert.Contains("not a checkpoint", Assert.Throws<CheckpointException>(() => Checkpoint.Resolve(dir.Path)).Message);
        File.WriteAllText(dir["latest"], "step-00000009\n");
        Assert.Contains("names 'step-00000009'", Assert.Throws<CheckpointException>(() => Checkpoint.Resolve(dir.Path)).Message);
        File.WriteAllText(dir["latest"], "../elsewhere\n");
        Assert.Contains("one line naming a step directory", Assert.Throws<CheckpointException>(() => Checkpoint.Resolve(dir.Path)).Message);
    }

    private static string[] Entries(TempDir dir) =>
        [.. Directory.GetFileSystemEntries(dir.Path).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal)];
}
