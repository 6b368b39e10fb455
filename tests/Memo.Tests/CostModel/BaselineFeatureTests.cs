using Memo.CostModel;

namespace Memo.Tests.CostModel;

/// <summary>
/// Each baseline feature moves the plan the way it must, by amounts worked out by hand from the model's shape
/// (not from <see cref="LayerShape"/>): selective recompute, cpu_checkpointing, activation offloading, ZeRO stages,
/// pipeline stages, the LM head, and the fragmentation factor.
/// </summary>
public class BaselineFeatureTests
{
    // paper-7b (GPT: LayerNorm with mean and rstd, GeLU MLP of 4h, tied head), h = 4096, 32 layers, 32 heads, bf16 activations.
    // Saved bytes per token and layer, by row: Input 2h, Norm1Mean 4, Norm1Rstd 4, Norm1 2h, Qkv 6h, AttnOut 2h,
    // AttnLse 32 x 4, Residual1 2h, Norm2Mean 4, Norm2Rstd 4, Norm2 2h, MlpUp 8h, MlpAct 8h
    // = 32h + 144 = 131,216. Selective recompute drops Norm1, Norm2 and MlpAct: 2h + 2h + 8h = 12h = 49,152.
    private const long H = 4096;
    private const long SavedPerToken = 32 * H + 144;
    private const long SelectivePerToken = 12 * H;
    private const long InputPerToken = 2 * H;

    // Parameters without positions: per layer 12h^2 + 13h (qkv 3h^2+3h, out h^2+h, fc 4h^2+4h, proj 4h^2+h, two norms 4h),
    // 32 layers, embedding = head 50257 x h, final norm 2h: 6,650,015,744.
    private const long Params = 32 * (12 * H * H + 13 * H) + 50257 * H + 2 * H;

    private static readonly ModelConfig Paper7b = Presets.Resolve("paper-7b");

    private static PlanRequest Request(long seq, int gpus = 8) => new()
    {
        Model = Paper7b, Seq = seq, Gpus = gpus, Device = DeviceProfile.A800, FragmentationFactor = 1.0,
    };

    private static MemoryQuery Query(long seq, ParallelLayout lay, MemoryPolicy policy, StrategyFeatures? f = null) => new()
    {
        Model = Paper7b, Seq = seq, Policy = policy, Layout = lay, LearnedPositionTable = false, Features = f ?? StrategyFeatures.None,
        LogitsChunkTokens = 8192,
    };

    [Fact]
    public void Parameter_count_matches_the_hand_count() => Assert.Equal(Params, MemoryModel.Parameters(Paper7b, learnedPositionTable: false));

    [Fact]
    public void Cpu_checkpointing_lowers_deepspeeds_device_peak_by_the_checkpoint_bytes()
    {
        // DeepSpeed-Ulysses sp=8 with ZeRO-3 and full checkpointing at 512K: each GPU holds 512K/8 = 65,536 tokens, so one
        // checkpoint (a layer input) is 65,536 x 2h = 536,870,912 B. cpu_checkpointing moves all 32 to the host; during
        // the backward the layer being recomputed has its checkpoint fetched back: the peak (in the backward) drops by 31 of them.
        const long seq = 512 << 10, checkpoint = 65_536 * InputPerToken;
        var r = Request(seq);
        var lay = new ParallelLayout(1, 8, 1, SequenceSharding.Ulysses, ZeroStage: 3);
        var onDevice = StrategySearch.EvaluateConfiguration(r, Strategy.DeepSpeed, lay, MemoryPolicy.Recompute(32), StrategyFeatures.None);
        var onHost = StrategySearch.EvaluateConfiguration(r, Strategy.DeepSpeed, lay, MemoryPolicy.Recompute(32), new StrategyFeatures { CpuCheckpointing = true });
        Assert.Equal("backward", onDevice.Memory!.PeakPhase);
        Assert.Equal("backward", onHost.Memory!.PeakPhase);
        Assert.Equal(31 * checkpoint, onDevice.DevicePeakBytes - onHost.DevicePeakBytes);
        Assert.Equal(32 * checkpoint, onHost.Memory.HostBytes);
        Assert.Equal(8 * 32 * checkpoint, onHost.HostBytesPerNode);
        // DeepSpeed copies them with blocking copies: 2 x 32 checkpoints at 12.5 GB/s (25 GB/s shared by 2 GPUs) are exposed.
        Assert.Equal(2.0 * 32 * checkpoint / 12.5e9, onHost.Time!.SwapExposed - onDevice.Time!.SwapExposed, 1e-9);
        Assert.True(onHost.StepSeconds > onDevice.StepSeconds);
    }

    [Fact]
    public void Selective_recompute_drops_the_norm_and_activation_rows()
    {
        // Megatron tp=8 at 128K keeps 32 layers of 16,384 tokens per GPU; selective drops 12h bytes per token of each.
        const long seq = 128 << 10, perGpu = seq / 8;
        var lay = new ParallelLayout(8, 1, 1);
        var keep = MemoryModel.PerDevice(Query(seq, lay, MemoryPolicy.Keep));
        var selective = MemoryModel.PerDevice(Query(seq, lay, MemoryPolicy.Keep, new StrategyFeatures { SelectiveRecompute = true }));
        Assert.Equal(32 * SavedPerToken * perGpu, keep.KeptActivations);
        Assert.Equal(32 * (SavedPerToken - SelectivePerToken) * perGpu, selective.KeptActivations);
        Assert.True(selective.Peak < keep.Peak);
        // It costs time: the dropped rows are rebuilt before each layer's backward.
        var r = Request(seq);
        var tKeep = StrategySearch.EvaluateConfiguration(r, Strategy.Megatron, lay, MemoryPolicy.Keep, StrategyFeatures.None);
        var tSel = StrategySearch.EvaluateConfiguration(r, Strategy.Megatron, lay, MemoryPolicy.Keep, new StrategyFeatures { SelectiveRecompute = true });
        Assert.Equal(0, tKeep.Time!.Recompute);
        Assert.True(tSel.Time!.Recompute > 0);
        Assert.True(tSel.Time.Step > tKeep.Time.Step);
    }

    [Fact]
    public void Offloading_moves_whole_layers_to_the_host_through_a_double_buffer()
    {
        // Megatron tp=8 at 128K, the first 10 layers offloaded: 22 layers stay, two layer-sized buffers carry the copies.
        const long seq = 128 << 10, layer = SavedPerToken * (seq / 8);
        var lay = new ParallelLayout(8, 1, 1);
        var keep = MemoryModel.PerDevice(Query(seq, lay, MemoryPolicy.Keep));
        var off = MemoryModel.PerDevice(Query(seq, lay, MemoryPolicy.Keep, new StrategyFeatures { OffloadedLayers = 10 }));
        Assert.Equal(22 * layer, off.KeptActivations);
        Assert.Equal(2 * layer, off.SwapStaging);
        Assert.Equal(10 * layer, off.HostBytes);
        Assert.Equal(8 * layer, keep.Peak - off.Peak);
        // At 128K a layer's 2.15 GB copy (12.5 GB/s: 0.17 s) is longer than its forward: part of it is exposed.
        var r = Request(seq);
        var t = StrategySearch.EvaluateConfiguration(r, Strategy.Megatron, lay, MemoryPolicy.Keep, new StrategyFeatures { OffloadedLayers = 10 });
        Assert.True(t.Time!.SwapExposed > 0);
        Assert.Equal(2L * 10 * layer, t.Time.SwapBytes);
    }

    [Fact]
    public void Zero_stages_shard_optimizer_then_gradients_then_parameters()
    {
        // Ulysses sp=8: ZeRO-1 shards the 12 B/param of master weights and moments over 8 GPUs, ZeRO-2 also the
        // 4 B/param gradients, ZeRO-3 also the 2 B/param weights. Params / 8 = 831,251,968 exactly.
        const long shard = Params / 8;
        Assert.Equal(0, Params % 8);
        var z = new[] { 1, 2, 3 }.Select(stage => MemoryModel.PerDevice(Query(64 << 10, new ParallelLayout(1, 8, 1, SequenceSharding.Ulysses, ZeroStage: stage), MemoryPolicy.Keep))).ToArray();
        Assert.Equal((2 * Params, 4 * Params, 12 * shard), (z[0].Parameters, z[0].Gradients, z[0].OptimizerState));
        Assert.Equal((2 * Params, 4 * shard, 12 * shard), (z[1].Parameters, z[1].Gradients, z[1].OptimizerState));
        Assert.Equal((2 * shard, 4 * shard, 12 * shard), (z[2].Parameters, z[2].Gradients, z[2].OptimizerState));
    }

    [Fact]
    public void Pipeline_stages_split_layers_and_static_state_and_pay_a_bubble()
    {
        // 16 GPUs as tp=8 x pp=2: a stage holds 16 layers and one vocabulary matrix (the embedding or the tied head):
        // (Params - 50257h) / 2 + 50257h = 3,427,934,208 parameters, 1/8 of them per GPU.
        const long seq = 64 << 10, vocab = 50257 * H;
        long stage = (Params - vocab) / 2 + vocab;
        var one = MemoryModel.PerDevice(Query(seq, new ParallelLayout(8, 1, 1), MemoryPolicy.Keep));
        var two = MemoryModel.PerDevice(Query(seq, new ParallelLayout(8, 1, 1, Pp: 2), MemoryPolicy.Keep));
        Assert.Equal(2 * ((stage + 7) / 8), two.Parameters);
        Assert.Equal(32 * SavedPerToken * (seq / 8), one.KeptActivations);
        Assert.Equal(16 * SavedPerToken * (seq / 8), two.KeptActivations);
        // With one sequence per step, 1F1B runs (1 + 2 - 1) slots of a stage: the second stage waits for the first.
        var r = Request(seq, gpus: 16);
        var p = StrategySearch.EvaluateConfiguration(r, Strategy.Megatron, new ParallelLayout(8, 1, 1, Pp: 2), MemoryPolicy.Keep, StrategyFeatures.None);
        var t = p.Time!;
        Assert.True(t.Pipeline >= t.Forward + t.Backward, $"bubble {t.Pipeline} vs stage {t.Forward + t.Backward}");
        Assert.Contains("pp=2", p.FeatureList);
    }

    [Fact]
    public void The_lm_head_is_chunked_or_not_for_every_strategy_alike()
    {
        foreach (long? chunk in new long?[] { 8192, null })
        {
            var r = Request(128 << 10) with { LogitsChunkTokens = chunk };
            foreach (var p in StrategySearch.PlanAll(r, StrategySearch.AllStrategies))
            {
                Assert.Equal(chunk, p.LogitsChunkTokens);
                Assert.Contains(chunk is null ? "head whole" : "head chunked 8K", p.FeatureList);
            }
            // Same layout, same policy: megatron and keep hold the same bytes (both factors 1 here), head included.
            var lay = new ParallelLayout(8, 1, 1);
            var megatron = StrategySearch.EvaluateConfiguration(r, Strategy.Megatron, lay, MemoryPolicy.Recompute(32), StrategyFeatures.None);
            var keep = StrategySearch.EvaluateConfiguration(r, Strategy.Keep, lay, MemoryPolicy.Recompute(32), StrategyFeatures.None);
            Assert.Equal(megatron.Memory, keep.Memory);
        }
        // Whole logits at 1M with tp=8, in the loss phase: the final norm's input and output (1M/8 tokens x 2h each), the
        // head input all-gathered over the tensor-parallel group (1M x 2h), and vocabulary-parallel logits with their fp32
        // copy (1M x floor(50257/8) = 6,282 columns x (2 + 4) B). Chunked, only 8K tokens of the last two.
        const long T = 1 << 20;
        var whole = MemoryModel.PerDevice(Query(T, new ParallelLayout(8, 1, 1), MemoryPolicy.Recompute(32)) with { LogitsChunkTokens = null });
        var chunked = MemoryModel.PerDevice(Query(T, new ParallelLayout(8, 1, 1), MemoryPolicy.Recompute(32)));
        Assert.Equal("loss", whole.PeakPhase);
        Assert.Equal(2 * (T / 8) * 2 * H + T * 2 * H + T * 6282 * 6, whole.Workspaces);
        Assert.True(chunked.Peak < whole.Peak);
    }

    [Fact]
    public void Fragmentation_is_assumed_for_caching_allocators_and_measured_for_planned_arenas()
    {
        var r = Request(256 << 10) with { FragmentationFactor = 1.3, PlannedArenaOverhead = 1.05, PlannedArenaSource = "measured: test" };
        var plans = StrategySearch.PlanAll(r, StrategySearch.AllStrategies).ToDictionary(p => p.Strategy);
        static double Share(StrategyPlan p)
        {
            var m = p.Memory!;
            return (double)m.Fragmentation / (m.KeptActivations + m.SwapStaging + m.RecomputeBuffers + m.Workspaces);
        }
        Assert.Equal(0.05, Share(plans[Strategy.Memo]), 4);
        Assert.Equal(0.05, Share(plans[Strategy.Keep]), 4);
        Assert.Equal(0.30, Share(plans[Strategy.Megatron]), 4);
        Assert.Equal(0.30, Share(plans[Strategy.DeepSpeed]), 4);
        Assert.StartsWith("planned arena: measured", plans[Strategy.Memo].FragmentationSource, StringComparison.Ordinal);
        Assert.StartsWith("caching allocator: assumed", plans[Strategy.Megatron].FragmentationSource, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(FeatureNames.Selective, Strategy.Megatron, "paper-7b", 8, 128 << 10)]
    [InlineData(FeatureNames.Selective, Strategy.DeepSpeed, "paper-7b", 8, 128 << 10)]
    [InlineData(FeatureNames.FullRecompute, Strategy.DeepSpeed, "paper-7b", 8, 256 << 10)]
    [InlineData(FeatureNames.CpuCheckpointing, Strategy.DeepSpeed, "paper-7b", 8, 1 << 20)]
    [InlineData(FeatureNames.Offload, Strategy.Megatron, "paper-7b", 8, 512 << 10)]
    [InlineData(FeatureNames.Pipeline, Strategy.DeepSpeed, "paper-13b", 16, 128 << 10)]
    [InlineData(FeatureNames.Zero3, Strategy.DeepSpeed, "paper-7b", 8, 1 << 20)]
    public void Each_feature_is_used_where_it_helps_and_can_be_switched_off(string feature, Strategy strategy, string model, int gpus, long seq)
    {
        var r = new PlanRequest { Model = Presets.Resolve(model), Seq = seq, Gpus = gpus, Device = DeviceProfile.A800 };
        bool Uses(StrategyPlan p) => feature switch
        {
            FeatureNames.Selective => p.Features.SelectiveRecompute,
            FeatureNames.FullRecompute => p.Policy!.Kind == PolicyKind.Recompute && p.Policy.RecomputedLayers > 0,
            FeatureNames.CpuCheckpointing => p.Features.CpuCheckpointing,
            FeatureNames.Offload => p.Features.OffloadedLayers > 0,
            FeatureNames.Pipeline => p.Layout!.Value.Pp > 1,
            _ => p.Layout!.Value.ZeroStage == 3,
        };
        var with = StrategySearch.Plan(r, strategy);
        Assert.True(with.Fits, with.Reason);
        Assert.True(Uses(with), $"{strategy} does not use {feature}: {string.Join(", ", with.FeatureList)}");
        var without = StrategySearch.Plan(r with { Without = new HashSet<string> { feature } }, strategy);
        if (without.Layout is not null) Assert.False(Uses(without), $"{strategy} still uses {feature}: {string.Join(", ", without.FeatureList)}");
        // Taking a feature away never helps: the plan without it fits no better and runs no faster.
        Assert.True(!without.Fits || without.StepSeconds >= with.StepSeconds, $"{without.StepSeconds} < {with.StepSeconds}");
    }
}
