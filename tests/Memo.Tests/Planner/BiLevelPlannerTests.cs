using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Tests.Planner;

public class BiLevelPlannerTests
{
    private static PlannerOptions Options(SolverKind kind) => new() { Solver = kind, TimeLimit = TimeSpan.FromSeconds(1), Threads = 2 };

    [Theory]
    [InlineData(SolverKind.BestFit)]
    [InlineData(SolverKind.Search)]
    [InlineData(SolverKind.CpSat)]
    public void Eight_identical_layers_compose_into_a_valid_plan(SolverKind kind)
    {
        var p = PlannerTestData.Layered(layers: 8, perLayer: 10);
        var r = BiLevelPlanner.Solve(p, Options(kind), Planners.Create(kind));
        PlannerTestData.AssertValid(p, r.Plan);
        // One level-1 solve per phase, shared by all eight layers.
        Assert.Equal(2, r.Inner.Count);
        Assert.All(r.Inner, i => Assert.Equal(8, i.Instances));
        Assert.All(r.Inner, i => Assert.Equal(10, i.BuffersPerInstance));
        // Level 2: 16 blocks + 8 saved activations + the persistent buffer.
        Assert.Equal(16 + 8 + 1, r.Outer.Offsets.Length);
        Assert.Equal(r.Outer.Peak, r.Plan.Peak);
    }

    [Fact]
    public void Composed_offsets_are_block_offset_plus_inner_offset()
    {
        var p = PlannerTestData.Layered(layers: 3, perLayer: 6);
        var r = BiLevelPlanner.Solve(p, Options(SolverKind.Search), Planners.Create(SolverKind.Search));
        var fwd = r.Inner.Single(i => i.Group == "fwd").Result;
        // Every layer's forward buffers keep the same layout relative to each other.
        for (int l = 0; l < 3; l++)
        {
            var offsets = Enumerable.Range(0, p.Count).Where(i => p.Buffers[i].Layer == l && p.Buffers[i].Group == "fwd")
                .Select(i => r.Plan.Offsets[i]).ToArray();
            long block = offsets.Min() - fwd.Offsets.Min();
            Assert.Equal(fwd.Offsets.Select(o => o + block).Order(), offsets.Order());
        }
    }

    [Fact]
    public void Composition_is_never_below_the_flat_lower_bound_and_flat_is_available()
    {
        var p = PlannerTestData.Layered(layers: 8, perLayer: 10, seed: 3);
        var composed = BiLevelPlanner.Solve(p, Options(SolverKind.Auto), Planners.Create(SolverKind.Auto)).Plan;
        var flat = Planners.Solve(p, Options(SolverKind.Auto));
        PlannerTestData.AssertValid(p, composed);
        PlannerTestData.AssertValid(p, flat);
        Assert.True(composed.Peak >= flat.LowerBound);
        Assert.Equal(Sweep.MaxLoad(p), composed.LowerBound);
        Assert.StartsWith("bilevel/", composed.Solver, StringComparison.Ordinal);
    }

    [Fact]
    public void Layers_with_different_shapes_get_their_own_inner_solves()
    {
        // Layer 1's forward buffers are twice as large: two forward shapes, one backward shape.
        var p = PlannerTestData.Layered(layers: 3, perLayer: 5);
        var changed = p.Buffers.Select(b => b.Layer == 1 && b.Group == "fwd" ? b with { Size = 2 * b.Size } : b).ToArray();
        var q = new Problem(changed);
        var r = BiLevelPlanner.Solve(q, Options(SolverKind.BestFit), Planners.Create(SolverKind.BestFit));
        PlannerTestData.AssertValid(q, r.Plan);
        Assert.Equal(3, r.Inner.Count);
        Assert.Equal(new[] { 1, 2 }, r.Inner.Where(i => i.Group == "fwd").Select(i => i.Instances).Order());
    }

    [Fact]
    public void Alignment_carries_through_both_levels()
    {
        var p = PlannerTestData.Layered(layers: 4, perLayer: 6);
        var aligned = new Problem(p.Buffers.Select((b, i) => i % 3 == 0 ? b with { Alignment = 2048 } : b).ToArray());
        var r = BiLevelPlanner.Solve(aligned, Options(SolverKind.BestFit) with { Alignment = 256 }, Planners.Create(SolverKind.BestFit));
        PlannerTestData.AssertValid(aligned, r.Plan, extraAlignment: 256);
    }

    [Fact]
    public void Buffers_without_a_layer_are_planned_at_level_two()
    {
        var p = new Problem(
        [
            new Buffer("x", new Lifespan(0, 10), 8),
            new Buffer("l0a", new Lifespan(0, 3), 4) { Layer = 0, Group = "fwd" },
            new Buffer("l0b", new Lifespan(2, 5), 4) { Layer = 0, Group = "fwd" },
            new Buffer("l1a", new Lifespan(5, 8), 4) { Layer = 1, Group = "fwd" },
            new Buffer("l1b", new Lifespan(7, 10), 4) { Layer = 1, Group = "fwd" },
        ]);
        var r = BiLevelPlanner.Solve(p, Options(SolverKind.Search), Planners.Create(SolverKind.Search));
        PlannerTestData.AssertValid(p, r.Plan);
        Assert.Single(r.Inner);
        Assert.Equal(8, r.Inner[0].Result.Peak);
        Assert.Equal(16, r.Plan.Peak);  // x (8) beside one 8-byte block at a time
        Assert.True(r.Plan.Optimal);
    }
}
