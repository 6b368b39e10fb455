// Sweep over time: the live load curve, the max-load lower bound, sections and partitions.
//
// The distinct lifespan end points split time into sections; a section's live set is constant.
// Sections where nothing is live are dropped, so every buffer covers a contiguous range of the
// remaining sections. A "cut" is the number of buffers that span the boundary between two adjacent
// sections; where the cut is zero, the problem falls apart into independent partitions.
//
//   time ->  0    3         9            21
//   b1       [====)                            sections:  s0=[0,3)  s1=[3,9)  s2=[9,21)
//   b2            [=========)                  b1: s0      b2: s1     b3: s0..s1   b4: s2
//   b3       [==============)                  cuts: (s0|s1) = 1 (b3), (s1|s2) = 0
//   b4                      [============)     partitions: {b1, b2, b3} and {b4}
//
// Half-open lifespans: at a time point, buffers that end there are removed before buffers that
// start there are added, so [0,3) and [3,9) never count as live together.
namespace Memo.Planner;

/// <summary>The result of a sweep: sections, per-buffer section ranges, cuts and partitions.</summary>
public sealed class SweepResult
{
    internal SweepResult(long[] sectionStart, long[] sectionEnd, long[] sectionLoad, int[] bufferFirstSection,
        int[] bufferEndSection, int[] cuts, IReadOnlyList<Partition> partitions)
    {
        SectionStart = sectionStart;
        SectionEnd = sectionEnd;
        SectionLoad = sectionLoad;
        BufferFirstSection = bufferFirstSection;
        BufferEndSection = bufferEndSection;
        Cuts = cuts;
        Partitions = partitions;
    }

    /// <summary>Start time of each non-empty section.</summary>
    public long[] SectionStart { get; }

    /// <summary>End time (exclusive) of each non-empty section.</summary>
    public long[] SectionEnd { get; }

    /// <summary>Total live size in each section.</summary>
    public long[] SectionLoad { get; }

    /// <summary>First section of each buffer.</summary>
    public int[] BufferFirstSection { get; }

    /// <summary>One past the last section of each buffer.</summary>
    public int[] BufferEndSection { get; }

    /// <summary>Cuts[s] = number of buffers live in both section s and section s + 1.</summary>
    public int[] Cuts { get; }

    /// <summary>Independent sub-problems in time order: no buffer crosses from one to another.</summary>
    public IReadOnlyList<Partition> Partitions { get; }

    public int SectionCount => SectionStart.Length;

    /// <summary>Max over sections of the live load (0 when there are no buffers).</summary>
    public long MaxLoad
    {
        get
        {
            long max = 0;
            foreach (long l in SectionLoad) max = Math.Max(max, l);
            return max;
        }
    }
}

/// <summary>A set of buffers (indices into the problem) covering sections [FirstSection, EndSection).</summary>
public sealed record Partition(int[] Buffers, int FirstSection, int EndSection);

/// <summary>Sweep-line computations over lifespans.</summary>
public static class Sweep
{
    /// <summary>Max over time of the total size of live buffers (the max-load lower bound on the peak).</summary>
    public static long MaxLoad(Problem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        int n = problem.Count;
        if (n == 0) return 0;
        // Primitive-key sort by time; at each time the frees and allocations together give the live bytes after it,
        // which is the most live during [time, next time) (half-open lifespans: frees come first).
        var times = new long[2 * n];
        var deltas = new long[2 * n];
        for (int i = 0; i < n; i++)
        {
            Buffer b = problem.Buffers[i];
            times[2 * i] = b.Lifespan.Lower;
            deltas[2 * i] = b.Size;
            times[2 * i + 1] = b.Lifespan.Upper;
            deltas[2 * i + 1] = -b.Size;
        }
        Array.Sort(times, deltas);
        long live = 0, max = 0;
        for (int k = 0; k < times.Length; k++)
        {
            live = checked(live + deltas[k]);
            if (k + 1 == times.Length || times[k + 1] != times[k]) max = Math.Max(max, live);
        }
        return max;
    }

    /// <summary>
    /// The live-bytes step curve: (time, live bytes from that time on) at each distinct time point,
    /// in time order. The last point has 0 live bytes.
    /// </summary>
    public static IReadOnlyList<(long Time, long Live)> LoadCurve(Problem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var events = SortedEvents(problem);
        var curve = new List<(long, long)>();
        long live = 0;
        for (int i = 0; i < events.Length; i++)
        {
            live = checked(live + events[i].Delta);
            if (i + 1 == events.Length || events[i + 1].Time != events[i].Time)
                curve.Add((events[i].Time, live));
        }
        return curve;
    }

    /// <summary>Events (time, +size at lower / -size at upper), frees before allocations at equal times.</summary>
    private static (long Time, long Delta)[] SortedEvents(Problem problem)
    {
        int n = problem.Count;
        var events = new (long Time, long Delta)[2 * n];
        for (int i = 0; i < n; i++)
        {
            Buffer b = problem.Buffers[i];
            events[2 * i] = (b.Lifespan.Lower, b.Size);
            events[2 * i + 1] = (b.Lifespan.Upper, -b.Size);
        }
        // At equal times the negative deltas (frees) sort first.
        Array.Sort(events, static (a, b) => a.Time != b.Time ? a.Time.CompareTo(b.Time) : a.Delta.CompareTo(b.Delta));
        return events;
    }

    /// <summary>Computes sections, per-buffer section ranges, cuts and partitions.</summary>
    public static SweepResult Run(Problem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        int n = problem.Count;
        var points = new long[2 * n];
        for (int i = 0; i < n; i++)
        {
            points[2 * i] = problem.Buffers[i].Lifespan.Lower;
            points[2 * i + 1] = problem.Buffers[i].Lifespan.Upper;
        }
        Array.Sort(points);
        int m = 0;
        for (int i = 0; i < points.Length; i++)
            if (m == 0 || points[m - 1] != points[i]) points[m++] = points[i];
        // Raw section k = [points[k], points[k+1]); count live buffers per raw section via a difference array.
        int raw = Math.Max(0, m - 1);
        var liveCount = new int[raw + 1];
        var load = new long[raw + 1];
        var firstRaw = new int[n];
        var endRaw = new int[n];
        for (int i = 0; i < n; i++)
        {
            Buffer b = problem.Buffers[i];
            firstRaw[i] = Array.BinarySearch(points, 0, m, b.Lifespan.Lower);
            endRaw[i] = Array.BinarySearch(points, 0, m, b.Lifespan.Upper);
            liveCount[firstRaw[i]]++;
            liveCount[endRaw[i]]--;
            load[firstRaw[i]] = checked(load[firstRaw[i]] + b.Size);
            load[endRaw[i]] = checked(load[endRaw[i]] - b.Size);
        }
        // Compact away empty raw sections.
        var compact = new int[raw + 1];
        var starts = new List<long>();
        var ends = new List<long>();
        var loads = new List<long>();
        int running = 0;
        long runningLoad = 0;
        for (int k = 0; k < raw; k++)
        {
            running += liveCount[k];
            runningLoad = checked(runningLoad + load[k]);
            compact[k] = starts.Count;
            if (running > 0)
            {
                starts.Add(points[k]);
                ends.Add(points[k + 1]);
                loads.Add(runningLoad);
            }
        }
        compact[raw] = starts.Count;
        int sections = starts.Count;
        var first = new int[n];
        var end = new int[n];
        var cutDiff = new int[sections + 1];
        for (int i = 0; i < n; i++)
        {
            first[i] = compact[firstRaw[i]];
            end[i] = compact[endRaw[i]];
            // The buffer spans the boundaries first|first+1 ... end-2|end-1.
            if (end[i] - first[i] >= 2)
            {
                cutDiff[first[i]]++;
                cutDiff[end[i] - 1]--;
            }
        }
        var cuts = new int[Math.Max(0, sections - 1)];
        int c = 0;
        for (int s = 0; s + 1 < sections; s++)
        {
            c += cutDiff[s];
            cuts[s] = c;
        }
        var partitions = BuildPartitions(first, cuts, sections);
        return new SweepResult(starts.ToArray(), ends.ToArray(), loads.ToArray(), first, end, cuts, partitions);
    }

    private static List<Partition> BuildPartitions(int[] first, int[] cuts, int sections)
    {
        // Partition p covers sections [bounds[p], bounds[p+1]).
        var bounds = new List<int> { 0 };
        for (int s = 0; s + 1 < sections; s++)
            if (cuts[s] == 0) bounds.Add(s + 1);
        bounds.Add(sections);
        int parts = bounds.Count - 1;
        var partOfSection = new int[sections];
        for (int p = 0; p < parts; p++)
            for (int s = bounds[p]; s < bounds[p + 1]; s++) partOfSection[s] = p;
        var members = new List<int>[parts];
        for (int p = 0; p < parts; p++) members[p] = [];
        for (int i = 0; i < first.Length; i++) members[partOfSection[first[i]]].Add(i);
        var result = new List<Partition>(parts);
        for (int p = 0; p < parts; p++)
            if (members[p].Count > 0) result.Add(new Partition(members[p].ToArray(), bounds[p], bounds[p + 1]));
        return result;
    }

    /// <summary>
    /// For every buffer, the indices of the buffers whose lifespans intersect it (CSR layout:
    /// neighbours of i are Index[Start[i]..Start[i+1]]). Zero-size buffers are included.
    /// </summary>
    public static (int[] Start, int[] Index) Overlaps(Problem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        int n = problem.Count;
        var order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        var lowers = new long[n];
        for (int i = 0; i < n; i++) lowers[i] = problem.Buffers[i].Lifespan.Lower;
        Array.Sort(lowers, order);
        // Two sweeps: count the neighbours of every buffer, then fill them in.
        var degree = new int[n];
        var active = new List<int>();
        foreach (int i in order)
        {
            long lower = problem.Buffers[i].Lifespan.Lower;
            active.RemoveAll(j => problem.Buffers[j].Lifespan.Upper <= lower);
            degree[i] += active.Count;
            foreach (int j in active) degree[j]++;
            active.Add(i);
        }
        var start = new int[n + 1];
        for (int i = 0; i < n; i++) start[i + 1] = checked(start[i] + degree[i]);
        var index = new int[start[n]];
        var fill = (int[])start.Clone();
        active.Clear();
        foreach (int i in order)
        {
            long lower = problem.Buffers[i].Lifespan.Lower;
            active.RemoveAll(j => problem.Buffers[j].Lifespan.Upper <= lower);
            foreach (int j in active)
            {
                index[fill[i]++] = j;
                index[fill[j]++] = i;
            }
            active.Add(i);
        }
        return (start, index);
    }
}
