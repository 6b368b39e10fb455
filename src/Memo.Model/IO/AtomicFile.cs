namespace Memo.Model.IO;

/// <summary>
/// Writes a file so that readers see either the old file or the complete new one, never a
/// half-written one: the content goes to a temporary file in the target's directory, is flushed
/// to disk (fsync), and is then renamed over the target. On any failure the temporary file is
/// deleted and the target is left as it was.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> atomically with <paramref name="write"/>.</summary>
    /// <exception cref="MemoException">The directory is missing or the file cannot be written.</exception>
    public static void Write(string path, Action<FileStream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        if (!Directory.Exists(dir))
            throw new MemoException($"{path}: directory '{dir}' does not exist; create it first or choose another output path");
        if (Directory.Exists(full))
            throw new MemoException($"{path}: is a directory; give a file name");
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        bool moved = false;
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 20))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
            moved = true;
        }
        catch (IOException e)
        {
            throw new MemoException($"{path}: cannot write the file ({e.Message}); check free disk space and permissions", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new MemoException($"{path}: cannot write the file ({e.Message}); check permissions", e);
        }
        finally
        {
            if (!moved) TryDelete(temp);
        }
    }

    private static void TryDelete(string temp)
    {
        try
        {
            File.Delete(temp);
        }
        catch (IOException)
        {
            // Best effort: the temporary file is hidden and never read.
        }
        catch (UnauthorizedAccessException)
        {
            // Same as above.
        }
    }
}
