using System.Diagnostics;
using System.Runtime.CompilerServices;
using Memo.Backends;

namespace Memo.Cpu.Device;

/// <summary>
/// A copy engine: one dedicated thread that executes copies in queue order, concurrently with compute,
/// like a CUDA copy stream. Each command may wait for a producer event before it runs and fires a
/// consumer event when done. Busy time is measured, so a step can report how long the engine copied.
/// Commands live in a fixed ring (no allocation per copy).
/// </summary>
public sealed unsafe class CopyEngine : ICopyStream
{
    private struct Command
    {
        public byte* Src;
        public byte* Dst;
        public long Bytes;
        public StreamEvent? WaitFor;
        public StreamEvent? Fire;
        public bool Poison;       // after copying, fill the source with NaN (a released device region)
        public byte* PoisonPtr;
        public long PoisonBytes;
        public IHostStore? Store;  // not null: Src -> Store (ToStore) or Store -> Dst, at StoreOffset
        public long StoreOffset;
        public bool ToStore;
    }

    private readonly Command[] _ring;
    private readonly Thread _thread;
    private readonly SemaphoreSlim _items = new(0);
    private long _head;   // next slot to write (producer)
    private long _tail;   // next slot to run (consumer)
    private volatile bool _stop;
    private long _busyTicks;
    private long _bytes;
    private Exception? _error;

    public CopyEngine(string name, int capacity = 1024)
    {
        _ring = new Command[capacity];
        Name = name;
        _thread = new Thread(Loop) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public string Name { get; }

    /// <summary>Milliseconds the engine spent copying since the last <see cref="ResetCounters"/>.</summary>
    public double BusyMs => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _busyTicks)).TotalMilliseconds;

    /// <summary>Bytes copied since the last <see cref="ResetCounters"/>.</summary>
    public long BytesCopied => Interlocked.Read(ref _bytes);

    public void ResetCounters()
    {
        Interlocked.Exchange(ref _busyTicks, 0);
        Interlocked.Exchange(ref _bytes, 0);
    }

    /// <summary>
    /// Queues a copy of <paramref name="bytes"/> from <paramref name="src"/> to <paramref name="dst"/> that starts
    /// after <paramref name="waitFor"/> fires and fires <paramref name="fire"/> when done.
    /// </summary>
    public void Copy(void* src, void* dst, long bytes, StreamEvent? waitFor, StreamEvent? fire)
        => Enqueue(new Command { Src = (byte*)src, Dst = (byte*)dst, Bytes = bytes, WaitFor = waitFor, Fire = fire });

    /// <summary>Queues a copy of <paramref name="bytes"/> from device memory into <paramref name="store"/> at <paramref name="storeOffset"/>.</summary>
    public void ToHost(void* deviceSrc, IHostStore store, long storeOffset, long bytes, StreamEvent? waitFor, StreamEvent? fire)
        => Enqueue(new Command { Src = (byte*)deviceSrc, Store = store, StoreOffset = storeOffset, ToStore = true, Bytes = bytes, WaitFor = waitFor, Fire = fire });

    /// <summary>Queues a copy of <paramref name="bytes"/> from <paramref name="store"/> at <paramref name="storeOffset"/> into device memory.</summary>
    public void FromHost(IHostStore store, long storeOffset, void* deviceDst, long bytes, StreamEvent? waitFor, StreamEvent? fire)
        => Enqueue(new Command { Dst = (byte*)deviceDst, Store = store, StoreOffset = storeOffset, Bytes = bytes, WaitFor = waitFor, Fire = fire });

    void ICopyStream.PoisonFill(void* deviceRegion, long bytes) => PoisonFill(deviceRegion, bytes);

    /// <summary>Queues a NaN fill of a released region (debug poisoning), ordered after earlier copies.</summary>
    public void PoisonFill(void* region, long bytes, StreamEvent? fire = null)
        => Enqueue(new Command { Poison = true, PoisonPtr = (byte*)region, PoisonBytes = bytes, Fire = fire });

    /// <summary>Queues firing an event after everything queued so far.</summary>
    public void Record(StreamEvent fire) => Enqueue(new Command { Fire = fire });

    /// <summary>Blocks until every queued command has run; rethrows a failure of the engine thread.</summary>
    public void Drain()
    {
        var spin = new SpinWait();
        while (Interlocked.Read(ref _tail) < Interlocked.Read(ref _head))
        {
            if (_error != null) break;
            spin.SpinOnce(sleep1Threshold: -1);
            if (spin.NextSpinWillYield) Thread.Sleep(0);
        }
        if (_error != null) ThrowFailed();
    }

    private void Enqueue(Command c)
    {
        if (_error != null) ThrowFailed();
        var spin = new SpinWait();
        while (Interlocked.Read(ref _head) - Interlocked.Read(ref _tail) >= _ring.Length) spin.SpinOnce();
        long h = Interlocked.Read(ref _head);
        _ring[h % _ring.Length] = c;
        Interlocked.Exchange(ref _head, h + 1);
        _items.Release();
    }

    /// <summary>A user-facing failure (a full disk under the host store) stays one clean line; anything else names the engine.</summary>
    [StackTraceHidden]
    private void ThrowFailed()
    {
        if (_error is MemoException me) throw new MemoException(me.Message, me, me.ExitCode);
        throw new InvalidOperationException($"copy engine {Name} failed: {_error!.Message}", _error);
    }

    private void Loop()
    {
        while (true)
        {
            _items.Wait();
            if (_stop && Interlocked.Read(ref _tail) >= Interlocked.Read(ref _head)) return;
            long t = Interlocked.Read(ref _tail);
            var c = _ring[t % _ring.Length];
            try
            {
                c.WaitFor?.Synchronize();
                long t0 = Stopwatch.GetTimestamp();
                if (c.Bytes > 0)
                {
                    if (c.Store == null) Buffer.MemoryCopy(c.Src, c.Dst, c.Bytes, c.Bytes);
                    else if (c.ToStore) c.Store.Write(c.StoreOffset, c.Src, c.Bytes);
                    else c.Store.Read(c.StoreOffset, c.Dst, c.Bytes);
                    Interlocked.Add(ref _bytes, c.Bytes);
                }
                if (c.Poison) FillNaN(c.PoisonPtr, c.PoisonBytes);
                Interlocked.Add(ref _busyTicks, Stopwatch.GetTimestamp() - t0);
            }
            catch (Exception e)
            {
                _error = e;
            }
            _ring[t % _ring.Length] = default;
            Interlocked.Exchange(ref _tail, t + 1);
            c.Fire?.Record();
        }
    }

    public static void FillNaN(byte* p, long bytes) => Memo.Backends.DeviceArena.FillNaN(p, bytes);

    public void Dispose()
    {
        if (_stop) return;
        _stop = true;
        _items.Release();
        _thread.Join();
        _items.Dispose();
    }
}
