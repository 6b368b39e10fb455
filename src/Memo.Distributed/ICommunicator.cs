namespace Memo.Distributed;

/// <summary>Element type of a communicated buffer.</summary>
public enum CommType
{
    Float32,
    Float64,
    Int64,
}

/// <summary>Reduction of <see cref="ICommunicator.AllReduce"/> and <see cref="ICommunicator.ReduceScatter"/>.</summary>
public enum CommOp
{
    Sum,
    Max,
    Min,
}

/// <summary>
/// The stream a communication is ordered against. On the CPU ranks every operation is ordered by the
/// calling thread and <see cref="Host"/> is the only stream; a GPU implementation (NCCL) enqueues on the
/// backend's stream that <see cref="Handle"/> names, after the kernels that produced the buffer.
/// </summary>
public readonly record struct CommStream(nint Handle)
{
    public static CommStream Host => default;
}

/// <summary>A pending nonblocking send or receive; complete it with <see cref="ICommunicator.Wait(CommRequest)"/>.</summary>
public readonly record struct CommRequest(int Slot, int Parts)
{
    public bool IsNone => Parts == 0;
}

/// <summary>
/// A group of ranks that exchange device buffers: point-to-point nonblocking send and receive with
/// request handles, and the collectives a data- or context-parallel step needs. Shaped after NCCL
/// (buffers are device memory of the rank's backend, ordered against a <see cref="CommStream"/>,
/// counts are elements) so a GPU implementation fits behind the same calls; MPI implements it on CPU
/// ranks, <see cref="LocalGroup"/> within one process.
/// </summary>
/// <remarks>
/// Every wait is bounded by <see cref="Timeout"/>: a peer that died or hangs makes the call throw
/// <see cref="CommunicatorException"/> naming the operation and the peer, never block forever.
/// Counts are 64-bit; implementations split messages that exceed their native count type.
/// Collectives are blocking and must be called by every rank of the group in the same order.
/// </remarks>
public unsafe interface ICommunicator : IDisposable
{
    int Rank { get; }

    int Size { get; }

    /// <summary>The longest any single wait may take before the peer is declared failed.</summary>
    TimeSpan Timeout { get; }

    /// <summary>A sub-group of the ranks that pass the same <paramref name="color"/>, ordered by <paramref name="key"/> (a collective).</summary>
    ICommunicator Split(int color, int key);

    /// <summary>Starts sending <paramref name="count"/> elements to <paramref name="peer"/>; the buffer must not change until the request completes.</summary>
    CommRequest Send(void* buffer, long count, CommType type, int peer, int tag, CommStream stream = default);

    /// <summary>Starts receiving <paramref name="count"/> elements from <paramref name="peer"/>; the buffer is valid once the request completes.</summary>
    CommRequest Receive(void* buffer, long count, CommType type, int peer, int tag, CommStream stream = default);

    /// <summary>True when the request has completed (it is then released); never blocks.</summary>
    bool Test(CommRequest request);

    /// <summary>Blocks until the request completes, at most <see cref="Timeout"/>.</summary>
    void Wait(CommRequest request);

    /// <summary>
    /// Waits like <see cref="Wait"/> and returns the <see cref="System.Diagnostics.Stopwatch"/> timestamp at
    /// which the request was first seen complete (by a progress thread, possibly long before this call).
    /// </summary>
    long Complete(CommRequest request);

    /// <summary>Element-wise reduction over all ranks; <paramref name="send"/> may equal <paramref name="receive"/> (in place).</summary>
    void AllReduce(void* send, void* receive, long count, CommType type, CommOp op, CommStream stream = default);

    /// <summary>Rank r's <paramref name="countPerRank"/> elements land at receive + r*countPerRank on every rank.</summary>
    void AllGather(void* send, void* receive, long countPerRank, CommType type, CommStream stream = default);

    /// <summary>Reduces Size*countPerRank elements over all ranks; rank r keeps block r.</summary>
    void ReduceScatter(void* send, void* receive, long countPerRank, CommType type, CommOp op, CommStream stream = default);

    void Barrier();

    /// <summary>What this rank has sent since it was created (counted by the communicator, per call).</summary>
    CommCounters Counters { get; }
}

/// <summary>Bytes and calls of one rank's communication: point-to-point sends, and this rank's input to collectives.</summary>
public readonly record struct CommCounters(long SendBytes, long Sends, long CollectiveBytes, long Collectives);

/// <summary>A communication failed or a peer did not answer in time. The message is one line naming the operation and the peer.</summary>
public sealed class CommunicatorException : Exception
{
    /// <summary>Process exit code the CLI uses for a failed peer (distinct from 2, bad input).</summary>
    public const int PeerFailedExitCode = 3;

    public CommunicatorException(string message) : base(message) { }

    public CommunicatorException(string message, Exception inner) : base(message, inner) { }

    public CommunicatorException() : this("communication failed") { }
}

/// <summary>Element sizes and argument checks shared by the implementations.</summary>
public static class Comm
{
    public static int ElementSize(CommType type) => type switch
    {
        CommType.Float32 => 4,
        CommType.Float64 => 8,
        CommType.Int64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    internal static void CheckCount(long count, string what)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), $"{what}: element count must not be negative (got {count})");
    }
}
