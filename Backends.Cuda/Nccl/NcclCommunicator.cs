using Hal.Backends.Cuda.Native;
using ILGPU.Runtime.Cuda;

namespace Hal.Backends.Cuda.Nccl;

/// <summary>
/// A communicator over NCCL for ranks whose devices are all CUDA GPUs. The ranks first agree through a bootstrap
/// communicator (in-process or MPI): rank 0 creates NCCL's unique id and broadcasts it, then every rank joins with
/// ncclCommInitRank. Collectives run on the device's stream, device memory to device memory; a blocking call waits for
/// the stream for at most <see cref="CommunicatorBase.Timeout"/>, then aborts the NCCL communicator and raises
/// <see cref="CollectiveTimeoutException"/>.
/// </summary>
public sealed class NcclCommunicator : CommunicatorBase
{
    private readonly CudaDevice _device;
    private readonly IntPtr _stream;
    private IntPtr _comm;
    private Tensor? _barrierScratch;

    private NcclCommunicator(CudaDevice device, IntPtr comm, int rank, int size)
        : base(device, rank, size)
    {
        _device = device;
        _comm = comm;
        _stream = ((CudaStream)device.Accelerator.DefaultStream).StreamPtr;
    }

    /// <inheritdoc />
    public override string Kind => "nccl";

    /// <summary>
    /// The NCCL communicator for <paramref name="bootstrap"/>'s group when every rank's device is a CUDA GPU and NCCL
    /// is present (a collective over the bootstrap group: all ranks must call it), otherwise <paramref name="bootstrap"/>
    /// itself. The bootstrap communicator stays owned by the caller.
    /// </summary>
    public static ICommunicator PreferNccl(ICommunicator bootstrap)
    {
        ArgumentNullException.ThrowIfNull(bootstrap);
        bool mine = bootstrap.Device is CudaDevice { IsEmulator: false } && NcclNative.TryLocate(out _);
        using var flag = new Ops(bootstrap.Device).FromArray(new double[] { mine ? 1 : 0 }, new Shape(1), DType.I32);
        bootstrap.AllReduce(flag, flag, ReduceOp.Min);
        bool all = new Ops(bootstrap.Device).ToDoubleArray(flag)[0] == 1;
        return all ? Create(bootstrap, (CudaDevice)bootstrap.Device) : bootstrap;
    }

    /// <summary>Joins an NCCL group with the same ranks as <paramref name="bootstrap"/> (a collective over it).</summary>
    /// <exception cref="CudaException">NCCL failed (the message names the ncclResult_t).</exception>
    public static unsafe NcclCommunicator Create(ICommunicator bootstrap, CudaDevice device)
    {
        ArgumentNullException.ThrowIfNull(bootstrap);
        ArgumentNullException.ThrowIfNull(device);
        var ops = new Ops(bootstrap.Device);
        var id = bootstrap.Rank == 0 ? NcclNative.GetUniqueId() : default;
        var bytes = new double[128];
        for (int i = 0; i < 128; i++)
        {
            bytes[i] = id.Bytes[i];
        }
        using (var idTensor = ops.FromArray(bytes, new Shape(128), DType.I32))
        {
            bootstrap.Broadcast(idTensor, 0);
            bytes = ops.ToDoubleArray(idTensor);
        }
        for (int i = 0; i < 128; i++)
        {
            id.Bytes[i] = (byte)bytes[i];
        }
        device.Accelerator.Bind();
        IntPtr comm = NcclNative.CommInitRank(bootstrap.Size, id, bootstrap.Rank);
        return new NcclCommunicator(device, comm, bootstrap.Rank, bootstrap.Size);
    }

    private static IntPtr Address(Tensor t) => ((CudaBuffer)t.Buffer).DevicePointer + (nint)t.OffsetBytes;

    private static int TypeOf(Tensor t) => t.DType switch
    {
        DType.F32 => NcclNative.Float32,
        DType.F64 => NcclNative.Float64,
        DType.F16 => NcclNative.Float16,
        DType.BF16 => NcclNative.BFloat16,
        DType.I32 => NcclNative.Int32,
        _ => NcclNative.Int64,
    };

    private static int OpOf(ReduceOp op) => op switch
    {
        ReduceOp.Sum => NcclNative.OpSum,
        ReduceOp.Mean => NcclNative.OpAvg,
        ReduceOp.Max => NcclNative.OpMax,
        _ => NcclNative.OpMin,
    };

    /// <summary>Queues <paramref name="queue"/> on the stream, then waits for it within the timeout.</summary>
    private void Run(string op, Action queue)
    {
        ThrowIfDisposed();
        _device.Accelerator.Bind();
        queue();
        var wait = Task.Run(() =>
        {
            _device.Accelerator.Bind();
            _device.Accelerator.DefaultStream.Synchronize();
        });
        if (!wait.Wait(Timeout))
        {
            NcclNative.CommAbort(_comm);
            _comm = IntPtr.Zero;
            throw new CollectiveTimeoutException(Rank, op, "the other ranks' NCCL kernels", Timeout);
        }
    }

    protected override void AllReduceCore(Tensor send, Tensor recv, ReduceOp op) =>
        Run("all-reduce", () => NcclNative.AllReduce(Address(send), Address(recv), send.ElementCount, TypeOf(send), OpOf(op), _comm, _stream));

    protected override void BroadcastCore(Tensor tensor, int root) =>
        Run("broadcast", () => NcclNative.Broadcast(Address(tensor), Address(tensor), tensor.ElementCount, TypeOf(tensor), root, _comm, _stream));

    protected override void AllGatherCore(Tensor send, Tensor recv) =>
        Run("all-gather", () => NcclNative.AllGather(Address(send), Address(recv), send.ElementCount, TypeOf(send), _comm, _stream));

    protected override void ReduceScatterCore(Tensor send, Tensor recv, ReduceOp op) =>
        Run("reduce-scatter", () => NcclNative.ReduceScatter(Address(send), Address(recv), recv.ElementCount, TypeOf(send), OpOf(op), _comm, _stream));

    protected override void AllToAllCore(Tensor send, Tensor recv) => Run("all-to-all", () =>
    {
        long block = send.ElementCount / Size;
        long blockBytes = block * send.DType.SizeInBytes();
        NcclNative.GroupStart();
        for (int peer = 0; peer < Size; peer++)
        {
            NcclNative.Send(Address(send) + (nint)(peer * blockBytes), block, TypeOf(send), peer, _comm, _stream);
            NcclNative.Recv(Address(recv) + (nint)(peer * blockBytes), block, TypeOf(recv), peer, _comm, _stream);
        }
        NcclNative.GroupEnd();
    });

    // NCCL matches point-to-point calls by order between a pair of ranks; tags are kept in order by the caller.
    protected override void SendCore(Tensor tensor, int peer, int tag) =>
        Run("send", () => NcclNative.Send(Address(tensor), tensor.ElementCount, TypeOf(tensor), peer, _comm, _stream));

    protected override void RecvCore(Tensor tensor, int peer, int tag) =>
        Run("recv", () => NcclNative.Recv(Address(tensor), tensor.ElementCount, TypeOf(tensor), peer, _comm, _stream));

    protected override void BarrierCore()
    {
        _barrierScratch ??= new Ops(_device).Zeros(new Shape(1), DType.I32);
        AllReduceCore(_barrierScratch, _barrierScratch, ReduceOp.Sum);
    }

    protected override ICommunicator? SplitCore(int color, int key)
    {
        ThrowIfDisposed();
        _device.Accelerator.Bind();
        IntPtr created = NcclNative.CommSplit(_comm, color, key);
        if (color < 0 || created == IntPtr.Zero)
        {
            return null;
        }
        // The new rank and size come from NCCL itself.
        return FromHandle(created);
    }

    private unsafe NcclCommunicator FromHandle(IntPtr comm)
    {
        int rank = 0, size = 0;
        NcclNative.Check(CommQuery(comm, "ncclCommUserRank", &rank), "ncclCommUserRank");
        NcclNative.Check(CommQuery(comm, "ncclCommCount", &size), "ncclCommCount");
        return new NcclCommunicator(_device, comm, rank, size) { Timeout = Timeout };
    }

    private static unsafe int CommQuery(IntPtr comm, string name, int* value)
    {
        NcclNative.TryLocate(out _);
        return ((delegate* unmanaged<IntPtr, int*, int>)NcclNative.Export(name))(comm, value);
    }

    protected override void DisposeCore()
    {
        _barrierScratch?.Dispose();
        if (_comm != IntPtr.Zero)
        {
            NcclNative.CommDestroy(_comm);
            _comm = IntPtr.Zero;
        }
    }
}
