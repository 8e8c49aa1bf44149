using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hal.Collectives.Mpi.Native;
using Hal.Numerics;

namespace Hal.Collectives.Mpi;

/// <summary>
/// Reductions of F16 and BF16, which MPI has no types for. The bits travel as MPI_UINT16_T and user ops
/// (MPI_Op_create) reduce each pair in F32 and round once, RNE — one rounding per reduction step, the contract's
/// rule. This was chosen over staging through F32 because it keeps the wire at 2 bytes per element (half the
/// traffic) and needs no conversion buffers; the cost is a scalar loop in the op, which is far below the copy rate.
/// Max and Min use <see cref="MathF.Max(float, float)"/> / <see cref="MathF.Min(float, float)"/> (a NaN wins).
/// </summary>
internal static unsafe class MpiHalfOps
{
    private static IntPtr s_sumF16, s_maxF16, s_minF16, s_sumBf16, s_maxBf16, s_minBf16;

    /// <summary>The user op for a 16-bit dtype and a reduction (Mean reduces as Sum, the division comes after).</summary>
    internal static IntPtr For(DType dtype, ReduceOp op) => (dtype, op) switch
    {
        (DType.F16, ReduceOp.Sum or ReduceOp.Mean) => s_sumF16,
        (DType.F16, ReduceOp.Max) => s_maxF16,
        (DType.F16, ReduceOp.Min) => s_minF16,
        (DType.BF16, ReduceOp.Sum or ReduceOp.Mean) => s_sumBf16,
        (DType.BF16, ReduceOp.Max) => s_maxBf16,
        (DType.BF16, ReduceOp.Min) => s_minBf16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), $"{dtype} {op} has no 16-bit user op"),
    };

    /// <summary>Creates the six ops; called once after MPI_Init_thread, under the MPI lock.</summary>
    internal static void Create()
    {
        s_sumF16 = Make(&SumF16, "sum f16");
        s_maxF16 = Make(&MaxF16, "max f16");
        s_minF16 = Make(&MinF16, "min f16");
        s_sumBf16 = Make(&SumBf16, "sum bf16");
        s_maxBf16 = Make(&MaxBf16, "max bf16");
        s_minBf16 = Make(&MinBf16, "min bf16");
    }

    /// <summary>Frees the ops; called once before MPI_Finalize, under the MPI lock.</summary>
    internal static void Free()
    {
        Release(ref s_sumF16);
        Release(ref s_maxF16);
        Release(ref s_minF16);
        Release(ref s_sumBf16);
        Release(ref s_maxBf16);
        Release(ref s_minBf16);
    }

    private static IntPtr Make(delegate* unmanaged<void*, void*, int*, IntPtr*, void> function, string what)
    {
        // commute = 1: sum, max and min of two values do not depend on the order of the operands.
        MpiException.Check(MpiNative.OpCreate(function, 1, out IntPtr op), "MPI_Op_create", what);
        return op;
    }

    private static void Release(ref IntPtr op)
    {
        if (op != IntPtr.Zero)
        {
            MpiException.Check(MpiNative.OpFree(ref op), "MPI_Op_free");
            op = IntPtr.Zero;
        }
    }

    // MPI's user-function contract: inout[i] = in[i] op inout[i] for i < *length.

    [UnmanagedCallersOnly]
    private static void SumF16(void* input, void* inout, int* length, IntPtr* datatype) => Apply<F16, SumOp>(input, inout, *length);

    [UnmanagedCallersOnly]
    private static void MaxF16(void* input, void* inout, int* length, IntPtr* datatype) => Apply<F16, MaxOp>(input, inout, *length);

    [UnmanagedCallersOnly]
    private static void MinF16(void* input, void* inout, int* length, IntPtr* datatype) => Apply<F16, MinOp>(input, inout, *length);

    [UnmanagedCallersOnly]
    private static void SumBf16(void* input, void* inout, int* length, IntPtr* datatype) => Apply<Bf16, SumOp>(input, inout, *length);

    [UnmanagedCallersOnly]
    private static void MaxBf16(void* input, void* inout, int* length, IntPtr* datatype) => Apply<Bf16, MaxOp>(input, inout, *length);

    [UnmanagedCallersOnly]
    private static void MinBf16(void* input, void* inout, int* length, IntPtr* datatype) => Apply<Bf16, MinOp>(input, inout, *length);

    private static void Apply<TFormat, TOp>(void* input, void* inout, int length)
        where TFormat : struct, IFormat
        where TOp : struct, IPairOp
    {
        var a = new ReadOnlySpan<ushort>(input, length);
        var b = new Span<ushort>(inout, length);
        for (int i = 0; i < b.Length; i++)
        {
            b[i] = TFormat.Round(TOp.Apply(TFormat.Widen(a[i]), TFormat.Widen(b[i])));
        }
    }

    private interface IFormat
    {
        static abstract float Widen(ushort bits);

        static abstract ushort Round(float value);
    }

    private interface IPairOp
    {
        static abstract float Apply(float a, float b);
    }

    private readonly struct F16 : IFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Widen(ushort bits) => HalfConvert.F16ToFloat(bits);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ushort Round(float value) => HalfConvert.FloatToF16(value);
    }

    private readonly struct Bf16 : IFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Widen(ushort bits) => HalfConvert.Bf16ToFloat(bits);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ushort Round(float value) => HalfConvert.FloatToBf16(value);
    }

    private readonly struct SumOp : IPairOp
    {
        public static float Apply(float a, float b) => a + b;
    }

    private readonly struct MaxOp : IPairOp
    {
        public static float Apply(float a, float b) => MathF.Max(a, b);
    }

    private readonly struct MinOp : IPairOp
    {
        public static float Apply(float a, float b) => MathF.Min(a, b);
    }
}
