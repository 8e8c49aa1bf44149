namespace Hal.Parallel;

// Shape legend: count = elements of the gradient slab (1-D); es = bytes per element; e = elements per bucket
// (bucketBytes / es, at least 1). Bucket i covers slab elements [max(0, count − (i+1)·e), count − i·e): bucket 0 is
// the slab's tail (the last layers' gradients, final first in backward), the last bucket the head and possibly short.

/// <summary>
/// Averages a gradient slab across the ranks of a communicator in buckets, launching each bucket's all-reduce as
/// soon as backward reports that its gradients are final, so communication overlaps the rest of backward.
/// </summary>
/// <remarks>
/// <para>Averaging: each bucket is one in-place <see cref="ICommunicator.AllReduceAsync"/> with
/// <see cref="ReduceOp.Mean"/>. Every communicator computes Mean as the sum over ranks followed by one division by
/// the rank count, correctly rounded in the dtype's arithmetic — never a multiplication by 1/Size, which is inexact
/// for a rank count that is not a power of two. When the sum is exact, the mean is therefore the correctly rounded
/// mean (exact for power-of-two rank counts).</para>
/// <para>16-bit slabs (F16, BF16) are reduced in their own dtype: the collectives load each pair to F32, add, and
/// round back once per reduction step (RNE), then divide in F32 and round once. The wire and the buffers stay at
/// 2 bytes per element; the cost is up to one 16-bit rounding per step (Size − 1 steps) plus one for the division.</para>
/// <para>Ordering: buckets are always launched in index order (tail of the slab first), whatever pattern of
/// <see cref="GradientsReadyFrom"/> a rank uses, so every rank issues the same collectives in the same order and
/// ranks may report readiness at different points. The communicator's asynchronous requests run on its own
/// background worker, concurrently with the caller, so backward continues while buckets are reduced.</para>
/// <para>While a bucket is in flight its slab range must not be written; backward only writes gradients below the
/// offset it last reported, so it never does. Calls outside <see cref="BeginBackward"/> … <see cref="FinishBackward"/>
/// to <see cref="GradientsReadyFrom"/> are ignored, so backward code may report readiness on every micro-batch and
/// only the armed one (the last micro-batch's) launches reductions.</para>
/// </remarks>
public sealed class GradientBucketer : IDisposable
{
    private readonly ICommunicator _communicator;
    private readonly Tensor _gradSlab;
    private readonly long _count;
    private readonly long _bucketElements;
    private readonly ICollectiveRequest?[] _requests;
    private bool _armed;
    private int _launched;
    private long _bytesReduced;
    private long _bucketsOverlapped;
    private bool _disposed;

    /// <summary>
    /// Cuts <paramref name="gradSlab"/> into buckets. gradSlab: the 1-D gradient slab (any float dtype the
    /// communicator supports: F32, F64, F16, BF16) on the communicator's device; bucketBytes: target bucket size
    /// (default 25 MiB as in PyTorch DDP); buckets are contiguous slab ranges laid out from the END of the slab (the
    /// last layers' gradients are final first). The average divides the sum over ranks by the communicator's Size.
    /// </summary>
    /// <exception cref="ArgumentNullException">a null argument.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bucketBytes"/> is not positive.</exception>
    /// <exception cref="ArgumentException">the slab is not 1-D, or lives on another device than the communicator's.</exception>
    /// <exception cref="DTypeNotSupportedException">the slab's dtype is not a float dtype the collectives reduce.</exception>
    public GradientBucketer(ICommunicator communicator, Tensor gradSlab, long bucketBytes = 25L << 20)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentNullException.ThrowIfNull(gradSlab);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketBytes, 1);
        if (gradSlab.Rank != 1)
        {
            throw new ArgumentException($"the gradient slab must be 1-D, got shape {gradSlab.Shape}", nameof(gradSlab));
        }
        if (!ReferenceEquals(gradSlab.Device, communicator.Device))
        {
            throw new ArgumentException(
                $"the gradient slab lives on {gradSlab.Device.Id} but rank {communicator.Rank} communicates on {communicator.Device.Id}", nameof(gradSlab));
        }
        if (gradSlab.DType is not (DType.F32 or DType.F64 or DType.F16 or DType.BF16))
        {
            throw new DTypeNotSupportedException("gradient all-reduce", gradSlab.DType, communicator.Kind, "gradient slabs are f32, f64, f16 or bf16");
        }
        _communicator = communicator;
        _gradSlab = gradSlab;
        _count = gradSlab.ElementCount;
        _bucketElements = Math.Max(1, bucketBytes / gradSlab.DType.SizeInBytes());
        BucketCount = (int)((_count + _bucketElements - 1) / _bucketElements);
        _requests = new ICollectiveRequest?[BucketCount];
    }

    /// <summary>Number of buckets: ⌈elements / bucket elements⌉ (0 for an empty slab).</summary>
    public int BucketCount { get; }

    /// <summary>Bytes all-reduced by this rank so far (each bucket counted once per backward, when it completes).</summary>
    public long BytesReduced => Interlocked.Read(ref _bytesReduced);

    /// <summary>Buckets launched from <see cref="GradientsReadyFrom"/>, i.e. before <see cref="FinishBackward"/> (overlapped), so far.</summary>
    public long BucketsOverlapped => Interlocked.Read(ref _bucketsOverlapped);

    /// <summary>Buckets launched in the current backward (reset by <see cref="BeginBackward"/>).</summary>
    public int BucketsLaunched => _launched;

    /// <summary>First slab element of bucket <paramref name="bucket"/>.</summary>
    public long BucketStart(int bucket) => Math.Max(0, _count - ((bucket + 1) * _bucketElements));

    /// <summary>Element count of bucket <paramref name="bucket"/>.</summary>
    public long BucketLength(int bucket) => _count - (bucket * _bucketElements) - BucketStart(bucket);

    /// <summary>Call before each backward whose gradients will be reduced (the last micro-batch's).</summary>
    /// <exception cref="InvalidOperationException">the previous backward's buckets were launched and never finished.</exception>
    public void BeginBackward()
    {
        ThrowIfDisposed();
        if (_launched > 0)
        {
            throw new InvalidOperationException(
                $"rank {_communicator.Rank}: {_launched} gradient bucket(s) of the previous backward are still in flight; call FinishBackward first");
        }
        _armed = true;
    }

    /// <summary>
    /// Backward says: every gradient at slab offset ≥ <paramref name="offset"/> is final. Launches the all-reduce of
    /// every bucket entirely inside [offset, end) not launched yet, tail first. Offsets only decrease within one
    /// backward (a larger offset than before launches nothing). Ignored when no backward is armed by
    /// <see cref="BeginBackward"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is outside [0, elements].</exception>
    public void GradientsReadyFrom(long offset)
    {
        ThrowIfDisposed();
        if (offset < 0 || offset > _count)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"the gradient slab has {_count} elements");
        }
        if (!_armed)
        {
            return;
        }
        while (_launched < BucketCount && BucketStart(_launched) >= offset)
        {
            Launch(_launched);
            Interlocked.Increment(ref _bucketsOverlapped);
        }
    }

    /// <summary>
    /// Launches what is left, waits for every bucket, and leaves the slab = mean over ranks of the slabs. Works
    /// without a preceding <see cref="BeginBackward"/> too (then every bucket is launched here).
    /// </summary>
    /// <exception cref="CollectiveTimeoutException">a bucket did not complete in the communicator's timeout; the
    /// operation names the bucket and its slab range.</exception>
    /// <exception cref="HalException">a bucket failed otherwise (a peer failed, arguments differ across ranks).</exception>
    public void FinishBackward()
    {
        ThrowIfDisposed();
        while (_launched < BucketCount)
        {
            Launch(_launched);
        }
        int launched = _launched;
        _launched = 0;
        _armed = false;
        Exception? first = null;
        for (int i = 0; i < launched; i++)
        {
            var request = _requests[i]!;
            _requests[i] = null;
            try
            {
                request.Wait();
                Interlocked.Add(ref _bytesReduced, BucketLength(i) * _gradSlab.DType.SizeInBytes());
            }
            catch (CollectiveTimeoutException e)
            {
                first ??= new CollectiveTimeoutException(e.Rank, $"{Describe(i)} ({e.Op})", e.WaitingFor, e.Timeout);
            }
            catch (HalException e)
            {
                first ??= new HalException($"rank {_communicator.Rank}: {Describe(i)} failed: {e.Message}", e);
            }
        }
        if (first is not null)
        {
            throw first;
        }
    }

    /// <summary>Waits for buckets still in flight (their errors are dropped: nobody asked for the result). Idempotent.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        for (int i = 0; i < _requests.Length; i++)
        {
            try
            {
                _requests[i]?.Wait();
            }
            catch (HalException)
            {
                // The gradients of an abandoned backward are not used; the communicator reports its own breakage.
            }
            _requests[i] = null;
        }
        _launched = 0;
        _armed = false;
    }

    private void Launch(int bucket)
    {
        var range = _gradSlab.View(BucketStart(bucket), new Shape(checked((int)BucketLength(bucket))));
        _requests[bucket] = _communicator.AllReduceAsync(range, range, ReduceOp.Mean);
        _launched = bucket + 1;
    }

    private string Describe(int bucket) =>
        $"gradient all-reduce bucket {bucket}/{BucketCount} (slab elements [{BucketStart(bucket)}, {BucketStart(bucket) + BucketLength(bucket)}))";

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
