namespace Memo.Planner;

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
