using System.Diagnostics;
using System.Text;
using Memo.Cpu.Device;
using Memo.Model;
using Memo.Model.Memory;
using static Memo.Benchmarks.BenchUtil;

namespace Memo.Benchmarks;

/// <summary>
/// Step time of each memory policy relative to keep, on one configuration, with copy time, exposed copy
/// time and recomputation time. All policies are built first and timed in interleaved rounds, so drift in
/// machine load hits them alike; figures are medians over the rounds. With <c>--host-store disk:DIR</c> the
/// swap and memo variants also run with their store on disk (<c>swap disk</c>, <c>memo disk</c>, ...), and the
/// table adds the bytes written to and read from disk per step, the disk I/O time and the part of it hidden
/// behind compute. <c>--policies</c> picks variants by name (comma-separated).
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
        var baseCfg = Presets.Resolve(preset);
        // A preset gets --layers (default 8); a config.json keeps its own layer count unless --layers is given.
        var cfg = Arg(args, "--layers") != null || Presets.TryGet(preset, out _) ? baseCfg with { NumLayers = layers } : baseCfg;
        layers = cfg.NumLayers;
        var all = new List<(string Name, MemoryOptions Options)>
        {
            ("keep", new() { Policy = PolicyKind.Keep }),
            ("recompute", new() { Policy = PolicyKind.Recompute }),
            ("swap", new() { Policy = PolicyKind.Swap }),
            ("memo", new() { Policy = PolicyKind.Memo }),
            ("memo a=0.5", new() { Policy = PolicyKind.Memo, Alpha = 0.5 }),
        };
        if (Arg(args, "--host-store") is { } store)
        {
            var spec = HostStoreSpec.Parse(store);
            foreach (var (name, o) in all.Where(p => p.Options.Policy is PolicyKind.Swap or PolicyKind.Memo).ToList())
                all.Add((name.Replace("memo", "memo disk", StringComparison.Ordinal).Replace("swap", "swap disk", StringComparison.Ordinal), o with { HostStore = spec }));
        }
        var wanted = Arg(args, "--policies")?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var policies = (wanted == null ? all : wanted.Select(w => all.FirstOrDefault(p => p.Name == w) is { Name: not null } p ? p
            : throw new MemoException($"policies: unknown variant '{w}'; the variants are {string.Join(", ", all.Select(x => x.Name))}")).ToList()).ToArray();
        string load0 = LoadAverage();
        int n = batch * seq;
        var rng = new SplitMix64(1);
        var tokens = Enumerable.Range(0, n + 1).Select(_ => (int)(rng.Next() % (ulong)cfg.VocabSize)).ToArray();
        var models = policies.Select(p =>
        {
            var m = new Transformer(cfg, batch, seq, null, p.Options);
            Initializer.Initialize(m, 1);
            if (m.DiskProbe is { } probe) Console.Error.WriteLine($"{p.Name}: {probe}");
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
        double keep = policies[0].Name == "keep" ? Median(times[0]) : double.NaN;
        var probes = models.Select(m => m.DiskProbe).Where(p => p != null).Distinct().ToList();
        bool disk = probes.Count > 0;
        var sb = new StringBuilder();
        sb.AppendLine($"### Memory policies: {cfg.Name} with {layers} layers, {batch} x {seq} tokens");
        sb.AppendLine();
        sb.AppendLine($"Machine: {Machine()}, shared with other work; load average (1, 5, 15 min) {load0} at start, {LoadAverage()} at end. Medians over {rounds} interleaved rounds (one warm-up round discarded); forward + backward of one step.");
        sb.AppendLine($"Command: `Memo.Benchmarks policies {string.Join(' ', args)}`.");
        foreach (var p in probes) sb.AppendLine($"Start-up probe: {p}.");
        sb.AppendLine();
        sb.AppendLine("| policy | step ms | vs keep | device peak | host store | swapped MiB | copy ms | exposed copy ms | recompute ms | recomputed tokens | alpha | layer fwd ms |" + (disk ? " disk written MiB | disk read MiB | disk I/O ms | disk wait ms | disk I/O hidden |" : ""));
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|" + (disk ? "---|---|---|---|---|" : ""));
        for (int i = 0; i < policies.Length; i++)
        {
            double t = Median(times[i]);
            var last = metrics[i][^1];
            sb.AppendLine($"| {policies[i].Name} | {F(t)} | {F(t / keep, "0.000")}x | {Sizes.FormatBytes(last.DevicePeakBytes)} | {Sizes.FormatBytes(last.HostPeakBytes)} | " +
                $"{F(last.SwappedBytes / 1048576.0)} | {F(Median(metrics[i].Select(m => m.CopyMs)))} | {F(Median(metrics[i].Select(m => m.ExposedCopyMs)), "0.00")} | " +
                $"{F(Median(metrics[i].Select(m => m.RecomputeMs)))} | {last.RecomputedTokens} | {F(last.Alpha, "0.###")} | {F(Median(metrics[i].Select(m => m.LayerForwardMs)))} |" +
                (disk ? DiskColumns(metrics[i]) : ""));
        }
        foreach (var m in models) m.Dispose();
        Emit(args, sb.ToString());
        return 0;
    }

    private static string DiskColumns(List<StepMemoryMetrics> ms)
    {
        double io = Median(ms.Select(m => m.DiskIoMs)), wait = Median(ms.Select(m => m.DiskWaitMs));
        if (io == 0) return " - | - | - | - | - |";
        return $" {F(Median(ms.Select(m => (double)m.DiskWrittenBytes)) / 1048576.0)} | {F(Median(ms.Select(m => (double)m.DiskReadBytes)) / 1048576.0)} | {F(io)} | {F(wait, "0.00")} | {F(100 * Math.Max(0, 1 - wait / io))}% |";
    }
}
