namespace Memo.Backends;

/// <summary>
/// Device memory of fixed capacity, taken once. Buffers are placed at offsets decided before the first
/// step (by a memory plan); there is no allocator at run time. The arena measures its own high-water
/// mark from the regions actually in use: <see cref="Acquire"/> when a buffer's lifetime begins and
/// <see cref="Release"/> when it ends, so <see cref="PeakBytes"/> is measured, not predicted. Regions in
/// use never overlap: acquiring one that intersects a region in use throws, so a plan that lets two
/// buffers share memory is checked against what the runtime really does. With poisoning on, every
/// released region is filled with NaN, so a use after release shows in the loss. This arena lives in host memory:
/// it is the device memory of the host backends (CPU, reference); a GPU backend returns its own
/// <see cref="IDeviceArena"/> from <see cref="IBackend.CreateArena"/>.
/// </summary>
public sealed unsafe class DeviceArena : IDeviceArena
{
    private readonly NativeBuffer _memory;
    private readonly List<long> _starts = new(256);  // regions in use, sorted by offset
    private readonly List<long> _ends = new(256);    // their end offsets, parallel to _starts
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

    /// <summary>Regions in use now.</summary>
    public int LiveRegions => _starts.Count;

    /// <summary>Marks [offset, offset+bytes) in use; throws when it overlaps a region in use.</summary>
    public void Acquire(long offset, long bytes)
    {
        _ = At(offset, bytes);
        int i = _starts.BinarySearch(offset);
        if (i >= 0) throw new InvalidOperationException($"device region at offset {offset} is already in use");
        i = ~i;
        long end = offset + bytes;
        if (i > 0 && _ends[i - 1] > offset)
            throw new InvalidOperationException($"device region [{offset}, {end}) overlaps the region in use [{_starts[i - 1]}, {_ends[i - 1]})");
        if (i < _starts.Count && _starts[i] < end && bytes > 0)
            throw new InvalidOperationException($"device region [{offset}, {end}) overlaps the region in use [{_starts[i]}, {_ends[i]})");
        _starts.Insert(i, offset);
        _ends.Insert(i, end);
        _liveBytes += bytes;
        if (_liveBytes > _peakLive) _peakLive = _liveBytes;
        if (offset + bytes > _peakEnd) _peakEnd = offset + bytes;
    }

    /// <summary>Marks [offset, offset+bytes) free; fills it with NaN when poisoning is on (unless the caller poisons it later itself).</summary>
    public void Release(long offset, long bytes, bool fill = true)
    {
        int i = _starts.BinarySearch(offset);
        if (i < 0) throw new InvalidOperationException($"device region at offset {offset} is not in use");
        if (_ends[i] - offset != bytes)
            throw new InvalidOperationException($"device region at offset {offset} is in use with {_ends[i] - offset} bytes, not {bytes}");
        _starts.RemoveAt(i);
        _ends.RemoveAt(i);
        _liveBytes -= bytes;
        if (Poison && fill) FillNaN(Base + offset, bytes);
    }

    /// <summary>Restarts the high-water marks from the regions in use now.</summary>
    public void ResetPeak()
    {
        _peakLive = _liveBytes;
        _peakEnd = 0;
        for (int i = 0; i < _ends.Count; i++) _peakEnd = Math.Max(_peakEnd, _ends[i]);
    }

    public void Dispose() => _memory.Dispose();

    /// <summary>Fills <paramref name="bytes"/> at <paramref name="p"/> with NaN floats (the poison of released regions).</summary>
    public static void FillNaN(byte* p, long bytes)
    {
        long floats = bytes / 4;
        float* f = (float*)p;
        for (long off = 0; off < floats; off += 1 << 20)
            new Span<float>(f + off, (int)Math.Min(1 << 20, floats - off)).Fill(float.NaN);
    }
}
