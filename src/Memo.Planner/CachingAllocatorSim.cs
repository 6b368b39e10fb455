// A replay of a buffer trace through the rules of PyTorch's CUDA caching allocator (the native
// allocator with default settings: no max_split_size, no expandable segments, no garbage
// collection threshold, one stream), to see what a framework without a plan would reserve.
//
// Rules (PyTorch c10/cuda/CUDACachingAllocator.cpp, default configuration):
//   * every request is rounded up to a multiple of 512 bytes (minimum 512);
//   * rounded sizes <= 1 MiB go to the small pool, larger ones to the large pool;
//   * a request takes the smallest cached free block of its pool that fits (ties: lowest address);
//   * if none fits, a new segment is reserved: 2 MiB for small requests, 20 MiB for large requests
//     below 10 MiB, and the request rounded up to a multiple of 2 MiB from 10 MiB on;
//   * the chosen block is split when the rest is >= 512 B (small pool) or > 1 MiB (large pool);
//     otherwise the whole block is handed out (and counted as allocated);
//   * a freed block merges with free neighbours of the same segment only (never across segments);
//   * segments are never released (no cache flush: there is no capacity limit here).
// Requests are replayed in time order: an allocation at lower, a free at upper; at equal times
// frees go first, and events of the same kind keep trace order.
//
// Segments are laid end to end in a virtual address space in creation order, so the simulated
// placement is itself a plan (addresses never overlap for buffers live at the same time) whose
// peak is the reserved total.
namespace Memo.Planner;

/// <summary>What the simulated caching allocator reserved and handed out.</summary>
public sealed record AllocatorSimResult
{
    /// <summary>Peak of the sum of segment sizes (the final sum: segments are never released).</summary>
    public required long ReservedPeak { get; init; }

    /// <summary>Peak of the sum of allocated block sizes (rounded and unsplit remainders included), as torch.cuda.max_memory_allocated.</summary>
    public required long AllocatedPeak { get; init; }

    /// <summary>Peak of the sum of requested (unrounded) sizes: the max-load lower bound of the trace.</summary>
    public required long RequestedPeak { get; init; }

    /// <summary>Bytes reserved in small-pool (2 MiB) segments.</summary>
    public required long SmallPoolReserved { get; init; }

    /// <summary>Bytes reserved in large-pool segments.</summary>
    public required long LargePoolReserved { get; init; }

    /// <summary>Number of segments reserved.</summary>
    public required int Segments { get; init; }

    /// <summary>Virtual address of each buffer (segments laid end to end); 0 for zero-size buffers.</summary>
    public required long[] Addresses { get; init; }
}

/// <summary>Replays a trace through PyTorch's caching-allocator rules (see the file header).</summary>
public static class CachingAllocatorSim
{
    public const long MinBlockSize = 512;
    public const long SmallSize = 1L << 20;
    public const long SmallBuffer = 2L << 20;
    public const long LargeBuffer = 20L << 20;
    public const long MinLargeAlloc = 10L << 20;
    public const long RoundLarge = 2L << 20;

    /// <summary>A request's size after rounding: at least 512, a multiple of 512.</summary>
    public static long RoundSize(long size) => size < MinBlockSize ? MinBlockSize : checked(Checked.AlignUp(size, MinBlockSize));

    /// <summary>The size of the segment reserved for a rounded request no cached block can take.</summary>
    public static long SegmentSize(long rounded) =>
        rounded <= SmallSize ? SmallBuffer
        : rounded < MinLargeAlloc ? LargeBuffer
        : Checked.AlignUp(rounded, RoundLarge);

    private static bool ShouldSplit(bool small, long remaining) => small ? remaining >= MinBlockSize : remaining > SmallSize;

    private sealed class Block
    {
        public long Address;
        public long Size;
        public bool Small;
        public bool Allocated;
        public Block? Prev;  // neighbours in the same segment, by address
        public Block? Next;
    }

    private sealed class BlockOrder : IComparer<Block>
    {
        public static readonly BlockOrder Instance = new();

        public int Compare(Block? x, Block? y)
        {
            int c = x!.Size.CompareTo(y!.Size);
            return c != 0 ? c : x.Address.CompareTo(y.Address);
        }
    }

    /// <summary>Replays every buffer of <paramref name="trace"/> as one allocation and one free.</summary>
    public static AllocatorSimResult Run(Problem trace)
    {
        ArgumentNullException.ThrowIfNull(trace);
        trace.CheckWellFormed();
        int n = trace.Count;
        // Events: (time, kind 0 = free / 1 = alloc, trace index).
        var events = new (long Time, int Kind, int Index)[2 * n];
        for (int i = 0; i < n; i++)
        {
            events[2 * i] = (trace.Buffers[i].Lifespan.Lower, 1, i);
            events[2 * i + 1] = (trace.Buffers[i].Lifespan.Upper, 0, i);
        }
        Array.Sort(events);
        var small = new SortedSet<Block>(BlockOrder.Instance);
        var large = new SortedSet<Block>(BlockOrder.Instance);
        var held = new Block?[n];
        var addresses = new long[n];
        long reserved = 0, smallReserved = 0, largeReserved = 0;
        long allocated = 0, allocatedPeak = 0, requested = 0, requestedPeak = 0;
        int segments = 0;
        foreach (var (_, kind, i) in events)
        {
            long request = trace.Buffers[i].Size;
            if (request == 0) continue;
            if (kind == 1)
            {
                long size = RoundSize(request);
                bool isSmall = size <= SmallSize;
                var pool = isSmall ? small : large;
                Block? block = BestFit(pool, size);
                if (block is null)
                {
                    long segment = SegmentSize(size);
                    block = new Block { Address = reserved, Size = segment, Small = isSmall };
                    reserved = checked(reserved + segment);
                    if (isSmall) smallReserved += segment;
                    else largeReserved += segment;
                    segments++;
                }
                else
                {
                    pool.Remove(block);
                }
                long remaining = block.Size - size;
                if (ShouldSplit(isSmall, remaining))
                {
                    var rest = new Block { Address = block.Address + size, Size = remaining, Small = isSmall, Prev = block, Next = block.Next };
                    if (block.Next is not null) block.Next.Prev = rest;
                    block.Next = rest;
                    block.Size = size;
                    pool.Add(rest);
                }
                block.Allocated = true;
                held[i] = block;
                addresses[i] = block.Address;
                allocated = checked(allocated + block.Size);
                allocatedPeak = Math.Max(allocatedPeak, allocated);
                requested = checked(requested + request);
                requestedPeak = Math.Max(requestedPeak, requested);
            }
            else
            {
                Block block = held[i]!;
                held[i] = null;
                allocated -= block.Size;
                requested -= request;
                block.Allocated = false;
                var pool = block.Small ? small : large;
                if (block.Prev is { Allocated: false } prev)
                {
                    pool.Remove(prev);
                    prev.Size += block.Size;
                    prev.Next = block.Next;
                    if (block.Next is not null) block.Next.Prev = prev;
                    block = prev;
                }
                if (block.Next is { Allocated: false } next)
                {
                    pool.Remove(next);
                    block.Size += next.Size;
                    block.Next = next.Next;
                    if (next.Next is not null) next.Next.Prev = block;
                }
                pool.Add(block);
            }
        }
        return new AllocatorSimResult
        {
            ReservedPeak = reserved,
            AllocatedPeak = allocatedPeak,
            RequestedPeak = requestedPeak,
            SmallPoolReserved = smallReserved,
            LargePoolReserved = largeReserved,
            Segments = segments,
            Addresses = addresses,
        };
    }

    /// <summary>The smallest free block with Size >= size (lowest address among equal sizes), or null.</summary>
    private static Block? BestFit(SortedSet<Block> pool, long size)
    {
        if (pool.Count == 0 || pool.Max!.Size < size) return null;
        var probe = new Block { Size = size, Address = long.MinValue };
        foreach (Block b in pool.GetViewBetween(probe, pool.Max)) return b;
        return null;
    }
}
