using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Tests.Planner;

public class PlannerTests
{
    public static TheoryData<SolverKind> Solvers => new(Planners.All);

    private static PlannerOptions Options(SolverKind kind, double seconds = 1) =>
        new() { Solver = kind, TimeLimit = TimeSpan.FromSeconds(seconds), Threads = 2 };

    [Theory]
    [MemberData(nameof(Solvers))]
    public void Random_instances_get_valid_plans_at_or_above_the_lower_bound(SolverKind kind)
    {
        for (int seed = 0; seed < 6; seed++)
        {
            var p = PlannerTestData.Random(seed, 25 + 5 * seed, horizon: 40, maxSize: 32, alignment: seed % 2 == 0 ? 1 : 4);
            var r = Planners.Solve(p, Options(kind, 0.3));
            PlannerTestData.AssertValid(p, r);
            Assert.Contains(r.Status, new[] { PlanStatus.Optimal, PlanStatus.Feasible });
        }
    }

    [Theory]
    [MemberData(nameof(Solvers))]
    public void Minimalloc_readme_example_reaches_12(SolverKind kind)
    {
        // input.12.csv (minimalloc's README): lower bound 12 and minimalloc's peak 12.
        var p = new Problem(
        [
            new Buffer("b1", new Lifespan(0, 3), 4),
            new Buffer("b2", new Lifespan(3, 9), 4),
            new Buffer("b3", new Lifespan(0, 9), 4),
            new Buffer("b4", new Lifespan(9, 21), 4),
            new Buffer("b5", new Lifespan(0, 21), 4),
        ]);
        var r = Planners.Solve(p, Options(kind));
        PlannerTestData.AssertValid(p, r);
        Assert.Equal(12, r.Peak);
        Assert.True(r.Optimal);
        Assert.Equal(0, r.Gap);
    }

    [Theory]
    [InlineData(SolverKind.Search)]
    [InlineData(SolverKind.Auto)]
    [InlineData(SolverKind.CpSat)]
    public void Exact_engines_find_perfect_packings(SolverKind kind)
    {
        // Guillotine cuts of a 64 x 256 box: optimum = lower bound = 256; best-fit alone rarely gets there.
        for (int seed = 1; seed <= 3; seed++)
        {
            var p = PlannerTestData.Tight(seed, 14);
            Assert.Equal(256, p.LowerBound());
            var r = Planners.Solve(p, Options(kind, 2));
            PlannerTestData.AssertValid(p, r);
            Assert.Equal(256, r.Peak);
            Assert.True(r.Optimal);
        }
    }

    [Fact]
    public void Bestfit_is_valid_on_thousands_of_buffers()
    {
        var p = PlannerTestData.Random(11, 4000, horizon: 2000, maxSize: 1 << 20);
        var r = Planners.Solve(p, Options(SolverKind.BestFit));
        PlannerTestData.AssertValid(p, r);
        Assert.Equal("bestfit", r.Solver);
        // Greedy placement on random lifespans stays within a modest factor of the bound.
        Assert.True(r.Peak < 2 * r.LowerBound, $"peak {r.Peak} vs lower bound {r.LowerBound}");
    }

    [Theory]
    [MemberData(nameof(Solvers))]
    public void Empty_and_zero_size_problems(SolverKind kind)
    {
        var empty = Planners.Solve(new Problem([]), Options(kind));
        Assert.Equal(0, empty.Peak);
        Assert.True(empty.Optimal);
        var zeros = new Problem([new Buffer("z", new Lifespan(0, 4), 0), new Buffer("a", new Lifespan(1, 2), 8)]);
        var r = Planners.Solve(zeros, Options(kind));
        PlannerTestData.AssertValid(zeros, r);
        Assert.Equal(8, r.Peak);
    }

    [Theory]
    [MemberData(nameof(Solvers))]
    public void Capacity_below_the_lower_bound_is_infeasible_not_an_exception(SolverKind kind)
    {
        var p = PlannerTestData.Random(5, 30, horizon: 20);
        long lb = p.LowerBound();
        var tight = new Problem(p.Buffers, lb - 1);
        var r = Planners.Solve(tight, Options(kind, 0.2));
        Assert.Equal(PlanStatus.Infeasible, r.Status);
        PlannerTestData.AssertValid(p, r);  // a plan is still returned
        var roomy = new Problem(p.Buffers, 10 * lb);
        Assert.Contains(Planners.Solve(roomy, Options(kind, 0.2)).Status, new[] { PlanStatus.Optimal, PlanStatus.Feasible });
    }

    [Theory]
    [MemberData(nameof(Solvers))]
    public void Progress_records_each_improvement_down_to_the_final_peak(SolverKind kind)
    {
        var p = PlannerTestData.Tight(9, 24);  // best-fit 266, optimum 256
        var r = Planners.Solve(p, Options(kind, 2));
        Assert.NotEmpty(r.Progress);
        Assert.Equal(r.Peak, r.Progress[^1].Peak);
        for (int i = 1; i < r.Progress.Count; i++)
        {
            Assert.True(r.Progress[i].Peak < r.Progress[i - 1].Peak);
            Assert.True(r.Progress[i].Seconds >= r.Progress[i - 1].Seconds);
        }
        Assert.NotNull(r.SecondsToReach(r.Peak));
        Assert.Null(r.SecondsToReach(r.Peak - 1));
        if (kind != SolverKind.BestFit) Assert.Equal(2, r.Progress.Count);
    }

    [Fact]
    public void Malformed_problems_and_options_raise_MemoException()
    {
        var dup = new Problem([new Buffer("a", new Lifespan(0, 2), 1), new Buffer("a", new Lifespan(0, 2), 1)]);
        Assert.Throws<MemoException>(() => Planners.Solve(dup));
        var empty = new Problem([new Buffer("a", new Lifespan(2, 2), 1)]);
        Assert.Throws<MemoException>(() => Planners.Solve(empty));
        var ok = new Problem([new Buffer("a", new Lifespan(0, 2), 1)]);
        Assert.Throws<MemoException>(() => Planners.Solve(ok, new PlannerOptions { Threads = -1 }));
        Assert.Throws<MemoException>(() => Planners.Solve(ok, new PlannerOptions { Alignment = 0 }));
        Assert.Throws<MemoException>(() => Planners.Parse("simplex"));
    }

    [MinimallocSuiteFact]
    public void Minimalloc_example_file_reaches_its_capacity()
    {
        string path = Path.Combine(PlannerTestData.MinimallocSuite()!, "examples", "input.12.csv");
        var p = PlanCsv.Read(path, capacity: 12);
        foreach (SolverKind kind in Planners.All)
        {
            var r = Planners.Solve(p, Options(kind));
            PlannerTestData.AssertValid(p, r);
            Assert.Equal(12, r.Peak);
            Assert.Equal(PlanStatus.Optimal, r.Status);
        }
    }

    [MinimallocSuiteFact]
    public void Search_solves_a_challenging_instance()
    {
        // Instance G of minimalloc's challenging suite (308 buffers): optimum = lower bound = 1048576;
        // minimalloc needs about a second; best-fit alone is 17% above.
        string path = Path.Combine(PlannerTestData.MinimallocSuite()!, "challenging", "G.1048576.csv");
        var p = PlanCsv.Read(path, capacity: 1048576);
        var r = Planners.Solve(p, Options(SolverKind.Search, 30));
        PlannerTestData.AssertValid(p, r);
        Assert.Equal(1048576, r.Peak);
        Assert.True(r.Optimal);
    }
}
