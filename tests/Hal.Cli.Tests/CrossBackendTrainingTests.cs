using Hal.Backends.Cpu;
using Hal.Backends.Npu;
using Hal.Backends.OpenCL;
using Hal.Models.Training;

namespace Hal.Cli.Tests;

/// <summary>
/// The same job with the same seed on the CPU backend and on another backend gives the same loss curve within a
/// stated bound: the mission's "one job, unchanged, on whichever hardware is present" as a number.
/// </summary>
public sealed class CrossBackendTrainingTests
{
    // A short gpt-tiny run: enough steps for the optimizer to move the weights well away from their initial values.
    private static readonly TrainConfig Job = new()
    {
        Model = "gpt-tiny",
        Steps = 8,
        Batch = 4,
        Seq = 16,
        WarmupSteps = 2,
        LearningRate = 3e-3,
    };

    public static TheoryData<string> Backends => new() { "opencl", "npu" };

    [Theory]
    [MemberData(nameof(Backends))]
    public void LossCurveMatchesTheCpuBackend(string backendName)
    {
        var reference = Train(new CpuBackend());
        IBackend backend = backendName == "opencl" ? new OpenClBackend() : new NpuBackend();
        var probe = backend.Probe();
        Assert.True(probe.Available, $"backend {backendName} must run here (./hal installs PoCL; ONNX Runtime's CPU provider is in its package): {probe.Reason}");
        var other = Train(backend);
        Assert.Equal(reference.Losses.Count, other.Losses.Count);
        for (int i = 0; i < reference.Losses.Count; i++)
        {
            // fp32 kernels that sum in different orders differ by a few ulps per operation; measured over 30 steps of
            // the default job: at most 4e-8 relative (opencl) and 8e-9 (npu), docs/training.md. 1e-5 is the bound the
            // parallel-layout tests use.
            double bound = 1e-5 * Math.Abs(reference.Losses[i]);
            Assert.True(Math.Abs(reference.Losses[i] - other.Losses[i]) <= bound,
                $"{backendName}: step {i + 1} loss {other.Losses[i]:R} vs cpu {reference.Losses[i]:R} (bound {bound:E2})");
        }
    }

    private static TrainEnd Train(IBackend backend)
    {
        using var device = backend.Open(0);
        return Trainer.Run(Job, [device], null, new SilentObserver());
    }

    private sealed class SilentObserver : ITrainingObserver
    {
        public void OnStart(TrainStart start)
        {
        }

        public void OnStep(TrainStep step)
        {
        }

        public void OnMessage(string message)
        {
        }

        public void OnEnd(TrainEnd end)
        {
        }
    }
}
