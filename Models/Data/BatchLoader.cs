using Hal.Numerics;

namespace Hal.Models.Data;

/// <summary>
/// Cuts [B, T] training windows from a dataset: window r of a batch gives inputs = tokens p … p + T − 1 and
/// targets = p + 1 … p + T. Legend: B batch rows, T sequence length, n batches drawn so far.
/// <para>
/// Consecutive: window r of batch n starts at p = (n·B·T + r·T) mod (Length − T), so the position advances by B·T per
/// batch and wraps at the end; Length − T is the number of start positions whose T + 1 tokens fit.
/// </para>
/// <para>
/// Shuffled: the dataset is cut into W = ⌊(Length − 1) / T⌋ windows of stride T (window w starts at w·T); epoch e visits
/// them in a random permutation (Fisher–Yates, draws from Philox keyed by the seed, counters e·2⁴⁰ …), and the k-th
/// window drawn overall is permutation element k mod W of epoch ⌊k / W⌋. Every window is visited once per epoch.
/// </para>
/// <para>
/// The state is <see cref="BatchesDrawn"/> alone: <see cref="Seek"/>(n) on a fresh loader reproduces exactly what the
/// loader that drew n batches yields next, which is how a checkpoint resumes the data. One loader serves one thread
/// (it reuses a window buffer and caches the current epoch's permutation).
/// </para>
/// </summary>
public sealed class BatchLoader
{
    private readonly ITokenDataset _dataset;
    private readonly bool _shuffle;
    private readonly ulong _seed;
    private readonly long _startCount;
    private readonly long _windowCount;
    private readonly int[] _window;
    private long _permutationEpoch = -1;
    private long[] _permutation = [];

    /// <param name="dataset">the tokens.</param>
    /// <param name="batch">rows B per batch (≥ 1).</param>
    /// <param name="seq">tokens T per row (≥ 1).</param>
    /// <param name="shuffle">visit stride-T windows in a seeded random order per epoch instead of consecutively.</param>
    /// <param name="seed">key of the shuffle (ignored when not shuffling).</param>
    /// <exception cref="ArgumentOutOfRangeException">batch or seq below 1.</exception>
    /// <exception cref="DatasetException">the dataset has fewer than T + 1 tokens (<see cref="DatasetProblem.TooShort"/>).</exception>
    public BatchLoader(ITokenDataset dataset, int batch, int seq, bool shuffle, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(seq, 1);
        if (dataset.Length < (long)seq + 1)
        {
            throw new DatasetException(DatasetProblem.TooShort, dataset.Description,
                $"{dataset.Length} tokens cannot fill one window of {seq} inputs and {seq} targets ({seq + 1} tokens); use a shorter sequence or more data");
        }
        _dataset = dataset;
        Batch = batch;
        Seq = seq;
        _shuffle = shuffle;
        _seed = seed;
        _startCount = dataset.Length - seq;
        _windowCount = (dataset.Length - 1) / seq;
        _window = new int[seq + 1];
    }

    /// <summary>Rows B per batch.</summary>
    public int Batch { get; }

    /// <summary>Tokens T per row.</summary>
    public int Seq { get; }

    /// <summary>Whether windows are visited in a shuffled order.</summary>
    public bool Shuffle => _shuffle;

    /// <summary>Shuffled windows per epoch, W = ⌊(Length − 1) / T⌋.</summary>
    public long WindowsPerEpoch => _windowCount;

    /// <summary>Batches drawn so far: the resumable state; <see cref="Seek"/>(BatchesDrawn) reproduces what follows.</summary>
    public long BatchesDrawn { get; private set; }

    /// <summary>Token offset of the next batch's first window (for logs and checkpoints).</summary>
    public long Position => WindowStart(BatchesDrawn * Batch);

    /// <summary>The epoch the next batch's first window belongs to (shuffled: windows / W; consecutive: tokens / (Length − T)).</summary>
    public long Epoch => _shuffle
        ? BatchesDrawn * Batch / _windowCount
        : (long)((decimal)BatchesDrawn * Batch * Seq / _startCount);

    /// <summary>Sets the state as if <paramref name="batchesDrawn"/> batches had been drawn from a fresh loader.</summary>
    /// <exception cref="ArgumentOutOfRangeException">a negative count.</exception>
    public void Seek(long batchesDrawn)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchesDrawn);
        BatchesDrawn = batchesDrawn;
    }

    /// <summary>Fills the next batch: <paramref name="inputs"/> and <paramref name="targets"/> are each B·T, row-major [B, T].</summary>
    /// <exception cref="ArgumentException">a span is not B·T long.</exception>
    public void Next(Span<int> inputs, Span<int> targets)
    {
        int size = Batch * Seq;
        if (inputs.Length != size || targets.Length != size)
        {
            throw new ArgumentException(
                $"inputs and targets must each hold B·T = {Batch}·{Seq} = {size} tokens, got {inputs.Length} and {targets.Length}");
        }
        long firstWindow = BatchesDrawn * Batch;
        for (int r = 0; r < Batch; r++)
        {
            _dataset.Read(WindowStart(firstWindow + r), _window);
            _window.AsSpan(0, Seq).CopyTo(inputs.Slice(r * Seq, Seq));
            _window.AsSpan(1, Seq).CopyTo(targets.Slice(r * Seq, Seq));
        }
        BatchesDrawn++;
    }

    // The start token of the k-th window drawn since the beginning (k = n·B + r).
    private long WindowStart(long windowIndex)
    {
        if (!_shuffle)
        {
            // (k·T) mod (Length − T) without overflowing k·T for long runs.
            return (long)(((UInt128)(ulong)windowIndex * (ulong)Seq) % (ulong)_startCount);
        }
        long epoch = windowIndex / _windowCount;
        long slot = windowIndex % _windowCount;
        return PermutationOf(epoch)[slot] * Seq;
    }

    private long[] PermutationOf(long epoch)
    {
        if (epoch == _permutationEpoch)
        {
            return _permutation;
        }
        if (_permutation.Length != _windowCount)
        {
            _permutation = new long[_windowCount];
        }
        for (long w = 0; w < _windowCount; w++)
        {
            _permutation[w] = w;
        }
        // Fisher–Yates from the top: swap slot i with a uniform j in 0 … i; each j takes one Philox block (two 32-bit
        // words make a 64-bit draw, whose modulo bias ≤ W / 2⁶⁴ is far below anything a run could notice).
        ulong counterBase = (ulong)epoch << 40;
        for (long i = _windowCount - 1; i > 0; i--)
        {
            var (x0, x1, _, _) = Philox.Block(_seed, counterBase + (ulong)i);
            ulong draw = ((ulong)x1 << 32) | x0;
            long j = (long)(draw % (ulong)(i + 1));
            (_permutation[i], _permutation[j]) = (_permutation[j], _permutation[i]);
        }
        _permutationEpoch = epoch;
        return _permutation;
    }
}
