namespace Memo.Training;

/// <summary>
/// An exclusive lock on a checkpoint directory, held by one run from before its first step to its exit: the file
/// <c>DIR.lock</c> beside the directory (the directory itself is renamed by every save), locked with an advisory
/// lock that the operating system releases when the process dies. A second run on the same directory stops at once.
/// The lock file is left in place (deleting it would let a waiting opener lock a file no longer in the directory).
/// </summary>
public sealed class CheckpointLock : IDisposable
{
    private readonly FileStream _stream;

    private CheckpointLock(FileStream stream, string path)
    {
        _stream = stream;
        Path = path;
    }

    /// <summary>The lock file.</summary>
    public string Path { get; }

    /// <summary>Takes the lock for <paramref name="dir"/>, or throws a <see cref="MemoException"/> saying another run holds it.</summary>
    public static CheckpointLock Acquire(string dir, string flag)
    {
        string full = System.IO.Path.GetFullPath(dir).TrimEnd(System.IO.Path.DirectorySeparatorChar);
        string parent = System.IO.Path.GetDirectoryName(full) ?? ".";
        try
        {
            Directory.CreateDirectory(parent);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MemoException($"{flag} {dir}: cannot create the parent directory '{parent}' ({e.Message}); choose a writable location");
        }
        string path = full + ".lock";
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            return new CheckpointLock(stream, path);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new MemoException($"{flag} {dir}: cannot write beside it ({e.Message}); choose a writable location");
        }
        catch (IOException)
        {
            throw new MemoException($"{flag} {dir}: another memo run is using this checkpoint directory (it holds {path}); wait for it to end or choose another directory");
        }
    }

    public void Dispose() => _stream.Dispose();
}
