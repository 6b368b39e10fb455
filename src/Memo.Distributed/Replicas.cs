namespace Memo.Distributed;

/// <summary>Operations that keep the data-parallel replicas of the parameters identical.</summary>
public static unsafe class Replicas
{
    /// <summary>
    /// Sums <paramref name="count"/> gradient floats in place over all ranks of <paramref name="world"/>
    /// (the data- and context-parallel shares of one optimizer step), before clipping and AdamW.
    /// </summary>
    public static void SumGradients(ICommunicator world, float* grads, long count)
    {
        ArgumentNullException.ThrowIfNull(world);
        if (world.Size > 1) world.AllReduce(grads, grads, count, CommType.Float32, CommOp.Sum);
    }

    /// <summary>Sums a double (a loss sum, a token count) over the ranks.</summary>
    public static double Sum(ICommunicator world, double value)
    {
        ArgumentNullException.ThrowIfNull(world);
        if (world.Size > 1) world.AllReduce(&value, &value, 1, CommType.Float64, CommOp.Sum);
        return value;
    }

    /// <summary>64-bit FNV-1a hash of the bits of <paramref name="count"/> floats, in index order.</summary>
    public static ulong Checksum(float* values, long count)
    {
        ulong h = 14695981039346656037UL;
        var words = (uint*)values;
        for (long i = 0; i < count; i++)
        {
            h ^= words[i];
            h *= 1099511628211UL;
        }
        return h;
    }

    /// <summary>
    /// Gathers every rank's parameter checksum and throws a one-line <see cref="MemoException"/> naming the
    /// first rank whose parameters differ from rank 0's. A collective.
    /// </summary>
    public static void Check(ICommunicator world, float* parameters, long count, long step)
    {
        ArgumentNullException.ThrowIfNull(world);
        if (world.Size == 1) return;
        long mine = (long)Checksum(parameters, count);
        var all = new long[world.Size];
        fixed (long* p = all) world.AllGather(&mine, p, 1, CommType.Int64);
        for (int r = 1; r < all.Length; r++)
        {
            if (all[r] != all[0])
                throw new MemoException($"parameters differ between ranks at step {step}: rank {r} checksum {(ulong)all[r]:x16}, rank 0 {(ulong)all[0]:x16}; the replicas diverged", 4);
        }
    }

    /// <summary>
    /// This rank's rows of <paramref name="global"/> (B sequences of T values): for each sequence its two
    /// zig-zag chunks, in local order, into <paramref name="local"/> (B * T/C values).
    /// </summary>
    public static void Slice<T>(ReadOnlySpan<T> global, ZigZag split, int rank, Span<T> local)
    {
        long seqLen = split.SeqLen, c = split.Chunk;
        if (global.Length % seqLen != 0) throw new ArgumentException($"{global.Length} values are not whole sequences of {seqLen}", nameof(global));
        long batch = global.Length / seqLen;
        if (local.Length != batch * split.LocalLen) throw new ArgumentException($"local span holds {local.Length} values, expected {batch * split.LocalLen}", nameof(local));
        var (first, second) = split.Chunks(rank);
        for (long b = 0; b < batch; b++)
        {
            global.Slice((int)(b * seqLen + first * c), (int)c).CopyTo(local.Slice((int)(b * split.LocalLen), (int)c));
            global.Slice((int)(b * seqLen + second * c), (int)c).CopyTo(local.Slice((int)(b * split.LocalLen + c), (int)c));
        }
    }
}
