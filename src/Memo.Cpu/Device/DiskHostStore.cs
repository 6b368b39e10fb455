using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Memo.Backends;

namespace Memo.Cpu.Device;

/// <summary>Settings of a <see cref="DiskHostStore"/>; the defaults suit a local SSD.</summary>
public sealed record DiskStoreOptions
{
    /// <summary>I/O threads, each with one request in flight.</summary>
    public int IoThreads { get; init; } = 4;

    /// <summary>Bytes per request (a multiple of <see cref="DiskHostStore.Alignment"/>).</summary>
    public int ChunkBytes { get; init; } = 2 << 20;

    /// <summary>Ask for O_DIRECT; false forces buffered I/O with the pages dropped after each request.</summary>
    public bool DirectIo { get; init; } = true;

    /// <summary>Reserve the whole capacity with fallocate at creation, so a full disk shows at start-up.</summary>
    public bool Preallocate { get; init; } = true;
}

/// <summary>
/// A host store on disk: one file of fixed capacity in a directory the user names, written and read with
/// direct I/O (O_DIRECT), so the page cache does not hold the data a second time in RAM. Each
/// <see cref="Write"/> or <see cref="Read"/> is cut into requests of <see cref="DiskStoreOptions.ChunkBytes"/>
/// that several I/O threads run at once, and returns when all of them are done; the caller (the copy engine)
/// is itself concurrent with compute.
/// <code>
/// invariants
///   file offsets of Write/Read are multiples of Alignment (4 KiB); a region's bytes may end anywhere:
///   its last block is padded with zeros, so regions must be laid out with AlignUp(bytes) apart
///   memory need not be aligned: unaligned requests go through the thread's 4 KiB-aligned bounce buffer
///   the file is unlinked right after it is created: it never outlives the process (dispose, exception,
///   SIGTERM or SIGKILL all close the descriptor, and the kernel frees the blocks)
///   no allocation per request: a fixed ring of requests, one bounce buffer per thread
/// fallbacks (reported in IoMode)
///   O_DIRECT refused with EINVAL (tmpfs before Linux 6.6, some FUSE and network file systems):
///     buffered pwrite/pread, then sync_file_range + posix_fadvise(DONTNEED) to drop the pages
///   fallocate unsupported (EOPNOTSUPP): the file is sized with ftruncate; a full disk then shows
///     on a write, as the same one-line error
/// </code>
/// A full disk or an I/O error becomes a <see cref="MemoException"/> naming the directory, the bytes and
/// what to do; the data already written stays readable.
/// </summary>
public sealed unsafe class DiskHostStore : IHostStore
{
    /// <summary>Alignment of file offsets, sizes and buffers for direct I/O.</summary>
    public const int Alignment = 4096;

    private struct Request
    {
        public long FileOffset;
        public byte* Memory;
        public long Bytes;
        public bool IsWrite;
    }

    private readonly DiskStoreOptions _options;
    private readonly int _fd;
    private readonly bool _direct;
    private readonly Thread[] _threads;
    private readonly Request[] _ring;
    private readonly object _queueLock = new();
    private readonly object _callLock = new();
    private readonly ManualResetEventSlim _callDone = new(false);
    private long _head;
    private long _tail;
    private int _pending;
    private bool _stop;
    private int _errno;
    private string? _errorOp;
    private long _bytesWritten;
    private long _bytesRead;
    private long _ioTicks;
    private bool _disposed;

    /// <summary>Creates the store's file in <paramref name="directory"/> with room for <paramref name="capacityBytes"/>.</summary>
    public DiskHostStore(string directory, long capacityBytes, DiskStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentOutOfRangeException.ThrowIfNegative(capacityBytes);
        _options = options ?? new DiskStoreOptions();
        if (_options.IoThreads < 1) throw new ArgumentOutOfRangeException(nameof(options), "IoThreads must be at least 1");
        if (_options.ChunkBytes < Alignment || _options.ChunkBytes % Alignment != 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"ChunkBytes must be a positive multiple of {Alignment}");
        if (!OperatingSystem.IsLinux())
            throw new MemoException("--host-store disk needs Linux (direct I/O through open/pread/pwrite); use --host-store memory");

        Directory = Path.GetFullPath(directory);
        Capacity = AlignUp(Math.Max(capacityBytes, 1));
        _fd = OpenUnlinked(Directory, _options.DirectIo, out string path, out string mode);
        IoMode = mode;
        _direct = mode.StartsWith("direct", StringComparison.Ordinal);
        try
        {
            Preallocated = Reserve(path);
        }
        catch
        {
            _ = LinuxFile.Close(_fd);
            throw;
        }

        _ring = new Request[Math.Max(64, _options.IoThreads * 4)];
        _threads = new Thread[_options.IoThreads];
        for (int t = 0; t < _threads.Length; t++)
        {
            _threads[t] = new Thread(Worker) { IsBackground = true, Name = $"memo-disk-{t}" };
            _threads[t].Start();
        }
    }

    /// <summary>The directory the file lives in (full path).</summary>
    public string Directory { get; }

    /// <summary>Bytes the file holds (the requested capacity rounded up to <see cref="Alignment"/>).</summary>
    public long Capacity { get; }

    /// <summary>True when the file's blocks were reserved with fallocate.</summary>
    public bool Preallocated { get; }

    /// <summary>True when the file was opened with O_DIRECT.</summary>
    public bool DirectIo => _direct;

    /// <summary>How the file is accessed, for reports: "direct (O_DIRECT)" or the fallback and why.</summary>
    public string IoMode { get; }

    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    public long BytesRead => Interlocked.Read(ref _bytesRead);

    /// <summary>Wall milliseconds spent inside <see cref="Write"/> and <see cref="Read"/> since the last reset.</summary>
    public double IoMs => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _ioTicks)).TotalMilliseconds;

    public void ResetCounters()
    {
        Interlocked.Exchange(ref _bytesWritten, 0);
        Interlocked.Exchange(ref _bytesRead, 0);
        Interlocked.Exchange(ref _ioTicks, 0);
    }

    /// <summary><paramref name="bytes"/> rounded up to a multiple of <see cref="Alignment"/>.</summary>
    public static long AlignUp(long bytes) => checked((bytes + Alignment - 1) / Alignment * Alignment);

    /// <summary>Writes <paramref name="bytes"/> from <paramref name="source"/> at <paramref name="fileOffset"/> (a multiple of 4 KiB).</summary>
    public void Write(long fileOffset, void* source, long bytes) => Run(fileOffset, (byte*)source, bytes, isWrite: true);

    /// <summary>Reads <paramref name="bytes"/> at <paramref name="fileOffset"/> into <paramref name="destination"/>.</summary>
    public void Read(long fileOffset, void* destination, long bytes) => Run(fileOffset, (byte*)destination, bytes, isWrite: false);

    private void Run(long fileOffset, byte* memory, long bytes, bool isWrite)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (fileOffset < 0 || fileOffset % Alignment != 0)
            throw new ArgumentOutOfRangeException(nameof(fileOffset), $"file offset {fileOffset} is not a multiple of {Alignment}");
        if (fileOffset > Capacity - AlignUp(bytes))
            throw new ArgumentOutOfRangeException(nameof(bytes), $"{bytes} bytes at {fileOffset} pass the store's capacity {Capacity}");
        if (bytes == 0) return;
        lock (_callLock)
        {
            long t0 = Stopwatch.GetTimestamp();
            long chunk = _options.ChunkBytes;
            int requests = checked((int)((bytes + chunk - 1) / chunk));
            _callDone.Reset();
            Volatile.Write(ref _pending, requests);
            for (long off = 0; off < bytes; off += chunk)
            {
                Enqueue(new Request
                {
                    FileOffset = fileOffset + off,
                    Memory = memory + off,
                    Bytes = Math.Min(chunk, bytes - off),
                    IsWrite = isWrite,
                });
            }
            _callDone.Wait();
            Interlocked.Add(ref _ioTicks, Stopwatch.GetTimestamp() - t0);
            int errno = Volatile.Read(ref _errno);
            if (errno != 0) ThrowIoError(errno, bytes, isWrite);
            Interlocked.Add(ref isWrite ? ref _bytesWritten : ref _bytesRead, bytes);
        }
    }

    private void Enqueue(in Request r)
    {
        lock (_queueLock)
        {
            while (_head - _tail >= _ring.Length) Monitor.Wait(_queueLock);
            _ring[_head % _ring.Length] = r;
            _head++;
            Monitor.PulseAll(_queueLock);
        }
    }

    private void Worker()
    {
        byte* bounce = (byte*)NativeMemory.AlignedAlloc((nuint)_options.ChunkBytes, Alignment);
        try
        {
            while (true)
            {
                Request r;
                lock (_queueLock)
                {
                    while (_tail == _head && !_stop) Monitor.Wait(_queueLock);
                    if (_tail == _head) return;
                    r = _ring[_tail % _ring.Length];
                    _tail++;
                    Monitor.PulseAll(_queueLock);
                }
                // After a failure the rest of the call's requests are skipped; the call reports the first error.
                if (Volatile.Read(ref _errno) == 0)
                {
                    int errno = r.IsWrite ? WriteOne(r, bounce) : ReadOne(r, bounce);
                    if (errno != 0 && Interlocked.CompareExchange(ref _errno, errno, 0) == 0)
                        _errorOp = string.Create(CultureInfo.InvariantCulture, $"{r.Bytes} bytes at file offset {r.FileOffset}");
                }
                if (Interlocked.Decrement(ref _pending) == 0) _callDone.Set();
            }
        }
        finally
        {
            NativeMemory.AlignedFree(bounce);
        }
    }

    private int WriteOne(in Request r, byte* bounce)
    {
        long padded = AlignUp(r.Bytes);
        byte* src = r.Memory;
        if (_direct && (((nint)src % Alignment) != 0 || padded != r.Bytes))
        {
            Buffer.MemoryCopy(src, bounce, _options.ChunkBytes, r.Bytes);
            if (padded != r.Bytes) new Span<byte>(bounce + r.Bytes, (int)(padded - r.Bytes)).Clear();
            src = bounce;
        }
        long length = _direct ? padded : r.Bytes;
        int errno = Transfer(src, length, r.FileOffset, write: true);
        if (errno == 0 && !_direct) errno = DropPages(r.FileOffset, length, flush: true);
        return errno;
    }

    private int ReadOne(in Request r, byte* bounce)
    {
        long padded = AlignUp(r.Bytes);
        bool viaBounce = _direct && (((nint)r.Memory % Alignment) != 0 || padded != r.Bytes);
        byte* dst = viaBounce ? bounce : r.Memory;
        long length = _direct ? padded : r.Bytes;
        int errno = Transfer(dst, length, r.FileOffset, write: false);
        if (errno == 0 && viaBounce) Buffer.MemoryCopy(bounce, r.Memory, r.Bytes, r.Bytes);
        if (errno == 0 && !_direct) errno = DropPages(r.FileOffset, length, flush: false);
        return errno;
    }

    /// <summary>pwrite/pread until every byte is moved; returns 0 or errno (ENOSPC for a write that moves nothing).</summary>
    private int Transfer(byte* p, long length, long offset, bool write)
    {
        long done = 0;
        while (done < length)
        {
            nint n = write
                ? LinuxFile.PWrite(_fd, p + done, (nuint)(length - done), offset + done)
                : LinuxFile.PRead(_fd, p + done, (nuint)(length - done), offset + done);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == LinuxFile.EINTR) continue;
                return errno;
            }
            if (n == 0) return write ? LinuxFile.ENOSPC : LinuxFile.EIO; // a read past the end: the file was cut short
            done += n;
        }
        return 0;
    }

    /// <summary>Buffered mode: write the range back and drop it from the page cache.</summary>
    private int DropPages(long offset, long length, bool flush)
    {
        if (flush && LinuxFile.SyncFileRange(_fd, offset, length,
                LinuxFile.SYNC_FILE_RANGE_WAIT_BEFORE | LinuxFile.SYNC_FILE_RANGE_WRITE | LinuxFile.SYNC_FILE_RANGE_WAIT_AFTER) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != LinuxFile.EINVAL && errno != LinuxFile.EOPNOTSUPP) return errno; // EIO, ENOSPC on write-back
        }
        _ = LinuxFile.Fadvise(_fd, offset, length, LinuxFile.POSIX_FADV_DONTNEED);
        return 0;
    }

    [StackTraceHidden]
    private void ThrowIoError(int errno, long bytes, bool isWrite)
    {
        Volatile.Write(ref _errno, 0);
        string what = isWrite ? "writing" : "reading";
        string detail = _errorOp ?? what;
        if (errno is LinuxFile.ENOSPC or LinuxFile.EDQUOT or LinuxFile.EFBIG)
        {
            throw new MemoException(
                $"disk store in {Directory} is full: {LinuxFile.Describe(errno)} {what} {Sizes.FormatBytes(bytes)} (request {detail}), {FreeSpace(Directory)}; " +
                "free space there, point --host-store disk:DIR at a larger disk, or raise --host-memory", 1);
        }
        throw new MemoException(
            $"disk store in {Directory}: {LinuxFile.Describe(errno)} {what} {Sizes.FormatBytes(bytes)} (request {detail}); " +
            "check the disk (dmesg) or point --host-store disk:DIR at another one", 1);
    }

    /// <summary>Opens a fresh file in the directory and unlinks it at once, so nothing is left behind whatever happens.</summary>
    private static int OpenUnlinked(string directory, bool direct, out string path, out string mode)
    {
        HostStoreSpec.CheckDirectory(directory);
        path = Path.Combine(directory, string.Create(CultureInfo.InvariantCulture, $".memo-store-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp"));
        const int flags = LinuxFile.O_RDWR | LinuxFile.O_CREAT | LinuxFile.O_EXCL | LinuxFile.O_CLOEXEC;
        mode = "buffered (O_DIRECT not requested), pages dropped with posix_fadvise(DONTNEED)";
        int fd;
        if (direct)
        {
            fd = LinuxFile.Open(path, flags | LinuxFile.O_DIRECT, 0x180 /* 0600 */);
            if (fd >= 0)
            {
                mode = "direct (O_DIRECT)";
                _ = LinuxFile.Unlink(path);
                return fd;
            }
            int errno = Marshal.GetLastPInvokeError();
            _ = LinuxFile.Unlink(path); // some file systems create the file before refusing O_DIRECT
            if (errno != LinuxFile.EINVAL) ThrowOpen(directory, errno);
            mode = "buffered (O_DIRECT refused: EINVAL), pages dropped with posix_fadvise(DONTNEED)";
        }
        fd = LinuxFile.Open(path, flags, 0x180);
        if (fd < 0) ThrowOpen(directory, Marshal.GetLastPInvokeError());
        _ = LinuxFile.Unlink(path);
        return fd;
    }

    [StackTraceHidden]
    private static void ThrowOpen(string directory, int errno) => throw new MemoException(
        $"cannot create the disk store file in {directory}: {LinuxFile.Describe(errno)}; pass --host-store disk:DIR with a writable directory", 1);

    /// <summary>Reserves the capacity (fallocate); falls back to ftruncate where fallocate is unsupported.</summary>
    private bool Reserve(string path)
    {
        if (_options.Preallocate)
        {
            while (true)
            {
                if (LinuxFile.Fallocate(_fd, 0, 0, Capacity) == 0) return true;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == LinuxFile.EINTR) continue;
                if (errno is LinuxFile.ENOSPC or LinuxFile.EDQUOT or LinuxFile.EFBIG)
                {
                    throw new MemoException(
                        $"disk store in {Directory} needs {Sizes.FormatBytes(Capacity)}, {FreeSpace(Directory)} (fallocate: {LinuxFile.Describe(errno)}); " +
                        "free space there, point --host-store disk:DIR at a larger disk, or raise --host-memory", 1);
                }
                if (errno != LinuxFile.EOPNOTSUPP) ThrowOpen(Directory, errno);
                break;
            }
        }
        if (LinuxFile.Ftruncate(_fd, Capacity) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new MemoException(
                $"cannot size the disk store file {Path.GetFileName(path)} in {Directory} to {Sizes.FormatBytes(Capacity)}: {LinuxFile.Describe(errno)}; " +
                "point --host-store disk:DIR at another directory", 1);
        }
        return false;
    }

    private static string FreeSpace(string directory)
    {
        try
        {
            return $"{Sizes.FormatBytes(new DriveInfo(directory).AvailableFreeSpace)} free";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return "free space unknown";
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        lock (_queueLock)
        {
            _stop = true;
            Monitor.PulseAll(_queueLock);
        }
        foreach (var t in _threads) t.Join();
        _ = LinuxFile.Close(_fd);
        _callDone.Dispose();
    }
}
