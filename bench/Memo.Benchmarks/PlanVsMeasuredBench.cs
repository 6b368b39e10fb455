using System.Diagnostics;
using System.Globalization;
using System.Text;
using Memo.CostModel;
using Memo.Cpu;
using Memo.Model;
using Memo.Model.Memory;
using Memo.Training;
using Memo.Training.Data;
using static Memo.Benchmarks.BenchUtil;

namespace Memo.Benchmarks;

/// <summary>
/// <c>memo plan --gpu cpu --measure</c> against real training steps of the CPU engine. For each configuration
/// (model and sequence length) and engine policy, the planner's prediction and a measured step (as
/// <c>memo train</c> runs it: clear gradients, forward, loss, backward, AdamW) are taken in interleaved rounds:
/// each round first calibrates the profile at the configuration's shapes (<see cref="CpuMeasure"/>), then plans,
/// then times one step of every policy, so that changes in the machine's load hit prediction and measurement
/// alike. Reports medians over the rounds, the ratio predicted / measured, and the planned and measured device
/// peaks (which must be equal).
/// </summary>
internal static partial class PlanVsMeasuredBench
{
    private sealed record Row(string Model, int Seq, PolicyKind Policy, string Strategy)
    {
        public List<double> Predicted { get; } = [];
        public List<double> Measured { get; } = [];
        public List<double> Ratios { get; } = [];
        public List<StepTime> Parts { get; } = [];
        public long PlannedPeak { get; set; }
        public long MeasuredPeak { get; set; }
        public double Alpha { get; set; }
        public List<double> PredictedRecomputeMs { get; } = [];
        public List<double> MeasuredRecomputeMs { get; } = [];
        public long PredictedSwapOutBytes { get; set; }
        public long MeasuredSwapOutBytes { get; set; }

        /// <summary>The GPU memory model's formula (fp32, one device, the engine's head chunk) at the same shapes.</summary>
        public MemoryBreakdown? Formula { get; set; }

        /// <summary>The engine's planned arena, by category (live bytes at its peak; padding as fragmentation).</summary>
        public MemoryBreakdown? Arena { get; set; }
    }

    public static int Run(string[] args)
    {
        var configs = (Arg(args, "--configs") ?? "llama-small:1024,llama-small:2048,llama-small:4096,gpt2-tiny:1024")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(c => c.Split(':') is [var m, var t] ? (Model: m, Seq: int.Parse(t, CultureInfo.InvariantCulture)) : throw new MemoException($"--configs: '{c}' is not MODEL:SEQ"))
            .ToArray();
        var policies = (Arg(args, "--policies") ?? "keep,recompute,swap,memo")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(MemoryOptions.ParsePolicy).ToArray();
        var fixedAlphas = (Arg(args, "--alphas") ?? "0.25,0.5,0.75")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(a => double.Parse(a, CultureInfo.InvariantCulture) is var v && v is >= 0 and <= 1 ? v : throw new MemoException($"--alphas: '{a}' is not in [0, 1]"))
            .ToArray();
        int threads = IntArg(args, "--threads", 2);
        int rounds = IntArg(args, "--rounds", 5);
        double minSeconds = double.Parse(Arg(args, "--calibrate-seconds") ?? "0.1", CultureInfo.InvariantCulture);
        string clockName = Arg(args, "--clock") ?? "wall";
        if (clockName is not ("wall" or "thread")) throw new MemoException($"--clock must be wall or thread (got '{clockName}')");
        bool threadClock = clockName == "thread";
        if (threadClock && threads != 1)
            throw new MemoException("--clock thread reads the calling thread's CPU time, which counts all the work only with --threads 1");
        Func<double> clock = threadClock ? ThreadCpuSeconds : () => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
        WorkerPool.SetDefaultThreads(threads);
        string load = Uptime();
        var started = DateTime.UtcNow;

        var rows = new List<Row>();
        var calibration = new List<(string Config, List<DeviceProfile> Profiles)>();
        foreach (var (name, seq) in configs)
        {
            var cfg = Presets.Resolve(name);
            var request = new PlanRequest { Model = cfg, Seq = seq, Gpus = 1, Device = DeviceProfile.Cpu(), Threads = threads };
            var measure = new CpuMeasure(copyBytes: 128L << 20, minSeconds: minSeconds, clock: clock);
            var workload = new MeasureWorkload(cfg, 1, seq, threads);
            var profiles = new List<DeviceProfile>();
            calibration.Add(($"{name} T={seq}", profiles));

            // The plan fixes memo's alpha; the engine runs that alpha (no re-choice after step 1), so both run the same plan.
            var firstPlan = PlanFor(request with { Device = measure.Measure(request.Device, workload, []) }, policies, threads);
            // Every policy as planned, then memo at each fixed alpha (token-wise recompute and swap volume against measurement).
            var configsToRun = policies.Select(p => (Policy: p, Planned: firstPlan[p]))
                .Concat(fixedAlphas.Select(a => (Policy: PolicyKind.Memo, Planned: (Policy: CpuRuntime.PolicyOf(PolicyKind.Memo, cfg.NumLayers, a), Strategy: FormattableString.Invariant($"memo, alpha fixed {a}")))))
                .ToArray();
            var runs = configsToRun.Select(x =>
            {
                var p = x.Policy;
                var (mp, strategy) = x.Planned;
                double alpha = CpuRuntime.AlphaOf(mp, cfg.NumLayers);
                var options = new MemoryOptions { Policy = p, Alpha = p == PolicyKind.Memo ? alpha : null };
                var model = new Transformer(cfg, 1, seq, null, options);
                Initializer.Initialize(model, 1);
                var rng = new Random(1);
                var tokens = Enumerable.Range(0, 2 * seq + 1).Select(_ => rng.Next(cfg.VocabSize)).ToArray();
                var trainer = new Trainer(model, new MemoryTokenSource(tokens, cfg.VocabSize), new TrainHyper(), 1, seq, 1);
                for (int w = 0; w < 3; w++) trainer.TrainStep(); // warm-up: optimized code, first touch of the arena and host store
                var row = new Row(name, seq, p, strategy) { Alpha = p is PolicyKind.Memo or PolicyKind.Swap ? alpha : double.NaN };
                rows.Add(row);
                return (Row: row, Model: model, Trainer: trainer, Policy: mp);
            }).ToArray();

            for (int r = 0; r < rounds; r++)
            {
                var profile = measure.Measure(request.Device, workload, []);
                profiles.Add(profile);
                foreach (var run in runs)
                {
                    double t0 = clock();
                    var step = run.Trainer.TrainStep();
                    double ms = threadClock ? (clock() - t0) * 1e3 : step.StepMs;
                    var time = CpuTimeModel.Step(cfg, 1, seq, run.Policy, profile, threads);
                    var mem = CpuRuntime.Memory(cfg, 1, seq, run.Policy, threads);
                    run.Row.Predicted.Add(time.Step * 1e3);
                    run.Row.Measured.Add(ms);
                    run.Row.Ratios.Add(time.Step * 1e3 / ms);
                    run.Row.Parts.Add(time);
                    run.Row.PlannedPeak = mem.Peak;
                    run.Row.MeasuredPeak = step.Memory.DevicePeakBytes;
                    run.Row.PredictedRecomputeMs.Add(time.Recompute * 1e3);
                    run.Row.MeasuredRecomputeMs.Add(step.Memory.RecomputeMs);
                    run.Row.PredictedSwapOutBytes = time.SwapBytes / 2; // the model counts both directions; the engine counts copies out
                    run.Row.MeasuredSwapOutBytes = step.Memory.SwappedBytes;
                    run.Row.Arena = mem;
                    run.Row.Formula = MemoryModel.PerDevice(new MemoryQuery
                    {
                        Model = cfg, Batch = 1, Seq = seq, Policy = run.Policy, Precision = Precision.Fp32, LearnedPositionTable = true,
                        LogitsChunkTokens = Transformer.HeadChunkRows,
                    });
                    Console.Error.WriteLine($"  {name} T={seq} round {r} {run.Row.Policy.ToString().ToLowerInvariant(),-9} predicted {F(time.Step * 1e3)} ms, measured {F(ms)} ms");
                }
            }
            foreach (var run in runs)
            {
                run.Trainer.Dispose();
                run.Model.Dispose();
            }
        }

        Emit(args, Report(rows, calibration, started, load, Uptime(), threads, rounds, threadClock));
        return rows.All(r => r.PlannedPeak == r.MeasuredPeak) ? 0 : 1;
    }

    /// <summary>The planner's policy per engine policy, and the strategy that plans it on one CPU.</summary>
    private static Dictionary<PolicyKind, (MemoryPolicy Policy, string Strategy)> PlanFor(PlanRequest request, PolicyKind[] policies, int threads)
    {
        int layers = request.Model.NumLayers;
        var result = new Dictionary<PolicyKind, (MemoryPolicy, string)>();
        foreach (var p in policies)
        {
            result[p] = p switch
            {
                PolicyKind.Keep => (StrategySearch.Plan(request, Strategy.Keep).Policy!, "keep"),
                PolicyKind.Recompute => (StrategySearch.Plan(request, Strategy.DeepSpeed).Policy!, "deepspeed"),
                PolicyKind.Memo => (StrategySearch.Plan(request, Strategy.Memo).Policy!, "memo"),
                _ => (MemoryPolicy.Swap(layers), "(memo at alpha 1)"),
            };
        }
        return result;
    }

    private static string Report(List<Row> rows, List<(string Config, List<DeviceProfile> Profiles)> calibration, DateTime started, string loadBefore, string loadAfter,
        int threads, int rounds, bool threadClock)
    {
        var sb = new StringBuilder();
        sb.AppendLine("### Planner vs CPU engine: predicted and measured step time, device peak");
        sb.AppendLine();
        sb.AppendLine($"Run {started:yyyy-MM-dd HH:mm} UTC. Machine: {Machine()}, {threads} worker threads.");
        sb.AppendLine($"Load (`uptime`) before: `{loadBefore}`; after: `{loadAfter}`. The machine is shared with other jobs, so absolute times move with their load.");
        sb.AppendLine();
        sb.AppendLine($"Method: `Memo.Benchmarks plan-vs-measured`. In each of {rounds} rounds per configuration the profile is first calibrated at the");
        sb.AppendLine("configuration's shapes (`memo plan --gpu cpu --measure`: the engine's GEMM mix, attention forward/backward, an element-wise pass,");
        sb.AppendLine("one-thread memcpy), then one training step of every policy is timed as `memo train` times it (clear gradients, forward, loss,");
        sb.AppendLine("backward, AdamW; one warm-up step first). Figures are medians over the rounds; the ratio is the median of the per-round");
        sb.AppendLine("ratios predicted / measured. Memo runs the planner's alpha. Device peaks: planned by `memo plan --gpu cpu`, measured by the");
        sb.AppendLine("engine's arena (`device_peak_bytes`).");
        if (threadClock)
        {
            sb.AppendLine();
            sb.AppendLine("Clock: the calling thread's CPU time (one worker thread, so it does all the compute), for calibration and steps alike:");
            sb.AppendLine("time the thread was descheduled by other jobs is not counted. The copy engine's thread is not counted either.");
        }
        sb.AppendLine();
        sb.AppendLine("| model | tokens | policy | planner strategy (or fixed alpha) | alpha | device peak planned | device peak measured | predicted ms | measured ms | predicted / measured | predicted fwd / bwd / recompute / head+opt / copy ms |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            string parts = string.Join(" / ", new[]
            {
                Median(r.Parts.Select(p => p.Forward)), Median(r.Parts.Select(p => p.Backward)), Median(r.Parts.Select(p => p.Recompute)),
                Median(r.Parts.Select(p => p.Head + p.Optimizer)), Median(r.Parts.Select(p => p.SwapExposed)),
            }.Select(s => F(s * 1e3)));
            sb.AppendLine($"| {r.Model} | {r.Seq} | {r.Policy.ToString().ToLowerInvariant()} | {r.Strategy} | {(double.IsNaN(r.Alpha) ? "-" : F(r.Alpha, "0.###"))} | " +
                $"{r.PlannedPeak:N0} | {r.MeasuredPeak:N0}{(r.PlannedPeak == r.MeasuredPeak ? "" : " (differs)")} | {F(Median(r.Predicted))} | {F(Median(r.Measured))} | " +
                $"{F(Median(r.Ratios), "0.00")} | {parts} |");
        }
        sb.AppendLine();
        sb.AppendLine("#### Memo's token-wise recompute and swap volume, predicted vs measured");
        sb.AppendLine();
        sb.AppendLine("Recompute: the planner's `recompute` time (the (1 - alpha) tokens' pre- and post-attention ops of every swapped layer) against the");
        sb.AppendLine("engine's measured recompute time (`recompute_ms` of `memo train`), medians over the rounds. Swap: bytes copied to the host per step,");
        sb.AppendLine("the planner's (half its both-way `swap_bytes`) against the engine's `swapped_bytes`.");
        sb.AppendLine();
        sb.AppendLine("| model | tokens | run | alpha | recompute ms predicted | recompute ms measured | predicted / measured | swapped out, predicted B | swapped out, measured B |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows.Where(r => r.Policy is PolicyKind.Memo or PolicyKind.Swap))
        {
            double pr = Median(r.PredictedRecomputeMs), me = Median(r.MeasuredRecomputeMs);
            sb.AppendLine($"| {r.Model} | {r.Seq} | {r.Strategy} | {F(r.Alpha, "0.###")} | {F(pr)} | {F(me)} | {(me > 0 ? F(pr / me, "0.00") : "-")} | " +
                $"{r.PredictedSwapOutBytes:N0} | {r.MeasuredSwapOutBytes:N0}{(r.PredictedSwapOutBytes == r.MeasuredSwapOutBytes ? "" : " (differs)")} |");
        }
        sb.AppendLine();
        sb.AppendLine("#### The GPU memory model's formula against the engine's planned arena");
        sb.AppendLine();
        sb.AppendLine("Formula: `MemoryModel.PerDevice` (the per-device formula `memo plan` uses for GPUs: inventory rows x tokens, three phases,");
        sb.AppendLine("its own workspace rules) at the engine's dtypes (fp32), one device, the engine's 256-token head chunk. Arena: the engine's");
        sb.AppendLine("planned layout (`MemoryLayout.Build`, buffers with lifespans, offsets by the planner), which is what `memo train` measures.");
        sb.AppendLine("The two are computed independently, so they can and do disagree; the columns show where.");
        sb.AppendLine();
        sb.AppendLine("| model | tokens | run | formula peak B | arena peak B | formula / arena | static (formula / arena) | activations kept+staging+recompute (formula / arena) | workspaces (formula / arena) |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows.Where(r => r.Formula is not null && r.Arena is not null))
        {
            var f = r.Formula!;
            var a = r.Arena!;
            long fs = f.Parameters + f.Gradients + f.OptimizerState, as_ = a.Parameters + a.Gradients + a.OptimizerState;
            long fa = f.KeptActivations + f.SwapStaging + f.RecomputeBuffers, aa = a.KeptActivations + a.SwapStaging + a.RecomputeBuffers;
            sb.AppendLine($"| {r.Model} | {r.Seq} | {r.Strategy} | {f.Peak:N0} | {a.Peak:N0} | {F((double)f.Peak / a.Peak, "0.000")} | {fs:N0} / {as_:N0} | {fa:N0} / {aa:N0} | {f.Workspaces:N0} / {a.Workspaces:N0} |");
        }
        var ratios = rows.Select(r => Median(r.Ratios)).ToArray();
        sb.AppendLine();
        sb.AppendLine($"Ratios: {F(ratios.Min(), "0.00")} to {F(ratios.Max(), "0.00")}; {ratios.Count(x => Math.Abs(x - 1) <= 0.25)} of {ratios.Length} within 25%.");
        sb.AppendLine();
        sb.AppendLine("Calibration (medians over the rounds):");
        sb.AppendLine();
        sb.AppendLine("| configuration | GEMM mix GFLOP/s | attention fwd GFLOP/s | attention bwd GFLOP/s | element-wise GB/s | memcpy (1 thread) GB/s |");
        sb.AppendLine("|---|---|---|---|---|---|");
        foreach (var (config, ps) in calibration)
        {
            double peak = ps[0].PeakFp32Flops;
            sb.AppendLine($"| {config} | {F(Median(ps.Select(p => p.GemmEfficiency * peak)) / 1e9)} | {F(Median(ps.Select(p => p.AttentionForwardEfficiency * peak)) / 1e9)} | " +
                $"{F(Median(ps.Select(p => p.AttentionBackwardEfficiency * peak)) / 1e9)} | {F(Median(ps.Select(p => p.MemoryBandwidth)) / 1e9)} | {F(Median(ps.Select(p => p.HostLinkBandwidth)) / 1e9)} |");
        }
        return sb.ToString();
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec t);

    /// <summary>CPU seconds of the calling thread (CLOCK_THREAD_CPUTIME_ID, Linux).</summary>
    private static double ThreadCpuSeconds()
    {
        const int ThreadCpuClock = 3;
        return ClockGetTime(ThreadCpuClock, out var t) == 0 ? t.Seconds + t.Nanoseconds * 1e-9 : throw new MemoException("--clock thread needs clock_gettime(CLOCK_THREAD_CPUTIME_ID) (Linux)");
    }

    private static string Uptime()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("uptime") { RedirectStandardOutput = true })!;
            string s = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return s;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "load unknown (no uptime)";
        }
    }
}
