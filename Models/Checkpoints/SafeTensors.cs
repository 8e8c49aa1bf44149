using System.Text;
using System.Text.Json;
using Hal.Numerics;

namespace Hal.Models.Checkpoints;

/// <summary>
/// The safetensors format, read and written here without a library: an unsigned 64-bit little-endian header length
/// N, N bytes of UTF-8 JSON <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}</c>,
/// then the tensor bytes (offsets relative to the data start; row-major, little-endian). Tensors are streamed through
/// a bounded host buffer, so a file never has to fit in memory.
/// </summary>
public static class SafeTensors
{
    /// <summary>Largest header accepted: the format's own limit (100 MB), so a corrupt length cannot ask for gigabytes.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Host staging buffer for one chunk of a tensor (bytes of the wider of source and destination element).</summary>
    internal const int ChunkBytes = 1 << 22;

    private const string MetadataKey = "__metadata__";

    private static readonly Dictionary<string, int> ElementSizes = new(StringComparer.Ordinal)
    {
        ["BOOL"] = 1,
        ["U8"] = 1,
        ["I8"] = 1,
        ["F8_E5M2"] = 1,
        ["F8_E4M3"] = 1,
        ["I16"] = 2,
        ["U16"] = 2,
        ["F16"] = 2,
        ["BF16"] = 2,
        ["I32"] = 4,
        ["U32"] = 4,
        ["F32"] = 4,
        ["I64"] = 8,
        ["U64"] = 8,
        ["F64"] = 8,
    };

    /// <summary>The safetensors name of a dtype: F32, F64, F16, BF16, I32, I64, I8, U8, BOOL.</summary>
    public static string DTypeName(DType dtype) => dtype switch
    {
        DType.F32 => "F32",
        DType.F64 => "F64",
        DType.F16 => "F16",
        DType.BF16 => "BF16",
        DType.I32 => "I32",
        DType.I64 => "I64",
        DType.I8 => "I8",
        DType.U8 => "U8",
        DType.Bool => "BOOL",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "no safetensors name"),
    };

    /// <summary>The Hal dtype of a safetensors dtype name, or null for the ones Hal has no tensors of (I16, U32, F8_*…).</summary>
    public static DType? ParseDType(string name) => name switch
    {
        "F32" => DType.F32,
        "F64" => DType.F64,
        "F16" => DType.F16,
        "BF16" => DType.BF16,
        "I32" => DType.I32,
        "I64" => DType.I64,
        "I8" => DType.I8,
        "U8" => DType.U8,
        "BOOL" => DType.Bool,
        _ => null,
    };

    /// <summary>Whether <paramref name="name"/> is a dtype the safetensors format defines.</summary>
    public static bool IsKnownDType(string name) => ElementSizes.ContainsKey(name);

    /// <summary>
    /// Writes atomically: a temporary file in the same directory, flushed to disk, then renamed over
    /// <paramref name="path"/>. Each tensor is stored in its own dtype.
    /// </summary>
    /// <exception cref="ArgumentException">a name is empty, repeated or <c>__metadata__</c>.</exception>
    /// <exception cref="DeviceMismatchException">a tensor is not on the device of <paramref name="ops"/>.</exception>
    /// <exception cref="ObjectDisposedException">a tensor's buffer was disposed (the file at <paramref name="path"/> is left as it was).</exception>
    public static void Write(string path, IReadOnlyList<NamedTensor> tensors, Ops ops, IReadOnlyDictionary<string, string>? metadata = null) =>
        WriteCore(path, tensors, ops, metadata, storeAs: null);

    /// <summary>
    /// Like <see cref="Write(string, IReadOnlyList{NamedTensor}, Ops, IReadOnlyDictionary{string, string}?)"/>, but
    /// floating-point tensors are stored as <paramref name="storeAs"/> (round to nearest even); integer tensors keep their dtype.
    /// </summary>
    public static void Write(string path, IReadOnlyList<NamedTensor> tensors, Ops ops, IReadOnlyDictionary<string, string>? metadata, DType storeAs)
    {
        if (!storeAs.IsFloatingPoint())
        {
            throw new ArgumentException($"tensors can be stored as a floating-point dtype only, not {storeAs.Name()}", nameof(storeAs));
        }
        WriteCore(path, tensors, ops, metadata, storeAs);
    }

    /// <summary>
    /// Writes host fp32 tensors (model states that live in chunks, not in one device tensor) atomically, as F32.
    /// </summary>
    /// <exception cref="ArgumentException">a name is empty, repeated or reserved, or data of the wrong length.</exception>
    public static void WriteHost(string path, IReadOnlyList<HostTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        RequireLittleEndian();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (string.IsNullOrEmpty(t.Name) || t.Name == MetadataKey || !names.Add(t.Name))
            {
                throw new ArgumentException($"tensor name '{t.Name}' is empty, reserved or repeated", nameof(tensors));
            }
            if (t.Data.Length != t.Shape.ElementCount)
            {
                throw new ArgumentException($"tensor '{t.Name}' has {t.Data.Length} values for shape {t.Shape}", nameof(tensors));
            }
        }
        byte[] header = BuildHeader([.. tensors.Select(t => (t.Name, t.Shape))], [.. tensors.Select(_ => DType.F32)], metadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BitConverter.TryWriteBytes(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var t in tensors)
            {
                stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Data.AsSpan()));
            }
        });
    }

    /// <summary>Opens a safetensors file and validates its header (bounds, overlaps, dtype names, sizes).</summary>
    /// <exception cref="CheckpointException">the file is missing, truncated or its header is corrupt; the message names the file.</exception>
    public static SafeTensorsReader Open(string path) => SafeTensorsReader.OpenFile(path);

    private static void WriteCore(string path, IReadOnlyList<NamedTensor> tensors, Ops ops, IReadOnlyDictionary<string, string>? metadata, DType? storeAs)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(ops);
        RequireLittleEndian();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var stored = new DType[tensors.Count];
        for (int i = 0; i < tensors.Count; i++)
        {
            var (name, t) = (tensors[i].Name, tensors[i].Tensor);
            if (string.IsNullOrEmpty(name) || name == MetadataKey || !names.Add(name))
            {
                throw new ArgumentException($"tensor name '{name}' is empty, reserved or repeated", nameof(tensors));
            }
            if (!ReferenceEquals(t.Device, ops.Device))
            {
                throw new DeviceMismatchException("safetensors write", ops.Device.Id, t.Device.Id);
            }
            stored[i] = storeAs is { } s && t.DType.IsFloatingPoint() ? s : t.DType;
        }

        byte[] header = BuildHeader([.. tensors.Select(t => (t.Name, t.Tensor.Shape))], stored, metadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BitConverter.TryWriteBytes(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            var chunk = new byte[ChunkBytes];
            for (int i = 0; i < tensors.Count; i++)
            {
                WriteTensor(stream, tensors[i].Tensor, stored[i], ops.Device, chunk);
            }
        });
    }

    private static byte[] BuildHeader(IReadOnlyList<(string Name, Shape Shape)> tensors, DType[] stored, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata)
                {
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }
            long offset = 0;
            for (int i = 0; i < tensors.Count; i++)
            {
                var shape = tensors[i].Shape;
                long bytes = shape.ElementCount * stored[i].SizeInBytes();
                json.WriteStartObject(tensors[i].Name);
                json.WriteString("dtype", DTypeName(stored[i]));
                json.WriteStartArray("shape");
                foreach (int d in shape.Dims)
                {
                    json.WriteNumberValue(d);
                }
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does (readers may map it).
        int padded = (int)((buffer.Length + 8 + 7) / 8 * 8) - 8;
        while (buffer.Length < padded)
        {
            buffer.WriteByte((byte)' ');
        }
        return buffer.ToArray();
    }

    /// <summary>Streams one tensor's bytes (converted to <paramref name="stored"/> when it differs) through <paramref name="chunk"/>.</summary>
    private static void WriteTensor(Stream stream, Tensor t, DType stored, IDevice device, byte[] chunk)
    {
        int srcSize = t.DType.SizeInBytes();
        if (stored == t.DType)
        {
            long total = t.SizeInBytes;
            int step = chunk.Length / srcSize * srcSize;
            for (long done = 0; done < total; done += step)
            {
                int n = (int)Math.Min(step, total - done);
                device.CopyToHost(t.Buffer, t.OffsetBytes + done, chunk.AsSpan(0, n));
                stream.Write(chunk, 0, n);
            }
            if (total == 0)
            {
                t.Buffer.ThrowIfDisposed();
            }
            return;
        }
        int dstSize = stored.SizeInBytes();
        int elements = chunk.Length / 8;
        var values = new double[elements];
        var outBytes = new byte[elements * dstSize];
        for (long e = 0; e < t.ElementCount; e += elements)
        {
            int n = (int)Math.Min(elements, t.ElementCount - e);
            var src = chunk.AsSpan(0, n * srcSize);
            device.CopyToHost(t.Buffer, t.OffsetBytes + (e * srcSize), src);
            HostConvert.ToDoubles(src, t.DType, values.AsSpan(0, n));
            HostConvert.FromDoubles(values.AsSpan(0, n), stored, outBytes.AsSpan(0, n * dstSize));
            stream.Write(outBytes, 0, n * dstSize);
        }
    }

    internal static int ElementSize(string dtypeName) => ElementSizes[dtypeName];

    internal static void RequireLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors files are little-endian and this host is not");
        }
    }

    internal static string Utf8(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);
}
