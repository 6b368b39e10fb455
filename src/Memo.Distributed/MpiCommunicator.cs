using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Memo.Distributed;

/// <summary>
/// <see cref="ICommunicator"/> over MPI (MPICH, P/Invoke). Every operation is nonblocking underneath
/// (MPI_Isend/Irecv, MPI_Iallreduce, MPI_Iallgather, MPI_Ireduce_scatter_block, MPI_Ibarrier) and is
/// completed by polling MPI_Testall against a deadline, so a dead or hung peer turns into a
/// <see cref="CommunicatorException"/> after <see cref="Timeout"/> instead of a hang; MPI errors are
/// returned (MPI_ERRORS_RETURN), not fatal, and reported the same way.
/// </summary>
/// <remarks>
/// <para>
/// Requests live in one native table allocated at construction (no allocation per operation); a
/// message longer than <see cref="MaxPart"/> elements is split into several requests.
/// </para>
/// <para>
/// <b>Progress pump.</b> MPICH moves a large (rendezvous) message only inside MPI calls: a transfer
/// posted before a long compute would otherwise happen in the Wait after it, fully exposed. While any
/// request of this communicator is outstanding, a background thread polls them (MPI_Testall) and sleeps
/// between polls, starting at <see cref="PollMinMicroseconds"/> after a post and doubling to
/// <see cref="PollMaxMicroseconds"/>: the few progress calls a rendezvous needs (the receiver's get, the
/// sender's completion) happen while the caller computes, and the pump costs a handful of wake-ups per
/// transfer instead of a spinning core. It records when it first saw each request complete
/// (<see cref="Complete"/>), which is how the ring measures a transfer's real duration. Chosen by
/// measurement on the 2-core machine with 2 ranks x 1 kernel thread (bench/ring-overlap.sh,
/// benchmarks/amd-epyc-zen5-2core/ring-overlap.md, llama-small attention, machine shared): rank 0's
/// exposed wait fell from 0.119 to 0.066 s per repetition at T = 8K and from 0.504 to 0.348 s at 16K
/// (72-77% of the transfer time hidden), step times within the noise (2.47 vs 2.56 s, 9.05 vs 8.77 s); MPICH's own
/// progress thread (MPIR_CVAR_ASYNC_PROGRESS=1) spins a core per rank and doubled the step time (2.47 to
/// 5.64 s at 8K). Polling between pieces of the attention kernels was not built: it would tie the
/// kernels to the communicator and poll only as often as there are pieces (two kv-head groups in llama-small).
/// </para>
/// <para>
/// Every MPI call, from the caller or the pump, holds one process-wide lock, so MPI_THREAD_SERIALIZED
/// is what MPI must provide (checked at start). Callers still use a communicator from one thread at a time.
/// </para>
/// </remarks>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    /// <summary>Largest element count of one MPI call (MPI counts are 32-bit).</summary>
    internal const int MaxPart = 1 << 30;

    /// <summary>The pump's first sleep after a post, and its longest (it doubles in between).</summary>
    public const int PollMinMicroseconds = 50, PollMaxMicroseconds = 800;

    private const int TableSize = 256;

    /// <summary>A copy of MPI_COMM_WORLD made at start-up for the barrier before MPI_Finalize alone.</summary>
    private static int _closeComm = MpiNative.CommNull;

    /// <summary>Held by every MPI call of the process (MPI_THREAD_SERIALIZED).</summary>
    private static readonly Lock MpiLock = new();

    private readonly int _comm;
    private readonly bool _isWorld;
    private readonly int* _requests;
    private readonly bool[] _used = new bool[TableSize];
    // Per first slot of a request: its part count while outstanding (0: none), when it completed (0: not yet), the MPI error seen.
    private readonly int[] _parts = new int[TableSize];
    private readonly long[] _doneAt = new long[TableSize];
    private readonly int[] _error = new int[TableSize];
    private readonly string _name;
    private readonly ManualResetEventSlim _pending = new(false);
    private readonly Thread _pump;
    private volatile bool _kick;
    private bool _disposed;
    private long _sendBytes, _sends, _collectiveBytes, _collectives;

    private MpiCommunicator(int comm, bool isWorld, TimeSpan timeout, string name)
    {
        _comm = comm;
        _isWorld = isWorld;
        Timeout = timeout;
        _name = name;
        int r, s;
        Check(MpiNative.MPI_Comm_rank(comm, &r), "MPI_Comm_rank");
        Check(MpiNative.MPI_Comm_size(comm, &s), "MPI_Comm_size");
        Rank = r;
        Size = s;
        _requests = (int*)NativeMemory.Alloc(TableSize, sizeof(int));
        for (int i = 0; i < TableSize; i++) _requests[i] = MpiNative.RequestNull;
        _pump = new Thread(Pump) { IsBackground = true, Name = $"mpi progress ({name})" };
        _pump.Start();
    }

    public int Rank { get; }

    public int Size { get; }

    public TimeSpan Timeout { get; }

    public CommCounters Counters => new(_sendBytes, _sends, _collectiveBytes, _collectives);

    /// <summary>Whether MPI failed in this process (then Finalize is skipped: it would wait for the dead peer).</summary>
    public static bool Failed { get; private set; }

    /// <summary>True when this process was started by an MPI launcher (mpiexec/mpirun of MPICH's Hydra, or a PMI-compatible one).</summary>
    public static bool LaunchedByMpi =>
        Environment.GetEnvironmentVariable("PMI_RANK") is not null || Environment.GetEnvironmentVariable("PMI_SIZE") is not null
        || Environment.GetEnvironmentVariable("PMIX_RANK") is not null;

    /// <summary>Initializes MPI (once per process) and returns the world communicator.</summary>
    public static MpiCommunicator World(TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero) throw new MemoException($"communication timeout must be positive (got {timeout.TotalSeconds} s)");
        int flag;
        try
        {
            MpiNative.MPI_Initialized(&flag);
        }
        catch (DllNotFoundException)
        {
            throw new MemoException($"MPI library {MpiNative.Library} not found: install MPICH (Debian/Ubuntu: apt-get install mpich) and launch with mpiexec -n N");
        }
        int provided;
        if (flag == 0)
        {
            Posix.SetDefaultEnvironment("UCX_TLS", DefaultTransports(
                Environment.GetEnvironmentVariable("MPI_LOCALNRANKS"), Environment.GetEnvironmentVariable("PMI_SIZE")));
            int rc = MpiNative.MPI_Init_thread(null, null, MpiNative.ThreadSerialized, &provided);
            if (rc != MpiNative.Success) throw new CommunicatorException($"MPI_Init_thread failed: {MpiNative.ErrorString(rc)}");
        }
        else
        {
            MpiNative.MPI_Query_thread(&provided);
        }
        if (provided < MpiNative.ThreadSerialized)
            throw new CommunicatorException($"this MPI library gives thread support level {provided}, and memo's progress thread needs MPI_THREAD_SERIALIZED ({MpiNative.ThreadSerialized}) or more; use an MPI built with thread support (Debian's mpich is)");
        int ec = MpiNative.MPI_Comm_set_errhandler(MpiNative.CommWorld, MpiNative.ErrorsReturn);
        if (ec != MpiNative.Success) throw new CommunicatorException($"MPI_Comm_set_errhandler failed: {MpiNative.ErrorString(ec)}");
        if (_closeComm == MpiNative.CommNull)
        {
            int dup;
            ec = MpiNative.MPI_Comm_dup(MpiNative.CommWorld, &dup);
            if (ec != MpiNative.Success) throw new CommunicatorException($"MPI_Comm_dup failed: {MpiNative.ErrorString(ec)}");
            _closeComm = dup;
        }
        return new MpiCommunicator(MpiNative.CommWorld, true, timeout, "world");
    }

    /// <summary>
    /// The UCX transports memo asks for unless the user set UCX_TLS, from the launcher's count of ranks on
    /// this host (Hydra's MPI_LOCALNRANKS) and in the job (PMI_SIZE). Never cma (UCX's zero-copy
    /// process_vm_readv): it aborts the whole process when the peer it reads from has died, before this rank
    /// can say anything; without it a dead peer leaves the transfer pending and the rank stops with its own
    /// line (mpiexec's SIGUSR1, or the timeout). When every rank is on this host, shared memory alone
    /// (self, posix, sysv): with tcp also allowed, UCX moves large messages over loopback TCP, and its TCP
    /// endpoints sometimes never finish closing in MPI_Finalize (both ranks spinning; 6 of 400 two-rank
    /// jobs on the loaded 2-core machine, 0 of 400 with shared memory alone).
    /// </summary>
    public static string DefaultTransports(string? localRanks, string? jobRanks) =>
        localRanks is not null && localRanks == jobRanks ? "self,posix,sysv" : "^cma";

    public ICommunicator Split(int color, int key)
    {
        int newComm;
        lock (MpiLock) Check(MpiNative.MPI_Comm_split(_comm, color, key, &newComm), "MPI_Comm_split");
        return new MpiCommunicator(newComm, false, Timeout, $"{_name}/{color}");
    }

    public CommRequest Send(void* buffer, long count, CommType type, int peer, int tag, CommStream stream = default) =>
        PointToPoint(buffer, count, type, peer, tag, send: true);

    public CommRequest Receive(void* buffer, long count, CommType type, int peer, int tag, CommStream stream = default) =>
        PointToPoint(buffer, count, type, peer, tag, send: false);

    private CommRequest PointToPoint(void* buffer, long count, CommType type, int peer, int tag, bool send)
    {
        Comm.CheckCount(count, send ? "send" : "receive");
        CheckPeer(peer);
        int parts = Math.Max(1, (int)((count + MaxPart - 1) / MaxPart));
        if (send)
        {
            _sendBytes += count * Comm.ElementSize(type);
            _sends++;
        }
        int dt = Datatype(type);
        long elem = Comm.ElementSize(type);
        lock (MpiLock)
        {
            int slot = Reserve(parts);
            for (int p = 0; p < parts; p++)
            {
                long first = (long)p * MaxPart;
                int n = (int)Math.Min(MaxPart, count - first);
                byte* b = (byte*)buffer + first * elem;
                int rc = send
                    ? MpiNative.MPI_Isend(b, n, dt, peer, tag, _comm, &_requests[slot + p])
                    : MpiNative.MPI_Irecv(b, n, dt, peer, tag, _comm, &_requests[slot + p]);
                if (rc != MpiNative.Success)
                {
                    Release(slot, parts);
                    Check(rc, send ? $"send to rank {peer}" : $"receive from rank {peer}");
                }
            }
            return Posted(slot, parts);
        }
    }

    /// <summary>Hands a posted request to the pump, which polls from its shortest sleep again. Called under <see cref="MpiLock"/>.</summary>
    private CommRequest Posted(int slot, int parts)
    {
        _parts[slot] = parts;
        _doneAt[slot] = 0;
        _error[slot] = MpiNative.Success;
        _kick = true;
        _pending.Set();
        return new CommRequest(slot, parts);
    }

    public bool Test(CommRequest request) => Poll(request, "a send or receive") != 0;

    public void Wait(CommRequest request) => WaitFor(request, "a send or receive");

    /// <summary>Waits like <see cref="Wait"/>; returns when the pump (or a caller's poll) first saw the request complete.</summary>
    public long Complete(CommRequest request) => WaitFor(request, "a send or receive");

    /// <summary>
    /// The Stopwatch timestamp at which the request completed, releasing it, or 0 while it is pending;
    /// polls MPI unless the pump already saw it complete. Throws the error the pump or this poll got.
    /// </summary>
    private long Poll(CommRequest request, string what)
    {
        if (request.IsNone) return Stopwatch.GetTimestamp();
        int slot = request.Slot, error;
        long doneAt;
        lock (MpiLock)
        {
            if (_doneAt[slot] == 0) TestSlot(slot);
            doneAt = _doneAt[slot];
            error = _error[slot];
            if (doneAt == 0) return 0;
            Release(slot, request.Parts);
        }
        Check(error, what);
        return doneAt;
    }

    /// <summary>One MPI_Testall of an outstanding request; records its completion time or error. Called under <see cref="MpiLock"/>.</summary>
    private void TestSlot(int slot)
    {
        int flag;
        int rc = MpiNative.MPI_Testall(_parts[slot], &_requests[slot], &flag, MpiNative.StatusesIgnore);
        if (rc != MpiNative.Success) _error[slot] = rc;
        if (flag != 0 || rc != MpiNative.Success) _doneAt[slot] = Stopwatch.GetTimestamp();
    }

    /// <summary>
    /// The progress thread: idle while nothing is outstanding; otherwise polls every outstanding request,
    /// sleeping PollMinMicroseconds after a post, doubling up to PollMaxMicroseconds, never spinning.
    /// </summary>
    private void Pump()
    {
        while (true)
        {
            _pending.Wait();
            int sleep = PollMinMicroseconds;
            while (true)
            {
                lock (MpiLock)
                {
                    if (_disposed) return;
                    int left = 0;
                    for (int i = 0; i < TableSize; i++)
                    {
                        if (_parts[i] == 0 || _doneAt[i] != 0) continue;
                        TestSlot(i);
                        if (_doneAt[i] == 0) left++;
                    }
                    if (left == 0)
                    {
                        _pending.Reset(); // under the lock: a post after this sets it again
                        break;
                    }
                }
                if (_kick)
                {
                    _kick = false;
                    sleep = PollMinMicroseconds;
                }
                Posix.SleepMicroseconds(sleep);
                sleep = Math.Min(2 * sleep, PollMaxMicroseconds);
            }
        }
    }

    public void AllReduce(void* send, void* receive, long count, CommType type, CommOp op, CommStream stream = default)
    {
        Comm.CheckCount(count, "all-reduce");
        Count(count, type);
        if (count == 0) return;
        int parts = (int)((count + MaxPart - 1) / MaxPart);
        long elem = Comm.ElementSize(type);
        CommRequest request;
        lock (MpiLock)
        {
            int slot = Reserve(parts);
            for (int p = 0; p < parts; p++)
            {
                long first = (long)p * MaxPart;
                int n = (int)Math.Min(MaxPart, count - first);
                void* s = send == receive ? MpiNative.InPlace : (byte*)send + first * elem;
                Started(MpiNative.MPI_Iallreduce(s, (byte*)receive + first * elem, n, Datatype(type), Op(op), _comm, &_requests[slot + p]), slot, parts, "all-reduce");
            }
            request = Posted(slot, parts);
        }
        WaitFor(request, "all-reduce");
    }

    public void AllGather(void* send, void* receive, long countPerRank, CommType type, CommStream stream = default)
    {
        Comm.CheckCount(countPerRank, "all-gather");
        Count(countPerRank, type);
        if (countPerRank > MaxPart) throw new MemoException($"all-gather of {countPerRank} elements per rank exceeds the {MaxPart} an MPI call takes");
        if (countPerRank == 0) return;
        int dt = Datatype(type);
        void* s = send == (byte*)receive + Rank * countPerRank * Comm.ElementSize(type) ? MpiNative.InPlace : send;
        CommRequest request;
        lock (MpiLock)
        {
            int slot = Reserve(1);
            Started(MpiNative.MPI_Iallgather(s, (int)countPerRank, dt, receive, (int)countPerRank, dt, _comm, &_requests[slot]), slot, 1, "all-gather");
            request = Posted(slot, 1);
        }
        WaitFor(request, "all-gather");
    }

    public void ReduceScatter(void* send, void* receive, long countPerRank, CommType type, CommOp op, CommStream stream = default)
    {
        Comm.CheckCount(countPerRank, "reduce-scatter");
        Count(countPerRank * Size, type);
        if (countPerRank > MaxPart) throw new MemoException($"reduce-scatter of {countPerRank} elements per rank exceeds the {MaxPart} an MPI call takes");
        if (countPerRank == 0) return;
        CommRequest request;
        lock (MpiLock)
        {
            int slot = Reserve(1);
            Started(MpiNative.MPI_Ireduce_scatter_block(send, receive, (int)countPerRank, Datatype(type), Op(op), _comm, &_requests[slot]), slot, 1, "reduce-scatter");
            request = Posted(slot, 1);
        }
        WaitFor(request, "reduce-scatter");
    }

    public void Barrier() => Barrier(_comm, "barrier");

    /// <summary>A barrier over <paramref name="comm"/> (this communicator's group), through this communicator's requests and deadline.</summary>
    private void Barrier(int comm, string what)
    {
        CommRequest request;
        lock (MpiLock)
        {
            int slot = Reserve(1);
            Started(MpiNative.MPI_Ibarrier(comm, &_requests[slot]), slot, 1, what);
            request = Posted(slot, 1);
        }
        WaitFor(request, what);
    }

    /// <summary>Releases the slots and throws when starting a collective failed. Called under <see cref="MpiLock"/>.</summary>
    private void Started(int rc, int slot, int parts, string what)
    {
        if (rc == MpiNative.Success) return;
        Release(slot, parts);
        Check(rc, what);
    }

    private void Count(long count, CommType type)
    {
        _collectiveBytes += count * Comm.ElementSize(type);
        _collectives++;
    }

    /// <summary>
    /// Polls until the request completes or the deadline passes: spins with yields for the first
    /// millisecond (ring steps are short), then sleeps 1 ms between polls so a waiting rank leaves the
    /// core to the ranks that compute. Returns when the request was first seen complete.
    /// </summary>
    private long WaitFor(CommRequest request, string what)
    {
        long start = Stopwatch.GetTimestamp();
        long spinUntil = start + Stopwatch.Frequency / 1000;
        long deadline = start + (long)(Timeout.TotalSeconds * Stopwatch.Frequency);
        long doneAt;
        while ((doneAt = Poll(request, what)) == 0)
        {
            long now = Stopwatch.GetTimestamp();
            if (now > deadline)
            {
                Failed = true;
                throw new CommunicatorException(
                    $"rank {Rank} of {Size} ({_name}): {what} did not complete within {Timeout.TotalSeconds:0.#} s; a peer rank has died or hangs, stopping");
            }
            if (now < spinUntil) Thread.Yield();
            else Thread.Sleep(1);
        }
        return doneAt;
    }

    private int Reserve(int parts)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (int i = 0; i + parts <= TableSize; i++)
        {
            int j = 0;
            while (j < parts && !_used[i + j]) j++;
            if (j == parts)
            {
                for (j = 0; j < parts; j++) _used[i + j] = true;
                return i;
            }
            i += j;
        }
        throw new InvalidOperationException($"more than {TableSize} communication requests in flight; wait for some before starting more");
    }

    private void Release(int slot, int parts)
    {
        _parts[slot] = 0;
        for (int j = 0; j < parts; j++)
        {
            _used[slot + j] = false;
            _requests[slot + j] = MpiNative.RequestNull;
        }
    }

    private void CheckPeer(int peer)
    {
        if ((uint)peer >= (uint)Size) throw new ArgumentOutOfRangeException(nameof(peer), $"peer rank {peer} is not in a group of {Size}");
    }

    private void Check(int rc, string what)
    {
        if (rc == MpiNative.Success) return;
        Failed = true;
        throw new CommunicatorException($"rank {Rank} of {Size} ({_name}): {what} failed: {MpiNative.ErrorString(rc)}; a peer rank has probably died, stopping");
    }

    private static int Datatype(CommType type) => type switch
    {
        CommType.Float32 => MpiNative.Float,
        CommType.Float64 => MpiNative.Double,
        CommType.Int64 => MpiNative.Int64,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    private static int Op(CommOp op) => op switch
    {
        CommOp.Sum => MpiNative.OpSum,
        CommOp.Max => MpiNative.OpMax,
        CommOp.Min => MpiNative.OpMin,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    /// <summary>Seconds MPI_Finalize may take, once every rank has reached it, before the process exits without it.</summary>
    public const double FinalizeLimitSeconds = 15;

    /// <summary>Frees a sub-group, or ends MPI as <see cref="Close"/> does with exit code 1 should MPI_Finalize hang.</summary>
    public void Dispose() => Close(1);

    /// <summary>
    /// Frees a sub-group; the world communicator ends MPI in this process, unless a failure was seen
    /// (MPI_Finalize would wait for the dead peer). First a barrier over every rank, on a communicator
    /// kept for it, bounded by <see cref="Timeout"/>: MPICH 4.0's UCX netmod closes its endpoints inside
    /// MPI_Finalize without waiting for the other ranks, and a rank that closes while a peer is still
    /// finishing (rank 0 writing a checkpoint or gradients) can leave that peer's close spinning forever
    /// (seen in about 1 job of 50 on the loaded 2-core machine; later MPICH puts the same barrier inside
    /// MPI_Finalize). Then MPI_Finalize under an <see cref="ExitWatchdog"/>: if it has not returned within
    /// <see cref="FinalizeLimitSeconds"/>, the process says so in one line and exits with
    /// <paramref name="exitCodeIfFinalizeHangs"/>, its work being done and written.
    /// </summary>
    public void Close(int exitCodeIfFinalizeHangs)
    {
        if (_isWorld && !_disposed && !Failed)
        {
            try
            {
                Barrier(_closeComm, "the barrier before MPI_Finalize");
            }
            catch (CommunicatorException e)
            {
                Console.Error.WriteLine($"memo: {e.Message}; exiting without MPI_Finalize"); // Failed is set: no MPI_Finalize below
            }
        }
        lock (MpiLock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _pending.Set();
        _pump.Join(TimeSpan.FromSeconds(5)); // a background thread: never holds the process up
        _pending.Dispose();
        NativeMemory.Free(_requests);
        if (Failed) return;
        if (!_isWorld)
        {
            int c = _comm;
            lock (MpiLock) MpiNative.MPI_Comm_free(&c);
            return;
        }
        lock (MpiLock)
        {
            int finalized;
            MpiNative.MPI_Finalized(&finalized);
            if (finalized != 0) return;
            using (ExitWatchdog.Arm(TimeSpan.FromSeconds(FinalizeLimitSeconds), exitCodeIfFinalizeHangs,
                $"memo: rank {Rank} of {Size}: MPI_Finalize did not return within {FinalizeLimitSeconds:0} s although every rank had finished; exiting without it (exit code {exitCodeIfFinalizeHangs})"))
            {
                MpiNative.MPI_Finalize();
            }
        }
    }
}
