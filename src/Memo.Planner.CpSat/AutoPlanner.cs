// Portfolio: best-fit for a first plan, the canonical search for the lower bound and for
// capacities between it and the best plan, then CP-SAT warm-started with the best plan for the
// time that is left (it also tightens the lower bound). Stops when a plan meets a proven bound.
namespace Memo.Planner;

/// <summary>Best-fit, then search, then CP-SAT (see the file header).</summary>
public sealed class AutoPlanner : IPlanner
{
    public string Name => "auto";

    /// <summary>Share of the time limit given to the search before CP-SAT takes over.</summary>
    internal const double SearchShare = 0.7;

    public PlanResult Solve(Problem problem, PlannerOptions options)
    {
        var prepared = new PreparedProblem(problem, options);
        var (offsets, log) = BestFitPlanner.Run(prepared);
        string solver = "bestfit";
        if (log.Count > 0 && log[0].StartsWith(BestFitPlanner.SweepLog, StringComparison.Ordinal))
        {
            // The search and CP-SAT work on pairwise overlaps too: at this size they cannot start within a time limit.
            log.Add($"auto: {problem.Count:N0} buffers with over {BestFitPlanner.PairBudget:N0} overlapping pairs: the sweep plan is returned (search and CP-SAT need pairwise overlaps)");
            return prepared.Finish(offsets, solver, prepared.LowerBound, log);
        }
        long bound = prepared.LowerBound;
        long nodes = 0;
        int parts = 1;
        if (Solution.PeakOf(problem, offsets) > bound && !prepared.TimeIsUp)
        {
            var s = SearchPlanner.Improve(prepared, offsets, bound, log, SearchShare);
            offsets = s.Offsets;
            bound = Math.Max(bound, s.LowerBound);
            nodes += s.Nodes;
            parts = s.Parts;
            if (s.Improved) solver = "search";
        }
        if (Solution.PeakOf(problem, offsets) > bound && !prepared.TimeIsUp)
        {
            var c = CpSatPlanner.Improve(prepared, offsets, bound, log, prepared.Options.TimeLimit.TotalSeconds);
            offsets = c.Offsets;
            bound = Math.Max(bound, c.LowerBound);
            nodes += c.Nodes;
            if (c.Improved) solver = "cpsat";
        }
        return prepared.Finish(offsets, solver, bound, log, parts, nodes);
    }
}
