using System.Text.Json;
using Hal.Numerics;
using Microsoft.Win32.SafeHandles;

namespace Hal.Models.Checkpoints;

/// <summary>
/// An open safetensors file whose header has been validated. Tensors are read on demand with positioned reads
/// through a bounded buffer (<see cref="ReadInto(string, Tensor, Ops)"/>); the file stays open until <see cref="Dispose"/>.
/// </summary>
public sealed class SafeTensorsReader : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly long _dataStart;
    private readonly Dictionary<string, Entry> _entries;

    private SafeTensorsReader(string path, SafeFileHandle handle, long dataStart, Dictionary<string, Entry> entries, Dictionary<string, string> metadata)
    {
        FilePath = path;
        _handle = handle;
        _dataStart = dataStart;
        _entries = entries;
        Metadata = metadata;
        Tensors = entries.OrderBy(e => e.Value.Begin).ThenBy(e => e.Key, StringComparer.Ordinal)
            .ToDictionary(e => e.Key, e => (e.Value.DType, (long[])e.Value.Shape.Clone()), StringComparer.Ordinal);
    }

    /// <summary>The file this reader reads.</summary>
    public string FilePath { get; }

    /// <summary>Every tensor's safetensors dtype name (F32, BF16, I64…) and shape, in file order.</summary>
    public IReadOnlyDictionary<string, (string DType, long[] Shape)> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c> (empty when there is none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Copies a tensor into <paramref name="dst"/>, converting between F32/F16/BF16/F64 (round to nearest even) when
    /// the dtypes differ; other dtypes must be equal. The shape must match exactly.
    /// </summary>
    /// <exception cref="CheckpointException">no such tensor, another shape, dtypes that do not convert, or the file shrank.</exception>
    /// <exception cref="DeviceMismatchException"><paramref name="dst"/> is not on the device of <paramref name="ops"/>.</exception>
    public void ReadInto(string name, Tensor dst, Ops ops)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(dst);
        ArgumentNullException.ThrowIfNull(ops);
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        if (!_entries.TryGetValue(name, out var entry))
        {
            throw new CheckpointException($"{FilePath}: no tensor named '{name}'");
        }
        if (!ReferenceEquals(dst.Device, ops.Device))
        {
            throw new DeviceMismatchException("safetensors read", ops.Device.Id, dst.Device.Id);
        }
        if (!entry.Shape.AsSpan().SequenceEqual(dst.Shape.ToArray().Select(d => (long)d).ToArray()))
        {
            throw new CheckpointException($"{FilePath}: tensor '{name}' has shape {FormatShape(entry.Shape)}, the destination has {dst.Shape}");
        }
        var fileDType = SafeTensors.ParseDType(entry.DType)
            ?? throw new CheckpointException($"{FilePath}: tensor '{name}' has dtype {entry.DType}, which Hal cannot load");
        if (fileDType != dst.DType && !(fileDType.IsFloatingPoint() && dst.DType.IsFloatingPoint()))
        {
            throw new CheckpointException($"{FilePath}: tensor '{name}' is {entry.DType} and cannot be converted to {dst.DType.Name()}");
        }
        SafeTensors.RequireLittleEndian();
        if (fileDType == dst.DType)
        {
            CopyRaw(name, entry, dst, ops.Device);
        }
        else
        {
            CopyConverted(name, entry, fileDType, dst, ops.Device);
        }
    }

    /// <summary>
    /// Copies tensor <paramref name="name"/> into host fp32 values (any floating-point file dtype converts), for
    /// model states that do not live in one device tensor (chunked ZeRO shards). Shape must match.
    /// </summary>
    /// <exception cref="CheckpointException">no such tensor, another shape, a non-float dtype, or the file shrank.</exception>
    public void ReadInto(string name, Shape shape, Span<float> dst)
    {
        ArgumentNullException.ThrowIfNull(name);
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        if (!_entries.TryGetValue(name, out var entry))
        {
            throw new CheckpointException($"{FilePath}: no tensor named '{name}'");
        }
        if (!entry.Shape.AsSpan().SequenceEqual(shape.ToArray().Select(d => (long)d).ToArray()) || dst.Length != shape.ElementCount)
        {
            throw new CheckpointException($"{FilePath}: tensor '{name}' has shape {FormatShape(entry.Shape)}, the destination has {shape}");
        }
        var fileDType = SafeTensors.ParseDType(entry.DType);
        if (fileDType is not { } dtype || !dtype.IsFloatingPoint())
        {
            throw new CheckpointException($"{FilePath}: tensor '{name}' is {entry.DType} and cannot be converted to F32");
        }
        SafeTensors.RequireLittleEndian();
        int srcSize = dtype.SizeInBytes();
        int elements = (int)Math.Min(SafeTensors.ChunkBytes / 8, Math.Max(dst.Length, 1));
        var src = new byte[elements * srcSize];
        var values = new double[elements];
        for (int e = 0; e < dst.Length; e += elements)
        {
            int n = Math.Min(elements, dst.Length - e);
            ReadExactly(FilePath, _handle, src.AsSpan(0, n * srcSize), _dataStart + entry.Begin + ((long)e * srcSize), name);
            if (dtype == DType.F32)
            {
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(src.AsSpan(0, n * srcSize)).CopyTo(dst.Slice(e, n));
                continue;
            }
            HostConvert.ToDoubles(src.AsSpan(0, n * srcSize), dtype, values.AsSpan(0, n));
            for (int i = 0; i < n; i++)
            {
                dst[e + i] = (float)values[i];
            }
        }
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _handle.Dispose();

    internal static SafeTensorsReader OpenFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException($"{path}: file not found", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{path}: cannot open ({e.Message})", e);
        }
        try
        {
            var (dataStart, entries, metadata) = ReadHeader(path, handle);
            return new SafeTensorsReader(path, handle, dataStart, entries, metadata);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static (long DataStart, Dictionary<string, Entry> Entries, Dictionary<string, string> Metadata) ReadHeader(string path, SafeFileHandle handle)
    {
        long fileBytes = RandomAccess.GetLength(handle);
        if (fileBytes < 8)
        {
            throw new CheckpointException($"{path}: {fileBytes} bytes is too short for a safetensors file (8-byte header length first)");
        }
        Span<byte> lengthBytes = stackalloc byte[8];
        ReadExactly(path, handle, lengthBytes, 0);
        ulong headerBytes = BitConverter.ToUInt64(lengthBytes);
        if (headerBytes > (ulong)(fileBytes - 8))
        {
            throw new CheckpointException(
                $"{path}: the header length {headerBytes} runs past the end of the file ({fileBytes} bytes): the file is truncated or not safetensors");
        }
        if (headerBytes > SafeTensors.MaxHeaderBytes)
        {
            throw new CheckpointException($"{path}: the header length {headerBytes} exceeds the format's limit of {SafeTensors.MaxHeaderBytes} bytes");
        }
        var header = new byte[headerBytes];
        ReadExactly(path, handle, header, 8);
        long dataStart = 8 + (long)headerBytes;
        long dataBytes = fileBytes - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path}: the header is not valid JSON ({e.Message})", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"{path}: the header is JSON {doc.RootElement.ValueKind}, not an object of tensors");
            }
            var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (sawMetadata)
                    {
                        throw new CheckpointException($"{path}: the header has __metadata__ twice");
                    }
                    sawMetadata = true;
                    ParseMetadata(path, property.Value, metadata);
                    continue;
                }
                var entry = ParseEntry(path, property.Name, property.Value, dataBytes);
                if (!entries.TryAdd(property.Name, entry))
                {
                    throw new CheckpointException($"{path}: tensor '{property.Name}' appears twice in the header");
                }
            }
            CheckOverlaps(path, entries);
            return (dataStart, entries, metadata);
        }
    }

    private static void ParseMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointException($"{path}: __metadata__ is JSON {value.ValueKind}, not an object of strings");
        }
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw new CheckpointException($"{path}: __metadata__ entry '{item.Name}' is JSON {item.Value.ValueKind}, not a string");
            }
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static Entry ParseEntry(string path, string name, JsonElement value, long dataBytes)
    {
        string where = $"{path}: tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointException($"{where} is JSON {value.ValueKind}, not an object with dtype, shape and data_offsets");
        }
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw new CheckpointException($"{where} has no dtype string");
        }
        string dtype = dtypeElement.GetString()!;
        if (!SafeTensors.IsKnownDType(dtype))
        {
            throw new CheckpointException($"{where} has unknown dtype '{dtype}'");
        }
        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new CheckpointException($"{where} has no shape array");
        }
        var shape = new long[shapeElement.GetArrayLength()];
        long elements = 1;
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long size) || size < 0 || size > int.MaxValue)
            {
                throw new CheckpointException($"{where} has a bad shape entry {d.GetRawText()} (a dimension is an integer in [0, 2^31))");
            }
            shape[i++] = size;
            elements = size == 0 || elements == 0 ? 0 : elements > long.MaxValue / size ? -1 : elements * size;
            if (elements < 0)
            {
                throw new CheckpointException($"{where} has a shape whose element count overflows");
            }
        }
        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !TryGetOffset(offsets[0], out long begin) || !TryGetOffset(offsets[1], out long end) || end < begin)
        {
            throw new CheckpointException($"{where} needs data_offsets [begin, end] with 0 ≤ begin ≤ end");
        }
        int elementSize = SafeTensors.ElementSize(dtype);
        if (elements > long.MaxValue / elementSize || end - begin != elements * elementSize)
        {
            throw new CheckpointException(
                $"{where}: data_offsets [{begin}, {end}] hold {end - begin} bytes but {dtype}{FormatShape(shape)} needs {elements} × {elementSize}");
        }
        if (end > dataBytes)
        {
            throw new CheckpointException(
                $"{where} ends at data byte {end} but the file holds only {dataBytes} data bytes: the file is truncated");
        }
        foreach (var property in value.EnumerateObject())
        {
            if (property.Name is not ("dtype" or "shape" or "data_offsets"))
            {
                throw new CheckpointException($"{where} has an unexpected field '{property.Name}'");
            }
        }
        return new Entry(dtype, shape, begin, end);
    }

    private static void CheckOverlaps(string path, Dictionary<string, Entry> entries)
    {
        var sorted = entries.Where(e => e.Value.End > e.Value.Begin).OrderBy(e => e.Value.Begin).ToList();
        for (int i = 1; i < sorted.Count; i++)
        {
            var (previous, current) = (sorted[i - 1], sorted[i]);
            if (current.Value.Begin < previous.Value.End)
            {
                throw new CheckpointException(
                    $"{path}: tensors '{previous.Key}' [{previous.Value.Begin}, {previous.Value.End}) and '{current.Key}' " +
                    $"[{current.Value.Begin}, {current.Value.End}) overlap");
            }
        }
    }

    private void CopyRaw(string name, Entry entry, Tensor dst, IDevice device)
    {
        long total = entry.End - entry.Begin;
        int elementSize = dst.DType.SizeInBytes();
        var chunk = new byte[Math.Min(SafeTensors.ChunkBytes / elementSize * elementSize, Math.Max(total, 1))];
        for (long done = 0; done < total; done += chunk.Length)
        {
            int n = (int)Math.Min(chunk.Length, total - done);
            ReadExactly(FilePath, _handle, chunk.AsSpan(0, n), _dataStart + entry.Begin + done, name);
            device.CopyFromHost(chunk.AsSpan(0, n), dst.Buffer, dst.OffsetBytes + done);
        }
    }

    private void CopyConverted(string name, Entry entry, DType fileDType, Tensor dst, IDevice device)
    {
        int srcSize = fileDType.SizeInBytes(), dstSize = dst.DType.SizeInBytes();
        long count = dst.ElementCount;
        int elements = (int)Math.Min(SafeTensors.ChunkBytes / 8, Math.Max(count, 1));
        var src = new byte[elements * srcSize];
        var values = new double[elements];
        var converted = new byte[elements * dstSize];
        for (long e = 0; e < count; e += elements)
        {
            int n = (int)Math.Min(elements, count - e);
            ReadExactly(FilePath, _handle, src.AsSpan(0, n * srcSize), _dataStart + entry.Begin + (e * srcSize), name);
            HostConvert.ToDoubles(src.AsSpan(0, n * srcSize), fileDType, values.AsSpan(0, n));
            HostConvert.FromDoubles(values.AsSpan(0, n), dst.DType, converted.AsSpan(0, n * dstSize));
            device.CopyFromHost(converted.AsSpan(0, n * dstSize), dst.Buffer, dst.OffsetBytes + (e * dstSize));
        }
    }

    private static void ReadExactly(string path, SafeFileHandle handle, Span<byte> buffer, long offset, string? tensor = null)
    {
        while (buffer.Length > 0)
        {
            int n = RandomAccess.Read(handle, buffer, offset);
            if (n <= 0)
            {
                string what = tensor is null ? "the header" : $"tensor '{tensor}'";
                throw new CheckpointException($"{path}: the file ended at byte {offset} while reading {what}: it was truncated");
            }
            buffer = buffer[n..];
            offset += n;
        }
    }

    private static bool TryGetOffset(JsonElement element, out long offset)
    {
        offset = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out offset) && offset >= 0;
    }

    internal static string FormatShape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    private sealed record Entry(string DType, long[] Shape, long Begin, long End);
}
