namespace Hal.Conformance.Kernels.Catalogue;

// Memory semantics through IDevice/IAllocator: allocation sizes, host and device copies at odd byte offsets (bitwise
// round trips), the typed out-of-memory error with its numbers, use after dispose. Shape legend: byte counts.
// Use after the DEVICE is disposed is not checked: the suite runs on a shared device that must stay open.
public static partial class DeviceCases
{
    private const string Allocate = "memory.allocate";
    private const string Copy = "memory.copy";
    private const string OutOfMemory = "memory.out_of_memory";
    private const string UseAfterDispose = "memory.use_after_dispose";

    private static readonly long[] AllocationSizes = [0, 1, 3, 4095, 4097, 64L << 20];

    /// <summary>A byte pattern that differs at every position of a 251-cycle (prime, so it never lines up with power-of-two strides).</summary>
    private static byte Pattern(long i, int salt) => (byte)((i * 7 + salt) % 251);

    private static IEnumerable<KernelCase> Memory()
    {
        foreach (long size in AllocationSizes)
        {
            yield return new KernelCase
            {
                Id = $"{Allocate}/u8/[{size}]/write-read",
                Op = Allocate,
                DType = DType.U8,
                Shape = $"[{size}] bytes",
                Quick = size is 0 or 4097,
                Description = $"allocate {size} bytes, write a pattern, read it back",
                Run = ctx => RunAllocate(ctx, size),
            };
        }
        foreach (var (src, dst, count) in new (long, long, long)[] { (0, 0, 517), (3, 7, 517), (1, 0, 64), (63, 65, 1000), (5, 2, 1) })
        {
            yield return new KernelCase
            {
                Id = $"{Copy}/u8/[{count}]/src{src}-dst{dst}",
                Op = Copy,
                DType = DType.U8,
                Shape = $"[{count}] bytes",
                Quick = src == 3,
                Description = $"host → buffer at byte {src}, buffer → buffer at byte {dst}, buffer → host; bytes around the ranges untouched",
                Run = ctx => RunCopy(ctx, src, dst, count),
            };
        }
        yield return new KernelCase
        {
            Id = $"{OutOfMemory}/u8/[memory+1]/typed-error",
            Op = OutOfMemory,
            DType = DType.U8,
            Shape = "[MemoryBytes + 1] bytes",
            Quick = true,
            Expects = typeof(OutOfDeviceMemoryException),
            Description = "a request beyond Capabilities.MemoryBytes raises OutOfDeviceMemoryException carrying the request, the bytes in use and the limit",
            Run = RunOutOfMemory,
        };
        yield return new KernelCase
        {
            Id = $"{Allocate}/u8/[-1]/negative-size",
            Op = Allocate,
            DType = DType.U8,
            Shape = "[-1] bytes",
            Quick = true,
            Expects = typeof(ArgumentOutOfRangeException),
            Description = "a negative size raises ArgumentOutOfRangeException (IAllocator docs)",
            Run = ctx =>
            {
                ctx.Own(ctx.Ops.Device.Allocator.Allocate(-1));
                return [];
            },
        };
        yield return new KernelCase
        {
            Id = $"{Copy}/u8/[16]/past-the-end",
            Op = Copy,
            DType = DType.U8,
            Shape = "[16] bytes at 10 of 20",
            Quick = true,
            Expects = typeof(ArgumentOutOfRangeException),
            Description = "a copy that runs past the end of a buffer raises ArgumentOutOfRangeException",
            Run = ctx =>
            {
                var buffer = ctx.Own(ctx.Ops.Device.Allocator.Allocate(20));
                ctx.Ops.Device.CopyFromHost(new byte[16], buffer, 10);
                return [];
            },
        };
        yield return new KernelCase
        {
            Id = $"{UseAfterDispose}/f32/[8]/fill",
            Op = UseAfterDispose,
            DType = DType.F32,
            Shape = "[8]",
            Quick = true,
            Expects = typeof(ObjectDisposedException),
            Description = "filling a disposed tensor raises ObjectDisposedException",
            Run = ctx =>
            {
                var t = ctx.Ops.Zeros(new Shape(8), DType.F32);
                t.Dispose();
                ctx.Ops.Fill(t, 1);
                return [];
            },
        };
        yield return new KernelCase
        {
            Id = $"{UseAfterDispose}/u8/[8]/copy-to-host",
            Op = UseAfterDispose,
            DType = DType.U8,
            Shape = "[8] bytes",
            Quick = true,
            Expects = typeof(ObjectDisposedException),
            Description = "reading a disposed buffer raises ObjectDisposedException",
            Run = ctx =>
            {
                var buffer = ctx.Ops.Device.Allocator.Allocate(8);
                buffer.Dispose();
                ctx.Ops.Device.CopyToHost(buffer, 0, new byte[8]);
                return [];
            },
        };
    }

    private static IReadOnlyList<CaseOutput> RunAllocate(CaseContext ctx, long size)
    {
        var device = ctx.Ops.Device;
        var buffer = ctx.Own(device.Allocator.Allocate(size));
        if (buffer.SizeInBytes != size)
        {
            throw new InvalidOperationException($"Allocate({size}) returned a buffer of {buffer.SizeInBytes} bytes");
        }
        var written = new byte[size];
        for (long i = 0; i < size; i++)
        {
            written[i] = Pattern(i, 11);
        }
        device.CopyFromHost(written, buffer, 0);
        var read = new byte[size];
        device.CopyToHost(buffer, 0, read);
        // Compare everything here; report up to 8192 sampled bytes (the first and last 4096) so that the output stays small.
        long firstDifference = -1;
        for (long i = 0; i < size && firstDifference < 0; i++)
        {
            if (read[i] != written[i])
            {
                firstDifference = i;
            }
        }
        var sample = new List<long>();
        for (long i = 0; i < Math.Min(size, 4096); i++)
        {
            sample.Add(i);
        }
        for (long i = Math.Max(4096, size - 4096); i < size; i++)
        {
            sample.Add(i);
        }
        if (firstDifference >= 0 && !sample.Contains(firstDifference))
        {
            sample.Add(firstDifference);
        }
        double[] expected = sample.Select(i => (double)written[i]).ToArray();
        double[] actual = sample.Select(i => (double)read[i]).ToArray();
        return [new CaseOutput("bytes", DType.U8, actual, expected, ToleranceTable.For(Allocate))];
    }

    private static IReadOnlyList<CaseOutput> RunCopy(CaseContext ctx, long srcOffset, long dstOffset, long count)
    {
        var device = ctx.Ops.Device;
        long size = Math.Max(srcOffset, dstOffset) + count + 9;
        var a = ctx.Own(device.Allocator.Allocate(size));
        var b = ctx.Own(device.Allocator.Allocate(size));
        // Known backgrounds in both buffers, so a copy that spills past its range shows.
        var backgroundA = new byte[size];
        var backgroundB = new byte[size];
        for (long i = 0; i < size; i++)
        {
            backgroundA[i] = Pattern(i, 1);
            backgroundB[i] = Pattern(i, 2);
        }
        device.CopyFromHost(backgroundA, a, 0);
        device.CopyFromHost(backgroundB, b, 0);
        var payload = new byte[count];
        for (long i = 0; i < count; i++)
        {
            payload[i] = Pattern(i, 200);
        }
        device.CopyFromHost(payload, a, srcOffset);
        device.CopyDeviceToDevice(a, srcOffset, b, dstOffset, count);
        var roundTrip = new byte[count];
        device.CopyToHost(b, dstOffset, roundTrip);
        var wholeB = new byte[size];
        device.CopyToHost(b, 0, wholeB);
        var expectedB = (byte[])backgroundB.Clone();
        Array.Copy(payload, 0, expectedB, dstOffset, count);
        var rule = ToleranceTable.For(Copy);
        return
        [
            new CaseOutput("round trip", DType.U8, roundTrip.Select(v => (double)v).ToArray(), payload.Select(v => (double)v).ToArray(), rule),
            new CaseOutput("destination buffer", DType.U8, wholeB.Select(v => (double)v).ToArray(), expectedB.Select(v => (double)v).ToArray(), rule),
        ];
    }

    private static IReadOnlyList<CaseOutput> RunOutOfMemory(CaseContext ctx)
    {
        var device = ctx.Ops.Device;
        long request = device.Capabilities.MemoryBytes + 1;
        try
        {
            ctx.Own(device.Allocator.Allocate(request));
        }
        catch (OutOfDeviceMemoryException e)
        {
            // The numbers must be there: the request as asked, a limit no larger than the device's memory, and the message naming the request.
            string digits = request.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (e.BytesRequested != request || e.LimitBytes > device.Capabilities.MemoryBytes || e.LimitBytes <= 0 || e.BytesInUse < 0
                || e.Device != device.Id || !e.Message.Contains(digits, StringComparison.Ordinal))
            {
                throw new InvalidOperationException(
                    $"OutOfDeviceMemoryException does not carry the numbers: requested {e.BytesRequested} (asked {request}), in use {e.BytesInUse}, limit {e.LimitBytes} (memory {device.Capabilities.MemoryBytes}), device {e.Device}, message '{e.Message}'");
            }
            throw;
        }
        return [];
    }
}
