using Hal.Parallel.Pipeline;

namespace Hal.Parallel.Tests;

/// <summary>
/// Stage partitioning against brute force, and the three schedules checked statically: every stage's actions, and the
/// whole pipeline simulated with sends that never block.
/// </summary>
public sealed class PipelineTests
{
    // ---- StagePartition ------------------------------------------------------------------------------------------

    [Fact]
    public void Equal_layers_split_evenly()
    {
        var partition = StagePartition.Balance(Enumerable.Repeat(3.0, 8).ToArray(), stages: 4);
        Assert.Equal([0, 2, 4, 6, 8], partition.Starts);
        Assert.Equal(6.0, partition.MaxChunkCost);
        Assert.Equal(6.0, partition.StageCost(3));
    }

    [Fact]
    public void Virtual_chunks_go_round_robin_over_the_stages()
    {
        var partition = StagePartition.Balance(Enumerable.Repeat(1.0, 8).ToArray(), stages: 2, chunksPerStage: 2);
        Assert.Equal(4, partition.ChunkCount);
        Assert.Equal([0, 2, 4, 6, 8], partition.Starts);
        // Model chunk c is local chunk c div p of stage c mod p.
        Assert.Equal(0, partition.StageOf(2));
        Assert.Equal(1, partition.StageOf(3));
        Assert.Equal(3, partition.ModelChunk(stage: 1, localChunk: 1));
        Assert.Equal((4, 2), partition.LayersOf(2));
        Assert.Equal(4.0, partition.StageCost(0));
    }

    [Fact]
    public void A_heavy_layer_gets_a_chunk_of_its_own()
    {
        // Embedding-like first layer of cost 10 among blocks of cost 2: the optimum isolates it (max 10), and the least
        // sum of squares spreads the seven blocks 3 + 2 + 2 (costs 6, 4, 4) rather than 5 + 1 + 1.
        var partition = StagePartition.Balance([10, 2, 2, 2, 2, 2, 2, 2], stages: 4);
        Assert.Equal(10.0, partition.MaxChunkCost);
        Assert.Equal(1, partition.Starts[1]);
        var counts = Enumerable.Range(1, 3).Select(c => partition.LayersOf(c).Count).Order().ToArray();
        Assert.Equal([2, 2, 3], counts);
    }

    [Fact]
    public void Extra_costs_of_the_first_and_last_chunk_move_layers_away_from_them()
    {
        // Four unit layers over two stages with a head of cost 2 on the last chunk: 3 | 1 + 2 (both 3) beats 2 | 2 + 2.
        var head = StagePartition.Balance([1, 1, 1, 1], stages: 2, lastChunkExtra: 2);
        Assert.Equal([0, 3, 4], head.Starts);
        Assert.Equal(3.0, head.ChunkCost(1));
        // The same on the first chunk mirrors it; both at once on one chunk add up.
        var embedding = StagePartition.Balance([1, 1, 1, 1], stages: 2, firstChunkExtra: 2);
        Assert.Equal([0, 1, 4], embedding.Starts);
        var single = StagePartition.Balance([1, 1], stages: 1, firstChunkExtra: 2, lastChunkExtra: 3);
        Assert.Equal(7.0, single.MaxChunkCost);
        // A head heavier than all the layers leaves the last chunk one layer, the least it can hold.
        var heavy = StagePartition.Balance([1, 1, 1, 1, 1, 1], stages: 4, lastChunkExtra: 100);
        Assert.Equal(1, heavy.LayersOf(3).Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => StagePartition.Balance([1, 1], 2, lastChunkExtra: double.NaN));
        Assert.Throws<ArgumentOutOfRangeException>(() => StagePartition.Balance([1, 1], 2, firstChunkExtra: -1));
    }

    [Fact]
    public void The_split_is_optimal_and_contiguous_against_brute_force()
    {
        const int seed = 20261128;
        var random = new Random(seed);
        for (int trial = 0; trial < 300; trial++)
        {
            int layers = random.Next(1, 10);
            int stages = random.Next(1, 4);
            int chunksPerStage = random.Next(1, 3);
            if (stages * chunksPerStage > layers)
            {
                continue;
            }
            // Small integer costs: every partial sum is exact in double, so the optimum compares exactly.
            var costs = Enumerable.Range(0, layers).Select(_ => (double)random.Next(0, 20)).ToArray();
            var partition = StagePartition.Balance(costs, stages, chunksPerStage);
            string what = $"seed {seed} trial {trial}: costs [{string.Join(", ", costs)}] over {stages}×{chunksPerStage}: {partition}";

            int chunks = stages * chunksPerStage;
            Assert.True(partition.Starts.Count == chunks + 1 && partition.Starts[0] == 0 && partition.Starts[chunks] == layers, what);
            double max = 0;
            for (int c = 0; c < chunks; c++)
            {
                Assert.True(partition.Starts[c + 1] > partition.Starts[c], $"{what}: chunk {c} is empty");
                double sum = 0;
                for (int l = partition.Starts[c]; l < partition.Starts[c + 1]; l++)
                {
                    sum += costs[l];
                }
                Assert.True(sum == partition.ChunkCost(c), $"{what}: chunk {c} costs {partition.ChunkCost(c)}, its layers sum to {sum}");
                max = Math.Max(max, sum);
            }
            Assert.True(max == partition.MaxChunkCost, what);
            double brute = BruteForceMinMax(costs, 0, chunks);
            Assert.True(brute == partition.MaxChunkCost, $"{what}: max chunk cost {partition.MaxChunkCost}, brute force finds {brute}");
        }
    }

    [Theory]
    [InlineData(3, 4, 1)]
    [InlineData(7, 4, 2)]
    [InlineData(0, 1, 1)]
    public void Fewer_layers_than_model_chunks_are_refused(int layers, int stages, int chunksPerStage)
    {
        var e = Assert.Throws<PipelineException>(() => StagePartition.Balance(new double[layers], stages, chunksPerStage));
        Assert.Contains($"{layers} layers cannot fill {stages} stages × {chunksPerStage} chunks = {stages * chunksPerStage} model chunks", e.Message);
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void Bad_costs_are_refused(double cost)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => StagePartition.Balance([1, cost, 1], 2));
        Assert.Contains("layer 1 has cost", e.Message);
    }

    // ---- PipelineSchedule ----------------------------------------------------------------------------------------

    public static TheoryData<PipelineScheduleKind, int, int, int> ScheduleCases()
    {
        var data = new TheoryData<PipelineScheduleKind, int, int, int>();
        foreach (var kind in new[] { PipelineScheduleKind.GPipe, PipelineScheduleKind.OneFOneB, PipelineScheduleKind.Interleaved })
        {
            foreach (int p in new[] { 1, 2, 4 })
            {
                foreach (int m in new[] { 1, 2, 4, 8 })
                {
                    foreach (int v in new[] { 1, 2 })
                    {
                        data.Add(kind, p, m, v);
                    }
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ScheduleCases))]
    public void Schedules_respect_every_dependency_and_cannot_deadlock(PipelineScheduleKind kind, int p, int m, int v)
    {
        if ((kind == PipelineScheduleKind.OneFOneB && v != 1) || (kind == PipelineScheduleKind.Interleaved && m % p != 0))
        {
            Assert.Throws<PipelineException>(() => PipelineSchedule.Build(kind, 0, p, m, v));
            return;
        }
        var schedules = Enumerable.Range(0, p).Select(s => PipelineSchedule.Build(kind, s, p, m, v)).ToArray();
        string what = $"{kind} p {p} m {m} v {v}";
        int chunks = p * v;

        for (int s = 0; s < p; s++)
        {
            var actions = schedules[s].Actions;
            Assert.Equal(2 * m * v, actions.Count);
            // Each (micro, local chunk) once forward and once backward, the forward first; the implied messages go to
            // the stages that hold the neighbouring model chunks.
            var forwardAt = new Dictionary<(int, int), int>();
            var backwardAt = new Dictionary<(int, int), int>();
            int inFlight = 0, peak = 0;
            for (int n = 0; n < actions.Count; n++)
            {
                var a = actions[n];
                int c = (a.Chunk * p) + s;
                Assert.True(a.ModelChunk == c, $"{what} stage {s} action {n} {a}: model chunk {a.ModelChunk}, expected {c}");
                var seen = a.Kind == PipelineActionKind.Forward ? forwardAt : backwardAt;
                Assert.True(seen.TryAdd((a.Micro, a.Chunk), n), $"{what} stage {s}: {a} appears twice");
                inFlight += a.Kind == PipelineActionKind.Forward ? 1 : -1;
                peak = Math.Max(peak, inFlight);
                int before = a.Kind == PipelineActionKind.Forward ? c - 1 : c + 1;
                int after = a.Kind == PipelineActionKind.Forward ? c + 1 : c - 1;
                int expectFrom = before < 0 || before >= chunks ? -1 : before % p;
                int expectTo = after < 0 || after >= chunks ? -1 : after % p;
                Assert.True(a.ReceiveFrom == expectFrom && a.SendTo == expectTo,
                    $"{what} stage {s} {a}: receives from {a.ReceiveFrom}, sends to {a.SendTo}; expected {expectFrom}, {expectTo}");
            }
            for (int i = 0; i < m; i++)
            {
                for (int k = 0; k < v; k++)
                {
                    Assert.True(forwardAt[(i, k)] < backwardAt[(i, k)], $"{what} stage {s}: backward of micro {i} chunk {k} before its forward");
                }
            }
            Assert.True(peak == schedules[s].PeakInFlight, $"{what} stage {s}: peak in flight {schedules[s].PeakInFlight}, counted {peak}");
            if (kind == PipelineScheduleKind.OneFOneB)
            {
                Assert.True(peak == Math.Min(m, p - s), $"{what} stage {s}: 1F1B holds {peak} micro-batches, expected min(m, p − s) = {Math.Min(m, p - s)}");
            }
            if (kind == PipelineScheduleKind.GPipe)
            {
                Assert.True(peak == m * v, $"{what} stage {s}: GPipe holds {peak}, expected m·v = {m * v}");
            }
            if (kind == PipelineScheduleKind.Interleaved)
            {
                int bound = Math.Min(m * v, (2 * (p - s - 1)) + ((v - 1) * p) + 1);
                Assert.True(peak <= bound, $"{what} stage {s}: interleaved holds {peak}, bound {bound}");
            }
        }

        SimulateWithBufferedSends(schedules, what);
        CheckLinkOrder(schedules, what);
    }

    [Theory]
    [InlineData(2, 1)]
    [InlineData(2, 3)]
    [InlineData(4, 2)]
    [InlineData(4, 6)]
    public void Interleaving_refuses_a_micro_batch_count_that_is_not_a_multiple_of_the_stages(int p, int m)
    {
        var e = Assert.Throws<PipelineException>(() => PipelineSchedule.Build(PipelineScheduleKind.Interleaved, 0, p, m, 2));
        Assert.Contains($"must be a multiple of {p}; got {m}", e.Message);
    }

    [Fact]
    public void One_f_one_b_refuses_virtual_chunks()
    {
        var e = Assert.Throws<PipelineException>(() => PipelineSchedule.Build(PipelineScheduleKind.OneFOneB, 0, 2, 4, 2));
        Assert.Contains("got 2 chunks per stage", e.Message);
    }

    [Fact]
    public void One_f_one_b_warms_up_with_p_minus_s_minus_1_forwards_then_alternates()
    {
        // p 4, m 6, stage 1: 2 warm-up forwards, then F2 B0 F3 B1 F4 B2 F5 B3, then B4 B5.
        var schedule = PipelineSchedule.Build(PipelineScheduleKind.OneFOneB, 1, 4, 6);
        Assert.Equal("F(micro 0, chunk 0) F(micro 1, chunk 0) F(micro 2, chunk 0) B(micro 0, chunk 0) F(micro 3, chunk 0) B(micro 1, chunk 0) " +
            "F(micro 4, chunk 0) B(micro 2, chunk 0) F(micro 5, chunk 0) B(micro 3, chunk 0) B(micro 4, chunk 0) B(micro 5, chunk 0)",
            string.Join(" ", schedule.Actions));
    }

    [Theory]
    [InlineData(PipelineScheduleKind.GPipe, 4, 8, 1, 3.0 / 11)]
    [InlineData(PipelineScheduleKind.OneFOneB, 2, 1, 1, 1.0 / 2)]
    [InlineData(PipelineScheduleKind.Interleaved, 4, 8, 2, 3.0 / 19)]
    [InlineData(PipelineScheduleKind.OneFOneB, 1, 4, 1, 0.0)]
    public void The_theoretical_bubble_is_p_minus_1_over_vm_plus_p_minus_1(PipelineScheduleKind kind, int p, int m, int v, double expected)
    {
        // (p − 1)/(v·m + p − 1): the formula's two divisions against one here, so equal to a few ulps.
        Assert.Equal(expected, PipelineSchedule.Build(kind, 0, p, m, v).TheoreticalBubbleFraction, 1e-15);
    }

    [Theory]
    [InlineData("gpipe", PipelineScheduleKind.GPipe)]
    [InlineData("1F1B", PipelineScheduleKind.OneFOneB)]
    [InlineData(" interleaved", PipelineScheduleKind.Interleaved)]
    public void Schedule_names_parse(string name, PipelineScheduleKind kind)
    {
        Assert.Equal(kind, PipelineSchedule.ParseKind(name));
        Assert.Equal(name.Trim().ToLowerInvariant(), PipelineSchedule.KindName(kind));
        Assert.Contains("use gpipe, 1f1b or interleaved", Assert.Throws<PipelineException>(() => PipelineSchedule.ParseKind("zb")).Message);
    }

    /// <summary>Least possible largest chunk cost over every split of costs[from..] into k non-empty runs.</summary>
    private static double BruteForceMinMax(double[] costs, int from, int k)
    {
        if (k == 1)
        {
            return costs.Skip(from).Sum();
        }
        double best = double.PositiveInfinity;
        for (int end = from + 1; end <= costs.Length - (k - 1); end++)
        {
            best = Math.Min(best, Math.Max(costs[from..end].Sum(), BruteForceMinMax(costs, end, k - 1)));
        }
        return best;
    }

    /// <summary>
    /// Runs every stage's schedule in lock-step rounds with sends that never block: an action runs when the model-level
    /// work it depends on is done (the previous chunk's forward of that micro-batch, or the next chunk's backward) and
    /// the message carrying it has arrived with the tag the action expects. Fails on a round with no progress.
    /// </summary>
    private static void SimulateWithBufferedSends(PipelineSchedule[] schedules, string what)
    {
        int p = schedules.Length;
        int chunks = schedules[0].ChunkCount;
        var next = new int[p];
        var done = new HashSet<(PipelineActionKind, int Micro, int ModelChunk)>();
        var inbox = new HashSet<(int From, int To, int Tag)>();
        int remaining = schedules.Sum(s => s.Actions.Count);
        while (remaining > 0)
        {
            bool progressed = false;
            for (int s = 0; s < p; s++)
            {
                if (next[s] == schedules[s].Actions.Count)
                {
                    continue;
                }
                var a = schedules[s].Actions[next[s]];
                bool forward = a.Kind == PipelineActionKind.Forward;
                bool ready = forward
                    ? a.ModelChunk == 0 || done.Contains((PipelineActionKind.Forward, a.Micro, a.ModelChunk - 1))
                    : done.Contains((PipelineActionKind.Forward, a.Micro, a.ModelChunk)) &&
                      (a.ModelChunk == chunks - 1 || done.Contains((PipelineActionKind.Backward, a.Micro, a.ModelChunk + 1)));
                if (!ready)
                {
                    continue;
                }
                if (a.ReceiveFrom >= 0)
                {
                    Assert.True(inbox.Remove((a.ReceiveFrom, s, a.ReceiveTag)),
                        $"{what}: stage {s} {a} is ready but no message from stage {a.ReceiveFrom} with tag {a.ReceiveTag} arrived");
                }
                done.Add((a.Kind, a.Micro, a.ModelChunk));
                if (a.SendTo >= 0)
                {
                    Assert.True(inbox.Add((s, a.SendTo, a.SendTag)), $"{what}: stage {s} {a} sends tag {a.SendTag} twice");
                }
                next[s]++;
                remaining--;
                progressed = true;
            }
            Assert.True(progressed, $"{what}: deadlock, stages wait at actions [{string.Join(", ", Enumerable.Range(0, p).Select(s => next[s] < schedules[s].Actions.Count ? schedules[s].Actions[next[s]].ToString() : "done"))}]");
        }
        Assert.True(inbox.Count == 0, $"{what}: {inbox.Count} messages never received");
    }

    /// <summary>On every link, the sender's order of messages must be the receiver's order of receives (see PipelineExecutor).</summary>
    private static void CheckLinkOrder(PipelineSchedule[] schedules, string what)
    {
        int p = schedules.Length;
        for (int from = 0; from < p; from++)
        {
            for (int to = 0; to < p; to++)
            {
                var sent = schedules[from].Actions.Where(a => a.SendTo == to).Select(a => a.SendTag).ToArray();
                var received = schedules[to].Actions.Where(a => a.ReceiveFrom == from).Select(a => a.ReceiveTag).ToArray();
                Assert.True(sent.SequenceEqual(received),
                    $"{what}: stage {from} sends tags [{string.Join(", ", sent)}] to stage {to}, which receives [{string.Join(", ", received)}]");
            }
        }
    }
}
