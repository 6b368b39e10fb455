using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Tests.Planner;

/// <summary>
/// Issue 13 item 11: problems with more overlapping pairs than the pairwise engines can hold are placed by the
/// sweep (O(n log n)), and a solve whose time runs out still returns a complete, valid plan.
/// </summary>
public sealed class SweepFitTests
{
    /// <summary>4,000 short buffers plus 7,000 that all overlap one another: about 25 million overlapping pairs.</summary>
    private static Problem Dense()
    {
        var rng = new Random(11);
        var buffers = new List<Buffer>();
        for (int i = 0; i < 7000; i++)
        {
            long lower = rng.Next(0, 1000);
            buffers.Add(new Buffer($"long{i}", new Lifespan(lower, 2000 + rng.Next(0, 1000)), 64 * rng.Next(1, 100), i % 5 == 0 ? 256 : 1));
        }
        for (int i = 0; i < 4000; i++)
        {
            long lower = rng.Next(0, 3000);
            buffers.Add(new Buffer($"short{i}", new Lifespan(lower, lower + rng.Next(1, 8)), 64 * rng.Next(0, 1000)));
        }
        return new Problem(buffers);
    }

    [Fact]
    public void Dense_problems_are_placed_by_the_sweep_and_the_plan_is_valid()
    {
        var problem = Dense();
        var result = Planners.Solve(problem, new PlannerOptions { Solver = SolverKind.Auto, TimeLimit = TimeSpan.FromSeconds(30) });
        Assert.StartsWith(BestFitPlanner.SweepLog, result.Log[0], StringComparison.Ordinal);
        Assert.DoesNotContain("time limit ran out", result.Log[0], StringComparison.Ordinal);
        var check = PlanValidator.Validate(problem, result.ToSolution());
        Assert.True(check.IsOk, check.Message);
        Assert.True(result.Peak >= result.LowerBound);
        // Reuse happened: far below stacking every buffer.
        Assert.True(result.Peak < problem.Buffers.Sum(b => b.Size + b.Alignment) / 2, $"peak {result.Peak}");
    }

    [Fact]
    public void A_solve_whose_time_runs_out_returns_a_complete_valid_plan()
    {
        var problem = Dense();
        var result = Planners.Solve(problem, new PlannerOptions { Solver = SolverKind.BestFit, TimeLimit = TimeSpan.Zero });
        Assert.Contains("time limit ran out", result.Log[0], StringComparison.Ordinal);
        Assert.Equal(problem.Count, result.Offsets.Length);
        var check = PlanValidator.Validate(problem, result.ToSolution());
        Assert.True(check.IsOk, check.Message);
    }
}
