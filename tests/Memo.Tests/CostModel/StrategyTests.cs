using Memo.CostModel;

namespace Memo.Tests.CostModel;

/// <summary>Strategy verdicts and alpha selection on the paper's setting (8 x A800-80G, 2 TiB host per node).</summary>
public class StrategyTests
{
    private static PlanRequest Paper(string model, long seq, int? tp = null) => new()
    {
        Model = Presets.Resolve(model), Seq = seq, Gpus = 8, Device = DeviceProfile.A800, Tp = tp,
    };

    [Theory]
    [InlineData("paper-7b")]
    [InlineData("llama-7b")]
    public void At_1M_on_8_A800_memo_fits_megatron_and_keep_do_not_and_deepspeed_needs_cpu_checkpointing(string model)
    {
        var plans = StrategySearch.PlanAll(Paper(model, 1 << 20), StrategySearch.AllStrategies).ToDictionary(p => p.Strategy);
        var memo = plans[Strategy.Memo];
        Assert.True(memo.Fits, memo.Reason);
        Assert.True(memo.DevicePeakBytes <= memo.DeviceCapacityBytes);
        Assert.InRange(memo.Mfu!.Value, 0.40, 0.60);
        Assert.InRange(memo.Alpha!.Value, 0.0, 1.0);
        foreach (var s in new[] { Strategy.Megatron, Strategy.Keep })
        {
            Assert.False(plans[s].Fits, $"{s}: {plans[s].Reason}");
            Assert.StartsWith("out of device memory", plans[s].Reason, StringComparison.Ordinal);
            Assert.True(plans[s].DevicePeakBytes > plans[s].DeviceCapacityBytes);
            Assert.Null(plans[s].Mfu);
        }
        // DeepSpeed with its checkpoints in host memory and a chunked loss fits; without cpu_checkpointing it does not.
        var ds = plans[Strategy.DeepSpeed];
        Assert.True(ds.Fits, ds.Reason);
        Assert.True(ds.Features.CpuCheckpointing);
        Assert.Contains("cpu_checkpointing", ds.FeatureList);
        var without = StrategySearch.Plan(Paper(model, 1 << 20) with { Without = new HashSet<string> { FeatureNames.CpuCheckpointing } }, Strategy.DeepSpeed);
        Assert.False(without.Fits, without.Reason);
        Assert.False(without.Features.CpuCheckpointing);
    }

    [Fact]
    public void Model_flops_and_both_mfu_conventions_match_a_derivation_by_hand()
    {
        var memo = StrategySearch.Plan(Paper("paper-7b", 1 << 20, tp: 8), Strategy.Memo);
        Assert.True(memo.Fits, memo.Reason);
        Assert.Equal(new ParallelLayout(8, 1, 1), memo.Layout);

        // paper-7b: h = 4096, 32 layers, ffn 4h, vocab 50257, s = 2^20 tokens, batch 1. By hand (not from the inventory):
        //   GEMMs per token and layer, forward: 2 x (h x 3h [qkv] + h x h [out] + h x 4h [fc] + 4h x h [proj]) = 24 h^2
        //   causal attention per layer, forward: QK^T and PV, 2 FLOPs per multiply-add, s^2/2 pairs each: 2 x 2 x h x s^2 / 2 = 2 h s^2
        //   LM head per token: 2 h V
        //   a step: 3 x forward (backward = 2 x forward), recomputation not counted.
        const double h = 4096, layers = 32, vocab = 50257, s = 1 << 20;
        double causal = 3 * (layers * (24 * h * h * s + 2 * h * s * s) + 2 * h * vocab * s);
        double full = causal + 3 * layers * 2 * h * s * s;       // the other half of the score matrix
        Assert.Equal(causal, memo.ModelFlops, causal * 1e-12);
        Assert.Equal(full, memo.ModelFlopsFullAttention, full * 1e-12);
        // Both conventions divide the same step time: their ratio is the FLOP ratio, about 1.95 at 1M (attention dominates).
        Assert.Equal(full / causal, memo.MfuFullAttention!.Value / memo.Mfu!.Value, 1e-9);
        Assert.InRange(full / causal, 1.9, 2.0);

        // An independent upper bound: the step cannot be shorter than the attention kernels alone at the assumed
        // efficiencies (0.70 forward, 0.60 backward at 2.5x the forward FLOPs), each GPU doing 1/8 of them.
        double attnPerGpu = layers * 2 * h * s * s / 8;
        double attentionOnly = attnPerGpu / (312e12 * 0.70) + 2.5 * attnPerGpu / (312e12 * 0.60);
        Assert.True(memo.StepSeconds > attentionOnly);
        Assert.True(memo.Mfu < causal / (attentionOnly * 8 * 312e12));
        Assert.InRange(memo.Mfu!.Value, 0.49, 0.56); // the paper reports 52.3%
    }

    [Fact]
    public void Alpha_stays_in_bounds_over_a_sweep()
    {
        foreach (long seq in StrategySearch.ParseLengths("8K..2M"))
        {
            var p = StrategySearch.Plan(Paper("paper-7b", seq, tp: 8), Strategy.Memo);
            Assert.NotNull(p.Policy?.Alphas);
            foreach (var a in p.Policy!.Alphas!) Assert.InRange(a, 0.0, 1.0);
            Assert.Equal(1.0, p.Policy.Alphas![^1]); // last two layers stay on the device
            Assert.Equal(1.0, p.Policy.Alphas![^2]);
        }
    }

    [Fact]
    public void Long_compute_hides_a_whole_layer_copy()
    {
        var p = StrategySearch.Plan(Paper("paper-7b", 512 << 10, tp: 8), Strategy.Memo);
        Assert.True(p.Fits, p.Reason);
        Assert.Equal(1.0, p.Alpha);
        Assert.Equal(0.0, p.Time!.SwapExposed);
        Assert.Equal(0.0, p.Time.Recompute);
        Assert.Contains("copy hidden", p.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Short_compute_bounds_alpha_by_the_host_link()
    {
        var r = Paper("paper-7b", 64 << 10, tp: 8);
        var p = StrategySearch.Plan(r, Strategy.Memo);
        Assert.True(p.Fits, p.Reason);
        Assert.InRange(p.Alpha!.Value, 0.01, 0.99);
        Assert.Contains("host link", p.Reason, StringComparison.Ordinal);
        // The chosen alpha's copy takes exactly the layer's forward time: hidden, with nothing to spare.
        var m = p.Memory!;
        double copy = (m.LayerSkeletonBytes + p.Alpha.Value * m.LayerTokenLocalBytes) / r.Device.ConcurrentHostLinkBandwidth;
        double forward = TimeModel.Layer(new LayerShape(r.Model, Precision.Bf16Mixed), p.Layout!.Value, r.Device, 1, r.Seq).Forward;
        Assert.Equal(forward, copy, forward * 1e-4);
        Assert.Equal(0.0, p.Time!.SwapExposed, 1e-9);
        Assert.True(p.Time.Recompute > 0);
    }

    [Fact]
    public void Host_memory_binds_alpha_at_very_long_sequence()
    {
        var r = Paper("paper-7b", 1 << 20, tp: 8);
        var p = StrategySearch.Plan(r, Strategy.Memo);
        Assert.True(p.Fits, p.Reason);
        Assert.True(p.Alpha < 1);
        Assert.Contains("host memory", p.Reason, StringComparison.Ordinal);
        long usable = r.Device.UsableHostBytes;
        Assert.InRange(p.HostBytesPerNode, (long)(usable * 0.999), usable);

        // Half the host memory gives a smaller alpha; too little for even the skeleton does not fit.
        var half = StrategySearch.Plan(r with { Device = r.Device with { HostMemoryBytes = 1L << 40 } }, Strategy.Memo);
        Assert.True(half.Fits, half.Reason);
        Assert.True(half.Alpha < p.Alpha);
        var tiny = StrategySearch.Plan(r with { Device = r.Device with { HostMemoryBytes = 256L << 30 } }, Strategy.Memo);
        Assert.False(tiny.Fits);
        Assert.StartsWith("out of host memory", tiny.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Longest_sequences_are_boundaries_and_grow_with_each_feature()
    {
        var r = Paper("paper-7b", 1024);
        long memo = StrategySearch.MaxSeq(r, Strategy.Memo).MaxSeq;
        long megatron = StrategySearch.MaxSeq(r, Strategy.Megatron).MaxSeq;
        long deepspeed = StrategySearch.MaxSeq(r, Strategy.DeepSpeed).MaxSeq;
        long deepspeedOnDevice = StrategySearch.MaxSeq(r with { Without = new HashSet<string> { FeatureNames.CpuCheckpointing } }, Strategy.DeepSpeed).MaxSeq;
        long keep = StrategySearch.MaxSeq(r, Strategy.Keep).MaxSeq;
        Assert.True(memo >= 1 << 20, $"memo {memo}");
        Assert.InRange(megatron, 512L << 10, (1L << 20) - 1);
        Assert.True(deepspeedOnDevice < 1 << 20, $"deepspeed without cpu_checkpointing {deepspeedOnDevice}");
        Assert.True(deepspeed > deepspeedOnDevice, $"deepspeed {deepspeed} vs {deepspeedOnDevice}");
        Assert.True(keep < megatron);
        foreach (long s in new[] { memo, megatron, deepspeed, keep }) Assert.Equal(0, s % 1024);
        // The answer is a boundary: 1K more does not fit.
        Assert.False(StrategySearch.Plan(r with { Seq = megatron + 1024 }, Strategy.Megatron).Fits);
        Assert.True(StrategySearch.Plan(r with { Seq = megatron }, Strategy.Megatron).Fits);
    }

    [Fact]
    public void Megatron_saves_no_more_memory_than_needed()
    {
        var shortSeq = StrategySearch.Plan(Paper("paper-7b", 16 << 10), Strategy.Megatron);
        Assert.True(shortSeq.Fits);
        Assert.Equal("none", shortSeq.Checkpointing);
        Assert.Equal(0, shortSeq.Features.OffloadedLayers);
        // Without offloading, 640K needs full recomputation of some layers, but not of all.
        var r = Paper("paper-7b", 640 << 10) with { Without = new HashSet<string> { FeatureNames.Offload } };
        var longSeq = StrategySearch.Plan(r, Strategy.Megatron);
        Assert.True(longSeq.Fits, longSeq.Reason);
        Assert.InRange(longSeq.Policy!.RecomputedLayers, 1, 32);
        var fewer = StrategySearch.EvaluateConfiguration(r, Strategy.Megatron, longSeq.Layout!.Value, MemoryPolicy.Recompute(longSeq.Policy.RecomputedLayers - 1), StrategyFeatures.None);
        Assert.False(fewer.Fits, fewer.Reason);
        // The caching allocator's 1.15 lands on the activation side only.
        var m = longSeq.Memory!;
        Assert.Equal(0.15, (double)m.Fragmentation / (m.KeptActivations + m.RecomputeBuffers + m.Workspaces + m.SwapStaging), 3);
    }

    [Fact]
    public void Cpu_profile_counts_device_and_host_in_one_pool()
    {
        var cpu = DeviceProfile.Cpu() with { DeviceMemoryBytes = 8L << 30, HostMemoryBytes = 8L << 30, HostReservedBytes = 1L << 30 };
        var r = new PlanRequest { Model = Presets.Resolve("llama-tiny"), Seq = 4096, Gpus = 1, Device = cpu };
        var memo = StrategySearch.Plan(r, Strategy.Memo);
        Assert.True(memo.Fits, memo.Reason);
        Assert.Equal(new ParallelLayout(1, 1, 1), memo.Layout);
        Assert.Equal(4, Precision.Parse(cpu.Precision).ActivationBytes);
        // llama-tiny has two layers: nothing to swap.
        Assert.Equal(0, memo.HostBytesPerNode);
    }

    [Theory]
    [InlineData("gpt2", 8, 8, null, null, "does not divide the model's 12 attention heads")]
    [InlineData("paper-7b", 8, 3, null, null, "does not divide --gpus 8")]
    [InlineData("paper-7b", 12, null, null, null, "not a multiple of 8")]
    [InlineData("paper-7b", 8, 2, 2, 1, "must multiply to the GPU count", 1)]
    [InlineData("gpt2", 8, null, null, null, "does not divide the model's 12 layers", 8)]
    [InlineData("paper-7b", 16, 16, null, null, "exceeds the 8 GPUs of a node")]
    [InlineData("paper-7b", 8, null, null, 2, "does not divide --batch 1")]
    public void Bad_degrees_are_rejected_in_one_line(string model, int gpus, int? tp, int? cp, int? dp, string expected, int? pp = null)
    {
        var r = new PlanRequest { Model = Presets.Resolve(model), Seq = 1 << 20, Gpus = gpus, Device = DeviceProfile.A800, Tp = tp, Cp = cp, Dp = dp, Pp = pp };
        var e = Assert.Throws<MemoException>(() => StrategySearch.Validate(r));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Ulysses_needs_a_degree_that_divides_the_heads()
    {
        // 13B has 40 heads; on 16 GPUs with one sequence and no pipeline Ulysses would need sp = 16.
        var p = StrategySearch.Plan(new PlanRequest { Model = Presets.Resolve("paper-13b"), Seq = 1 << 20, Gpus = 16, Device = DeviceProfile.A800, Pp = 1 }, Strategy.DeepSpeed);
        Assert.False(p.Fits);
        Assert.Null(p.Layout);
        Assert.StartsWith("no parallel layout", p.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("32K..4M", new long[] { 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304 })]
    [InlineData("1000..3000", new long[] { 1000, 2000 })]
    public void Sweep_ranges_double(string text, long[] expected) => Assert.Equal(expected, StrategySearch.ParseLengths(text));

    [Theory]
    [InlineData("32K")]
    [InlineData("4M..32K")]
    [InlineData("32K..4G")]
    [InlineData("a..b")]
    public void Bad_sweep_ranges_are_rejected(string text) => Assert.Throws<MemoException>(() => StrategySearch.ParseLengths(text));
}
