using Hal.Memory;

namespace Hal.Memory.Tests;

// Legend: F Free, C Compute, H Hold, B HoldAfterBackward, R ReadyForReduce.
public class ChunkStateTests
{
    /// <summary>The documented table, written out independently of the code: the legal (from, to) pairs.</summary>
    private static readonly (TensorState From, TensorState To)[] LegalPairs =
    [
        (TensorState.Free, TensorState.Compute),
        (TensorState.Free, TensorState.Hold),
        (TensorState.Compute, TensorState.Hold),
        (TensorState.Compute, TensorState.HoldAfterBackward),
        (TensorState.Hold, TensorState.Compute),
        (TensorState.Hold, TensorState.Free),
        (TensorState.HoldAfterBackward, TensorState.Compute),
        (TensorState.HoldAfterBackward, TensorState.ReadyForReduce),
        (TensorState.ReadyForReduce, TensorState.Hold),
        (TensorState.ReadyForReduce, TensorState.Free),
    ];

    /// <summary>A path from Free to each state through legal moves, to set a tensor up in that state.</summary>
    private static TensorState[] PathTo(TensorState s) => s switch
    {
        TensorState.Free => [],
        TensorState.Compute => [TensorState.Compute],
        TensorState.Hold => [TensorState.Hold],
        TensorState.HoldAfterBackward => [TensorState.Compute, TensorState.HoldAfterBackward],
        _ => [TensorState.Compute, TensorState.HoldAfterBackward, TensorState.ReadyForReduce],
    };

    private static Chunk OneTensorChunk(string name) => new(0, 8, DType.F32, [new TensorPlacement(name, 0, 0, 8)]);

    public static TheoryData<TensorState, TensorState> AllPairs()
    {
        var data = new TheoryData<TensorState, TensorState>();
        foreach (var from in Enum.GetValues<TensorState>())
        {
            foreach (var to in Enum.GetValues<TensorState>())
            {
                data.Add(from, to);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(AllPairs))]
    public void EveryPair_IsLegalExactlyWhenTheTableSaysSo(TensorState from, TensorState to)
    {
        bool expected = LegalPairs.Contains((from, to));
        var tensor = OneTensorChunk("h.3.attn.c_proj.weight").Tensors[0];
        foreach (var step in PathTo(from))
        {
            tensor.MoveTo(step);
        }
        Assert.Equal(from, tensor.State);
        Assert.Equal(expected, TensorStateMachine.IsLegal(from, to));

        if (expected)
        {
            tensor.MoveTo(to);
            Assert.Equal(to, tensor.State);
        }
        else
        {
            var e = Assert.Throws<InvalidOperationException>(() => tensor.MoveTo(to));
            Assert.Contains("'h.3.attn.c_proj.weight'", e.Message);
            Assert.Contains($"from {from} to {to}", e.Message);
            Assert.Equal(from, tensor.State);
        }
    }

    [Fact]
    public void OneTrainingStep_WithATiedWeightUsedTwiceInBackward_FollowsLegalMoves()
    {
        var t = OneTensorChunk("wte").Tensors[0];
        TensorState[] step =
        [
            TensorState.Compute, TensorState.Hold, // forward: embedding lookup
            TensorState.Compute, TensorState.Hold, // forward: the tied output projection
            TensorState.Compute, TensorState.HoldAfterBackward, // backward: the output projection
            TensorState.Compute, TensorState.HoldAfterBackward, // backward: the embedding
            TensorState.ReadyForReduce, TensorState.Hold, TensorState.Free,
        ];
        foreach (var s in step)
        {
            t.MoveTo(s);
        }
        Assert.Equal(TensorState.Free, t.State);
    }

    [Fact]
    public void Chunk_KnowsWhenAllItsTensorsAreInAState()
    {
        var chunk = new Chunk(3, 10, DType.BF16, [new("a", 0, 0, 4), new("b", 0, 4, 4), new("c", 0, 8, 2)]);
        Assert.True(chunk.CanMove && chunk.CanRelease);
        Assert.False(chunk.CanReduce);

        chunk["a"].MoveTo(TensorState.Compute);
        Assert.False(chunk.CanMove);
        chunk["a"].MoveTo(TensorState.Hold);
        Assert.True(chunk.CanMove);
        Assert.False(chunk.CanRelease);

        foreach (var t in chunk.Tensors)
        {
            t.MoveTo(TensorState.Compute);
            t.MoveTo(TensorState.HoldAfterBackward);
        }
        Assert.False(chunk.CanReduce);
        chunk["a"].MoveTo(TensorState.ReadyForReduce);
        chunk["b"].MoveTo(TensorState.ReadyForReduce);
        Assert.False(chunk.CanReduce);
        chunk["c"].MoveTo(TensorState.ReadyForReduce);
        Assert.True(chunk.CanReduce);
        Assert.True(chunk.AllIn(TensorState.ReadyForReduce, TensorState.Free));
        Assert.False(chunk.CanMove);
    }

    [Fact]
    public void Chunk_SizesAndOffsetsAreInBytesOfItsDType()
    {
        var chunk = new Chunk(0, 10, DType.BF16, [new("b", 0, 4, 6), new("a", 0, 0, 4)]);

        Assert.Equal(20, chunk.SizeInBytes);
        Assert.Equal(["a", "b"], chunk.Tensors.Select(t => t.Name));
        Assert.Equal(8, chunk["b"].OffsetBytes);
        Assert.Equal(12, chunk["b"].SizeInBytes);
        Assert.Throws<KeyNotFoundException>(() => chunk["z"]);
    }

    [Fact]
    public void Chunk_RejectsTensorsOutsideIt_OrOverlapping()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Chunk(0, 8, DType.F32, [new("a", 0, 5, 4)]));
        Assert.Throws<ArgumentException>(() => new Chunk(0, 8, DType.F32, [new("a", 0, 0, 4), new("b", 0, 3, 2)]));
    }

    [Fact]
    public void FromLayout_GivesOneChunkPerLayoutChunk_WithItsTensors()
    {
        var layout = ChunkLayout.Pack([new("a", 3), new("b", 4), new("c", 2)], 7);

        var chunks = Chunk.FromLayout(layout, DType.F16);

        Assert.Equal(2, chunks.Count);
        Assert.Equal(["a", "b"], chunks[0].Tensors.Select(t => t.Name));
        Assert.Equal(3, chunks[0]["b"].OffsetElements);
        Assert.Equal(["c"], chunks[1].Tensors.Select(t => t.Name));
        Assert.Equal(14, chunks[1].SizeInBytes);
    }
}
