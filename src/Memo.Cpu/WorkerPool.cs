using System.Runtime.ExceptionServices;

namespace Memo.Cpu;

/// <summary>
/// A persistent pool of worker threads for the CPU kernels. <see cref="For"/> runs a body over an
/// index range, with the calling thread taking part, and allocates nothing per call: the body is a
/// function pointer and its state an unmanaged pointer. Which thread runs which index is not fixed,
/// so kernels must make each index's result independent of the thread that runs it (they do: every
/// reduction has a fixed order), which keeps results bit-identical for any thread count.
/// </summary>
public sealed unsafe class WorkerPool : IDisposable
{
    private static WorkerPool? _default;
    [ThreadStatic] private static bool _insideBody;

    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _wake;
    private readonly int[] _sleeping;
    private volatile int _generation;
    private volatile bool _stop;
    private int _next;
    private int _count;
    private int _pending;
    private delegate* managed<int, void*, void> _body;
    private void* _state;
    private ExceptionDispatchInfo? _error;

    /// <summary>Creates a pool that runs bodies on <paramref name="threads"/> threads (the caller counts as one).</summary>
    public WorkerPool(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        Threads = threads;
        _threads = new Thread[threads - 1];
        _wake = new SemaphoreSlim[threads - 1];
        _sleeping = new int[threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _wake[i] = new SemaphoreSlim(0);
            int id = i;
            _threads[i] = new Thread(() => WorkerLoop(id)) { IsBackground = true, Name = $"memo-worker-{i + 1}" };
            _threads[i].Start();
        }
    }

    public int Threads { get; }

    /// <summary>
    /// The pool used when none is given: <c>MEMO_THREADS</c> threads if set, else one per core.
    /// </summary>
    public static WorkerPool Default
    {
        get
        {
            if (_default is { } p) return p;
            int n = Environment.ProcessorCount;
            if (int.TryParse(Environment.GetEnvironmentVariable("MEMO_THREADS"), out var t) && t > 0) n = t;
            var created = new WorkerPool(n);
            if (Interlocked.CompareExchange(ref _default, created, null) != null) created.Dispose();
            return _default!;
        }
    }

    /// <summary>Replaces the default pool (the old one is disposed).</summary>
    public static void SetDefaultThreads(int threads)
    {
        var old = Interlocked.Exchange(ref _default, new WorkerPool(threads));
        old?.Dispose();
    }

    /// <summary>
    /// Runs <paramref name="body"/>(i, <paramref name="state"/>) for every i in [0, count) and
    /// returns when all are done. Called from inside a body, it runs the range inline.
    /// </summary>
    public void For(int count, delegate* managed<int, void*, void> body, void* state)
    {
        if (count <= 0) return;
        if (count == 1 || Threads == 1 || _insideBody)
        {
            for (int i = 0; i < count; i++) body(i, state);
            return;
        }
        lock (_threads)
        {
            _body = body;
            _state = state;
            _count = count;
            _next = 0;
            _error = null;
            Volatile.Write(ref _pending, _threads.Length);
            Interlocked.Increment(ref _generation);
            for (int i = 0; i < _threads.Length; i++)
            {
                if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();
            }
            RunShare();
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
            _body = null;
            _state = null;
            _error?.Throw();
        }
    }

    private void RunShare()
    {
        bool was = _insideBody;
        _insideBody = true;
        try
        {
            int i;
            while ((i = Interlocked.Increment(ref _next) - 1) < _count) _body(i, _state);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null);
            Volatile.Write(ref _next, _count);
        }
        finally
        {
            _insideBody = was;
        }
    }

    private void WorkerLoop(int id)
    {
        int seen = 0;
        while (true)
        {
            int spins = 0;
            while (_generation == seen && !_stop)
            {
                if (++spins < 4000)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                Volatile.Write(ref _sleeping[id], 1);
                if (_generation != seen || _stop)
                {
                    Interlocked.Exchange(ref _sleeping[id], 0);
                    break;
                }
                _wake[id].Wait();
                spins = 0;
            }
            if (_stop) return;
            seen = _generation;
            RunShare();
            Interlocked.Decrement(ref _pending);
        }
    }

    public void Dispose()
    {
        if (_stop) return;
        _stop = true;
        for (int i = 0; i < _threads.Length; i++) _wake[i].Release();
        foreach (var t in _threads) t.Join();
        foreach (var w in _wake) w.Dispose();
    }
}
