using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Tests.Planner;

/// <summary>One test per <see cref="PlannerOptions"/> switch, showing its effect.</summary>
public class PlannerOptionsTests
{
    // A perfect packing that best-fit does not find (checked below): the exact engines have work to do.
    private static Problem Hard()
    {
        var p = PlannerTestData.Tight(9, 24);
        var greedy = Planners.Solve(p, new PlannerOptions { Solver = SolverKind.BestFit });
        Assert.True(greedy.Peak > p.LowerBound(), "precondition: best-fit is not optimal on this instance");
        return p;
    }

    /// <summary>Three time-disjoint copies of <see cref="Hard"/>: three partitions.</summary>
    private static Problem ThreeParts()
    {
        var p = Hard();
        var buffers = new List<Buffer>();
        for (int c = 0; c < 3; c++)
            buffers.AddRange(p.Buffers.Select(b => b with { Id = $"{b.Id}.{c}", Lifespan = new Lifespan(b.Lifespan.Lower + 100 * c, b.Lifespan.Upper + 100 * c) }));
        return new Problem(buffers);
    }

    [Fact]
    public void TimeLimit_zero_returns_the_best_fit_plan_and_a_longer_one_reaches_the_optimum()
    {
        var p = Hard();
        var quick = Planners.Solve(p, new PlannerOptions { Solver = SolverKind.Search, TimeLimit = TimeSpan.Zero });
        PlannerTestData.AssertValid(p, quick);
        Assert.Equal("bestfit", quick.Solver);
        Assert.False(quick.Optimal);
        Assert.True(quick.Gap > 0);
        var full = Planners.Solve(p, new PlannerOptions { Solver = SolverKind.Search, TimeLimit = TimeSpan.FromSeconds(5) });
        Assert.True(full.Optimal);
        Assert.Equal(p.LowerBound(), full.Peak);
    }

    [Fact]
    public void Alignment_applies_to_every_offset_and_can_raise_the_peak()
    {
        // Three 3-byte buffers live together: unaligned they stack to 9; 4-aligned to 0, 4, 8 -> 11.
        var p = new Problem(Enumerable.Range(0, 3).Select(i => new Buffer($"a{i}", new Lifespan(0, 10), 3)).ToArray());
        foreach (SolverKind kind in Planners.All)
        {
            var plain = Planners.Solve(p, new PlannerOptions { Solver = kind, TimeLimit = TimeSpan.FromSeconds(1) });
            Assert.Equal(9, plain.Peak);
            var aligned = Planners.Solve(p, new PlannerOptions { Solver = kind, TimeLimit = TimeSpan.FromSeconds(1), Alignment = 4 });
            PlannerTestData.AssertValid(p, aligned, extraAlignment: 4);
            Assert.Equal(11, aligned.Peak);
            Assert.All(aligned.Offsets, o => Assert.Equal(0, o % 4));
        }
    }

    [Fact]
    public void Alignment_combines_with_buffer_alignment_as_lcm()
    {
        var p = new Problem([new Buffer("a", new Lifespan(0, 4), 5), new Buffer("b", new Lifespan(0, 4), 5, Alignment: 6)]);
        var r = Planners.Solve(p, new PlannerOptions { Solver = SolverKind.BestFit, Alignment = 4 });
        PlannerTestData.AssertValid(p, r, extraAlignment: 4);
        Assert.All(r.Offsets, o => Assert.Equal(0, o % 4));
        Assert.Equal(0, r.Offsets[1] % 12);
    }

    [Theory]
    [InlineData(SolverKind.Search)]
    [InlineData(SolverKind.CpSat)]
    public void Decompose_solves_partitions_separately(SolverKind kind)
    {
        var p = ThreeParts();
        var split = Planners.Solve(p, new PlannerOptions { Solver = kind, TimeLimit = TimeSpan.FromSeconds(20), Decompose = true });
        var whole = Planners.Solve(p, new PlannerOptions { Solver = kind, TimeLimit = TimeSpan.FromSeconds(20), Decompose = false });
        PlannerTestData.AssertValid(p, split);
        PlannerTestData.AssertValid(p, whole);
        int partitions = Sweep.Run(p).Partitions.Count;
        Assert.True(partitions >= 3);
        Assert.Equal(partitions, split.Parts);
        Assert.Equal(1, whole.Parts);
        Assert.True(split.Optimal);
        Assert.Equal(p.LowerBound(), split.Peak);
    }

    [Fact]
    public void SymmetryBreaking_orders_identical_buffers()
    {
        // Two copies of the hard packing stacked in address: every buffer has an interchangeable
        // twin (same lifespan and size). With symmetry breaking each twin pair comes in input order.
        var hard = Hard();
        int n = hard.Count;
        var p = new Problem(hard.Buffers.Concat(hard.Buffers.Select(b => b with { Id = b.Id + "'" })).ToArray());
        Assert.Equal(n, CpSatPlanner.IdenticalGroupsOf(p).Sum(g => g.Count) / 2);
        var options = new PlannerOptions { Solver = SolverKind.CpSat, TimeLimit = TimeSpan.FromSeconds(5), Decompose = false, Threads = 1 };
        var on = Planners.Solve(p, options with { SymmetryBreaking = true });
        var off = Planners.Solve(p, options with { SymmetryBreaking = false });
        PlannerTestData.AssertValid(p, on);
        PlannerTestData.AssertValid(p, off);
        Assert.Equal("cpsat", on.Solver);
        Assert.Equal(2 * hard.LowerBound(), on.Peak);
        Assert.Equal(on.Peak, off.Peak);
        int InOrder(PlanResult r) => Enumerable.Range(0, n).Count(i => r.Offsets[i] < r.Offsets[i + n]);
        Assert.Equal(n, InOrder(on));
        // Without the constraint CP-SAT (one worker, fixed seed) leaves some twins swapped.
        Assert.True(InOrder(off) < n, "expected some twins out of input order without symmetry breaking");
    }

    [Fact]
    public void WarmStart_passes_the_best_fit_plan_to_CP_SAT()
    {
        var p = Hard();
        long greedy = Planners.Solve(p, new PlannerOptions { Solver = SolverKind.BestFit }).Peak;
        var options = new PlannerOptions { Solver = SolverKind.CpSat, TimeLimit = TimeSpan.FromSeconds(2), Threads = 1 };
        var hinted = Planners.Solve(p, options with { WarmStart = true });
        var cold = Planners.Solve(p, options with { WarmStart = false });
        Assert.Contains(hinted.Log, l => l.Contains($"hint peak {greedy}", StringComparison.Ordinal));
        Assert.Contains(cold.Log, l => l.Contains("no hint", StringComparison.Ordinal));
        PlannerTestData.AssertValid(p, hinted);
        PlannerTestData.AssertValid(p, cold);
        Assert.True(hinted.Peak <= greedy && cold.Peak <= greedy);
    }

    [Fact]
    public void SectionInference_prunes_search_nodes()
    {
        var p = PlannerTestData.Tight(3, 40);
        var on = Planners.Solve(p, new PlannerOptions { Solver = SolverKind.Search, TimeLimit = TimeSpan.FromSeconds(5), SectionInference = true });
        var off = Planners.Solve(p, new PlannerOptions { Solver = SolverKind.Search, TimeLimit = TimeSpan.FromSeconds(5), SectionInference = false });
        PlannerTestData.AssertValid(p, on);
        PlannerTestData.AssertValid(p, off);
        Assert.True(on.Optimal);
        Assert.True(on.Nodes < off.Nodes, $"{on.Nodes} nodes with inference, {off.Nodes} without");
    }

    [Fact]
    public void One_thread_and_a_fixed_seed_give_the_same_plan()
    {
        var p = Hard();
        var options = new PlannerOptions { Solver = SolverKind.CpSat, TimeLimit = TimeSpan.FromSeconds(2), Threads = 1, Seed = 3 };
        var a = Planners.Solve(p, options);
        var b = Planners.Solve(p, options);
        Assert.Equal(a.Offsets, b.Offsets);
        Assert.True(a.Optimal);
    }

    [Fact]
    public void SearchThreads_split_the_preorders_and_one_thread_is_deterministic()
    {
        var p = PlannerTestData.Tight(3, 40);
        var options = new PlannerOptions { Solver = SolverKind.Search, TimeLimit = TimeSpan.FromSeconds(5) };
        var a = Planners.Solve(p, options);
        var b = Planners.Solve(p, options);
        Assert.Equal(a.Nodes, b.Nodes);
        Assert.Equal(a.Offsets, b.Offsets);
        Assert.DoesNotContain(a.Log, l => l.Contains("threads", StringComparison.Ordinal));
        var parallel = Planners.Solve(p, options with { SearchThreads = 2 });
        PlannerTestData.AssertValid(p, parallel);
        Assert.True(parallel.Optimal);
        Assert.Contains(parallel.Log, l => l.Contains("2 threads", StringComparison.Ordinal));
        Assert.Throws<MemoException>(() => Planners.Solve(p, options with { SearchThreads = 0 }));
    }

    [Fact]
    public void Negative_time_limit_is_a_user_error() =>
        Assert.Throws<MemoException>(() => Planners.Solve(Hard(), new PlannerOptions { TimeLimit = TimeSpan.FromSeconds(-1) }));
}
