namespace Hal.Collectives.Tests;

public sealed class InProcessSmokeTests
{
    [Fact]
    public void AllReduce_SumOfTwoRanks()
    {
        var failures = InProcessTestKit.RunRanks(2, (comm, ops, failures) =>
        {
            using var t = ops.FromArray([comm.Rank + 1.0, 10.0], new Shape(2));
            comm.AllReduce(t, t, ReduceOp.Sum);
            InProcessTestKit.Check(failures, "sum", ops.ToDoubleArray(t), i => i == 0 ? 3 : 20, ReduceOp.Sum, DType.F32);
        });
        Assert.Empty(failures);
    }
}
