// CP-SAT model of the offset assignment (Google OR-Tools):
//
//   per buffer i:  x_i = fixed interval [lower_i, upper_i)          (time, constant)
//                  y_i = [off_i, off_i + size_i),  off_i = align_i * k_i,  k_i >= 0
//   NoOverlap2D over the boxes (x_i, y_i)
//   peak >= off_i + size_i for all i;  peak >= lower bound;  peak <= best known peak
//   minimize peak
//
// Time is compressed to the ranks of the distinct end points, and sizes, offsets and alignments
// are divided by the plan granularity (their gcd), so domains stay small. The best plan found
// beforehand is given as a hint. Because the lower bound is a constraint on the peak, CP-SAT
// stops as soon as it reaches it (the objective meets its bound). With
// <see cref="PlannerOptions.Decompose"/>, each independent partition of the timeline gets its own
// model, and a partition only needs to get down to the largest bound of the whole problem.
using System.Diagnostics;
using System.Globalization;
using Google.OrTools.Sat;

namespace Memo.Planner;

/// <summary>CP-SAT engine (see the file header).</summary>
public sealed class CpSatPlanner : IPlanner
{
    public string Name => "cpsat";

    public PlanResult Solve(Problem problem, PlannerOptions options)
    {
        var prepared = new PreparedProblem(problem, options);
        var (incumbent, log) = BestFitPlanner.Run(prepared);
        var outcome = Improve(prepared, incumbent, prepared.LowerBound, log, prepared.Options.TimeLimit.TotalSeconds);
        return prepared.Finish(outcome.Offsets, outcome.Improved ? Name : "bestfit", outcome.LowerBound, log, outcome.Parts, outcome.Nodes);
    }

    /// <summary>Result of <see cref="Improve"/>.</summary>
    internal readonly record struct Outcome(long[] Offsets, long LowerBound, bool Improved, int Parts, long Nodes);

    /// <summary>Improves <paramref name="incumbent"/> with CP-SAT until the deadline (seconds on the prepared clock).</summary>
    internal static Outcome Improve(PreparedProblem prepared, long[] incumbent, long lowerBound, List<string> log, double deadline)
    {
        Problem problem = prepared.Problem;
        PlannerOptions options = prepared.Options;
        incumbent = (long[])incumbent.Clone();
        long best = Solution.PeakOf(problem, incumbent);
        long bound = lowerBound;
        if (best <= bound) return new(incumbent, bound, false, 1, 0);

        var sweep = Sweep.Run(problem);
        List<int[]> parts = options.Decompose
            ? sweep.Partitions.Select(p => p.Buffers).ToList()
            : [Enumerable.Range(0, problem.Count).ToArray()];
        // Per-part peaks of the incumbent; work on the highest first.
        var partPeak = new long[parts.Count];
        for (int p = 0; p < parts.Count; p++)
            foreach (int i in parts[p]) partPeak[p] = Math.Max(partPeak[p], checked(incumbent[i] + problem.Buffers[i].Size));
        var order = Enumerable.Range(0, parts.Count).OrderByDescending(p => partPeak[p]).ToArray();
        bool improved = false;
        long nodes = 0;
        long partsLeftSize = parts.Sum(p => (long)p.Length);
        foreach (int p in order)
        {
            int[] members = parts[p];
            double remaining = deadline - prepared.Clock.Elapsed.TotalSeconds;
            if (partPeak[p] <= bound || remaining <= 0)
            {
                partsLeftSize -= members.Length;
                continue;
            }
            double budget = remaining * members.Length / Math.Max(1, partsLeftSize);
            partsLeftSize -= members.Length;
            var r = SolvePart(prepared, members, incumbent, partPeak[p], bound, budget);
            nodes += r.Branches;
            log.Add($"cpsat: part of {members.Length} buffers ({(prepared.Options.WarmStart ? $"hint peak {partPeak[p]}" : "no hint")}): {r.Status}, peak {r.Peak}, bound {r.Bound} in {r.Seconds:F3} s");
            if (r.Offsets is not null && r.Peak < partPeak[p])
            {
                for (int k = 0; k < members.Length; k++) incumbent[members[k]] = r.Offsets[k];
                partPeak[p] = r.Peak;
                improved = true;
                prepared.Record(Solution.PeakOf(problem, incumbent));
            }
            // The whole problem is at least as high as any of its parts.
            if (r.Bound > bound) bound = r.Bound;
        }
        return new(incumbent, bound, improved, parts.Count, nodes);
    }

    private readonly record struct PartResult(string Status, long[]? Offsets, long Peak, long Bound, double Seconds, long Branches);

    private static PartResult SolvePart(PreparedProblem prepared, int[] members, long[] incumbent, long incumbentPeak, long globalBound, double seconds)
    {
        var sw = Stopwatch.StartNew();
        Problem problem = prepared.Problem;
        PlannerOptions options = prepared.Options;
        long g = prepared.Granularity;
        int n = members.Length;

        // Compress time to ranks of distinct end points.
        var points = new SortedSet<long>();
        foreach (int i in members)
        {
            points.Add(problem.Buffers[i].Lifespan.Lower);
            points.Add(problem.Buffers[i].Lifespan.Upper);
        }
        var rank = new Dictionary<long, long>(points.Count);
        foreach (long t in points) rank[t] = rank.Count;

        var hint = new long[n];
        for (int k = 0; k < n; k++) hint[k] = incumbent[members[k]];
        if (options.SymmetryBreaking) SortIdenticalHints(problem, members, hint);

        long horizon = incumbentPeak / g;
        long partBound = 0;
        {
            var sub = new Problem(members.Select(i => problem.Buffers[i]).ToArray());
            partBound = Checked.AlignUp(Sweep.MaxLoad(sub), g);
        }
        long floor = Math.Max(partBound, globalBound) / g;
        floor = Math.Min(floor, horizon);

        var model = new CpModel();
        var peak = model.NewIntVar(floor, horizon, "peak");
        var noOverlap = model.AddNoOverlap2D();
        var starts = new LinearExpr?[n];
        var ks = new IntVar?[n];
        for (int k = 0; k < n; k++)
        {
            Buffer b = problem.Buffers[members[k]];
            long size = b.Size / g;
            if (size == 0) continue;
            long align = Math.Max(1, prepared.Alignments[members[k]] / g);
            long maxK = (horizon - size) / align;
            var kv = model.NewIntVar(0, Math.Max(0, maxK), string.Create(CultureInfo.InvariantCulture, $"k{k}"));
            ks[k] = kv;
            LinearExpr start = align == 1 ? kv : LinearExpr.Term(kv, align);
            starts[k] = start;
            var y = model.NewFixedSizeIntervalVar(start, size, string.Create(CultureInfo.InvariantCulture, $"y{k}"));
            long x0 = rank[b.Lifespan.Lower], x1 = rank[b.Lifespan.Upper];
            var x = model.NewFixedSizeIntervalVar(x0, x1 - x0, string.Create(CultureInfo.InvariantCulture, $"x{k}"));
            noOverlap.AddRectangle(x, y);
            model.Add(peak >= start + size);
            if (options.WarmStart) model.AddHint(kv, hint[k] / g / align);
        }
        if (options.SymmetryBreaking) AddSymmetryBreaking(model, problem, members, starts, g);
        if (options.WarmStart) model.AddHint(peak, Math.Max(floor, incumbentPeak / g));
        model.Minimize(peak);

        double buildSeconds = sw.Elapsed.TotalSeconds;
        using var solver = new CpSolver();
        solver.StringParameters = string.Create(CultureInfo.InvariantCulture,
            $"max_time_in_seconds:{Math.Max(0.01, seconds - 2 * buildSeconds):R} num_workers:{options.EffectiveThreads} random_seed:{options.Seed} log_search_progress:false");
        CpSolverStatus status = solver.Solve(model);
        long branches = solver.Response?.NumBranches ?? 0;
        long bound = (long)Math.Ceiling(solver.BestObjectiveBound - 1e-6) * g;
        if (status is CpSolverStatus.Optimal or CpSolverStatus.Feasible)
        {
            var offsets = new long[n];
            long partPeak = 0;
            for (int k = 0; k < n; k++)
            {
                offsets[k] = starts[k] is LinearExpr s ? checked(solver.Value(s) * g) : 0;
                partPeak = Math.Max(partPeak, checked(offsets[k] + problem.Buffers[members[k]].Size));
            }
            return new(status.ToString(), offsets, partPeak, Math.Min(bound, partPeak), sw.Elapsed.TotalSeconds, branches);
        }
        // No solution within the time (the incumbent itself satisfies the model, so never infeasible).
        return new(status.ToString(), null, incumbentPeak, Math.Max(partBound, Math.Min(bound, incumbentPeak)), sw.Elapsed.TotalSeconds, branches);
    }

    /// <summary>Groups (of two or more) of interchangeable buffers: same lifespan, size and alignment.</summary>
    public static IReadOnlyList<IReadOnlyList<int>> IdenticalGroupsOf(Problem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return IdenticalGroups(problem, Enumerable.Range(0, problem.Count).ToArray());
    }

    /// <summary>Groups of identical buffers (same lifespan, size, alignment), in input order; indices into members.</summary>
    internal static List<List<int>> IdenticalGroups(Problem problem, int[] members)
    {
        var groups = new Dictionary<(long, long, long, long), List<int>>();
        for (int k = 0; k < members.Length; k++)
        {
            Buffer b = problem.Buffers[members[k]];
            if (b.Size == 0) continue;
            var key = (b.Lifespan.Lower, b.Lifespan.Upper, b.Size, b.Alignment);
            if (!groups.TryGetValue(key, out var list)) groups[key] = list = [];
            list.Add(k);
        }
        return groups.Values.Where(l => l.Count > 1).ToList();
    }

    private static void AddSymmetryBreaking(CpModel model, Problem problem, int[] members, LinearExpr?[] starts, long g)
    {
        foreach (var group in IdenticalGroups(problem, members))
        {
            long size = problem.Buffers[members[group[0]]].Size / g;
            for (int j = 1; j < group.Count; j++)
                model.Add(starts[group[j - 1]]! + size <= starts[group[j]]!);
        }
    }

    /// <summary>Reorders the hint offsets of identical buffers to increase in input order (valid: they are interchangeable).</summary>
    private static void SortIdenticalHints(Problem problem, int[] members, long[] hint)
    {
        foreach (var group in IdenticalGroups(problem, members))
        {
            var values = group.Select(k => hint[k]).Order().ToArray();
            for (int j = 0; j < group.Count; j++) hint[group[j]] = values[j];
        }
    }
}
