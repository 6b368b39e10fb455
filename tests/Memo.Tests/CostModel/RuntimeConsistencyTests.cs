using Memo.CostModel;
using Memo.CostModel.Cpu;
using Memo.Cpu;
using Memo.Model;
using Memo.Model.Memory;

namespace Memo.Tests.CostModel;

/// <summary>
/// <c>memo plan --gpu cpu</c> against the CPU engine: the planned device peak of every policy and strategy equals the
/// device peak the engine measures over one real training step, and the planned host store what it fills.
/// </summary>
public class RuntimeConsistencyTests
{
    public static TheoryData<string, int> Shapes => new()
    {
        { "llama-small", 64 },
        { "llama-small", 192 },
        { "gpt2-tiny", 64 },
        { "gpt2-tiny", 200 },
    };

    /// <summary>One training step (forward, loss, backward) of the engine; returns its measured memory figures.</summary>
    private static StepMemoryMetrics RunStep(ModelConfig cfg, int seq, MemoryOptions options)
    {
        using var model = new Transformer(cfg, 1, seq, null, options);
        Initializer.Initialize(model, 3);
        var tokens = Enumerable.Range(0, seq + 1).Select(i => (i * 37 + 11) % cfg.VocabSize).ToArray();
        double loss = model.Step(1, seq, tokens.AsSpan(0, seq), tokens.AsSpan(1, seq), backward: true, 1f / seq);
        Assert.True(double.IsFinite(loss));
        return model.LastMetrics;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Planned_device_peak_equals_the_measured_peak_for_every_policy(string name, int seq)
    {
        var cfg = Presets.Resolve(name);
        int layers = cfg.NumLayers, threads = WorkerPool.Default.Threads;
        foreach (var policy in Enum.GetValues<PolicyKind>())
        {
            var planned = CpuRuntime.Memory(cfg, 1, seq, CpuRuntime.PolicyOf(policy, layers), threads);
            var measured = RunStep(cfg, seq, new MemoryOptions { Policy = policy, Alpha = policy == PolicyKind.Memo ? 1.0 : null });
            Assert.Equal(planned.Peak, measured.DevicePeakBytes);
            Assert.Equal(planned.HostBytes, measured.SwappedBytes);
            Assert.Equal(planned.HostBytes, measured.HostPeakBytes);
            // Parameters, gradients and the two AdamW moments are fp32 copies of the parameter table, counted here
            // from the table itself (element counts of every tensor), not from the memory layout.
            long parameterBytes = new ParameterLayout(cfg).Specs.Sum(t => t.Elements) * sizeof(float);
            Assert.Equal(parameterBytes, planned.Parameters);
            Assert.Equal(parameterBytes, planned.Gradients);
            Assert.Equal(2 * parameterBytes, planned.OptimizerState);
            Assert.Equal(MemoryLayout.Build(cfg, 1, seq, policy, threads).ByCategory[MemoryCategory.Parameters], planned.Parameters);
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_strategy_planned_on_the_cpu_runs_at_its_planned_peak(string name, int seq)
    {
        var cfg = Presets.Resolve(name);
        var request = new PlanRequest { Model = cfg, Seq = seq, Gpus = 1, Device = DeviceProfile.Cpu(), Engine = CpuEngineModel.Instance };
        var expected = new Dictionary<Strategy, PolicyKind>
        {
            [Strategy.Memo] = PolicyKind.Memo,
            [Strategy.Megatron] = PolicyKind.Keep,       // fits without recomputation: Megatron's selective recomputation keeps everything
            [Strategy.DeepSpeed] = PolicyKind.Recompute, // full activation checkpointing on one device
            [Strategy.Keep] = PolicyKind.Keep,
        };
        foreach (var strategy in StrategySearch.AllStrategies)
        {
            var plan = StrategySearch.Plan(request, strategy);
            Assert.True(plan.Fits, plan.Reason);
            var policy = CpuRuntime.PolicyFor(plan.Policy!, cfg.NumLayers);
            Assert.Equal(expected[strategy], policy);
            double? alpha = policy == PolicyKind.Memo ? CpuRuntime.AlphaOf(plan.Policy!, cfg.NumLayers) : null;
            var measured = RunStep(cfg, seq, new MemoryOptions { Policy = policy, Alpha = alpha });
            Assert.Equal(plan.DevicePeakBytes, measured.DevicePeakBytes);
            Assert.Equal(plan.Memory!.HostBytes, measured.SwappedBytes); // what goes to the host in the step, at the planned alpha
            Assert.True(plan.StepSeconds > 0);
        }
    }

    [Fact]
    public void Memo_at_a_fraction_of_the_tokens_fills_the_planned_host_store()
    {
        var cfg = Presets.Resolve("llama-small");
        const int seq = 128;
        var planned = CpuRuntime.Memory(cfg, 1, seq, CpuRuntime.PolicyOf(PolicyKind.Memo, cfg.NumLayers, 0.5), WorkerPool.Default.Threads);
        Assert.Equal(MemoryReport.HostBytes(cfg, 1, seq, PolicyKind.Memo, 0.5), planned.HostBytes);
        var measured = RunStep(cfg, seq, new MemoryOptions { Policy = PolicyKind.Memo, Alpha = 0.5, HostBudget = planned.HostBytes });
        Assert.Equal(planned.Peak, measured.DevicePeakBytes);
        Assert.Equal(planned.HostBytes, measured.HostPeakBytes);
        Assert.Equal(planned.HostBytes, measured.SwappedBytes);
        Assert.Equal(seq / 2, measured.RecomputedTokens / (cfg.NumLayers - 2));
    }

    [Fact]
    public void A_memo_plan_bound_by_host_memory_runs_at_its_alpha_and_peak()
    {
        var cfg = Presets.Resolve("llama-small");
        const int seq = 256;
        int threads = WorkerPool.Default.Threads;
        // Host memory (shared with the device on the CPU) for the swap arena plus about 40% of the swapped tokens.
        var swap = CpuRuntime.Memory(cfg, 1, seq, MemoryPolicy.Swap(cfg.NumLayers), threads);
        long skeleton = (cfg.NumLayers - 2) * swap.LayerSkeletonBytes;
        long room = swap.Peak + skeleton + (long)(0.4 * (cfg.NumLayers - 2) * swap.LayerTokenLocalBytes);
        var cpu = DeviceProfile.Cpu() with { HostMemoryBytes = room, HostReservedBytes = 0, DeviceMemoryBytes = room };
        var plan = StrategySearch.Plan(new PlanRequest { Model = cfg, Seq = seq, Gpus = 1, Device = cpu, Engine = CpuEngineModel.Instance }, Strategy.Memo);
        Assert.True(plan.Fits, plan.Reason);
        Assert.InRange(plan.Alpha!.Value, 0.35, 0.4);
        Assert.Contains("host memory", plan.Reason, StringComparison.Ordinal);
        var measured = RunStep(cfg, seq, new MemoryOptions { Policy = PolicyKind.Memo, Alpha = plan.Alpha });
        Assert.Equal(plan.DevicePeakBytes, measured.DevicePeakBytes);
        Assert.Equal(plan.Memory!.HostBytes, measured.SwappedBytes);
        Assert.Equal((cfg.NumLayers - 2) * (seq - (long)Math.Floor(plan.Alpha.Value * seq)), measured.RecomputedTokens);
    }

    [Fact]
    public void The_cpu_time_model_adds_what_each_policy_runs_on_top_of_keep()
    {
        var cfg = Presets.Resolve("llama-small");
        int L = cfg.NumLayers;
        const long seq = 2048;
        // Round rates, so every part is easy to check by hand.
        var dev = DeviceProfile.Cpu() with
        {
            PeakFp32Flops = 100e9, GemmEfficiency = 1, AttentionForwardEfficiency = 0.5, AttentionBackwardEfficiency = 0.25,
            MemoryBandwidth = 10e9, HostLinkBandwidth = 1e9,
        };
        var keep = CpuTimeModel.Step(cfg, 1, seq, MemoryPolicy.Keep, dev, 1);
        var recompute = CpuTimeModel.Step(cfg, 1, seq, MemoryPolicy.Recompute(L), dev, 1);
        var memo0 = CpuTimeModel.Step(cfg, 1, seq, CpuRuntime.PolicyOf(PolicyKind.Memo, L, 0.0), dev, 1);
        var memo1 = CpuTimeModel.Step(cfg, 1, seq, CpuRuntime.PolicyOf(PolicyKind.Memo, L, 1.0), dev, 1);
        double layer = CpuTimeModel.LayerForward(cfg, 1, seq, dev);
        var shape = new LayerShape(cfg, Precision.Fp32);
        double attention = shape.AttentionFlops(1, seq) / 50e9;
        double gemm = shape.GemmFlopsPerToken * seq / 100e9;

        Assert.Equal(0, keep.Recompute);
        Assert.Equal(L * layer, keep.Forward - CpuTimeModel.Traffic(cfg).OutsideForward * 4 * seq / 10e9, 9);
        Assert.Equal(L * layer, recompute.Recompute, 9);
        Assert.Equal(keep.Step + recompute.Recompute, recompute.Step, 9);
        // Memo at alpha 0 re-runs the swapped layers' token-local ops for every token: everything but attention.
        Assert.Equal((L - 2) * (layer - attention), memo0.Recompute, 9);
        Assert.Equal(0, memo1.Recompute);
        Assert.True(layer - attention > gemm);
        // Whole layers swapped: each swapped layer's saved set goes out and comes back once.
        var (skel, local) = ActivationInventory.SavedPerToken(cfg);
        Assert.Equal(2 * (L - 2) * (skel + local) * 4 * seq, memo1.SwapBytes);
        Assert.Equal(2 * (L - 2) * skel * 4 * seq, memo0.SwapBytes);
        // Backward: twice the GEMMs, attention at 2.5x its forward FLOPs (at half the forward rate here), the passes' traffic.
        var traffic = CpuTimeModel.Traffic(cfg);
        Assert.Equal(L * (2 * gemm + 5 * attention + traffic.LayerBackward * 4 * seq / 10e9) + traffic.OutsideBackward * 4 * seq / 10e9, keep.Backward, 9);
    }

    [Fact]
    public void Measuring_at_the_workload_fills_every_rate_the_cpu_time_model_uses()
    {
        var notes = new List<string>();
        var cfg = Presets.Resolve("llama-tiny");
        var p = new CpuMeasure(copyBytes: 4L << 20, minSeconds: 0.005, warmSeconds: 0.01)
            .Measure(DeviceProfile.Cpu(), new MeasureWorkload(cfg, 1, 256, WorkerPool.Default.Threads), notes);
        foreach (var f in new[] { "gemm_efficiency", "attention_forward_efficiency", "attention_backward_efficiency", "memory_bandwidth", "host_link_bandwidth" })
            Assert.Contains(f, p.Measured);
        Assert.InRange(p.GemmEfficiency, 1e-6, 1.0);
        Assert.InRange(p.AttentionForwardEfficiency, 1e-6, 1.0);
        Assert.InRange(p.AttentionBackwardEfficiency, 1e-6, 1.0);
        Assert.True(p.MemoryBandwidth > 0 && double.IsFinite(p.MemoryBandwidth));
        Assert.True(p.HostLinkBandwidth > 0 && double.IsFinite(p.HostLinkBandwidth));
        Assert.Contains(notes, n => n.Contains("llama-tiny's layer and head shapes", StringComparison.Ordinal));
        Assert.Contains(notes, n => n.Contains("at 256 tokens, 4/2 heads of 16", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(2, null, "must be the number of ranks, --cp x --dp = 1")]
    [InlineData(1, 2, "no tensor or pipeline parallelism")]
    public void The_cpu_engine_runs_one_process_per_rank_without_tensor_parallelism(int gpus, int? tp, string expected)
    {
        var r = new PlanRequest { Model = Presets.Resolve("llama-small"), Seq = 1024, Gpus = gpus, Tp = tp, Device = DeviceProfile.Cpu(), Engine = CpuEngineModel.Instance };
        var e = Assert.Throws<MemoException>(() => StrategySearch.Validate(r));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_gpt2_sequence_beyond_its_positions_is_not_runnable_on_the_cpu()
    {
        var r = new PlanRequest { Model = Presets.Resolve("gpt2-tiny"), Seq = 2048, Gpus = 1, Device = DeviceProfile.Cpu(), Engine = CpuEngineModel.Instance };
        var p = StrategySearch.Plan(r, Strategy.Keep);
        Assert.False(p.Fits);
        Assert.StartsWith("not runnable", p.Reason, StringComparison.Ordinal);
        Assert.Equal(1024, StrategySearch.MaxSeq(r, Strategy.Keep).MaxSeq);
    }
    [Fact]
    public void Max_seq_over_three_ranks_searches_lengths_that_split_into_six_chunks()
    {
        // --cp 3 needs T divisible by 6: no multiple of 1K is, so a 1K-step search found nothing at all.
        var cpu = DeviceProfile.Cpu() with { DeviceMemoryBytes = 1L << 30, HostMemoryBytes = 64L << 30, HostReservedBytes = 0 };
        var r = new PlanRequest { Model = Presets.Resolve("llama-small"), Seq = 1, Gpus = 3, Cp = 3, Device = cpu, Engine = CpuEngineModel.Instance };
        var (max, plan) = StrategySearch.MaxSeq(r, Strategy.Keep);
        Assert.True(max > 0, $"nothing found: {plan.Reason}");
        Assert.Equal(0, max % 6);
        Assert.True(plan.Fits);
        Assert.Equal(3, plan.Layout!.Value.Cp);
        // One step longer does not fit (the search stops at the boundary), and one step is 3K here.
        Assert.Equal(3072, StrategySearch.MaxSeqStep(3));
        Assert.False(StrategySearch.Plan(r with { Seq = max + 3072 }, Strategy.Keep).Fits);
    }
}
