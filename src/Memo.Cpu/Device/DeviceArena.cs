namespace Memo.Cpu.Device;

/// <summary>
/// Device memory of fixed capacity, taken once. Buffers are placed at offsets decided before the first
/// step (by a memory plan); there is no allocator at run time. The arena measures its own high-water
/// mark from the regions actually in use: <see cref="Acquire"/> when a buffer's lifetime begins and
/// <see cref="Release"/> when it ends, so <see cref="PeakBytes"/> is measured, not predicted. With
/// poisoning on, every released region is filled with NaN, so a use after release shows in the loss.
/// </summary>
public sealed unsafe class DeviceArena : IDisposable
{
    private readonly NativeBuffer _memory;
    private readonly Dictionary<long, long> _live = new(256); // offset -> bytes of regions in use
    private long _liveBytes;
    private long _peakLive;
    private long _peakEnd;

    public DeviceArena(long capacity, bool poison)
    {
        if (capacity <= 0) throw new MemoException($"device memory budget must be positive (got {capacity})");
        Capacity = capacity;
        Poison = poison;
        _memory = new NativeBuffer(capacity, zero: true);
    }

    public long Capacity { get; }

    public bool Poison { get; }

    /// <summary>Highest end offset of any region in use since the last reset: the device bytes this plan needs.</summary>
    public long PeakBytes => _peakEnd;

    /// <summary>Most bytes in use at one time since the last reset (at most <see cref="PeakBytes"/>).</summary>
    public long PeakLiveBytes => _peakLive;

    public long LiveBytes => _liveBytes;

    public byte* Base => (byte*)_memory.Pointer;

    /// <summary>Pointer at <paramref name="offset"/>, checked against the capacity.</summary>
    public float* At(long offset, long bytes)
    {
        if (offset < 0 || bytes < 0 || offset + bytes > Capacity)
            throw new InvalidOperationException($"device region [{offset}, {offset + bytes}) is outside the arena of {Capacity} bytes");
        return (float*)(Base + offset);
    }

    /// <summary>Marks [offset, offset+bytes) in use.</summary>
    public void Acquire(long offset, long bytes)
    {
        _ = At(offset, bytes);
        if (!_live.TryAdd(offset, bytes)) throw new InvalidOperationException($"device region at offset {offset} is already in use");
        _liveBytes += bytes;
        if (_liveBytes > _peakLive) _peakLive = _liveBytes;
        if (offset + bytes > _peakEnd) _peakEnd = offset + bytes;
    }

    /// <summary>Marks [offset, offset+bytes) free; fills it with NaN when poisoning is on (unless the caller poisons it later itself).</summary>
    public void Release(long offset, long bytes, bool fill = true)
    {
        if (!_live.Remove(offset)) throw new InvalidOperationException($"device region at offset {offset} is not in use");
        _liveBytes -= bytes;
        if (Poison && fill) CopyEngine.FillNaN(Base + offset, bytes);
    }

    /// <summary>Restarts the high-water marks from the regions in use now.</summary>
    public void ResetPeak()
    {
        _peakLive = _liveBytes;
        _peakEnd = 0;
        foreach (var (offset, bytes) in _live) _peakEnd = Math.Max(_peakEnd, offset + bytes);
    }

    public void Dispose() => _memory.Dispose();
}
