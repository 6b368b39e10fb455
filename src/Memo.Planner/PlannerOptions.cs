namespace Memo.Planner;

/// <summary>Which engine an options record names (Memo.Planner.CpSat's <c>Planners.Create</c> returns it).</summary>
public enum SolverKind
{
    /// <summary>
    /// Portfolio: best-fit, then the canonical search at the lower bound and at capacities between
    /// the lower bound and the best peak, then CP-SAT warm-started with the best plan for the rest
    /// of the time. Stops as soon as a plan reaches a proven lower bound.
    /// </summary>
    Auto,

    /// <summary>Greedy best-fit over several buffer orders; fast, always returns a valid plan, no proof.</summary>
    BestFit,

    /// <summary>Google OR-Tools CP-SAT: NoOverlap2D over (lifespan, address) boxes, minimize the peak.</summary>
    CpSat,

    /// <summary>
    /// Depth-first search over canonical solutions (buffers placed in non-decreasing offset order,
    /// each at the lowest offset above its placed neighbours), with section inference and dynamic
    /// temporal decomposition, after google/minimalloc; probes capacities from the lower bound up.
    /// </summary>
    Search,
}

/// <summary>
/// Every planner switch, with its default. Each switch is exercised by a test in
/// tests/Memo.Tests/Planner/PlannerOptionsTests.cs that shows its effect.
/// </summary>
public sealed record PlannerOptions
{
    /// <summary>Default options: Auto, 10 s, all cores, no extra alignment, every technique on.</summary>
    public static PlannerOptions Default { get; } = new();

    /// <summary>Engine to use.</summary>
    public SolverKind Solver { get; init; } = SolverKind.Auto;

    /// <summary>
    /// Wall-clock budget of the whole solve (model building included). When it runs out the best
    /// plan found so far is returned with <see cref="PlanStatus.Feasible"/>. Best-fit always
    /// completes its first pass and tries further buffer orders only within a fifth of it.
    /// </summary>
    public TimeSpan TimeLimit { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>CP-SAT worker threads; 0 means one per logical core.</summary>
    public int Threads { get; init; }

    /// <summary>
    /// Search worker threads (at most one per preorder, 3). With more than one, the preorders are
    /// split among threads and the first thread to settle a probe stops the others: faster on
    /// idle cores, but the plan then depends on timing. 1 (the default) is deterministic and
    /// leaves the other cores to CP-SAT or other work.
    /// </summary>
    public int SearchThreads { get; init; } = 1;

    /// <summary>
    /// Every offset must be a multiple of this (in addition to each buffer's own alignment; the
    /// effective alignment is the least common multiple of the two). 1 means no extra alignment.
    /// </summary>
    public long Alignment { get; init; } = 1;

    /// <summary>
    /// Solve the independent partitions of the timeline (points no buffer crosses) separately:
    /// statically in CP-SAT (one model per partition, each partition only needs to reach the
    /// global bound) and dynamically in the search (a placed buffer can split the rest).
    /// </summary>
    public bool Decompose { get; init; } = true;

    /// <summary>
    /// CP-SAT: among buffers with identical lifespan, size and alignment, require increasing
    /// offsets in input order (they are interchangeable, so this removes equivalent solutions).
    /// </summary>
    public bool SymmetryBreaking { get; init; } = true;

    /// <summary>CP-SAT: pass the best plan found before CP-SAT starts (best-fit or search) as a hint.</summary>
    public bool WarmStart { get; init; } = true;

    /// <summary>
    /// Search: prune a partial plan when some section's floor plus the sizes of its unplaced
    /// buffers exceeds the capacity being probed, where the floor is raised to the lowest
    /// offset any unplaced buffer of the section can still take (minimalloc's section inference
    /// and unallocated floor). Off, only placed buffers and the capacity limit the search.
    /// </summary>
    public bool SectionInference { get; init; } = true;

    /// <summary>Seed for CP-SAT and any randomized ordering; the same seed gives the same plan with one thread.</summary>
    public int Seed { get; init; }

    /// <summary>Throws <see cref="MemoException"/> for values out of range.</summary>
    public void Check()
    {
        if (TimeLimit < TimeSpan.Zero)
            throw new MemoException($"time limit {TimeLimit.TotalSeconds} s is negative; give a limit >= 0");
        if (Threads < 0)
            throw new MemoException($"threads {Threads} is negative; give 0 (all cores) or a positive count");
        if (SearchThreads < 1)
            throw new MemoException($"search threads {SearchThreads} < 1; give a positive count");
        if (Alignment < 1)
            throw new MemoException($"alignment {Alignment} < 1; use 1 for no alignment");
    }

    /// <summary>CP-SAT worker count after resolving 0 to the core count.</summary>
    public int EffectiveThreads => Threads > 0 ? Threads : Environment.ProcessorCount;
}
