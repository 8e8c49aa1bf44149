namespace Hal.Models.Checkpoints;

/// <summary>
/// Files that appear whole or not at all: written to a temporary sibling (<c>NAME.tmp-…</c>, same directory so the
/// rename stays on one file system), flushed to disk, then renamed over the target. A failure deletes the temporary.
/// </summary>
internal static class AtomicFile
{
    /// <summary>The marker every temporary name carries, so stale ones left by a killed process can be found.</summary>
    public const string TempMarker = ".tmp-";

    /// <summary>A fresh temporary name beside <paramref name="path"/>.</summary>
    public static string TempSibling(string path) =>
        path.TrimEnd(Path.DirectorySeparatorChar) + TempMarker + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N");

    /// <summary>Writes the file through <paramref name="write"/> and renames it into place.</summary>
    public static void Write(string path, Action<FileStream> write)
    {
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }
        string temp = TempSibling(full);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Writes a small text file atomically.</summary>
    public static void WriteText(string path, string text) =>
        Write(path, stream =>
        {
            var bytes = new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text);
            stream.Write(bytes);
        });

    /// <summary>Deletes a file or directory if it exists; a failure here must not hide the error being handled.</summary>
    public static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
            else if (File.Exists(path))
            {
                File.Delete(path);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
