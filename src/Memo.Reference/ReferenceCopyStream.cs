using System.Diagnostics;
using Memo.Backends;

namespace Memo.Reference;

/// <summary>
/// A copy stream that runs each command on the caller's thread when it is queued: the simplest stream
/// that keeps the ordering contract (a command's wait has always fired, since everything before it ran).
/// Copies are not overlapped with compute, so measured copy time is all exposed.
/// </summary>
public sealed unsafe class ReferenceCopyStream : ICopyStream
{
    private long _ticks;

    public double BusyMs => Stopwatch.GetElapsedTime(0, _ticks).TotalMilliseconds;

    public long BytesCopied { get; private set; }

    public void ToHost(void* deviceSrc, IHostStore store, long storeOffset, long bytes, StreamEvent? waitFor, StreamEvent? fire)
    {
        waitFor?.Synchronize();
        long t0 = Stopwatch.GetTimestamp();
        store.Write(storeOffset, deviceSrc, bytes);
        Done(t0, bytes, fire);
    }

    public void FromHost(IHostStore store, long storeOffset, void* deviceDst, long bytes, StreamEvent? waitFor, StreamEvent? fire)
    {
        waitFor?.Synchronize();
        long t0 = Stopwatch.GetTimestamp();
        store.Read(storeOffset, deviceDst, bytes);
        Done(t0, bytes, fire);
    }

    public void PoisonFill(void* deviceRegion, long bytes)
    {
        float* f = (float*)deviceRegion;
        for (long i = 0; i < bytes / sizeof(float); i++) f[i] = float.NaN;
    }

    public void Record(StreamEvent fire) => fire.Record();

    public void Drain()
    {
    }

    public void ResetCounters()
    {
        _ticks = 0;
        BytesCopied = 0;
    }

    private void Done(long t0, long bytes, StreamEvent? fire)
    {
        _ticks += Stopwatch.GetTimestamp() - t0;
        BytesCopied += bytes;
        fire?.Record();
    }

    public void Dispose()
    {
    }
}
