using System.Runtime.InteropServices;

namespace Memo.Distributed;

/// <summary>
/// Ranks inside one process, one thread each: the single-process communicator (size 1, where every
/// collective is a copy) and an in-process group of several ranks that tests and tools use to run the
/// distributed code paths without an MPI launcher. Results equal the MPI implementation's for the
/// same inputs: reductions sum over ranks in rank order.
/// </summary>
/// <remarks>
/// Point-to-point messages are copied into the group on send (the send completes at once) and
/// matched in order by (source, destination, tag) on receive. Collectives stage every rank's
/// contribution, meet at a barrier bounded by the timeout, then each rank reads what it needs.
/// The staging allocates; this group is for tests and for size 1, not for a multi-rank hot loop.
/// </remarks>
public sealed unsafe class LocalGroup
{
    private readonly object _lock = new();
    private readonly Dictionary<(int Source, int Dest, int Tag), Queue<byte[]>> _mail = [];
    private readonly Barrier _barrier;
    private readonly byte[]?[] _staged;
    private readonly (int Color, int Key)[] _splitArgs;
    private LocalGroup[]? _splitGroups;

    private LocalGroup(int size)
    {
        Size = size;
        _barrier = new Barrier(size);
        _staged = new byte[size][];
        _splitArgs = new (int, int)[size];
    }

    public int Size { get; }

    /// <summary>The communicators of a new group of <paramref name="size"/> ranks; give each to its own thread.</summary>
    public static ICommunicator[] Create(int size, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        if (timeout <= TimeSpan.Zero) throw new MemoException($"communication timeout must be positive (got {timeout.TotalSeconds} s)");
        var g = new LocalGroup(size);
        var comms = new ICommunicator[size];
        for (int r = 0; r < size; r++) comms[r] = new Member(g, r, timeout);
        return comms;
    }

    /// <summary>The communicator of a process that is the only rank.</summary>
    public static ICommunicator Single() => Create(1, TimeSpan.FromMinutes(1))[0];

    private sealed class Member(LocalGroup group, int rank, TimeSpan timeout) : ICommunicator
    {
        private readonly List<(bool Done, nint Buffer, long Bytes, int Peer, int Tag)> _pending = [];
        private CommCounters _counters;

        public CommCounters Counters => _counters;

        public int Rank => rank;

        public int Size => group.Size;

        public TimeSpan Timeout => timeout;

        public ICommunicator Split(int color, int key)
        {
            group._splitArgs[rank] = (color, key);
            Meet("split");
            if (rank == 0)
            {
                var groups = new LocalGroup[group.Size];
                foreach (var c in group._splitArgs.Select(a => a.Color).Distinct())
                {
                    var members = Enumerable.Range(0, group.Size).Where(r => group._splitArgs[r].Color == c).ToArray();
                    var g = new LocalGroup(members.Length);
                    foreach (int r in members) groups[r] = g;
                }
                group._splitGroups = groups;
            }
            Meet("split");
            var mine = group._splitGroups![rank];
            int newRank = Enumerable.Range(0, group.Size)
                .Where(r => group._splitArgs[r].Color == color)
                .OrderBy(r => group._splitArgs[r].Key).ThenBy(r => r)
                .ToList().IndexOf(rank);
            Meet("split");
            return new Member(mine, newRank, timeout);
        }

        public CommRequest Send(void* buffer, long count, CommType type, int peer, int tag, CommStream stream = default)
        {
            CheckPeer(peer);
            long bytes = checked(count * Comm.ElementSize(type));
            _counters = _counters with { SendBytes = _counters.SendBytes + bytes, Sends = _counters.Sends + 1 };
            var copy = new byte[bytes];
            new ReadOnlySpan<byte>(buffer, checked((int)bytes)).CopyTo(copy);
            lock (group._lock)
            {
                if (!group._mail.TryGetValue((rank, peer, tag), out var q)) group._mail[(rank, peer, tag)] = q = new Queue<byte[]>();
                q.Enqueue(copy);
            }
            return Add((true, 0, 0, peer, tag));
        }

        public CommRequest Receive(void* buffer, long count, CommType type, int peer, int tag, CommStream stream = default)
        {
            CheckPeer(peer);
            return Add((false, (nint)buffer, checked(count * Comm.ElementSize(type)), peer, tag));
        }

        private CommRequest Add((bool, nint, long, int, int) entry)
        {
            int slot = _pending.FindIndex(p => p.Done && p.Buffer == -1);
            if (slot < 0)
            {
                _pending.Add(entry);
                slot = _pending.Count - 1;
            }
            else
            {
                _pending[slot] = entry;
            }
            return new CommRequest(slot, 1);
        }

        public bool Test(CommRequest request)
        {
            if (request.IsNone) return true;
            var p = _pending[request.Slot];
            if (!p.Done)
            {
                byte[]? msg = null;
                lock (group._lock)
                {
                    if (group._mail.TryGetValue((p.Peer, rank, p.Tag), out var q) && q.Count > 0) msg = q.Dequeue();
                }
                if (msg is null) return false;
                if (msg.LongLength != p.Bytes)
                    throw new CommunicatorException($"rank {rank}: received {msg.LongLength} bytes from rank {p.Peer} (tag {p.Tag}) where {p.Bytes} were expected");
                msg.CopyTo(new Span<byte>((void*)p.Buffer, msg.Length));
            }
            _pending[request.Slot] = (true, -1, 0, 0, 0); // free slot
            return true;
        }

        public void Wait(CommRequest request)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (!Test(request))
            {
                if (DateTime.UtcNow > deadline)
                    throw new CommunicatorException($"rank {rank} of {Size}: a receive from rank {_pending[request.Slot].Peer} did not complete within {timeout.TotalSeconds:0.#} s; the peer has died or hangs, stopping");
                Thread.Yield();
            }
        }

        /// <summary>Messages here complete when the receiver takes them, so completion is when the wait ends.</summary>
        public long Complete(CommRequest request)
        {
            Wait(request);
            return System.Diagnostics.Stopwatch.GetTimestamp();
        }

        public void AllReduce(void* send, void* receive, long count, CommType type, CommOp op, CommStream stream = default)
        {
            Stage(send, count, type);
            long n = count;
            switch (type)
            {
                case CommType.Float32: Reduce<float>((float*)receive, n, op); break;
                case CommType.Float64: Reduce<double>((double*)receive, n, op); break;
                case CommType.Int64: Reduce<long>((long*)receive, n, op); break;
                default: throw new ArgumentOutOfRangeException(nameof(type));
            }
            Meet("all-reduce");
        }

        private void Reduce<T>(T* dst, long n, CommOp op) where T : unmanaged, System.Numerics.INumber<T>
        {
            for (long i = 0; i < n; i++)
            {
                T acc = Element<T>(0, i);
                for (int r = 1; r < Size; r++)
                {
                    T x = Element<T>(r, i);
                    acc = op switch { CommOp.Sum => acc + x, CommOp.Max => T.Max(acc, x), _ => T.Min(acc, x) };
                }
                dst[i] = acc;
            }
        }

        private T Element<T>(int r, long i) where T : unmanaged => MemoryMarshal.Cast<byte, T>(group._staged[r])[(int)i];

        public void AllGather(void* send, void* receive, long countPerRank, CommType type, CommStream stream = default)
        {
            Stage(send, countPerRank, type);
            int bytes = group._staged[0]!.Length;
            for (int r = 0; r < Size; r++) group._staged[r].CopyTo(new Span<byte>((byte*)receive + (long)r * bytes, bytes));
            Meet("all-gather");
        }

        public void ReduceScatter(void* send, void* receive, long countPerRank, CommType type, CommOp op, CommStream stream = default)
        {
            Stage(send, countPerRank * Size, type);
            long first = rank * countPerRank;
            switch (type)
            {
                case CommType.Float32: ReduceRange<float>((float*)receive, first, countPerRank, op); break;
                case CommType.Float64: ReduceRange<double>((double*)receive, first, countPerRank, op); break;
                case CommType.Int64: ReduceRange<long>((long*)receive, first, countPerRank, op); break;
                default: throw new ArgumentOutOfRangeException(nameof(type));
            }
            Meet("reduce-scatter");
        }

        private void ReduceRange<T>(T* dst, long first, long n, CommOp op) where T : unmanaged, System.Numerics.INumber<T>
        {
            for (long i = 0; i < n; i++)
            {
                T acc = Element<T>(0, first + i);
                for (int r = 1; r < Size; r++)
                {
                    T x = Element<T>(r, first + i);
                    acc = op switch { CommOp.Sum => acc + x, CommOp.Max => T.Max(acc, x), _ => T.Min(acc, x) };
                }
                dst[i] = acc;
            }
        }

        public void Barrier() => Meet("barrier");

        /// <summary>Copies this rank's contribution into the group and waits for every rank's.</summary>
        private void Stage(void* send, long count, CommType type)
        {
            long bytes = checked(count * Comm.ElementSize(type));
            _counters = _counters with { CollectiveBytes = _counters.CollectiveBytes + bytes, Collectives = _counters.Collectives + 1 };
            var copy = new byte[bytes];
            new ReadOnlySpan<byte>(send, checked((int)bytes)).CopyTo(copy);
            group._staged[rank] = copy;
            Meet("collective");
        }

        private void Meet(string what)
        {
            if (!group._barrier.SignalAndWait(timeout))
                throw new CommunicatorException($"rank {rank} of {Size}: {what} did not complete within {timeout.TotalSeconds:0.#} s; a peer rank has died or hangs, stopping");
        }

        private void CheckPeer(int peer)
        {
            if ((uint)peer >= (uint)Size) throw new ArgumentOutOfRangeException(nameof(peer), $"peer rank {peer} is not in a group of {Size}");
        }

        public void Dispose() { }
    }
}
