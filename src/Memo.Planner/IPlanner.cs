namespace Memo.Planner;

/// <summary>An offset-assignment engine.</summary>
public interface IPlanner
{
    /// <summary>Name used on the command line and in results.</summary>
    string Name { get; }

    /// <summary>Assigns offsets. Throws <see cref="MemoException"/> only for malformed problems or options.</summary>
    PlanResult Solve(Problem problem, PlannerOptions options);
}
