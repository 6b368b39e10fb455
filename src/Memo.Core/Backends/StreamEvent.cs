using System.Diagnostics;

namespace Memo.Backends;

/// <summary>
/// A point in a stream's order, like a CUDA event: <see cref="Record"/> on the compute side marks work
/// done so far; a copy queued with a wait on it starts only after it. <see cref="Synchronize"/> blocks
/// the caller until the event has fired and counts the wait as exposed time.
/// </summary>
public sealed class StreamEvent
{
    private int _state; // 0 = pending, 1 = fired
    private readonly ManualResetEventSlim _fired = new(false);

    public StreamEvent(string name) => Name = name;

    public string Name { get; }

    public bool IsFired => Volatile.Read(ref _state) == 1;

    /// <summary>Marks the event pending again, for reuse in the next step.</summary>
    public void Reset()
    {
        Volatile.Write(ref _state, 0);
        _fired.Reset();
    }

    /// <summary>Fires the event (compute is synchronous on the calling thread, so recording fires it at once).</summary>
    public void Record()
    {
        Volatile.Write(ref _state, 1);
        _fired.Set();
    }

    /// <summary>Blocks until the event fires; returns the milliseconds spent waiting.</summary>
    public double Synchronize()
    {
        if (IsFired) return 0;
        long t0 = Stopwatch.GetTimestamp();
        var spin = new SpinWait();
        for (int i = 0; i < 64 && !IsFired; i++) spin.SpinOnce(sleep1Threshold: -1);
        if (!IsFired) _fired.Wait();
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }
}
