using System.Diagnostics;
using Hal;
using Hal.Backends.Cpu;
using Hal.Models.Optim;
using Hal.Models.Transformer;
using Hal.StepProfile;

// Legend: ids/targets [B, T] I32; one step = forward + backward + AdamW over the whole parameter store (F32).
// Usage: Hal.StepProfile [model=gpt2-small] [batch=4] [time=256] [steps=3] [noprof]
//        Hal.StepProfile gemm [batch=4] [time=256] [repeats=3]   (the three LM-head GEMMs alone)

string name = args.Length > 0 ? args[0] : "gpt2-small";
int batch = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 4;
int time = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 256;
int steps = args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 3;
bool profile = !args.Contains("noprof");

var device = new CpuBackend().Open(0);
if (name == "gemm")
{
    GemmShapes.Run(new Ops(device), batch * time, steps);
    return;
}
var timing = TimingKernels.Create(device.Kernels);
var timer = (TimingKernels)(object)timing;
var ops = profile ? new Ops(device, timing) : new Ops(device);
var config = ModelConfig.Named(name, 50257);
using var model = new TransformerModel(ops, config);
model.Initialize(1);
using var optimizer = new Optimizer(ops, model.Parameters, new OptimizerOptions { WeightDecay = 0.1 });
var rng = new Random(1);
double[] RandomTokens() => [.. Enumerable.Range(0, batch * time).Select(_ => (double)rng.Next(config.VocabSize))];
var ids = ops.FromArray(RandomTokens(), new Shape(batch, time), DType.I32);
var targets = ops.FromArray(RandomTokens(), new Shape(batch, time), DType.I32);

// Model FLOPs per token = 6·N + 12·L·C·T, N = parameters in matmuls (the tied head counts once, as the head).
long matmulParams = model.Parameters.Infos
    .Where(p => p.Shape.Rank == 2 && !p.Name.Contains("wpe", StringComparison.Ordinal))
    .Sum(p => p.Shape.ElementCount);
double flopsPerStep = ((6.0 * matmulParams) + (12.0 * config.Layers * config.Channels * time)) * batch * time;
Console.WriteLine($"{name} B{batch} T{time}: {matmulParams / 1e6:F2} M matmul parameters, {flopsPerStep / 1e9:F1} GFLOP per step, {Environment.ProcessorCount} cpus");

// CPU seconds of the process per step: on a shared machine the wall clock also counts time other jobs held the
// cores, while CPU time mostly does not; the two together bound what the step costs.
var process = Process.GetCurrentProcess();
var cpuTimes = new List<double>();

double Step(long step)
{
    process.Refresh();
    var cpuStart = process.TotalProcessorTime;
    var sw = Stopwatch.StartNew();
    double loss = model.Forward(ids, targets);
    double forward = sw.Elapsed.TotalSeconds;
    model.Backward();
    double backward = sw.Elapsed.TotalSeconds - forward;
    optimizer.Step(1e-4, step + 1);
    double total = sw.Elapsed.TotalSeconds;
    process.Refresh();
    double cpu = (process.TotalProcessorTime - cpuStart).TotalSeconds;
    if (step > 0)
    {
        cpuTimes.Add(cpu);
    }
    Console.WriteLine($"step {step}: loss {loss:F4} forward {forward:F3}s backward {backward:F3}s optimizer {total - forward - backward:F3}s total {total:F3}s  {flopsPerStep / total / 1e9:F1} GFLOP/s  (cpu {cpu:F3}s)");
    return total;
}

Step(0);
timer.Recording = true;
var times = new List<double>();
for (int s = 1; s <= steps; s++)
{
    times.Add(Step(s));
}
timer.Recording = false;
double best = times.Min();
double mean = times.Average();
const double FmaPeakGflops = 330;
double cpuBest = cpuTimes.Min();
Console.WriteLine($"cpu time: best {cpuBest:F3} cpu-s per step, {flopsPerStep / cpuBest / 1e9:F1} GFLOP per cpu-second ({Environment.ProcessorCount} cpus: {Environment.ProcessorCount * flopsPerStep / cpuBest / 1e9:F1} GFLOP/s if every cpu were busy all the time)");
Console.WriteLine($"best {best:F3}s: {flopsPerStep / best / 1e9:F1} GFLOP/s (MFU {flopsPerStep / best / 1e9 / FmaPeakGflops:F3} of {FmaPeakGflops} GFLOP/s); mean {mean:F3}s: {flopsPerStep / mean / 1e9:F1} GFLOP/s");

if (profile)
{
    double kernelSeconds = timer.Stats.Values.Sum(v => v.Seconds);
    Console.WriteLine($"kernel time per step {kernelSeconds / steps:F3}s (of {mean:F3}s)");
    Console.WriteLine($"{"ms/step",9} {"%",5} {"calls",6} {"GFLOP/s",8} {"ns/elem",8}  kernel");
    foreach (var (key, stat) in timer.Stats.OrderByDescending(kv => kv.Value.Seconds).Take(40))
    {
        string gflops = stat.Flops > 0 ? $"{stat.Flops / stat.Seconds / 1e9,8:F1}" : $"{"",8}";
        Console.WriteLine($"{stat.Seconds * 1000 / steps,9:F1} {100 * stat.Seconds / kernelSeconds,5:F1} {stat.Calls / steps,6} {gflops} {stat.Seconds * 1e9 / stat.Elements,8:F2}  {key}");
    }
}
