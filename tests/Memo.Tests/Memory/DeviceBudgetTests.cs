using Memo.Model;
using Memo.Model.Memory;
using Xunit.Abstractions;

namespace Memo.Tests.Memory;

/// <summary>Device budgets: what memo saves, measured by the arena during real steps.</summary>
public sealed class DeviceBudgetTests(ITestOutputHelper output)
{
    private static ModelConfig SmallLlama(int layers) => Presets.List().First(p => p.Name == "llama-small").Config with { NumLayers = layers };

    private static long MeasuredPeak(ModelConfig cfg, int seq, MemoryOptions mem)
    {
        var r = PolicyEquivalenceTests.Run(cfg, 1, seq, mem, steps: 1);
        return r.Metrics.DevicePeakBytes;
    }

    [Fact]
    public void Memo_trains_in_half_the_device_memory_of_keep_at_T4096()
    {
        var cfg = SmallLlama(8);
        const int seq = 4096;
        long p = MeasuredPeak(cfg, seq, new MemoryOptions { Policy = PolicyKind.Keep });
        long budget = p / 2;
        var memo = PolicyEquivalenceTests.Run(cfg, 1, seq, new MemoryOptions { Policy = PolicyKind.Memo, DeviceBudget = budget, Poison = true }, steps: 1);
        output.WriteLine($"keep peak P = {p} bytes; memo peak {memo.Metrics.DevicePeakBytes} bytes with budget P/2 = {budget}; alpha {memo.Metrics.Alpha}");
        Assert.True(memo.Metrics.DevicePeakBytes <= budget, $"memo measured {memo.Metrics.DevicePeakBytes} > P/2 = {budget}");
        Assert.True(double.IsFinite(memo.Losses[0]));
        var keep = PolicyEquivalenceTests.Run(cfg, 1, seq, new MemoryOptions { Policy = PolicyKind.Keep }, steps: 1);
        Assert.Equal(BitConverter.DoubleToInt64Bits(keep.Losses[0]), BitConverter.DoubleToInt64Bits(memo.Losses[0]));

        var e = Assert.Throws<MemoException>(() => new Transformer(cfg, 1, seq, null, new MemoryOptions { Policy = PolicyKind.Keep, DeviceBudget = budget }));
        output.WriteLine(e.Message);
        Assert.Contains("needs", e.Message, StringComparison.Ordinal);
        Assert.Contains("--policy", e.Message, StringComparison.Ordinal);
        Assert.Contains("memo", e.Message, StringComparison.Ordinal);
        Assert.Contains("--seq", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Memo_activation_memory_does_not_grow_with_layers_and_grows_linearly_with_T()
    {
        long Activations(int layers, int seq, PolicyKind policy)
        {
            var cfg = SmallLlama(layers) with { HiddenSize = 64, NumHeads = 2, NumKvHeads = 1, IntermediateSize = 176 };
            long peak = MeasuredPeak(cfg, seq, new MemoryOptions { Policy = policy });
            var cats = MemoryLayout.Build(cfg, 1, seq, policy, Memo.Cpu.WorkerPool.Default.Threads).ByCategory;
            return peak - cats[MemoryCategory.Parameters] - cats[MemoryCategory.Gradients] - cats[MemoryCategory.OptimizerState];
        }
        long m4 = Activations(4, 512, PolicyKind.Memo), m8 = Activations(8, 512, PolicyKind.Memo), m16 = Activations(16, 512, PolicyKind.Memo);
        long k4 = Activations(4, 512, PolicyKind.Keep), k16 = Activations(16, 512, PolicyKind.Keep);
        output.WriteLine($"device bytes beyond parameters, T=512: memo 4/8/16 layers {m4}/{m8}/{m16}; keep 4/16 layers {k4}/{k16}");
        Assert.Equal(m4, m8);
        Assert.Equal(m4, m16);
        Assert.True(k16 > 2 * k4, "keep grows with layers");

        long t1 = Activations(4, 1024, PolicyKind.Memo), t2 = Activations(4, 2048, PolicyKind.Memo), t4 = Activations(4, 4096, PolicyKind.Memo);
        output.WriteLine($"memo, 4 layers, T=1024/2048/4096: {t1}/{t2}/{t4} (ratios {(double)t2 / t1:0.000}, {(double)t4 / t2:0.000})");
        Assert.InRange((double)t2 / t1, 1.8, 2.05);
        Assert.InRange((double)t4 / t2, 1.9, 2.05);
    }

    [Fact]
    public void Bad_budgets_are_refused_before_any_work()
    {
        var cfg = SmallLlama(4);
        var tiny = Assert.Throws<MemoException>(() => new Transformer(cfg, 1, 256, null, new MemoryOptions { Policy = PolicyKind.Memo, DeviceBudget = 1 << 20 }));
        Assert.Contains("parameters", tiny.Message, StringComparison.Ordinal);
        var host = Assert.Throws<MemoException>(() => new Transformer(cfg, 1, 256, null, new MemoryOptions { Policy = PolicyKind.Memo, HostBudget = 1000 }));
        Assert.Contains("skeleton", host.Message, StringComparison.Ordinal);
        var swap = Assert.Throws<MemoException>(() => new Transformer(cfg, 1, 256, null, new MemoryOptions { Policy = PolicyKind.Swap, HostBudget = 1 << 20 }));
        Assert.Contains("--policy memo", swap.Message, StringComparison.Ordinal);
        var alpha = Assert.Throws<MemoException>(() => new Transformer(cfg, 1, 256, null, new MemoryOptions { Policy = PolicyKind.Memo, Alpha = 1.5 }));
        Assert.Contains("--alpha", alpha.Message, StringComparison.Ordinal);
        Assert.Throws<MemoException>(() => MemoryOptions.ParsePolicy("offload"));
    }
}
