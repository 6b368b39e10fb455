using Memo.Backends;

namespace Memo.Cpu.Device;

/// <summary>
/// A host store over two tiers: bytes [0, <see cref="RamBytes"/>) in a RAM store, the rest in a
/// <see cref="DiskHostStore"/>. A region that straddles the boundary is split. The RAM tier's size is a
/// multiple of 4 KiB, so 4 KiB-aligned region offsets stay aligned in the disk file.
/// <code>
/// host offset  0 ........ RamBytes ................. Capacity
///              [ RAM tier ][ disk tier (file offset = host offset - RamBytes) ]
/// </code>
/// </summary>
public sealed unsafe class TieredHostStore : IHostStore
{
    private readonly IHostStore? _ram;

    /// <summary>
    /// <paramref name="ram"/> may be null (everything on disk); its capacity must be a multiple of
    /// <see cref="DiskHostStore.Alignment"/> when a disk tier follows it.
    /// </summary>
    public TieredHostStore(IHostStore? ram, DiskHostStore? disk)
    {
        _ram = ram;
        Disk = disk;
        RamBytes = ram?.Capacity ?? 0;
        if (disk != null && RamBytes % DiskHostStore.Alignment != 0)
            throw new ArgumentException($"the RAM tier ({RamBytes} bytes) must be a multiple of {DiskHostStore.Alignment} bytes", nameof(ram));
        Capacity = RamBytes + (disk?.Capacity ?? 0);
    }

    public long Capacity { get; }

    public long RamBytes { get; }

    public DiskHostStore? Disk { get; }

    /// <summary>True when any byte of [offset, offset + bytes) lives on disk.</summary>
    public bool OnDisk(long offset, long bytes) => Disk != null && bytes > 0 && offset + bytes > RamBytes;

    public void Write(long offset, void* deviceSrc, long bytes)
    {
        Check(offset, bytes);
        long inRam = Math.Clamp(RamBytes - offset, 0, bytes);
        if (inRam > 0) _ram!.Write(offset, deviceSrc, inRam);
        if (inRam < bytes) Disk!.Write(offset + inRam - RamBytes, (byte*)deviceSrc + inRam, bytes - inRam);
    }

    public void Read(long offset, void* deviceDst, long bytes)
    {
        Check(offset, bytes);
        long inRam = Math.Clamp(RamBytes - offset, 0, bytes);
        if (inRam > 0) _ram!.Read(offset, deviceDst, inRam);
        if (inRam < bytes) Disk!.Read(offset + inRam - RamBytes, (byte*)deviceDst + inRam, bytes - inRam);
    }

    private void Check(long offset, long bytes)
    {
        if (offset < 0 || bytes < 0 || offset > Capacity - bytes)
            throw new ArgumentOutOfRangeException(nameof(offset), $"host store range [{offset}, {offset}+{bytes}) is outside its {Capacity} bytes");
    }

    public void Dispose()
    {
        _ram?.Dispose();
        Disk?.Dispose();
    }
}
