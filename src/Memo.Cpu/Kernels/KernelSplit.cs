namespace Memo.Cpu.Kernels;

/// <summary>
/// Splits a long index range (rows, columns or elements) into fixed-size chunks and runs them on a
/// <see cref="WorkerPool"/>. The chunk size is chosen from the shape only, never from the thread count,
/// and the kernels keep every output independent of the chunking anyway (row-local math, or
/// column-block reductions that loop over all rows in order), so results are bit-identical for any
/// number of threads.
/// </summary>
internal static unsafe class KernelSplit
{
    /// <summary>Elements of work below which a chunk is not worth a pool hand-off.</summary>
    public const long MinWork = 16 * 1024;

    /// <summary>The most chunks one call makes (keeps the task index an int).</summary>
    private const long MaxChunks = 1 << 20;

    private struct Job
    {
        public delegate*<long, long, void*, void> Body;
        public void* State;
        public long Count;
        public long PerChunk;
    }

    /// <summary>Items per chunk so each chunk does about <see cref="MinWork"/> elements of work.</summary>
    public static long PerChunk(long count, long workPerItem)
    {
        long per = Math.Max(1, MinWork / Math.Max(1, workPerItem));
        long floor = (count + MaxChunks - 1) / MaxChunks;
        return Math.Max(per, floor);
    }

    /// <summary>Columns a column-block reduction keeps in its stack accumulators at a time.</summary>
    public const int ColumnBlock = 64;

    /// <summary>
    /// Columns per chunk for a reduction over all rows: whole <see cref="ColumnBlock"/>s, enough of them
    /// that a chunk does about <see cref="MinWork"/> elements of work. Each column's sum runs over all rows
    /// in order whatever the chunk, so this choice never changes a result.
    /// </summary>
    public static long ColumnsPerChunk(long rows, long cols)
    {
        long blocks = Math.Max(1, MinWork / Math.Max(1, rows * ColumnBlock));
        return Math.Min(blocks * ColumnBlock, Math.Max(cols, 1));
    }

    /// <summary>Runs <paramref name="body"/>(start, end, state) over [0, count) in chunks of <paramref name="perChunk"/>.</summary>
    public static void Run(long count, long perChunk, delegate*<long, long, void*, void> body, void* state, WorkerPool pool)
    {
        if (count <= 0) return;
        perChunk = Math.Max(perChunk, (count + MaxChunks - 1) / MaxChunks);
        long chunks = (count + perChunk - 1) / perChunk;
        if (chunks == 1)
        {
            body(0, count, state);
            return;
        }
        var job = new Job { Body = body, State = state, Count = count, PerChunk = perChunk };
        pool.For((int)chunks, &Trampoline, &job);
    }

    private static void Trampoline(int i, void* p)
    {
        var job = (Job*)p;
        long start = i * job->PerChunk;
        long end = Math.Min(start + job->PerChunk, job->Count);
        job->Body(start, end, job->State);
    }
}
