using Hal.Models.Data;
using Hal.Models.Training;
using Hal.Models.Transformer;

namespace Hal.Models.Tests;

// Legend: B batch, T sequence, N = B·T tokens of a replica, C channels, L layers, P parameters, S = N·C·4 bytes of one
// fp32 activation [N, C].

/// <summary>
/// The bytes per step the trainer reports (TrainEnd.CommunicationBytesPerStep) are what the layout's collectives send,
/// counted call by call: checked against the formulas of data and tensor parallelism.
/// </summary>
public sealed class CommunicationCountTests
{
    private static readonly TrainConfig Job = TensorParallelTrainingTests.FiveSteps with { Steps = 3 };

    private static ModelConfig Model()
    {
        using var data = TokenDatasets.Open(Job.Data, Job.Seed);
        return ModelConfig.Named(Job.Model, data.VocabSize);
    }

    [Fact]
    public void OneDeviceSendsNothing()
    {
        var end = TrainerTests.Train(Job, 1);
        Assert.Equal(0, end.CommunicationBytesPerStep);
    }

    [Fact]
    public void DataParallelSendsOneRingAllReduceOfTheGradientsAndOfTheLoss()
    {
        var end = TrainerTests.Train(Job with { Dp = 2 }, 2);
        long p = Model().ParameterCount;
        // Ring all-reduce over 2 ranks sends 2·(2−1)/2 = 1× the bytes: the fp32 gradients (in buckets, same sum) and
        // the fp64 loss average.
        double expected = (4.0 * p) + 8;
        Assert.Equal(expected, end.CommunicationBytesPerStep);
        Assert.Equal(expected, end.CommunicationBytesPerStepMax);
    }

    [Fact]
    public void TensorParallelSendsTwoAllReducesPerBlockEachWayPlusEmbeddingHeadAndLoss()
    {
        var end = TrainerTests.Train(Job with { Tp = 2 }, 2);
        var model = Model();
        long n = (long)Job.Batch * Job.Seq;
        double s = n * model.Channels * 4.0;
        // Over 2 ranks an all-reduce sends its size once. Per block: attention and MLP outputs forward, their input
        // gradients backward (4·S); the vocabulary-parallel embedding's output forward and the head's input gradient
        // backward (2·S); the vocabulary-parallel cross-entropy's row maximum, exp-sum and target logit ([N] fp32 each);
        // the clipping norm's sum of squares (one fp64).
        double expected = (s * ((4 * model.Layers) + 2)) + (3 * n * 4) + 8;
        Assert.Equal(expected, end.CommunicationBytesPerStep);
    }
}
