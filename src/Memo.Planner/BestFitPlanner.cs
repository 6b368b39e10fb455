// Greedy placement: take the buffers in some order and put each one into a gap between the
// already-placed buffers whose lifespans intersect it. Two gap rules: "lowest" (the lowest gap
// that fits) and "tightest" (the smallest gap that fits, else on top). Several orders x both
// rules are tried and the lowest peak kept. Every pass yields a valid plan by construction.
//
//   address ^      placed neighbours of b (by offset):   [0,4) [6,9) [12,20)
//           |      gaps:  [4,6) (2 bytes)  [9,12) (3 bytes)  [20, inf)
//           |      b of size 3: lowest -> 9, tightest -> 9; b of size 2: lowest -> 4, tightest -> 4
//
// Cost per pass: O(sum over buffers of d log d), d = number of intersecting buffers.
namespace Memo.Planner;

/// <summary>Fast greedy planner; always returns a valid plan.</summary>
public sealed class BestFitPlanner : IPlanner
{
    public string Name => "bestfit";

    /// <summary>The buffer orders tried, each with both gap rules.</summary>
    public enum Order
    {
        /// <summary>Size descending, then lifespan length descending, then lower.</summary>
        SizeThenLength,

        /// <summary>Lifespan length descending, then size descending.</summary>
        LengthThenSize,

        /// <summary>Area (size x length) descending.</summary>
        Area,

        /// <summary>Largest live load of any section the buffer spans descending, then size descending.</summary>
        Contention,

        /// <summary>Lower ascending, then size descending (the order an online allocator sees).</summary>
        Arrival,
    }

    public PlanResult Solve(Problem problem, PlannerOptions options)
    {
        var prepared = new PreparedProblem(problem, options);
        var (offsets, log) = Run(prepared);
        return prepared.Finish(offsets, Name, 0, log);
    }

    /// <summary>
    /// Above this many overlapping pairs the pairwise lists (8 bytes per pair and direction) and the passes over them
    /// cost more than large inputs allow: such problems are placed by <see cref="SweepFit"/> in O(n log n) instead.
    /// </summary>
    public const long PairBudget = 20_000_000;

    /// <summary>The first log line of a plan placed by <see cref="SweepFit"/>.</summary>
    public const string SweepLog = "bestfit (sweep):";

    internal static (long[] Offsets, List<string> Log) Run(PreparedProblem prepared)
    {
        Problem problem = prepared.Problem;
        long pairs = SweepFit.OverlapPairs(problem);
        if (pairs > PairBudget)
        {
            var (swept, cutAt) = SweepFit.Place(problem, prepared.Alignments, () => prepared.TimeIsUp);
            long peak = Solution.PeakOf(problem, swept);
            prepared.Record(peak);
            string cut = cutAt < problem.Count ? $"; the time limit ran out after {cutAt:N0} of {problem.Count:N0} buffers, the rest were stacked on top" : "";
            return (swept, [$"{SweepLog} {pairs:N0} overlapping pairs (over {PairBudget:N0}): sweep best-fit in time order, peak {peak} in {prepared.Clock.Elapsed.TotalSeconds:F3} s{cut}"]);
        }
        var overlaps = Sweep.Overlaps(problem);
        var sweep = Sweep.Run(problem);
        long[]? best = null;
        long bestPeak = long.MaxValue;
        string bestName = "";
        var placer = new Placer(problem, prepared.Alignments, overlaps);
        foreach (Order order in Enum.GetValues<Order>())
        {
            int[] perm = Permutation(problem, sweep, order);
            foreach (bool tightest in (ReadOnlySpan<bool>)[false, true])
            {
                long[] offsets = placer.Place(perm, tightest);
                long peak = Solution.PeakOf(problem, offsets);
                if (peak < bestPeak)
                {
                    best = offsets;
                    bestPeak = peak;
                    bestName = $"{order}/{(tightest ? "tightest" : "lowest")}";
                }
                if (bestPeak <= prepared.LowerBound || OutOfPassTime(prepared)) break;
            }
            if (bestPeak <= prepared.LowerBound || OutOfPassTime(prepared)) break;
        }
        best ??= [];
        prepared.Record(Solution.PeakOf(problem, best));
        var log = new List<string> { $"bestfit: peak {Solution.PeakOf(problem, best)} ({bestName}) in {prepared.Clock.Elapsed.TotalSeconds:F3} s" };
        return (best, log);
    }

    /// <summary>
    /// After the first pass, further passes stop once a fifth of the time limit is spent (they
    /// only matter on large, dense problems, where the other engines need the time more).
    /// </summary>
    private static bool OutOfPassTime(PreparedProblem prepared) =>
        prepared.Clock.Elapsed.TotalSeconds > 0.2 * prepared.Options.TimeLimit.TotalSeconds;

    /// <summary>Places buffers in <paramref name="order"/> with one gap rule; exposed for the other engines.</summary>
    internal static long[] Place(Problem problem, long[] alignments, int[] order, bool tightest)
        => new Placer(problem, alignments, Sweep.Overlaps(problem)).Place(order, tightest);

    internal static int[] Permutation(Problem problem, SweepResult sweep, Order order)
    {
        int n = problem.Count;
        var buffers = problem.Buffers;
        var perm = new int[n];
        for (int i = 0; i < n; i++) perm[i] = i;
        long[]? contention = null;
        if (order == Order.Contention)
        {
            contention = new long[n];
            for (int i = 0; i < n; i++)
                for (int s = sweep.BufferFirstSection[i]; s < sweep.BufferEndSection[i]; s++)
                    contention[i] = Math.Max(contention[i], sweep.SectionLoad[s]);
        }
        Comparison<int> cmp = order switch
        {
            Order.SizeThenLength => (a, b) => Chain(buffers[b].Size.CompareTo(buffers[a].Size),
                buffers[b].Lifespan.Length.CompareTo(buffers[a].Lifespan.Length),
                buffers[a].Lifespan.Lower.CompareTo(buffers[b].Lifespan.Lower), a.CompareTo(b)),
            Order.LengthThenSize => (a, b) => Chain(buffers[b].Lifespan.Length.CompareTo(buffers[a].Lifespan.Length),
                buffers[b].Size.CompareTo(buffers[a].Size), a.CompareTo(b)),
            Order.Area => (a, b) => Chain(AreaOf(buffers[b]).CompareTo(AreaOf(buffers[a])),
                buffers[b].Size.CompareTo(buffers[a].Size), a.CompareTo(b)),
            Order.Contention => (a, b) => Chain(contention![b].CompareTo(contention[a]),
                buffers[b].Size.CompareTo(buffers[a].Size), buffers[b].Lifespan.Length.CompareTo(buffers[a].Lifespan.Length), a.CompareTo(b)),
            Order.Arrival => (a, b) => Chain(buffers[a].Lifespan.Lower.CompareTo(buffers[b].Lifespan.Lower),
                buffers[b].Size.CompareTo(buffers[a].Size), a.CompareTo(b)),
            _ => throw new ArgumentOutOfRangeException(nameof(order)),
        };
        Array.Sort(perm, cmp);
        return perm;
    }

    // Area as a double: only used for ordering, and cannot overflow.
    private static double AreaOf(Buffer b) => (double)b.Size * b.Lifespan.Length;

    private static int Chain(int c1, int c2, int c3, int c4 = 0) => c1 != 0 ? c1 : c2 != 0 ? c2 : c3 != 0 ? c3 : c4;

    /// <summary>Reusable scratch for placement passes.</summary>
    private sealed class Placer(Problem problem, long[] alignments, (int[] Start, int[] Index) overlaps)
    {
        private readonly long[] _lo = new long[MaxDegree(overlaps.Start)];
        private readonly long[] _hi = new long[MaxDegree(overlaps.Start)];

        private static int MaxDegree(int[] start)
        {
            int max = 0;
            for (int i = 0; i + 1 < start.Length; i++) max = Math.Max(max, start[i + 1] - start[i]);
            return max;
        }

        public long[] Place(int[] order, bool tightest)
        {
            int n = problem.Count;
            var offsets = new long[n];
            var placed = new bool[n];
            foreach (int i in order)
            {
                long size = problem.Buffers[i].Size;
                long align = alignments[i];
                int count = 0;
                if (size > 0)
                {
                    for (int k = overlaps.Start[i]; k < overlaps.Start[i + 1]; k++)
                    {
                        int j = overlaps.Index[k];
                        if (!placed[j] || problem.Buffers[j].Size == 0) continue;
                        _lo[count] = offsets[j];
                        _hi[count] = checked(offsets[j] + problem.Buffers[j].Size);
                        count++;
                    }
                }
                // Primitive keys: the runtime's sort without a comparison delegate.
                Array.Sort(_lo, _hi, 0, count);
                offsets[i] = FindGap(_lo.AsSpan(0, count), _hi.AsSpan(0, count), size, align, tightest);
                placed[i] = true;
            }
            return offsets;
        }

        private static long FindGap(ReadOnlySpan<long> los, ReadOnlySpan<long> his, long size, long align, bool tightest)
        {
            long candidate = 0;
            long bestOffset = -1, bestSlack = long.MaxValue;
            for (int k = 0; k < los.Length; k++)
            {
                long lo = los[k], hi = his[k];
                if (candidate + size <= lo)
                {
                    if (!tightest) return candidate;
                    long slack = lo - candidate - size;
                    if (slack < bestSlack)
                    {
                        bestSlack = slack;
                        bestOffset = candidate;
                    }
                }
                if (hi > candidate) candidate = Checked.AlignUp(hi, align);
            }
            return bestOffset >= 0 ? bestOffset : candidate;
        }
    }
}
