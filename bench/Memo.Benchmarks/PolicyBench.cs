using System.Diagnostics;
using System.Text;
using Memo.Model;
using Memo.Model.Memory;
using static Memo.Benchmarks.BenchUtil;

namespace Memo.Benchmarks;

/// <summary>
/// Step time of each memory policy relative to keep, on one configuration, with copy time, exposed copy
/// time and recomputation time. All policies are built first and timed in interleaved rounds, so drift in
/// machine load hits them alike; figures are medians over the rounds.
/// </summary>
internal static class PolicyBench
{
    public static int Run(string[] args)
    {
        string preset = Arg(args, "--model") ?? "llama-small";
        int layers = IntArg(args, "--layers", 8);
        int seq = IntArg(args, "--seq", 4096);
        int batch = IntArg(args, "--batch", 1);
        int rounds = IntArg(args, "--rounds", 5);
        var cfg = Presets.Resolve(preset) with { NumLayers = layers };
        var policies = new (string Name, MemoryOptions Options)[]
        {
            ("keep", new() { Policy = PolicyKind.Keep }),
            ("recompute", new() { Policy = PolicyKind.Recompute }),
            ("swap", new() { Policy = PolicyKind.Swap }),
            ("memo", new() { Policy = PolicyKind.Memo }),
            ("memo a=0.5", new() { Policy = PolicyKind.Memo, Alpha = 0.5 }),
        };
        int n = batch * seq;
        var rng = new SplitMix64(1);
        var tokens = Enumerable.Range(0, n + 1).Select(_ => (int)(rng.Next() % (ulong)cfg.VocabSize)).ToArray();
        var models = policies.Select(p =>
        {
            var m = new Transformer(cfg, batch, seq, null, p.Options);
            Initializer.Initialize(m, 1);
            return m;
        }).ToArray();
        var times = policies.Select(_ => new List<double>()).ToArray();
        var metrics = policies.Select(_ => new List<StepMemoryMetrics>()).ToArray();
        Console.Error.WriteLine($"policy benchmark: {cfg} at {batch} x {seq}, {rounds} rounds (+1 warm-up)");
        for (int r = 0; r <= rounds; r++)
        {
            for (int i = 0; i < models.Length; i++)
            {
                models[i].ZeroGrads();
                var sw = Stopwatch.StartNew();
                models[i].Step(batch, seq, tokens.AsSpan(0, n), tokens.AsSpan(1, n), backward: true, 1f / n);
                double ms = sw.Elapsed.TotalMilliseconds;
                if (r == 0) continue;
                times[i].Add(ms);
                metrics[i].Add(models[i].LastMetrics);
                Console.Error.WriteLine($"  round {r} {policies[i].Name,-10} {F(ms)} ms");
            }
        }
        double keep = Median(times[0]);
        var sb = new StringBuilder();
        sb.AppendLine($"### Memory policies: {cfg.Name} with {layers} layers, {batch} x {seq} tokens");
        sb.AppendLine();
        sb.AppendLine($"Machine: {Machine()}. Medians over {rounds} interleaved rounds (one warm-up round discarded); forward + backward of one step.");
        sb.AppendLine();
        sb.AppendLine("| policy | step ms | vs keep | device peak | host store | swapped MiB | copy ms | exposed copy ms | recompute ms | recomputed tokens | alpha | layer fwd ms |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (int i = 0; i < policies.Length; i++)
        {
            double t = Median(times[i]);
            var last = metrics[i][^1];
            sb.AppendLine($"| {policies[i].Name} | {F(t)} | {F(t / keep, "0.000")}x | {Sizes.FormatBytes(last.DevicePeakBytes)} | {Sizes.FormatBytes(last.HostPeakBytes)} | " +
                $"{F(last.SwappedBytes / 1048576.0)} | {F(Median(metrics[i].Select(m => m.CopyMs)))} | {F(Median(metrics[i].Select(m => m.ExposedCopyMs)), "0.00")} | " +
                $"{F(Median(metrics[i].Select(m => m.RecomputeMs)))} | {last.RecomputedTokens} | {F(last.Alpha, "0.###")} | {F(Median(metrics[i].Select(m => m.LayerForwardMs)))} |");
        }
        foreach (var m in models) m.Dispose();
        Emit(args, sb.ToString());
        return 0;
    }
}
