namespace Memo.Distributed;

/// <summary>
/// The zig-zag split of a sequence over the C ranks of a context-parallel group: the sequence is cut
/// into 2C equal chunks and rank r holds chunks r and 2C-1-r, so every rank has the same causal
/// attention work (an early chunk sees few keys, its partner many).
/// </summary>
/// <remarks>
/// A rank's local rows, per sequence: [chunk r | chunk 2C-1-r], each <see cref="Chunk"/> tokens.
/// <code>
///   C = 2, T = 8:  chunks 0 1 2 3 (2 tokens each)   rank 0: tokens 0 1 6 7   rank 1: tokens 2 3 4 5
/// </code>
/// </remarks>
public readonly record struct ZigZag(long SeqLen, int Ranks)
{
    /// <summary>Checks that <paramref name="seqLen"/> splits into 2C whole chunks; one-line error otherwise.</summary>
    public static ZigZag Create(long seqLen, int ranks)
    {
        if (ranks < 1) throw new MemoException($"context-parallel size must be at least 1 (got {ranks})");
        if (seqLen < 2L * ranks || seqLen % (2L * ranks) != 0)
            throw new MemoException($"sequence length {seqLen} does not split into {2 * ranks} equal chunks for {ranks} context-parallel ranks; use a sequence length that is a multiple of {2 * ranks}");
        return new ZigZag(seqLen, ranks);
    }

    /// <summary>Tokens per chunk, T / 2C.</summary>
    public long Chunk => SeqLen / (2L * Ranks);

    /// <summary>Tokens per rank and sequence, T / C.</summary>
    public long LocalLen => 2 * Chunk;

    /// <summary>Global position of local row <paramref name="t"/> (0 &lt;= t &lt; T/C) of <paramref name="rank"/>.</summary>
    public long GlobalPosition(int rank, long t) =>
        t < Chunk ? rank * Chunk + t : (2L * Ranks - 1 - rank) * Chunk + (t - Chunk);

    /// <summary>
    /// Local rows [<paramref name="r0"/>, r0 + <paramref name="rows"/>) of <paramref name="rank"/> (over all sequences of
    /// the batch, T/C rows each) cut into runs of consecutive global positions: (first local row, rows, first position).
    /// Position-dependent kernels (RoPE, learned positions) run once per run.
    /// </summary>
    public IEnumerable<(long Row, long Rows, long Position)> Segments(int rank, long r0, long rows)
    {
        long end = r0 + rows, local = LocalLen, chunk = Chunk;
        long r = r0;
        while (r < end)
        {
            long t = r % local;
            long runEnd = Math.Min(end, r - t + (t < chunk ? chunk : local));
            yield return (r, runEnd - r, GlobalPosition(rank, t));
            r = runEnd;
        }
    }

    /// <summary>The two chunk indices rank r holds, in local order.</summary>
    public (int First, int Second) Chunks(int rank) => (rank, 2 * Ranks - 1 - rank);
}
