using System.Diagnostics;
using Memo.Cpu.Device;
using Memo.Tests.IO;

namespace Memo.Tests.Device;

/// <summary>
/// The disk host store: bit-exact round trips (aligned and unaligned memory, tails that end inside a
/// 4 KiB block, many requests in flight), neighbouring regions untouched by tail padding, no file
/// visible during or after use, and a full disk (a 1 MiB tmpfs) as one clean error.
/// </summary>
public sealed unsafe class DiskHostStoreTests
{
    private static readonly DiskStoreOptions SmallChunks = new() { ChunkBytes = 8192, IoThreads = 3 };

    public static TheoryData<bool> Modes => new() { true, false };

    [Theory]
    [MemberData(nameof(Modes))]
    public void RoundTripIsBitExactForUnalignedTailsAndBuffers(bool direct)
    {
        using var dir = new TempDir();
        long[] sizes = [1, 3, 4095, 4096, 4097, 8191, 8192 * 5 + 17, 100_000];
        int[] misalign = [0, 1, 64, 4000];
        var offsets = new long[sizes.Length];
        long capacity = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            offsets[i] = capacity;
            capacity += DiskHostStore.AlignUp(sizes[i]);
        }
        var opts = SmallChunks with { DirectIo = direct };
        using var store = new DiskHostStore(dir.Path, capacity, opts);
        if (!direct) Assert.False(store.DirectIo);
        var rng = new Random(7);
        var data = sizes.Select(s => { var b = new byte[s]; rng.NextBytes(b); return b; }).ToArray();

        using var scratch = new NativeBuffer(200_000 + 8192);
        byte* basePtr = (byte*)scratch.Pointer;
        for (int i = 0; i < sizes.Length; i++)
        {
            byte* src = AlignedPlus(basePtr, misalign[i % misalign.Length]);
            data[i].CopyTo(new Span<byte>(src, data[i].Length));
            store.Write(offsets[i], src, sizes[i]);
        }
        // Read back in reverse order into differently misaligned, dirty buffers.
        for (int i = sizes.Length - 1; i >= 0; i--)
        {
            byte* dst = AlignedPlus(basePtr, misalign[(i + 1) % misalign.Length]);
            new Span<byte>(dst, data[i].Length + 1).Fill(0xAB);
            store.Read(offsets[i], dst, sizes[i]);
            Assert.True(new ReadOnlySpan<byte>(dst, data[i].Length).SequenceEqual(data[i]), $"region {i} ({sizes[i]} bytes) differs");
            Assert.Equal(0xAB, dst[data[i].Length]); // nothing written past the requested bytes
        }
        Assert.Equal(sizes.Sum(), store.BytesWritten);
        Assert.Equal(sizes.Sum(), store.BytesRead);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public void OverwritingARegionReturnsTheNewData()
    {
        using var dir = new TempDir();
        using var store = new DiskHostStore(dir.Path, 3 * 4096, SmallChunks);
        using var a = new NativeBuffer(3 * 4096);
        using var b = new NativeBuffer(3 * 4096);
        new Span<byte>(a.Pointer, 3 * 4096).Fill(1);
        store.Write(0, a.Pointer, 3 * 4096);
        new Span<byte>(a.Pointer, 5000).Fill(2);
        store.Write(0, a.Pointer, 5000);        // tail padding covers [5000, 8192) of this region
        store.Read(0, b.Pointer, 3 * 4096);
        var got = new ReadOnlySpan<byte>(b.Pointer, 3 * 4096);
        Assert.True(got[..5000].IndexOfAnyExcept((byte)2) < 0);
        Assert.True(got[8192..].IndexOfAnyExcept((byte)1) < 0);
    }

    [Fact]
    public void LargeWriteUsesAllThreadsAndLeavesNoFile()
    {
        using var dir = new TempDir();
        const long bytes = 24L << 20;
        var opts = new DiskStoreOptions { ChunkBytes = 1 << 20, IoThreads = 4 };
        using var src = new NativeBuffer(bytes, zero: false);
        using var dst = new NativeBuffer(bytes);
        long* w = (long*)src.Pointer;
        for (long i = 0; i < bytes / 8; i++) w[i] = i * 31 + 5;
        using (var store = new DiskHostStore(dir.Path, bytes, opts))
        {
            Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
            store.Write(0, src.Pointer, bytes);
            store.Read(0, dst.Pointer, bytes);
        }
        Assert.True(new ReadOnlySpan<byte>(src.Pointer, (int)bytes).SequenceEqual(new ReadOnlySpan<byte>(dst.Pointer, (int)bytes)));
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public void MisuseIsRejected()
    {
        using var dir = new TempDir();
        using var store = new DiskHostStore(dir.Path, 8192);
        using var buf = new NativeBuffer(16384);
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Write(100, buf.Pointer, 10));     // offset not 4 KiB aligned
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Write(4096, buf.Pointer, 4097));  // past the capacity
        var e = Assert.Throws<MemoException>(() => new DiskHostStore(Path.Combine(dir.Path, "missing"), 4096));
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ProbeMeasuresBothDirectionsAndRemovesItsFile()
    {
        using var dir = new TempDir();
        var bw = DiskProbe.Measure(dir.Path, 8L << 20);
        Assert.True(bw.WriteBytesPerSecond > 0 && double.IsFinite(bw.WriteBytesPerSecond));
        Assert.True(bw.ReadBytesPerSecond > 0 && double.IsFinite(bw.ReadBytesPerSecond));
        Assert.Equal(8L << 20, bw.Bytes);
        Assert.Contains("MB/s", bw.ToString(), StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [TmpfsFact]
    public void FullDiskAtCreationIsOneLineAndLeavesNoFile()
    {
        using var tmpfs = new SmallTmpfs(1 << 20);
        var e = Assert.Throws<MemoException>(() => new DiskHostStore(tmpfs.Path, 4L << 20));
        Assert.Contains(tmpfs.Path, e.Message, StringComparison.Ordinal);
        Assert.Contains(Sizes.FormatBytes(4L << 20), e.Message, StringComparison.Ordinal);
        Assert.Contains("ENOSPC", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmpfs.Path));
        Assert.True(tmpfs.UsedBytes() < 64 * 1024, $"tmpfs still holds {tmpfs.UsedBytes()} bytes");
    }

    [TmpfsFact]
    public void FullDiskDuringAWriteIsOneLineKeepsEarlierDataAndLeavesNoFile()
    {
        using var tmpfs = new SmallTmpfs(1 << 20);
        const long first = 256 * 1024, second = 2L << 20;
        using var src = new NativeBuffer(second, zero: false);
        using var back = new NativeBuffer(first);
        new Span<byte>(src.Pointer, (int)second).Fill(0x5A);
        using (var store = new DiskHostStore(tmpfs.Path, first + second, SmallChunks with { Preallocate = false }))
        {
            Assert.False(store.Preallocated);
            store.Write(0, src.Pointer, first);
            var e = Assert.Throws<MemoException>(() => store.Write(first, src.Pointer, second));
            Assert.Contains(tmpfs.Path, e.Message, StringComparison.Ordinal);
            Assert.Contains("is full", e.Message, StringComparison.Ordinal);
            Assert.Contains(Sizes.FormatBytes(second), e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', e.Message);
            Assert.Equal(1, e.ExitCode);

            // The store still works for what it holds: the region written before the failure reads back.
            store.Read(0, back.Pointer, first);
            Assert.True(new ReadOnlySpan<byte>(back.Pointer, (int)first).IndexOfAnyExcept((byte)0x5A) < 0);
            Assert.Empty(Directory.EnumerateFileSystemEntries(tmpfs.Path));
        }
        Assert.True(tmpfs.UsedBytes() < 64 * 1024, $"tmpfs still holds {tmpfs.UsedBytes()} bytes");
    }

    [Fact]
    public void HostStoreSpecParsesMemoryDiskAndDiskDir()
    {
        Assert.False(HostStoreSpec.Parse("memory").OnDisk);
        Assert.Equal(Path.GetTempPath(), HostStoreSpec.Parse("disk").DiskDirectory);
        Assert.Equal("/scratch/swap", HostStoreSpec.Parse("disk:/scratch/swap").DiskDirectory);
        Assert.Equal("disk:/scratch/swap", HostStoreSpec.Parse("disk:/scratch/swap").ToString());
        var e = Assert.Throws<MemoException>(() => HostStoreSpec.Parse("nvme"));
        Assert.Contains("memory, disk, or disk:DIR", e.Message, StringComparison.Ordinal);
        Assert.Throws<MemoException>(() => HostStoreSpec.Parse("disk:"));
    }

    private static byte* AlignedPlus(byte* p, int plus) => (byte*)(((nint)p + 4095) & ~(nint)4095) + plus;
}

/// <summary>A fact that needs <c>mount -t tmpfs</c> (root): skipped, with the reason, where mounting is refused.</summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (SmallTmpfs.Unavailable is { } why) Skip = $"needs a small tmpfs for a full disk: {why}";
    }
}

/// <summary>A tmpfs of a given size mounted on a fresh directory, unmounted and removed on dispose.</summary>
public sealed class SmallTmpfs : IDisposable
{
    private static readonly Lazy<string?> Probe = new(() =>
    {
        if (!OperatingSystem.IsLinux()) return "not Linux";
        try
        {
            using var t = new SmallTmpfs(64 * 1024);
            return null;
        }
        catch (InvalidOperationException e)
        {
            return e.Message;
        }
    });

    public SmallTmpfs(long bytes)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "memo-tmpfs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
        var (rc, err) = Exec("mount", "-t", "tmpfs", "-o", $"size={bytes}", "tmpfs", Path);
        if (rc != 0)
        {
            Directory.Delete(Path);
            throw new InvalidOperationException($"mount -t tmpfs refused ({err.Trim()})");
        }
    }

    /// <summary>Null where a tmpfs can be mounted here; otherwise why not.</summary>
    public static string? Unavailable => Probe.Value;

    public string Path { get; }

    public long UsedBytes()
    {
        var d = new DriveInfo(Path);
        return d.TotalSize - d.AvailableFreeSpace;
    }

    private static (int Rc, string Err) Exec(string file, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            string err = p.StandardError.ReadToEnd();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, err);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }

    public void Dispose()
    {
        Exec("umount", Path);
        try
        {
            Directory.Delete(Path);
        }
        catch (IOException)
        {
        }
    }
}
