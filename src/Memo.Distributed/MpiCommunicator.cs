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
/// Requests live in one native table allocated at construction (no allocation per operation); a
/// message longer than <see cref="MaxPart"/> elements is split into several requests.
/// Calls must come from one thread at a time (MPI_THREAD_SERIALIZED).
/// </remarks>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    /// <summary>Largest element count of one MPI call (MPI counts are 32-bit).</summary>
    internal const int MaxPart = 1 << 30;

    private const int TableSize = 256;

    private readonly int _comm;
    private readonly bool _isWorld;
    private readonly int* _requests;
    private readonly bool[] _used = new bool[TableSize];
    private readonly string _name;
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
        if (flag == 0)
        {
            int provided;
            int rc = MpiNative.MPI_Init_thread(null, null, MpiNative.ThreadSerialized, &provided);
            if (rc != MpiNative.Success) throw new CommunicatorException($"MPI_Init_thread failed: {MpiNative.ErrorString(rc)}");
        }
        int ec = MpiNative.MPI_Comm_set_errhandler(MpiNative.CommWorld, MpiNative.ErrorsReturn);
        if (ec != MpiNative.Success) throw new CommunicatorException($"MPI_Comm_set_errhandler failed: {MpiNative.ErrorString(ec)}");
        return new MpiCommunicator(MpiNative.CommWorld, true, timeout, "world");
    }

    public ICommunicator Split(int color, int key)
    {
        int newComm;
        Check(MpiNative.MPI_Comm_split(_comm, color, key, &newComm), "MPI_Comm_split");
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
        int slot = Reserve(parts);
        if (send)
        {
            _sendBytes += count * Comm.ElementSize(type);
            _sends++;
        }
        int dt = Datatype(type);
        long elem = Comm.ElementSize(type);
        for (int p = 0; p < parts; p++)
        {
            long first = (long)p * MaxPart;
            int n = (int)Math.Min(MaxPart, count - first);
            byte* b = (byte*)buffer + first * elem;
            int rc = send
                ? MpiNative.MPI_Isend(b, n, dt, peer, tag, _comm, &_requests[slot + p])
                : MpiNative.MPI_Irecv(b, n, dt, peer, tag, _comm, &_requests[slot + p]);
            Check(rc, send ? $"send to rank {peer}" : $"receive from rank {peer}");
        }
        return new CommRequest(slot, parts);
    }

    public bool Test(CommRequest request)
    {
        if (request.IsNone) return true;
        int flag;
        Check(MpiNative.MPI_Testall(request.Parts, &_requests[request.Slot], &flag, MpiNative.StatusesIgnore), "a send or receive");
        if (flag == 0) return false;
        Release(request);
        return true;
    }

    public void Wait(CommRequest request) => WaitFor(request, "a send or receive");

    public void AllReduce(void* send, void* receive, long count, CommType type, CommOp op, CommStream stream = default)
    {
        Comm.CheckCount(count, "all-reduce");
        Count(count, type);
        if (count == 0) return;
        int parts = (int)((count + MaxPart - 1) / MaxPart);
        int slot = Reserve(parts);
        long elem = Comm.ElementSize(type);
        for (int p = 0; p < parts; p++)
        {
            long first = (long)p * MaxPart;
            int n = (int)Math.Min(MaxPart, count - first);
            void* s = send == receive ? MpiNative.InPlace : (byte*)send + first * elem;
            Check(MpiNative.MPI_Iallreduce(s, (byte*)receive + first * elem, n, Datatype(type), Op(op), _comm, &_requests[slot + p]), "all-reduce");
        }
        WaitFor(new CommRequest(slot, parts), "all-reduce");
    }

    public void AllGather(void* send, void* receive, long countPerRank, CommType type, CommStream stream = default)
    {
        Comm.CheckCount(countPerRank, "all-gather");
        Count(countPerRank, type);
        if (countPerRank > MaxPart) throw new MemoException($"all-gather of {countPerRank} elements per rank exceeds the {MaxPart} an MPI call takes");
        if (countPerRank == 0) return;
        int slot = Reserve(1);
        int dt = Datatype(type);
        void* s = send == (byte*)receive + Rank * countPerRank * Comm.ElementSize(type) ? MpiNative.InPlace : send;
        Check(MpiNative.MPI_Iallgather(s, (int)countPerRank, dt, receive, (int)countPerRank, dt, _comm, &_requests[slot]), "all-gather");
        WaitFor(new CommRequest(slot, 1), "all-gather");
    }

    public void ReduceScatter(void* send, void* receive, long countPerRank, CommType type, CommOp op, CommStream stream = default)
    {
        Comm.CheckCount(countPerRank, "reduce-scatter");
        Count(countPerRank * Size, type);
        if (countPerRank > MaxPart) throw new MemoException($"reduce-scatter of {countPerRank} elements per rank exceeds the {MaxPart} an MPI call takes");
        if (countPerRank == 0) return;
        int slot = Reserve(1);
        Check(MpiNative.MPI_Ireduce_scatter_block(send, receive, (int)countPerRank, Datatype(type), Op(op), _comm, &_requests[slot]), "reduce-scatter");
        WaitFor(new CommRequest(slot, 1), "reduce-scatter");
    }

    public void Barrier()
    {
        int slot = Reserve(1);
        Check(MpiNative.MPI_Ibarrier(_comm, &_requests[slot]), "barrier");
        WaitFor(new CommRequest(slot, 1), "barrier");
    }

    private void Count(long count, CommType type)
    {
        _collectiveBytes += count * Comm.ElementSize(type);
        _collectives++;
    }

    /// <summary>
    /// Polls until the request completes or the deadline passes: spins with yields for the first
    /// millisecond (ring steps are short), then sleeps 1 ms between polls so a waiting rank leaves the
    /// core to the ranks that compute.
    /// </summary>
    private void WaitFor(CommRequest request, string what)
    {
        long start = Stopwatch.GetTimestamp();
        long spinUntil = start + Stopwatch.Frequency / 1000;
        long deadline = start + (long)(Timeout.TotalSeconds * Stopwatch.Frequency);
        while (!Test(request))
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

    private void Release(CommRequest request)
    {
        for (int j = 0; j < request.Parts; j++)
        {
            _used[request.Slot + j] = false;
            _requests[request.Slot + j] = MpiNative.RequestNull;
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

    /// <summary>Frees a sub-group; the world communicator finalizes MPI unless a failure was seen (MPI_Finalize would wait for the dead peer).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        NativeMemory.Free(_requests);
        if (Failed) return;
        if (_isWorld)
        {
            int finalized;
            MpiNative.MPI_Finalized(&finalized);
            if (finalized == 0) MpiNative.MPI_Finalize();
        }
        else
        {
            int c = _comm;
            MpiNative.MPI_Comm_free(&c);
        }
    }
}
