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
