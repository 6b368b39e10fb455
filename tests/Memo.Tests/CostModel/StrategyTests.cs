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
    public void At_1M_on_8_A800_memo_fits_and_the_baselines_run_out_of_memory(string model)
    {
        var plans = StrategySearch.PlanAll(Paper(model, 1 << 20), StrategySearch.AllStrategies).ToDictionary(p => p.Strategy);
        var memo = plans[Strategy.Memo];
        Assert.True(memo.Fits, memo.Reason);
        Assert.True(memo.DevicePeakBytes <= memo.DeviceCapacityBytes);
        Assert.InRange(memo.Mfu!.Value, 0.40, 0.60);
        Assert.InRange(memo.Alpha!.Value, 0.0, 1.0);
        foreach (var s in new[] { Strategy.Megatron, Strategy.DeepSpeed, Strategy.Keep })
        {
            Assert.False(plans[s].Fits, $"{s}: {plans[s].Reason}");
            Assert.StartsWith("out of device memory", plans[s].Reason, StringComparison.Ordinal);
            Assert.True(plans[s].DevicePeakBytes > plans[s].DeviceCapacityBytes);
            Assert.Null(plans[s].Mfu);
        }
    }

    [Fact]
    public void Memo_with_the_papers_tp8_is_close_to_the_reported_52_percent()
    {
        var memo = StrategySearch.Plan(Paper("paper-7b", 1 << 20, tp: 8), Strategy.Memo);
        Assert.True(memo.Fits, memo.Reason);
        Assert.Equal(new ParallelLayout(8, 1, 1), memo.Layout);
        Assert.InRange(memo.Mfu!.Value, 0.49, 0.56);
        Assert.Equal(memo.ModelFlops / (memo.StepSeconds!.Value * 8 * 312e12), memo.Mfu!.Value, 9);
        Assert.Equal((1 << 20) / memo.StepSeconds!.Value, memo.TokensPerSecond!.Value, 6);
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
    public void Longest_sequences_order_like_the_paper()
    {
        var r = Paper("paper-7b", 1024);
        long memo = StrategySearch.MaxSeq(r, Strategy.Memo).MaxSeq;
        long megatron = StrategySearch.MaxSeq(r, Strategy.Megatron).MaxSeq;
        long deepspeed = StrategySearch.MaxSeq(r, Strategy.DeepSpeed).MaxSeq;
        long keep = StrategySearch.MaxSeq(r, Strategy.Keep).MaxSeq;
        Assert.True(memo >= 1 << 20, $"memo {memo}");
        Assert.InRange(megatron, 512L << 10, (1L << 20) - 1);
        Assert.True(deepspeed < 1 << 20, $"deepspeed {deepspeed}");
        Assert.True(keep < megatron);
        foreach (long s in new[] { memo, megatron, deepspeed, keep }) Assert.Equal(0, s % 1024);
        // The answer is a boundary: 1K more does not fit.
        Assert.False(StrategySearch.Plan(r with { Seq = megatron + 1024 }, Strategy.Megatron).Fits);
        Assert.True(StrategySearch.Plan(r with { Seq = megatron }, Strategy.Megatron).Fits);
    }

    [Fact]
    public void Megatron_recomputes_no_more_layers_than_needed()
    {
        var shortSeq = StrategySearch.Plan(Paper("paper-7b", 16 << 10), Strategy.Megatron);
        Assert.True(shortSeq.Fits);
        Assert.Equal(0, shortSeq.Policy!.RecomputedLayers);
        var longSeq = StrategySearch.Plan(Paper("paper-7b", 512 << 10), Strategy.Megatron);
        Assert.True(longSeq.Fits);
        Assert.True(longSeq.Policy!.RecomputedLayers > 0);
        Assert.Equal(1.15, 1 + (double)longSeq.Memory!.Fragmentation / (longSeq.Memory.KeptActivations + longSeq.Memory.RecomputeBuffers + longSeq.Memory.Workspaces), 3);
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
    [InlineData("paper-7b", 8, 2, 2, 1, "must multiply to the GPU count")]
    [InlineData("paper-7b", 16, 16, null, null, "exceeds the 8 GPUs of a node")]
    [InlineData("paper-7b", 8, null, null, 2, "does not divide --batch 1")]
    public void Bad_degrees_are_rejected_in_one_line(string model, int gpus, int? tp, int? cp, int? dp, string expected)
    {
        var r = new PlanRequest { Model = Presets.Resolve(model), Seq = 1 << 20, Gpus = gpus, Device = DeviceProfile.A800, Tp = tp, Cp = cp, Dp = dp };
        var e = Assert.Throws<MemoException>(() => StrategySearch.Validate(r));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Ulysses_needs_a_degree_that_divides_the_heads()
    {
        // 13B has 40 heads; on 16 GPUs with one sequence Ulysses would need sp = 16.
        var p = StrategySearch.Plan(new PlanRequest { Model = Presets.Resolve("paper-13b"), Seq = 1 << 20, Gpus = 16, Device = DeviceProfile.A800 }, Strategy.DeepSpeed);
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
