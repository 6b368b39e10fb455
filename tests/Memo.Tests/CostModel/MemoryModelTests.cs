using Memo.CostModel;

namespace Memo.Tests.CostModel;

/// <summary>Per-device memory arithmetic against values worked out by hand from the llama-tiny inventory.</summary>
public class MemoryModelTests
{
    // llama-tiny: hidden 64, 2 layers, 4 heads / 2 kv heads (head dim 16), ffn 176, vocab 256, untied head.
    // Inventory rows, elements per token (f32 rows marked):
    //   Input 64 (S), Norm1Rstd 1 f32 (T), Norm1 64 (T), Qkv (4+2*2)*16 = 128 (T), AttnOut 64 (S), AttnLse 4 f32 (S),
    //   AttnProj 64 (transient), Residual1 64 (T), Norm2Rstd 1 f32 (T), Norm2 64 (T), MlpUp 2*176 = 352 (T),
    //   MlpAct 176 (T), MlpDown 64 (transient).
    // bf16 bytes per token: skeleton (64+64)*2 + 4*4 = 272; token-local (64+128+64+64+352+176)*2 + 2*4 = 1704;
    // transient (64+64)*2 = 256; input 128; largest two saved rows 704 + 352 = 1056.
    private const long Skel = 272, Local = 1704, Trans = 256, Input = 128, Largest2 = 1056;

    // Parameters: per layer 64*128 + 64*64 + 3*64*176 + 2*64 = 46208; total 2*46208 + 256*64 (embedding)
    // + 64 (final norm) + 256*64 (head) = 125248.
    private const long Params = 125_248;

    private static ModelConfig Tiny => Presets.Resolve("llama-tiny");

    [Fact]
    public void Layer_shape_reads_the_inventory()
    {
        var s = new LayerShape(Tiny, Precision.Bf16Mixed);
        Assert.Equal(Skel, s.SkeletonBytesPerToken);
        Assert.Equal(Local, s.TokenLocalBytesPerToken);
        Assert.Equal(Trans, s.TransientBytesPerToken);
        Assert.Equal(Input, s.InputBytesPerToken);
        Assert.Equal(Largest2, s.LargestTwoSavedBytesPerToken);
        // GEMMs: 2*(64*128 + 64*64 + 64*352 + 176*64) = 2*46080; token-wise recompute skips only the down projection.
        Assert.Equal(92_160, s.GemmFlopsPerToken);
        Assert.Equal(92_160 - 2 * 176 * 64, s.TokenLocalRecomputeFlopsPerToken);
        Assert.Equal(Params, Tiny.ParameterCount);
    }

    [Fact]
    public void Keep_on_one_device_adds_up_by_hand()
    {
        const long T = 1024;
        var m = MemoryModel.PerDevice(new MemoryQuery { Model = Tiny, Seq = T, Policy = MemoryPolicy.Keep });
        Assert.Equal(Params * 2, m.Parameters);
        Assert.Equal(Params * 4, m.Gradients);
        Assert.Equal(Params * 12, m.OptimizerState);
        Assert.Equal(2 * (Skel + Local) * T, m.KeptActivations);
        Assert.Equal(0, m.SwapStaging);
        Assert.Equal(0, m.RecomputeBuffers);
        // Phases: forward = transients (256 T); loss = final norm in/out (2*128 T) + head input (128 T) + logits
        // 256*(2+4) T = 1920 T; backward = (1056 + 2*128) T = 1312 T. The loss is the peak.
        Assert.Equal("loss", m.PeakPhase);
        Assert.Equal(1920 * T, m.Workspaces);
        Assert.Equal(0, m.Fragmentation);
        Assert.Equal(Params * 18 + 2 * (Skel + Local) * T + 1920 * T, m.Peak);
        Assert.Equal(0, m.HostBytes);
    }

    [Fact]
    public void Chunked_logits_shrink_only_the_loss_phase()
    {
        const long T = 1024;
        var m = MemoryModel.PerDevice(new MemoryQuery { Model = Tiny, Seq = T, Policy = MemoryPolicy.Keep, LogitsChunkTokens = 128 });
        // loss = 256 T + 128*(128 + 1536) = 475136; backward = 1312 T = 1343488 is now the peak.
        Assert.Equal("backward", m.PeakPhase);
        Assert.Equal(1312 * T, m.Workspaces);
    }

    [Fact]
    public void Full_recompute_keeps_inputs_and_rebuilds_one_layer()
    {
        const long T = 2048;
        var m = MemoryModel.PerDevice(new MemoryQuery { Model = Tiny, Seq = T, Policy = MemoryPolicy.Recompute(2), LogitsChunkTokens = 64 });
        Assert.Equal(2 * Input * T, m.KeptActivations);
        Assert.Equal("backward", m.PeakPhase);
        Assert.Equal((Skel + Local - Input) * T, m.RecomputeBuffers);
        Assert.Equal((Largest2 + 2 * Input) * T, m.Workspaces);
    }

    [Fact]
    public void Swap_policies_hold_two_rounding_buffers_and_put_the_rest_on_the_host()
    {
        var gpt2 = Presets.Resolve("gpt2"); // 12 layers
        var shape = new LayerShape(gpt2, Precision.Bf16Mixed);
        const long T = 4096;
        const double alpha = 0.25;
        var m = MemoryModel.PerDevice(new MemoryQuery { Model = gpt2, Seq = T, Policy = MemoryPolicy.Memo(Enumerable.Repeat(alpha, 12).ToArray()) });
        long skel = shape.SkeletonBytesPerToken * T, local = shape.TokenLocalBytesPerToken * T;
        Assert.Equal(0, m.KeptActivations);
        Assert.Equal(2 * (skel + local), m.SwapStaging);
        Assert.Equal(10 * (skel + (long)Math.Round(alpha * local)), m.HostBytes); // the last two layers never swap
        Assert.Equal(skel, m.LayerSkeletonBytes);
        Assert.Equal(local, m.LayerTokenLocalBytes);

        var all = MemoryModel.PerDevice(new MemoryQuery { Model = gpt2, Seq = T, Policy = MemoryPolicy.Swap(12) });
        Assert.Equal(10 * (skel + local), all.HostBytes);
        Assert.Equal(m.SwapStaging, all.SwapStaging);
    }

    [Fact]
    public void Tensor_parallel_shards_activations_and_weights_zero3_shards_state_over_all()
    {
        var cfg = Presets.Resolve("paper-7b");
        const long T = 1 << 16;
        var one = MemoryModel.PerDevice(new MemoryQuery { Model = cfg, Seq = T, Policy = MemoryPolicy.Keep, LearnedPositionTable = false });
        var tp8 = MemoryModel.PerDevice(new MemoryQuery { Model = cfg, Seq = T, Policy = MemoryPolicy.Keep, LearnedPositionTable = false, Layout = new ParallelLayout(8, 1, 1) });
        Assert.Equal(one.KeptActivations / 8, tp8.KeptActivations);
        Assert.Equal((one.Parameters / 2 + 7) / 8 * 2, tp8.Parameters);
        var z3 = MemoryModel.PerDevice(new MemoryQuery
        {
            Model = cfg, Seq = T, Policy = MemoryPolicy.Recompute(32), LearnedPositionTable = false,
            Layout = new ParallelLayout(1, 8, 1, SequenceSharding.Ulysses, ZeroStage: 3),
        });
        long p = MemoryModel.Parameters(cfg, learnedPositionTable: false);
        Assert.Equal((p + 7) / 8 * 2, z3.Parameters);
        Assert.Equal((p + 7) / 8 * 12, z3.OptimizerState);
        Assert.Equal(32 * new LayerShape(cfg, Precision.Bf16Mixed).InputBytesPerToken * T / 8, z3.KeptActivations);
    }

    [Fact]
    public void Fragmentation_applies_to_the_activation_side_only()
    {
        var q = new MemoryQuery { Model = Tiny, Seq = 1024, Policy = MemoryPolicy.Keep };
        var planned = MemoryModel.PerDevice(q);
        var cached = MemoryModel.PerDevice(q with { AllocatorOverhead = 1.2 });
        long activations = planned.KeptActivations + planned.Workspaces;
        Assert.Equal((long)Math.Round(activations * 0.2), cached.Fragmentation);
        Assert.Equal(planned.Parameters + planned.Gradients + planned.OptimizerState, cached.Parameters + cached.Gradients + cached.OptimizerState);
    }

    [Fact]
    public void Fp32_precision_uses_16_bytes_per_parameter_and_4_byte_activations()
    {
        const long T = 512;
        var m = MemoryModel.PerDevice(Tiny, batch: 1, seq: T, MemoryPolicy.Keep, Precision.Fp32);
        Assert.Equal(Params * 16, m.Parameters + m.Gradients + m.OptimizerState);
        // fp32 doubles every bf16 row; the f32 statistics stay 4 bytes: skeleton 128*4 + 16, token-local 848*4 + 8.
        Assert.Equal(2 * ((128 * 4 + 16) + (848 * 4 + 8)) * T, m.KeptActivations);
        var two = MemoryModel.PerDevice(Tiny, batch: 2, seq: T, MemoryPolicy.Keep, Precision.Fp32);
        Assert.Equal(2 * m.KeptActivations, two.KeptActivations);
        Assert.Equal(m.Parameters, two.Parameters);
    }

    [Fact]
    public void Model_flops_count_the_causal_half_and_no_recompute()
    {
        var s = new LayerShape(Tiny, Precision.Bf16Mixed);
        const long T = 1000;
        // forward per layer: GEMMs 92160 T + attention 4 * T^2 * 64 / 2; head 2 * 64 * 256 T; step = 3 x forward.
        double layer = 92_160.0 * T + 2.0 * T * T * 64;
        double expected = 3 * (2 * layer + 2.0 * 64 * 256 * T);
        Assert.Equal(expected, s.ModelFlopsPerStep(1, T), 6);
    }
}
