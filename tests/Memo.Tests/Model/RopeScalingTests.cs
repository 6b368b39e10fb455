using Memo.Cpu.Kernels;
using Memo.Tests.Cli;

namespace Memo.Tests.Model;

/// <summary>rope_scaling parsing, the frequency rules' defining properties, and --rope-scaling on the command line.</summary>
public sealed class RopeScalingTests
{
    private static ModelConfig Llama(RopeScaling? r, int maxPos = 64) => new ModelConfig
    {
        Family = ModelFamily.Llama, HiddenSize = 64, NumLayers = 1, NumHeads = 4, NumKvHeads = 4, IntermediateSize = 64,
        VocabSize = 256, MaxPositions = maxPos, RopeScaling = r,
    }.Validate();

    [Fact]
    public void Without_scaling_the_frequencies_give_the_existing_table_bit_for_bit()
    {
        var (inv, scale) = RopeFrequencies.Compute(Llama(null), 100);
        Assert.Equal(1.0, scale);
        var (c1, s1) = Rope.Table(100, inv, scale);
        var (c0, s0) = Rope.Table(100, 16, 10000.0);
        Assert.Equal(c0, c1);
        Assert.Equal(s0, s1);
    }

    [Fact]
    public void Llama3_keeps_high_frequencies_divides_low_ones_and_blends_between()
    {
        var r = RopeScaling.Parse("llama3:factor=8,low_freq_factor=1,high_freq_factor=4,original_max_position_embeddings=64")!;
        var (plain, _) = RopeFrequencies.Compute(Llama(null), 1);
        var (scaled, _) = RopeFrequencies.Compute(Llama(r), 1);
        int kept = 0, divided = 0, blended = 0;
        for (int i = 0; i < plain.Length; i++)
        {
            double wave = 2 * Math.PI / plain[i];
            if (wave < 64 / 4.0) { Assert.Equal(plain[i], scaled[i]); kept++; }
            else if (wave > 64 / 1.0) { Assert.Equal(plain[i] / 8, scaled[i], 15); divided++; }
            else { Assert.InRange(scaled[i], plain[i] / 8, plain[i]); blended++; }
        }
        Assert.True(kept > 0 && divided > 0 && blended > 0, $"{kept} kept, {divided} divided, {blended} blended");
    }

    [Fact]
    public void Yarn_interpolates_low_frequencies_and_scales_cos_and_sin()
    {
        var r = RopeScaling.Parse("yarn:factor=4")!;
        var (plain, _) = RopeFrequencies.Compute(Llama(null), 1);
        var (scaled, attention) = RopeFrequencies.Compute(Llama(r), 1);
        Assert.Equal(0.1 * Math.Log(4) + 1, attention, 12);
        Assert.Equal(plain[0], scaled[0]);                      // fastest frequency extrapolated
        Assert.Equal(plain[^1] / 4, scaled[^1], 15);            // slowest interpolated
        var (cos, _) = Rope.Table(1, scaled, attention);
        Assert.Equal((float)attention, cos[0]);                 // position 0: cos = 1 times the factor
    }

    [Fact]
    public void Dynamic_changes_nothing_up_to_the_original_length_and_raises_theta_past_it()
    {
        var cfg = Llama(RopeScaling.Parse("dynamic:factor=2")!);
        var (plain, _) = RopeFrequencies.Compute(Llama(null), 1);
        Assert.Equal(plain, RopeFrequencies.Compute(cfg, 64).InvFreq);
        var longer = RopeFrequencies.Compute(cfg, 256).InvFreq;
        Assert.Equal(plain[0], longer[0]);
        Assert.True(longer[^1] < plain[^1]);
    }

    [Fact]
    public void WithRope_records_the_original_context_and_the_extended_one()
    {
        var cfg = Llama(null).WithRope(null, RopeScaling.Parse("yarn:factor=4"));
        Assert.Equal(64, cfg.RopeScaling!.OriginalMaxPositions);
        Assert.Equal(256, cfg.MaxPositions);
        var back = ModelConfig.FromJson(cfg.ToJson(), "x");
        Assert.Equal(cfg.RopeScaling, back.RopeScaling);
        Assert.Equal(256, back.MaxPositions);
        var linear = RopeScaling.Parse("{\"type\": \"linear\", \"factor\": 2.0}")!;
        Assert.Equal("linear", linear.Type);
    }

    [Theory]
    [InlineData("su:factor=2", "is not supported")]
    [InlineData("yarn", "needs a 'factor'")]
    [InlineData("linear:factor=0.5", "factor must be at least 1")]
    [InlineData("llama3:factor=8", "needs low_freq_factor and high_freq_factor")]
    [InlineData("yarn:factor=two", "is not a number")]
    public void Bad_rope_scaling_is_one_clear_message(string text, string message)
    {
        var e = Assert.Throws<MemoException>(() => RopeScaling.Parse(text));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gpt2_refuses_rope_options()
    {
        var r = MemoProcess.Run(MemoProcess.TempDir(), "train", "--model", "gpt2-tiny", "--rope-theta", "500000", "--steps", "1");
        Assert.Equal(2, r.Exit);
        Assert.Contains("apply to llama models only", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_reads_a_hugging_face_config_with_rope_scaling()
    {
        string cfg = Path.Combine(ReferenceModelTests.FixtureDir("hf-llama3-bf16"), "config.json");
        var r = MemoProcess.Run(MemoProcess.TempDir(), "plan", "--model", cfg, "--seq", "4096", "--gpus", "1", "--gpu", "h100", "--json");
        Assert.True(r.Exit == 0, r.Stderr);
        Assert.Contains("fits", r.Stdout, StringComparison.Ordinal);
    }
}
