using Memo.Cpu;
using Memo.Model;
using Memo.Model.Memory;
using Xunit.Abstractions;

namespace Memo.Tests.Memory;

/// <summary>
/// Every memory policy computes the same function: for the same weights and data, keep, recompute, swap
/// and memo (several alphas and the measured choice) give bit-identical losses and gradients, with every
/// released device region poisoned with NaN so a use after release would show.
/// </summary>
public sealed unsafe class PolicyEquivalenceTests(ITestOutputHelper output)
{
    internal static ModelConfig Config(ModelFamily family, int layers) => (family == ModelFamily.Llama
        ? Presets.List().First(p => p.Name == "llama-tiny").Config
        : Presets.List().First(p => p.Name == "gpt2-tiny").Config) with { NumLayers = layers };

    internal static (int[] Inputs, int[] Targets) Data(int n, int vocab, ulong seed)
    {
        var rng = new SplitMix64(seed);
        var tokens = new int[n + 1];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = (int)(rng.Next() % (ulong)vocab);
        return (tokens[..n], tokens[1..]);
    }

    /// <summary>Runs <paramref name="steps"/> forward+backward passes (weights fixed) and returns the losses and the final gradients.</summary>
    internal static (double[] Losses, float[] Grads, StepMemoryMetrics Metrics) Run(ModelConfig cfg, int batch, int seq, MemoryOptions mem, int steps = 2, WorkerPool? pool = null)
    {
        using var model = new Transformer(cfg, batch, seq, pool, mem);
        Initializer.Initialize(model, 7);
        var losses = new double[steps];
        for (int s = 0; s < steps; s++)
        {
            var (x, y) = Data(batch * seq, cfg.VocabSize, (ulong)(100 + s));
            model.ZeroGrads();
            losses[s] = model.Step(batch, seq, x, y, backward: true, 1f / (batch * seq));
        }
        var grads = new Span<float>(model.Grads, checked((int)model.Layout.TotalElements)).ToArray();
        return (losses, grads, model.LastMetrics);
    }

    public static TheoryData<ModelFamily> Families => new() { ModelFamily.Llama, ModelFamily.Gpt2 };

    [Theory]
    [MemberData(nameof(Families))]
    public void All_policies_give_identical_bits_with_poisoning(ModelFamily family)
    {
        var cfg = Config(family, layers: 5);
        const int batch = 2, seq = 48;
        var reference = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Keep, Poison = true });
        Assert.All(reference.Losses, l => Assert.True(double.IsFinite(l)));
        var variants = new (string Name, MemoryOptions Options)[]
        {
            ("recompute", new() { Policy = PolicyKind.Recompute, Poison = true }),
            ("swap", new() { Policy = PolicyKind.Swap, Poison = true }),
            ("memo alpha=0", new() { Policy = PolicyKind.Memo, Alpha = 0, Poison = true }),
            ("memo alpha=0.37", new() { Policy = PolicyKind.Memo, Alpha = 0.37, Poison = true }),
            ("memo alpha=1", new() { Policy = PolicyKind.Memo, Alpha = 1, Poison = true }),
            ("memo chosen", new() { Policy = PolicyKind.Memo, Poison = true }),
        };
        foreach (var (name, options) in variants)
        {
            var r = Run(cfg, batch, seq, options, steps: 3);
            output.WriteLine($"{name}: losses {string.Join(", ", r.Losses)} alpha {r.Metrics.Alpha:0.###} swapped {r.Metrics.SwappedBytes} recomputed {r.Metrics.RecomputedTokens}");
            for (int s = 0; s < reference.Losses.Length; s++)
                Assert.True(BitConverter.DoubleToInt64Bits(reference.Losses[s]) == BitConverter.DoubleToInt64Bits(r.Losses[s]), $"{name}: loss of step {s} differs: {r.Losses[s]:R} vs {reference.Losses[s]:R}");
        }
        // Gradients after the same number of steps, bit for bit.
        var keep3 = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Keep, Poison = true }, steps: 3);
        foreach (var (name, options) in variants)
        {
            var r = Run(cfg, batch, seq, options, steps: 3);
            Assert.True(keep3.Grads.AsSpan().SequenceEqual(r.Grads), $"{name}: gradients differ from keep");
        }
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Memo_takes_one_alpha_per_layer(ModelFamily family)
    {
        // 5 layers: layers 0-2 are swapped (the last two start backward at once). Batch 2 x 48 = 96 tokens per step.
        var cfg = Config(family, layers: 5);
        const int batch = 2, seq = 48;
        var keep = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Keep, Poison = true }, steps: 2);
        // A uniform vector is the scalar alpha, to the bit.
        var scalar = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Memo, Alpha = 0.37, Poison = true }, steps: 2);
        var uniform = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Memo, Alphas = [0.37, 0.37, 0.37, 0.37, 0.37], Poison = true }, steps: 2);
        Assert.Equal(scalar.Losses, uniform.Losses);
        Assert.True(scalar.Grads.AsSpan().SequenceEqual(uniform.Grads));
        Assert.Equal(scalar.Metrics.RecomputedTokens, uniform.Metrics.RecomputedTokens);
        Assert.Equal(scalar.Metrics.SwappedBytes, uniform.Metrics.SwappedBytes);
        // Layers swap floor(alpha_l x 96) tokens: 24, 72 and 48, so 72 + 24 + 48 = 144 tokens are recomputed per step,
        // and the step ran at a mean alpha of (24 + 72 + 48) / 3 / 96 = 0.5. The function is still keep's, to the bit.
        var vector = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Memo, Alphas = [0.25, 0.75, 0.5, 0.9, 0.1], Poison = true }, steps: 2);
        output.WriteLine($"per-layer alpha: recomputed {vector.Metrics.RecomputedTokens}, alpha {vector.Metrics.Alpha}, swapped {vector.Metrics.SwappedBytes}");
        Assert.Equal(144, vector.Metrics.RecomputedTokens);
        Assert.Equal(0.5, vector.Metrics.Alpha, 12);
        Assert.Equal(keep.Losses, vector.Losses);
        Assert.True(keep.Grads.AsSpan().SequenceEqual(vector.Grads), "per-layer alpha: gradients differ from keep");
        // A vector of the wrong length is one clear error.
        var e = Assert.Throws<MemoException>(() => Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Memo, Alphas = [0.5, 0.5] }, steps: 1));
        Assert.Contains("5 layers", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Memo_swaps_a_share_of_tokens_and_recomputes_the_rest()
    {
        var cfg = Config(ModelFamily.Llama, layers: 6);
        const int batch = 1, seq = 64;
        var full = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Swap }, steps: 1).Metrics;
        var half = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Memo, Alpha = 0.5 }, steps: 1).Metrics;
        var none = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Memo, Alpha = 0 }, steps: 1).Metrics;
        // 4 swapped layers (the last two are not swapped): memo recomputes (1 - alpha) of their tokens.
        Assert.Equal(0, full.RecomputedTokens);
        Assert.Equal(4 * 32, half.RecomputedTokens);
        Assert.Equal(4 * 64, none.RecomputedTokens);
        Assert.True(full.SwappedBytes > half.SwappedBytes && half.SwappedBytes > none.SwappedBytes && none.SwappedBytes > 0);
        Assert.Equal(full.SwappedBytes, full.HostPeakBytes);
        var recompute = Run(cfg, batch, seq, new MemoryOptions { Policy = PolicyKind.Recompute }, steps: 1).Metrics;
        Assert.Equal(6 * 64, recompute.RecomputedTokens);
        Assert.Equal(0, recompute.SwappedBytes);
    }

    [Fact]
    public void Poisoning_catches_a_missing_recomputation()
    {
        // With alpha = 0 and poisoning on, memo must recompute every token-local row; a run that swaps
        // nothing and recomputes nothing would read NaN. Check that poisoned regions really are NaN by
        // reading a released slot after a forward-only step under swap.
        var cfg = Config(ModelFamily.Llama, layers: 4);
        using var model = new Transformer(cfg, 1, 32, null, new MemoryOptions { Policy = PolicyKind.Keep, Poison = true });
        Initializer.Initialize(model, 1);
        var (x, y) = Data(32, cfg.VocabSize, 5);
        model.ZeroGrads();
        model.Step(1, 32, x, y, backward: true, 1f / 32);
        long off = model.DeviceLayout.Offset(BufferId.LayerActivation(0, ActivationInventory.IndexOf(cfg, "Norm1")));
        float* released = (float*)(model.Arena.Base + off);
        Assert.True(float.IsNaN(released[0]) && float.IsNaN(released[31 * cfg.HiddenSize]), "a released activation should be NaN under --poison");
    }
}
