using System.Diagnostics;
using System.Globalization;

namespace Memo.Cpu.Device;

/// <summary>Write and read bandwidth of a disk store's directory, measured by <see cref="DiskProbe.Measure"/>.</summary>
public sealed record DiskBandwidth(string Directory, long Bytes, double WriteBytesPerSecond, double ReadBytesPerSecond, string IoMode)
{
    /// <summary>The slower of the two directions: what bounds a swap that writes in forward and reads in backward.</summary>
    public double SlowerBytesPerSecond => Math.Min(WriteBytesPerSecond, ReadBytesPerSecond);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"disk store {Directory}: write {WriteBytesPerSecond / 1e6:0} MB/s, read {ReadBytesPerSecond / 1e6:0} MB/s ({Sizes.FormatBytes(Bytes)} probe, {IoMode})");
}

/// <summary>
/// A short start-up probe: writes <c>bytes</c> of a pattern through a <see cref="DiskHostStore"/> (a fresh one in a
/// directory, or the run's own store before its first use), reads them back, checks them, and reports both rates.
/// With direct I/O the read comes from the disk, not from the page cache. A fresh store's file is gone when it returns.
/// </summary>
public static unsafe class DiskProbe
{
    public const long DefaultBytes = 128L << 20;

    public static DiskBandwidth Measure(string directory, long bytes = DefaultBytes, DiskStoreOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, DiskHostStore.Alignment);
        using var store = new DiskHostStore(directory, DiskHostStore.AlignUp(bytes), options);
        return Measure(store, bytes);
    }

    /// <summary>
    /// Probes through an existing store, over its first <paramref name="bytes"/> (at most its capacity): no extra
    /// space or file is needed, and what it wrote there is overwritten by the store's first real use.
    /// </summary>
    public static DiskBandwidth Measure(DiskHostStore store, long bytes = DefaultBytes)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, DiskHostStore.Alignment);
        bytes = Math.Min(DiskHostStore.AlignUp(bytes), store.Capacity);
        using var buffer = new NativeBuffer(bytes, zero: false);
        ulong* words = (ulong*)buffer.Pointer;
        long n = bytes / sizeof(ulong);
        for (long i = 0; i < n; i++) words[i] = (ulong)i * 0x9E3779B97F4A7C15UL;

        // One untimed request first, so thread start-up and the first block allocation are not measured.
        store.Write(0, buffer.Pointer, DiskHostStore.Alignment);
        long t0 = Stopwatch.GetTimestamp();
        store.Write(0, buffer.Pointer, bytes);
        double writeS = Stopwatch.GetElapsedTime(t0).TotalSeconds;

        System.Runtime.InteropServices.NativeMemory.Clear(buffer.Pointer, (nuint)bytes);
        t0 = Stopwatch.GetTimestamp();
        store.Read(0, buffer.Pointer, bytes);
        double readS = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        for (long i = 0; i < n; i += 509)
        {
            if (words[i] != (ulong)i * 0x9E3779B97F4A7C15UL)
                throw new MemoException($"disk store in {store.Directory}: data read back differs from what was written (word {i}); the disk or file system is not reliable, use another directory", 1);
        }
        store.ResetCounters(); // the probe's traffic is not the run's
        return new DiskBandwidth(store.Directory, bytes, bytes / writeS, bytes / readS, store.IoMode);
    }
}
