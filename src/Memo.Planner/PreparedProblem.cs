using System.Diagnostics;

namespace Memo.Planner;

/// <summary>
/// What every engine needs before it starts: the problem checked, the effective alignment of
/// every buffer, the lower bound (rounded up to the plan granularity) and a deadline.
/// </summary>
internal sealed class PreparedProblem
{
    public PreparedProblem(Problem problem, PlannerOptions options)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(options);
        options.Check();
        problem.CheckWellFormed();
        Clock = Stopwatch.StartNew();
        Problem = problem;
        Options = options;
        int n = problem.Count;
        Alignments = new long[n];
        long g = 0;
        for (int i = 0; i < n; i++)
        {
            Buffer b = problem.Buffers[i];
            long a = Arithmetic.Lcm(b.Alignment, options.Alignment);
            Alignments[i] = a;
            g = Arithmetic.Gcd(g, b.Size);
            if (a > 1) g = Arithmetic.Gcd(g, a);
        }
        // Every canonical plan (each buffer as low as its placed neighbours allow) has offsets and a
        // peak that are multiples of g, and every plan can be pushed down to a canonical one, so
        // the optimal peak is a multiple of g.
        Granularity = g == 0 ? 1 : g;
        LowerBound = Checked.AlignUp(Sweep.MaxLoad(problem), Granularity);
    }

    public Problem Problem { get; }

    public PlannerOptions Options { get; }

    public long[] Alignments { get; }

    /// <summary>GCD of all sizes and (effective) alignments above 1.</summary>
    public long Granularity { get; }

    public long LowerBound { get; }

    public Stopwatch Clock { get; }

    public double RemainingSeconds => Math.Max(0, Options.TimeLimit.TotalSeconds - Clock.Elapsed.TotalSeconds);

    public bool TimeIsUp => Clock.Elapsed >= Options.TimeLimit;

    private readonly List<(double Seconds, long Peak)> _progress = [];

    /// <summary>Records a new best peak (ignored unless it improves on the last one).</summary>
    public void Record(long peak)
    {
        if (_progress.Count == 0 || peak < _progress[^1].Peak) _progress.Add((Clock.Elapsed.TotalSeconds, peak));
    }

    /// <summary>Builds the result for a final plan; status from the bound and the capacity.</summary>
    public PlanResult Finish(long[] offsets, string solver, long lowerBound, IReadOnlyList<string> log, int parts = 1, long nodes = 0)
    {
        long peak = Solution.PeakOf(Problem, offsets);
        Record(peak);
        long lb = Math.Max(LowerBound, lowerBound);
        PlanStatus status;
        if (Problem.Capacity is long cap && lb > cap) status = PlanStatus.Infeasible;
        else if (Problem.Capacity is long cap2 && peak > cap2) status = PlanStatus.OverCapacity;
        else status = peak <= lb ? PlanStatus.Optimal : PlanStatus.Feasible;
        return new PlanResult
        {
            Status = status,
            Offsets = offsets,
            Peak = peak,
            LowerBound = Math.Min(lb, peak),
            Seconds = Clock.Elapsed.TotalSeconds,
            Solver = solver,
            Parts = parts,
            Nodes = nodes,
            Log = log,
            Progress = [.. _progress],
        };
    }
}
