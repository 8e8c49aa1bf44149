using Microsoft.Win32.SafeHandles;

namespace Hal.Memory;

// Legend: the NVMe tier keeps chunk <serial> in <NvmeDirectory>/chunk-<serial>.bin, exactly SizeInBytes long;
// reads and writes are asynchronous (RandomAccess on a handle opened with FileOptions.Asynchronous).

public sealed partial class ChunkStore
{
    /// <summary>errno ENOSPC on Linux and macOS, which .NET reports as the IOException's HResult.</summary>
    private const int UnixNoSpace = 28;

    /// <summary>ERROR_DISK_FULL and ERROR_HANDLE_DISK_FULL as HRESULTs on Windows.</summary>
    private const int WindowsDiskFull = unchecked((int)0x80070070);
    private const int WindowsHandleDiskFull = unchecked((int)0x80070027);

    /// <summary>True when <paramref name="e"/> says the file system has no space left.</summary>
    public static bool IsDiskFull(IOException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e.HResult is UnixNoSpace or WindowsDiskFull or WindowsHandleDiskFull;
    }

    private string FilePathOf(Entry entry) => Path.Combine(_nvmeDirectory, $"chunk-{entry.Serial}.bin");

    private SafeFileHandle OpenForWrite(string path, long size)
    {
        Directory.CreateDirectory(_nvmeDirectory);
        return _options.NvmeFileOpener is { } open
            ? open(path)
            : File.OpenHandle(path, FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.Asynchronous, preallocationSize: size);
    }

    /// <summary>Writes the host bytes to the chunk's file and sets <see cref="Entry.FilePath"/>; a failed write leaves no file.</summary>
    private async Task WriteFileAsync(Entry entry, IntPtr host)
    {
        long size = entry.Chunk.SizeInBytes;
        string path = FilePathOf(entry);
        try
        {
            using var handle = OpenForWrite(path, size);
            for (long at = 0; at < size; at += PieceBytes)
            {
                int n = (int)Math.Min(PieceBytes, size - at);
                using var piece = new NativeMemoryManager(host + (nint)at, n);
                await RandomAccess.WriteAsync(handle, piece.Memory, at).ConfigureAwait(false);
            }
        }
        catch (IOException e) when (IsDiskFull(e))
        {
            File.Delete(path);
            throw new NvmeDiskFullException(path, size, BytesInUse(Tier.Nvme) - size, e);
        }
        catch
        {
            File.Delete(path);
            throw;
        }
        entry.FilePath = path;
        Interlocked.Add(ref _hostToNvme, size);
    }

    /// <summary>Reads the chunk's file into a new host block, which the caller owns; the file stays until the move completes.</summary>
    private async Task<IntPtr> ReadFileAsync(Entry entry)
    {
        long size = entry.Chunk.SizeInBytes;
        string path = entry.FilePath!;
        IntPtr host = AllocateHost(size);
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous);
            for (long at = 0; at < size; at += PieceBytes)
            {
                int n = (int)Math.Min(PieceBytes, size - at);
                using var piece = new NativeMemoryManager(host + (nint)at, n);
                await ReadExactlyAsync(handle, path, piece.Memory, at).ConfigureAwait(false);
            }
        }
        catch
        {
            FreeHost(host);
            throw;
        }
        Interlocked.Add(ref _nvmeToHost, size);
        return host;
    }

    /// <summary>Creates the chunk's file, <see cref="Chunk.SizeInBytes"/> bytes of zeros.</summary>
    private async Task CreateZeroFileAsync(Entry entry)
    {
        IntPtr zeros = AllocateHost(entry.Chunk.SizeInBytes);
        try
        {
            ClearHost(zeros, entry.Chunk.SizeInBytes);
            await WriteFileAsync(entry, zeros).ConfigureAwait(false);
        }
        finally
        {
            FreeHost(zeros);
        }
        // Creating a payload is not traffic between tiers.
        Interlocked.Add(ref _hostToNvme, -entry.Chunk.SizeInBytes);
    }

    private static async Task ReadExactlyAsync(SafeFileHandle handle, string path, Memory<byte> destination, long offset)
    {
        int done = 0;
        while (done < destination.Length)
        {
            int n = await RandomAccess.ReadAsync(handle, destination[done..], offset + done).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException($"chunk file '{path}' ended after {offset + done} bytes; expected {offset + destination.Length} (it was truncated or changed outside the store)");
            }
            done += n;
        }
    }
}
