using System.Diagnostics;
using Memo.Cpu;
using Memo.Model;
using Memo.Model.Memory;
using Memo.Planner;
using Xunit.Abstractions;

namespace Memo.Tests.Memory;

/// <summary>
/// The planned device memory of an iteration: every buffer has a lifespan in the iteration timeline, the
/// offsets come from the planner (validated), the arena is the planned peak, close to the lower bound, and a
/// real step measures exactly the planned peak.
/// </summary>
public sealed class MemoryPlanTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models => new() { "llama-small", "llama-7b", "gpt2", "paper-7b" };

    private static readonly int[] Seqs = [1024, 4096, 16384, 65536];

    [Theory]
    [MemberData(nameof(Models))]
    public void Plans_are_valid_and_within_one_percent_of_the_lower_bound(string model)
    {
        var cfg = Presets.Resolve(model);
        foreach (var policy in Enum.GetValues<PolicyKind>())
        {
            foreach (int seq in Seqs)
            {
                var clock = Stopwatch.StartNew();
                var layout = MemoryLayout.Build(cfg, 1, seq, policy, 4);
                double ms = clock.Elapsed.TotalMilliseconds;
                var problem = layout.Problem;
                long[] offsets = Enumerable.Range(0, layout.Buffers.Count).Select(layout.OffsetOf).ToArray();
                var check = PlanValidator.Validate(problem, Solution.FromOffsets(problem, offsets), MemoryLayout.Align);
                Assert.True(check.IsOk, check.Message);
                Assert.Equal(problem.LowerBound(), layout.LowerBound);
                Assert.Equal(Solution.PeakOf(problem, offsets), layout.TotalBytes);
                Assert.Equal(layout.LowerBound, layout.LiveByCategory(layout.PeakTime).Values.Sum());
                double ratio = (double)layout.TotalBytes / layout.LowerBound;
                long sum = layout.Buffers.Sum(b => b.Bytes);
                output.WriteLine($"{model} {policy,-9} T={seq,6}: {layout.Buffers.Count,4} buffers, peak {layout.TotalBytes,14:N0} lower bound {layout.LowerBound,14:N0} ratio {ratio:0.00000} (no reuse {sum,15:N0}) {layout.Solver} {ms:0.0} ms");
                Assert.True(layout.TotalBytes <= 1.01 * layout.LowerBound, $"{model} {policy} T={seq}: peak {layout.TotalBytes} > 1.01 x lower bound {layout.LowerBound}");
            }
        }
    }

    public static TheoryData<ModelFamily, PolicyKind> StepCases()
    {
        var data = new TheoryData<ModelFamily, PolicyKind>();
        foreach (var family in new[] { ModelFamily.Llama, ModelFamily.Gpt2 })
            foreach (var policy in Enum.GetValues<PolicyKind>()) data.Add(family, policy);
        return data;
    }

    [Theory]
    [MemberData(nameof(StepCases))]
    public void A_training_step_measures_exactly_the_planned_peak(ModelFamily family, PolicyKind policy)
    {
        var cfg = PolicyEquivalenceTests.Config(family, layers: 4);
        const int batch = 2, seq = 64;
        var options = new MemoryOptions { Policy = policy, Alpha = policy == PolicyKind.Memo ? 0.5 : null, Poison = true };
        using var model = new Transformer(cfg, batch, seq, null, options);
        var layout = model.DeviceLayout;
        Assert.Equal(layout.TotalBytes, model.Arena.Capacity);
        Assert.True(layout.TotalBytes < layout.Buffers.Sum(b => b.Bytes), "buffers with disjoint lifespans share memory");
        int persistent = layout.Buffers.Count(b => b.Persistent);
        Assert.Equal(persistent, model.Arena.LiveRegions);
        Initializer.Initialize(model, 7);
        var (x, y) = PolicyEquivalenceTests.Data(batch * seq, cfg.VocabSize, 11);
        for (int step = 0; step < 2; step++)
        {
            model.ZeroGrads();
            double loss = model.Step(batch, seq, x, y, backward: true, 1f / (batch * seq));
            Assert.True(double.IsFinite(loss));
            Assert.Equal(layout.TotalBytes, model.Arena.PeakBytes);
            Assert.Equal(layout.TotalBytes, model.LastMetrics.DevicePeakBytes);
            Assert.Equal(layout.LowerBound, model.Arena.PeakLiveBytes);   // the plan's lower bound is the most the runtime holds at once
            Assert.Equal(persistent, model.Arena.LiveRegions);            // every buffer of the iteration was released
        }
        // A forward-only step releases what it acquired, too.
        model.Step(batch, seq, x, y, backward: false, 1f);
        Assert.Equal(persistent, model.Arena.LiveRegions);
        output.WriteLine($"{family} {policy}: {layout.Buffers.Count} buffers, planned = measured peak {layout.TotalBytes:N0} bytes, lower bound {layout.LowerBound:N0}, without reuse {layout.Buffers.Sum(b => b.Bytes):N0}");
    }

    [Fact]
    public void Lifespans_follow_the_iteration()
    {
        var cfg = Presets.Resolve("llama-small");
        var keep = MemoryLayout.Build(cfg, 1, 256, PolicyKind.Keep, 2);
        var t = keep.Timeline;
        DeviceBuffer B(MemoryLayout l, string name) => l.Buffers.Single(b => b.Name == name);
        // A layer's kept set: its input from the previous layer's MLP phase, the rest from its own forward, all until its backward.
        Assert.Equal((t.Mlp(1), t.Backward(2) + 1), (B(keep, "act.2.Input").Lower, B(keep, "act.2.Input").Upper));
        Assert.Equal((t.Attention(2), t.Backward(2) + 1), (B(keep, "act.2.Qkv").Lower, B(keep, "act.2.Qkv").Upper));
        Assert.Equal(IterationTimeline.Embed, B(keep, "act.0.Input").Lower);
        Assert.Equal(2, B(keep, "act.2.Qkv").Layer);
        // Backward workspaces are not live in forward; the logits only in the head.
        Assert.Equal(t.Backward(cfg.NumLayers - 1), B(keep, "d_up").Lower);
        Assert.Equal((t.Head, t.Head + 1), (B(keep, "logits").Lower, B(keep, "logits").Upper));
        Assert.True(B(keep, "tmp").Upper <= t.FinalNorm);
        Assert.True(B(keep, "weights").Persistent && B(keep, "weights").Upper == t.End);
        // Swap staging lives until the copies are drained at the end of the step.
        var swap = MemoryLayout.Build(cfg, 1, 256, PolicyKind.Swap, 2);
        Assert.Equal(t.StepEnd, B(swap, "act.slot1.MlpUp").Upper);
        Assert.Equal(-1, B(swap, "act.slot1.MlpUp").Layer);
        Assert.Equal("backward(0)", t.PhaseName(t.Backward(0)));
        Assert.Equal("mlp(3)", t.PhaseName(t.Mlp(3)));
        // The plan really reuses memory: d_up takes addresses that forward-only buffers held.
        Assert.True(keep.TotalBytes < keep.Buffers.Sum(b => b.Bytes));
    }

    [Fact]
    public void The_arena_refuses_overlapping_regions()
    {
        using var arena = new Memo.Backends.DeviceArena(4096, poison: true);
        arena.Acquire(0, 1024);
        arena.Acquire(2048, 1024);
        Assert.Throws<InvalidOperationException>(() => arena.Acquire(1000, 100));   // reaches into [0, 1024)
        Assert.Throws<InvalidOperationException>(() => arena.Acquire(1500, 1000));  // reaches into [2048, 3072)
        Assert.Throws<InvalidOperationException>(() => arena.Acquire(0, 16));       // same start
        Assert.Throws<InvalidOperationException>(() => arena.Acquire(1024, 2048));  // covers [2048, 3072)
        arena.Acquire(1024, 1024);                                                   // the gap exactly
        Assert.Equal(3, arena.LiveRegions);
        Assert.Throws<InvalidOperationException>(() => arena.Release(1024, 512));   // wrong size
        arena.Release(1024, 1024);
        arena.Acquire(1500, 500);
        Assert.Equal(3072, arena.PeakBytes);
    }

    public static TheoryData<string> FragmentationModels => new() { "llama-small", "llama-7b" };

    [Theory]
    [MemberData(nameof(FragmentationModels))]
    public void The_caching_allocator_reserves_at_least_the_planned_peak(string model)
    {
        var cfg = Presets.Resolve(model);
        foreach (var policy in new[] { PolicyKind.Keep, PolicyKind.Memo })
        {
            foreach (int seq in new[] { 4096, 16384, 65536 })
            {
                var layout = MemoryLayout.Build(cfg, 1, seq, policy, 4);
                var sim = CachingAllocatorSim.Run(layout.Problem);
                long beyond = layout.TotalBytes - layout.ByCategory[MemoryCategory.Parameters] - layout.ByCategory[MemoryCategory.Gradients] - layout.ByCategory[MemoryCategory.OptimizerState];
                output.WriteLine($"{model} {policy,-4} T={seq,6}: lower bound {Gib(layout.LowerBound)}, planned {Gib(layout.TotalBytes)}, caching allocator reserved {Gib(sim.ReservedPeak)} " +
                    $"(+{Gib(sim.ReservedPeak - layout.TotalBytes)}, {(double)sim.ReservedPeak / layout.TotalBytes:0.000}x; {(double)(sim.ReservedPeak - layout.TotalBytes) / beyond:P1} of the non-parameter bytes), allocated {Gib(sim.AllocatedPeak)}, {sim.Segments} segments");
                Assert.True(sim.ReservedPeak >= layout.TotalBytes, $"{model} {policy} T={seq}: reserved {sim.ReservedPeak} < planned {layout.TotalBytes}");
                Assert.True(sim.AllocatedPeak >= layout.LowerBound);
            }
        }
    }

    private static string Gib(long bytes) => $"{bytes / (double)(1L << 30):0.000} GiB";

    [Fact]
    public void Planning_a_7b_iteration_at_128K_is_fast()
    {
        var cfg = Presets.Resolve("llama-7b");
        Assert.Equal(32, cfg.NumLayers);
        const int seq = 131072;
        foreach (var policy in Enum.GetValues<PolicyKind>())
        {
            var clock = Stopwatch.StartNew();
            var layout = MemoryLayout.Build(cfg, 1, seq, policy, 16, cached: false);
            double seconds = clock.Elapsed.TotalSeconds;
            Assert.True(layout.TotalBytes <= 1.01 * layout.LowerBound);
            var bi = BiLevelPlanner.Solve(layout.Problem, new PlannerOptions { Solver = SolverKind.BestFit, TimeLimit = TimeSpan.FromSeconds(600) }, new BestFitPlanner());
            Assert.True(PlanValidator.Validate(layout.Problem, bi.Plan.ToSolution()).IsOk);
            output.WriteLine($"llama-7b {policy,-9} T=131072: {layout.Buffers.Count} buffers planned in {seconds * 1000:0.0} ms ({layout.Solver}), peak {layout.TotalBytes:N0} = {(double)layout.TotalBytes / layout.LowerBound:0.00000} x lower bound; " +
                $"bi-level best-fit {bi.Plan.Peak:N0} ({(double)bi.Plan.Peak / layout.LowerBound:0.00000} x) in {bi.Plan.Seconds * 1000:0.0} ms");
        }
    }
}
