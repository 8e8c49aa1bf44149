using System.Runtime.InteropServices;
using Hal.Collectives.Mpi.Native;

namespace Hal.Collectives.Mpi;

/// <summary>
/// A communicator over Open MPI (<c>libmpi.so.40</c>, by P/Invoke): one rank per process, started by
/// <c>mpirun -np N</c>. Collectives use MPI's non-blocking forms polled until done, so every call gives up after
/// <see cref="CommunicatorBase.Timeout"/>; before each collective the ranks compare a small descriptor (op, element
/// count, dtype, root, reduction) so mismatched calls raise <see cref="CollectiveMismatchException"/> on every rank
/// instead of corrupting memory. Host-memory tensors go to MPI by address; others are staged through host buffers.
/// </summary>
/// <remarks>
/// After a <see cref="CollectiveTimeoutException"/> the job should be aborted: MPI cannot cancel a collective in
/// flight, so the late ranks may still complete it later into the same memory, and the communicator refuses further
/// calls. Every rank must set <see cref="VerifyArguments"/> the same way (the check is itself a collective).
/// </remarks>
public sealed partial class MpiCommunicator : CommunicatorBase
{
    private const string WorldName = "MPI_COMM_WORLD";

    private readonly IntPtr _comm;
    private readonly MpiCommHandle? _ownedComm;
    private readonly bool _isWorld;
    private readonly string _name;
    private readonly MpiStaging _staging = new();
    private readonly unsafe long* _descriptor;
    private volatile bool _faulted;

    private unsafe MpiCommunicator(IDevice device, IntPtr comm, MpiCommHandle? ownedComm, int rank, int size, bool isWorld, string name)
        : base(device, rank, size)
    {
        _comm = comm;
        _ownedComm = ownedComm;
        _isWorld = isWorld;
        _name = name;
        _descriptor = (long*)NativeMemory.AlignedAlloc(DescriptorFields * 2 * sizeof(long), 64);
    }

    /// <inheritdoc />
    public override string Kind => "mpi";

    /// <summary>
    /// When true (the default), each collective first exchanges a descriptor (one small MPI_Allreduce) and raises
    /// <see cref="CollectiveMismatchException"/> on every rank if the ranks disagree. Every rank must use the same value.
    /// </summary>
    public bool VerifyArguments { get; set; } = true;

    /// <summary>
    /// When true, tensors are copied through host staging buffers even if their device hands out host pointers: the
    /// path every non-host device takes, exercised on the CPU device. Default false (host pointers go straight to MPI).
    /// </summary>
    public bool StageThroughHost { get; set; }

    /// <summary>True when the <c>OMPI_COMM_WORLD_SIZE</c> environment variable is set, i.e. Open MPI's mpirun started this process.</summary>
    public static bool IsUnderMpirun => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE"));

    /// <summary>Whether this process can use MPI: libmpi.so.40 must load and the process must have been started by mpirun.</summary>
    public static MpiAvailability Probe()
    {
        if (!MpiRuntime.TryLoad(out string? error))
        {
            return new MpiAvailability(false, $"libmpi.so.40 is missing or does not load ({error}); run ./hal, which installs openmpi-bin and libopenmpi-dev");
        }
        if (!IsUnderMpirun)
        {
            return new MpiAvailability(false, "not started by mpirun (OMPI_COMM_WORLD_SIZE is not set); start the ranks with mpirun -np N");
        }
        return new MpiAvailability(true, null);
    }

    /// <summary>
    /// Initializes MPI (MPI_Init_thread at MPI_THREAD_SERIALIZED, once per process) and returns the communicator over
    /// MPI_COMM_WORLD; disposing it calls MPI_Finalize, after which MPI cannot be started again in this process.
    /// </summary>
    /// <exception cref="HalException">libmpi.so.40 does not load, MPI is already initialized, or was finalized.</exception>
    /// <exception cref="MpiException">an MPI call failed.</exception>
    public static MpiCommunicator InitWorld(IDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        MpiRuntime.Initialize();
        IntPtr world = MpiRuntime.Handles.CommWorld;
        int rank, size;
        lock (MpiRuntime.Gate)
        {
            MpiException.Check(MpiNative.CommRank(world, out rank), "MPI_Comm_rank", WorldName);
            MpiException.Check(MpiNative.CommSize(world, out size), "MPI_Comm_size", WorldName);
        }
        return new MpiCommunicator(device, world, null, rank, size, isWorld: true, WorldName);
    }

    /// <summary>
    /// A plain blocking <c>MPI_Allreduce</c> on host memory: no argument exchange, no staging, no timeout. The baseline
    /// the benchmark compares the communicator against. <paramref name="sendHost"/> equal to <paramref name="recvHost"/> runs in place.
    /// </summary>
    public void RawAllReduce(IntPtr sendHost, IntPtr recvHost, long count, DType dtype, ReduceOp op)
    {
        ThrowIfDisposed();
        int n = ToCount(count, "raw all-reduce");
        IntPtr send = sendHost == recvHost ? MpiNative.InPlace : sendHost;
        lock (MpiRuntime.Gate)
        {
            MpiException.Check(MpiNative.Allreduce(send, recvHost, n, DataType(dtype), Operation(dtype, op), _comm), "MPI_Allreduce", Describe("raw all-reduce", count, dtype));
        }
        if (op == ReduceOp.Mean)
        {
            DivideBySize(recvHost, n, dtype);
        }
    }

    /// <inheritdoc />
    protected override ICommunicator? SplitCore(int color, int key)
    {
        ThrowIfFaulted();
        // MPI_Comm_split has no non-blocking form: first make sure every rank arrived (with the timeout), then split.
        if (VerifyArguments)
        {
            Verify(CollectiveCode.Split, 0, DType.I64, -1, null);
        }
        else
        {
            Barrier(CollectiveCode.Split);
        }
        IntPtr child;
        lock (MpiRuntime.Gate)
        {
            MpiException.Check(MpiNative.CommSplit(_comm, color < 0 ? MpiNative.Undefined : color, key, out child), "MPI_Comm_split", $"{_name}, color {color}, key {key}");
        }
        if (child == MpiRuntime.Handles.CommNull || child == IntPtr.Zero)
        {
            return null;
        }
        var handle = new MpiCommHandle(child);
        int rank, size;
        lock (MpiRuntime.Gate)
        {
            MpiException.Check(MpiNative.CommRank(child, out rank), "MPI_Comm_rank", "split communicator");
            MpiException.Check(MpiNative.CommSize(child, out size), "MPI_Comm_size", "split communicator");
        }
        return new MpiCommunicator(Device, child, handle, rank, size, isWorld: false, $"the split of {_name} with color {color}")
        {
            Timeout = Timeout,
            VerifyArguments = VerifyArguments,
            StageThroughHost = StageThroughHost,
        };
    }

    /// <inheritdoc />
    protected override unsafe void DisposeCore()
    {
        if (!_faulted)
        {
            // After a timeout MPI may still write into these buffers, so they are deliberately leaked.
            _staging.Dispose();
            NativeMemory.AlignedFree(_descriptor);
        }
        _ownedComm?.Dispose();
        if (_isWorld)
        {
            MpiRuntime.Shutdown();
        }
    }

    private void ThrowIfFaulted()
    {
        ThrowIfDisposed();
        if (_faulted)
        {
            throw new HalException($"rank {Rank}: an earlier collective on {_name} timed out and MPI cannot cancel it; abort the job");
        }
    }

    private static int ToCount(long count, string what)
    {
        if (count > int.MaxValue)
        {
            throw new HalException($"{what} of {count} elements: MPI counts are 32-bit, so one call moves at most {int.MaxValue} elements; split the tensor");
        }
        return (int)count;
    }

    private static string Describe(string what, long count, DType dtype) => $"{what} of {count} {dtype.Name()}";

    private static IntPtr DataType(DType dtype) => dtype switch
    {
        DType.F32 => MpiRuntime.Handles.Float,
        DType.F64 => MpiRuntime.Handles.Double,
        DType.I32 => MpiRuntime.Handles.Int32,
        DType.I64 => MpiRuntime.Handles.Int64,
        DType.F16 or DType.BF16 => MpiRuntime.Handles.UInt16,
        _ => throw new DTypeNotSupportedException("mpi collective", dtype, "mpi", "collectives take f32, f64, f16, bf16, i32 and i64"),
    };

    private static IntPtr Operation(DType dtype, ReduceOp op)
    {
        if (dtype is DType.F16 or DType.BF16)
        {
            return MpiHalfOps.For(dtype, op);
        }
        return op switch
        {
            // MPI has no average: Mean sums, then each rank divides by Size.
            ReduceOp.Sum or ReduceOp.Mean => MpiRuntime.Handles.Sum,
            ReduceOp.Max => MpiRuntime.Handles.Max,
            ReduceOp.Min => MpiRuntime.Handles.Min,
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction"),
        };
    }

    /// <summary>Owns a communicator made by MPI_Comm_split; frees it with MPI_Comm_free while MPI is still running.</summary>
    private sealed class MpiCommHandle : SafeHandle
    {
        public MpiCommHandle(IntPtr comm)
            : base(IntPtr.Zero, ownsHandle: true)
        {
            SetHandle(comm);
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            // After MPI_Finalize every communicator is gone with it, and MPI may not be called any more.
            if (!MpiRuntime.IsActive)
            {
                return true;
            }
            IntPtr comm = handle;
            lock (MpiRuntime.Gate)
            {
                return MpiNative.CommFree(ref comm) == MpiNative.Success;
            }
        }
    }
}
