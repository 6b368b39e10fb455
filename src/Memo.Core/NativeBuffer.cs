using System.Runtime.InteropServices;

namespace Memo;

/// <summary>
/// A block of native memory, 64-byte aligned (2 MiB aligned and advised for transparent huge
/// pages when large). Every block is counted in <see cref="NativeMemoryStats"/>, so tests and
/// reports can measure the high-water mark of native memory. Contents are zeroed on allocation.
/// </summary>
public sealed unsafe class NativeBuffer : IDisposable
{
    private const nuint HugePage = 2 * 1024 * 1024;
    private void* _ptr;

    public NativeBuffer(long bytes, bool zero = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Bytes = bytes;
        nuint size = (nuint)Math.Max(bytes, 64);
        bool huge = size >= HugePage;
        nuint align = huge ? HugePage : 64;
        if (huge) size = (size + HugePage - 1) / HugePage * HugePage;
        try
        {
            _ptr = NativeMemory.AlignedAlloc(size, align);
        }
        catch (OutOfMemoryException)
        {
            throw new MemoException($"out of host memory allocating {Sizes.FormatBytes(bytes)}; use a smaller model, batch or sequence");
        }
        if (huge && OperatingSystem.IsLinux()) HugePages.Advise(_ptr, size);
        if (zero) NativeMemory.Clear(_ptr, size);
        NativeMemoryStats.Add(bytes);
    }

    public long Bytes { get; }

    public void* Pointer => _ptr != null ? _ptr : throw new ObjectDisposedException(nameof(NativeBuffer));

    public float* Floats => (float*)Pointer;

    public void Dispose()
    {
        if (_ptr == null) return;
        NativeMemory.AlignedFree(_ptr);
        _ptr = null;
        NativeMemoryStats.Add(-Bytes);
        GC.SuppressFinalize(this);
    }

    ~NativeBuffer()
    {
        if (_ptr != null)
        {
            NativeMemory.AlignedFree(_ptr);
            NativeMemoryStats.Add(-Bytes);
        }
    }
}

/// <summary>Process-wide count of live <see cref="NativeBuffer"/> bytes and their high-water mark.</summary>
public static class NativeMemoryStats
{
    private static long _current;
    private static long _peak;

    public static long Current => Interlocked.Read(ref _current);

    public static long Peak => Interlocked.Read(ref _peak);

    /// <summary>Resets the high-water mark to the current level, so a later <see cref="Peak"/> measures what came after.</summary>
    public static void ResetPeak() => Interlocked.Exchange(ref _peak, Interlocked.Read(ref _current));

    internal static void Add(long delta)
    {
        long now = Interlocked.Add(ref _current, delta);
        long peak;
        while (now > (peak = Interlocked.Read(ref _peak)))
        {
            if (Interlocked.CompareExchange(ref _peak, now, peak) == peak) break;
        }
    }
}

internal static unsafe partial class HugePages
{
    private const int MadvHugepage = 14;

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* addr, nuint length, int advice);

    public static void Advise(void* ptr, nuint size)
    {
        try
        {
            _ = Madvise(ptr, size, MadvHugepage);
        }
        catch (DllNotFoundException)
        {
            // Not glibc: the memory works the same, only without the huge-page hint.
        }
        catch (EntryPointNotFoundException)
        {
        }
    }
}
