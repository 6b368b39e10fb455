namespace Memo.Planner;

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
        try
        {
            return Create(options.Solver).Solve(problem, options);
        }
        catch (OverflowException)
        {
            throw new MemoException("the sizes, alignments and times of this problem overflow 64-bit arithmetic; use coarser units (fewer bytes per unit)");
        }
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
