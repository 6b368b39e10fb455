using System.Runtime.ExceptionServices;

namespace Memo.Cpu;

/// <summary>
/// A persistent pool of worker threads for the CPU kernels. <see cref="For"/> runs a body over an
/// index range, with the calling thread taking part, and allocates nothing per call: the body is a
/// function pointer and its state an unmanaged pointer. Which thread runs which index is not fixed,
/// so kernels must make each index's result independent of the thread that runs it (they do: every
/// reduction has a fixed order), which keeps results bit-identical for any thread count.
/// </summary>
/// <remarks>
/// Work is claimed from one 64-bit ticket, (call number &lt;&lt; 32) | next index, by compare-and-swap,
/// so a worker that wakes late can never claim an index of a later call. When a call's indices are all
/// done the caller closes its ticket (index <see cref="int.MaxValue"/>) before the next call publishes its
/// count: otherwise a late worker holding the finished call's ticket (index = its count) could read the
/// next, larger count and claim that index with the old ticket, running it twice and finishing the next
/// call's count early. The caller waits only for the indices that were claimed to finish, never for idle
/// workers to be scheduled.
/// </remarks>
public sealed unsafe class WorkerPool : IDisposable
{
    private static WorkerPool? _default;
    [ThreadStatic] private static bool _insideBody;

    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _wake;
    private readonly int[] _sleeping;
    private readonly object _callLock = new();
    private volatile int _generation;
    private volatile bool _stop;
    private long _ticket;
    private int _count;
    private int _completed;
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

    /// <summary>The pool used when none is given: <c>MEMO_THREADS</c> threads if set, else one per core.</summary>
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
        lock (_callLock)
        {
            _body = body;
            _state = state;
            _count = count;
            _error = null;
            Volatile.Write(ref _completed, 0);
            int gen = _generation + 1;
            Interlocked.Exchange(ref _ticket, (long)gen << 32);
            _generation = gen;
            for (int i = 0; i < _threads.Length; i++)
            {
                if (Interlocked.Exchange(ref _sleeping[i], 0) == 1) _wake[i].Release();
            }
            RunShare(gen);
            var spin = new SpinWait();
            while (Volatile.Read(ref _completed) < count) spin.SpinOnce(sleep1Threshold: -1);
            // Close this call before the next one writes its count (see the remarks): a worker that
            // read the ticket at (gen, count) now fails its compare-and-swap whatever count it reads.
            Interlocked.Exchange(ref _ticket, ((long)gen << 32) | int.MaxValue);
            _body = null;
            _state = null;
            _error?.Throw();
        }
    }

    /// <summary>Claims and runs indices of call <paramref name="gen"/> until none are left.</summary>
    private void RunShare(int gen)
    {
        bool was = _insideBody;
        _insideBody = true;
        try
        {
            while (true)
            {
                long t = Interlocked.Read(ref _ticket);
                if ((int)(t >> 32) != gen) return;
                int i = (int)(t & 0xFFFFFFFF);
                if (i >= Volatile.Read(ref _count)) return;
                if (Interlocked.CompareExchange(ref _ticket, t + 1, t) != t) continue;
                try
                {
                    _body(i, _state);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null);
                }
                Interlocked.Increment(ref _completed);
            }
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
                if (++spins < 2000)
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
            RunShare(seen);
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
