using System.Diagnostics;

namespace Memo.Planner;

/// <summary>How a solve ended. Planners never throw for infeasibility or timeouts; they say so here.</summary>
public enum PlanStatus
{
    /// <summary>The peak equals a proven lower bound.</summary>
    Optimal,

    /// <summary>A valid plan within capacity (if any), not proven optimal (time limit, or heuristic only).</summary>
    Feasible,

    /// <summary>A valid plan was found but its peak exceeds the capacity; infeasibility is not proven.</summary>
    OverCapacity,

    /// <summary>No plan fits the capacity (proven: the lower bound exceeds it). The best plan is still returned.</summary>
    Infeasible,
}

/// <summary>
/// The outcome of one solve. <see cref="Offsets"/> is always a complete, valid plan (parallel to
/// the problem's buffers); <see cref="Status"/> says how good it is.
/// </summary>
public sealed record PlanResult
{
    public required PlanStatus Status { get; init; }

    public required long[] Offsets { get; init; }

    /// <summary>max(offset + size).</summary>
    public required long Peak { get; init; }

    /// <summary>
    /// The best proven lower bound on the peak: the max-load bound, raised by the solver's own
    /// bound (CP-SAT's objective bound, or capacities the search proved infeasible).
    /// </summary>
    public required long LowerBound { get; init; }

    /// <summary>Wall-clock seconds of the solve.</summary>
    public required double Seconds { get; init; }

    /// <summary>The engine that produced the returned plan ("bestfit", "search", "cpsat").</summary>
    public required string Solver { get; init; }

    /// <summary>Number of independent partitions the solver worked on (1 without decomposition).</summary>
    public int Parts { get; init; } = 1;

    /// <summary>Search nodes, or CP-SAT branches, summed over the solve (0 for best-fit).</summary>
    public long Nodes { get; init; }

    /// <summary>One line per engine step (what ran, for how long, what it found).</summary>
    public IReadOnlyList<string> Log { get; init; } = [];

    /// <summary>Each improvement of the best peak during the solve: (seconds since the start, peak).</summary>
    public IReadOnlyList<(double Seconds, long Peak)> Progress { get; init; } = [];

    /// <summary>Seconds until the first plan with peak at or below <paramref name="capacity"/> was found; null if none.</summary>
    public double? SecondsToReach(long capacity)
    {
        foreach (var (seconds, peak) in Progress)
            if (peak <= capacity) return seconds;
        return null;
    }

    /// <summary>True when the peak is proven optimal.</summary>
    public bool Optimal => Status == PlanStatus.Optimal;

    /// <summary>(Peak - LowerBound) / Peak; 0 when optimal or when the peak is 0.</summary>
    public double Gap => Peak <= 0 ? 0 : (double)(Peak - LowerBound) / Peak;

    /// <summary>The plan as a <see cref="Solution"/>.</summary>
    public Solution ToSolution() => new(Offsets, Peak);
}

/// <summary>An offset-assignment engine.</summary>
public interface IPlanner
{
    /// <summary>Name used on the command line and in results.</summary>
    string Name { get; }

    /// <summary>Assigns offsets. Throws <see cref="MemoException"/> only for malformed problems or options.</summary>
    PlanResult Solve(Problem problem, PlannerOptions options);
}

/// <summary>Registry of engines by <see cref="SolverKind"/> and by name.</summary>
public static class Planners
{
    public static IReadOnlyList<SolverKind> All { get; } = [SolverKind.Auto, SolverKind.BestFit, SolverKind.CpSat, SolverKind.Search];

    public static IPlanner Create(SolverKind kind) => kind switch
    {
        SolverKind.Auto => new AutoPlanner(),
        SolverKind.BestFit => new BestFitPlanner(),
        SolverKind.CpSat => new CpSatPlanner(),
        SolverKind.Search => new SearchPlanner(),
        _ => throw new MemoException($"unknown solver {kind}; use auto, bestfit, cpsat or search"),
    };

    /// <summary>Solves with the engine named by <see cref="PlannerOptions.Solver"/>.</summary>
    public static PlanResult Solve(Problem problem, PlannerOptions? options = null)
    {
        options ??= PlannerOptions.Default;
        return Create(options.Solver).Solve(problem, options);
    }

    /// <summary>Parses "auto", "bestfit", "cpsat" or "search" (case-insensitive).</summary>
    public static SolverKind Parse(string name) => name.Trim().ToUpperInvariant() switch
    {
        "AUTO" => SolverKind.Auto,
        "BESTFIT" or "BEST-FIT" => SolverKind.BestFit,
        "CPSAT" or "CP-SAT" => SolverKind.CpSat,
        "SEARCH" => SolverKind.Search,
        _ => throw new MemoException($"unknown solver '{name}'; use auto, bestfit, cpsat or search"),
    };

    public static string NameOf(SolverKind kind) => kind switch
    {
        SolverKind.Auto => "auto",
        SolverKind.BestFit => "bestfit",
        SolverKind.CpSat => "cpsat",
        SolverKind.Search => "search",
        _ => kind.ToString().ToUpperInvariant(),
    };
}

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
            long a = Checked.Lcm(b.Alignment, options.Alignment);
            Alignments[i] = a;
            g = Checked.Gcd(g, b.Size);
            if (a > 1) g = Checked.Gcd(g, a);
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
