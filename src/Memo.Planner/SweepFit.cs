// Best-fit in time order, for problems too large for the pairwise engines: the buffers are allocated and freed in
// the order of an iteration (frees before allocations at equal times, larger buffers first), each into a free
// block of about its size (segregated fit: its own size class, else the next non-empty one); freed blocks coalesce
// with their free neighbours. No pairwise overlap lists are built: O(n log n) time and O(n) memory.
//
//   address ^   free blocks in 64 size classes (segregated fit); by start and by end in hash maps (coalescing)
//           |   [0,4) used   [4,6) free   [6,9) used   [9, top) free ...   [top, inf) never used
//
// Every plan it returns is valid by construction: at each time the live buffers hold disjoint address ranges.
namespace Memo.Planner;

internal static class SweepFit
{
    /// <summary>
    /// Overlapping pairs of the problem (pairs of buffers live at a common time), counted by a sweep in O(n log n)
    /// without listing them: the size of <see cref="Sweep.Overlaps"/>' lists, halved.
    /// </summary>
    public static long OverlapPairs(Problem problem)
    {
        var (times, deltas) = Events(problem);
        long live = 0, pairs = 0;
        for (int g = 0; g < times.Length;)
        {
            int end = g;
            while (end < times.Length && times[end] == times[g]) end++;
            // Half-open lifespans: the buffers ending at this time are gone before those starting here arrive.
            for (int k = g; k < end; k++) if (deltas[k] < 0) live--;
            for (int k = g; k < end; k++)
            {
                if (deltas[k] > 0)
                {
                    pairs += live;
                    live++;
                }
            }
            g = end;
        }
        return pairs;
    }

    /// <summary>All lifespan end points sorted by time (primitive keys); delta +1 + i at a lower, -(1 + i) at an upper.</summary>
    internal static (long[] Times, long[] Deltas) Events(Problem problem)
    {
        int n = problem.Count;
        var times = new long[2 * n];
        var deltas = new long[2 * n];
        for (int i = 0; i < n; i++)
        {
            times[2 * i] = problem.Buffers[i].Lifespan.Lower;
            deltas[2 * i] = 1 + i;
            times[2 * i + 1] = problem.Buffers[i].Lifespan.Upper;
            deltas[2 * i + 1] = -(1 + i);
        }
        Array.Sort(times, deltas);
        return (times, deltas);
    }

    /// <summary>
    /// Places every buffer. Once <paramref name="timeIsUp"/> says so (asked every 4096 events), the remaining
    /// buffers are stacked on top of the arena without reuse, which is O(1) each and still valid.
    /// </summary>
    /// <returns>The offsets and how many buffers were placed by best-fit before the time ran out (n when it did not).</returns>
    public static (long[] Offsets, int BestFit) Place(Problem problem, long[] alignments, Func<bool> timeIsUp)
    {
        int n = problem.Count;
        var buffers = problem.Buffers;
        var (times, deltas) = Events(problem);
        var offsets = new long[n];
        var free = new FreeBlocks();
        var arrivals = new List<int>();
        int placed = 0, cutAt = n;
        bool stack = false;
        for (int g = 0, next = 4096; g < times.Length;)
        {
            if (!stack && g >= next)
            {
                next = g + 4096;
                if (timeIsUp())
                {
                    stack = true;
                    cutAt = placed;
                }
            }
            int end = g;
            while (end < times.Length && times[end] == times[g]) end++;
            // Frees first, then the arrivals of this time, largest first (then by index: deterministic).
            arrivals.Clear();
            for (int k = g; k < end; k++)
            {
                if (deltas[k] < 0)
                {
                    int i = (int)(-deltas[k] - 1);
                    if (buffers[i].Size > 0 && !stack) free.Release(offsets[i], buffers[i].Size);
                }
                else
                {
                    arrivals.Add((int)(deltas[k] - 1));
                }
            }
            if (arrivals.Count > 1) arrivals.Sort((a, b) => buffers[a].Size != buffers[b].Size ? buffers[b].Size.CompareTo(buffers[a].Size) : a.CompareTo(b));
            foreach (int i in arrivals)
            {
                if (buffers[i].Size > 0) offsets[i] = stack ? free.TakeTop(buffers[i].Size, alignments[i]) : free.Take(buffers[i].Size, alignments[i]);
                placed++;
            }
            g = end;
        }
        return (offsets, cutAt);
    }

    /// <summary>
    /// The free address ranges below the top of the arena, coalesced, in 64 size classes (class k holds blocks of
    /// [2^k, 2^(k+1)) bytes) as in a two-level segregated-fit allocator: a request looks at a few blocks of its own
    /// class for one that fits, else takes any block of the lowest larger non-empty class (found by a bit scan),
    /// which always fits. Every operation is O(1): no ordered set (whose range views are not).
    /// </summary>
    private sealed class FreeBlocks
    {
        private const int Probe = 16;
        private readonly List<long>[] _bins = Enumerable.Range(0, 64).Select(_ => new List<long>()).ToArray();
        private readonly Dictionary<long, int> _slot = [];
        private readonly Dictionary<long, long> _endOfStart = [];
        private readonly Dictionary<long, long> _startOfEnd = [];
        private ulong _nonEmpty;
        private long _top;

        private static int Class(long size) => 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)size);

        public long Take(long size, long align)
        {
            // Room for size bytes at any alignment of the block's start.
            long need = checked(size + align - 1);
            int c = Class(need);
            long start = -1;
            var own = _bins[c];
            for (int k = own.Count - 1, seen = 0; k >= 0 && seen < Probe; k--, seen++)
            {
                if (_endOfStart[own[k]] - own[k] >= need)
                {
                    start = own[k];
                    break;
                }
            }
            if (start < 0 && c < 63)
            {
                ulong larger = _nonEmpty & ~((2UL << c) - 1);
                if (larger != 0) start = _bins[System.Numerics.BitOperations.TrailingZeroCount(larger)][^1];
            }
            if (start >= 0)
            {
                long end = _endOfStart[start];
                Remove(start, end);
                long at = Checked.AlignUp(start, align);
                if (at > start) Add(start, at);
                if (at + size < end) Add(at + size, end);
                return at;
            }
            return OnTop(size, align);
        }

        /// <summary>Allocates above everything ever allocated (never reused; what is below stays as it is).</summary>
        public long TakeTop(long size, long align)
        {
            long offset = Checked.AlignUp(_top, align);
            _top = checked(offset + size);
            return offset;
        }

        private long OnTop(long size, long align)
        {
            // Nothing fits below the top: allocate on top (a free block ending at the top grows into it).
            long from = _top;
            if (_startOfEnd.TryGetValue(_top, out long s))
            {
                Remove(s, _top);
                from = s;
            }
            long offset = Checked.AlignUp(from, align);
            if (offset > from) Add(from, offset);
            _top = checked(offset + size);
            return offset;
        }

        public void Release(long offset, long size)
        {
            long start = offset, end = offset + size;
            if (_startOfEnd.TryGetValue(start, out long before))
            {
                Remove(before, start);
                start = before;
            }
            if (_endOfStart.TryGetValue(end, out long after))
            {
                Remove(end, after);
                end = after;
            }
            if (end == _top) _top = start; // the block at the top returns to the never-used space
            else Add(start, end);
        }

        private void Add(long start, long end)
        {
            int c = Class(end - start);
            _slot[start] = _bins[c].Count;
            _bins[c].Add(start);
            _nonEmpty |= 1UL << c;
            _endOfStart[start] = end;
            _startOfEnd[end] = start;
        }

        private void Remove(long start, long end)
        {
            int c = Class(end - start);
            var bin = _bins[c];
            int pos = _slot[start];
            long last = bin[^1];
            bin[pos] = last;
            _slot[last] = pos;
            bin.RemoveAt(bin.Count - 1);
            _slot.Remove(start);
            if (bin.Count == 0) _nonEmpty &= ~(1UL << c);
            _endOfStart.Remove(start);
            _startOfEnd.Remove(end);
        }
    }
}
