namespace Memo.Backends;

/// <summary>
/// The device memory of one model: a fixed capacity taken once from the backend (cudaMalloc on a GPU), into which
/// every buffer is placed at its planned offset. Pointers into it are device addresses: host code computes
/// offsets from <see cref="Base"/> but never reads or writes through them (copies go through the backend).
/// <see cref="Acquire"/> and <see cref="Release"/> mark a buffer's lifespan so the peak is measured and overlaps are refused.
/// </summary>
public unsafe interface IDeviceArena : IDisposable
{
    long Capacity { get; }

    /// <summary>True when released regions are filled with NaN (a use after release shows in the loss).</summary>
    bool Poison { get; }

    /// <summary>Highest end offset of any region in use since the last reset.</summary>
    long PeakBytes { get; }

    /// <summary>Most bytes in use at one time since the last reset.</summary>
    long PeakLiveBytes { get; }

    long LiveBytes { get; }

    int LiveRegions { get; }

    /// <summary>The device address of offset 0.</summary>
    byte* Base { get; }

    /// <summary>The device address at <paramref name="offset"/>, checked against the capacity.</summary>
    float* At(long offset, long bytes);

    /// <summary>Marks [offset, offset+bytes) in use; throws when it overlaps a region in use.</summary>
    void Acquire(long offset, long bytes);

    /// <summary>Marks [offset, offset+bytes) free (filled with NaN when poisoning, unless <paramref name="fill"/> is false).</summary>
    void Release(long offset, long bytes, bool fill = true);

    /// <summary>Restarts the high-water marks from the regions in use now.</summary>
    void ResetPeak();
}
