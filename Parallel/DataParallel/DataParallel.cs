namespace Hal.Parallel;

/// <summary>The once-per-job and once-per-step collectives of data parallel training, beside <see cref="GradientBucketer"/>.</summary>
public static class DataParallel
{
    /// <summary>Makes every rank's parameters equal to rank 0's (broadcast of the slab) — done once at start.</summary>
    /// <exception cref="ArgumentNullException">a null argument.</exception>
    /// <exception cref="CollectiveTimeoutException">a peer did not join in the communicator's timeout.</exception>
    public static void BroadcastParameters(ICommunicator communicator, Tensor paramSlab)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(paramSlab);
        if (communicator.Size > 1)
        {
            communicator.Broadcast(paramSlab, root: 0);
        }
    }

    /// <summary>
    /// Mean of a scalar (the loss) across ranks, through a 1-element all-reduce on the device: F64 when the device's
    /// kernels accept F64, else F32 (then the result carries F32 rounding). The mean is the sum divided by Size once.
    /// </summary>
    /// <exception cref="ArgumentNullException">a null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the communicator.</exception>
    public static double AverageScalar(ICommunicator communicator, Ops ops, double value) => ReduceScalar(communicator, ops, value, ReduceOp.Mean);

    /// <summary>
    /// Sum of a scalar (ZeRO's per-shard sum of squared gradients) across ranks, through a 1-element all-reduce as
    /// <see cref="AverageScalar"/> does. Every rank receives the same value, so decisions taken on it agree.
    /// </summary>
    /// <exception cref="ArgumentNullException">a null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the communicator.</exception>
    public static double SumScalar(ICommunicator communicator, Ops ops, double value) => ReduceScalar(communicator, ops, value, ReduceOp.Sum);

    private static double ReduceScalar(ICommunicator communicator, Ops ops, double value, ReduceOp op)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(ops);
        if (!ReferenceEquals(ops.Device, communicator.Device))
        {
            throw new ArgumentException(
                $"ops work on {ops.Device.Id} but rank {communicator.Rank} communicates on {communicator.Device.Id}", nameof(ops));
        }
        if (communicator.Size == 1)
        {
            return value;
        }
        var dtype = ops.Device.Capabilities.DTypes.Contains(DType.F64) ? DType.F64 : DType.F32;
        using var scalar = ops.FromArray([value], new Shape(1), dtype);
        communicator.AllReduce(scalar, scalar, op);
        return ops.ToDoubleArray(scalar)[0];
    }
}
