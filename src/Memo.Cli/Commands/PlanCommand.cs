using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Memo.Cli.Plots;
using Memo.CostModel;
using Memo.CostModel.Cpu;
using Spectre.Console;

namespace Memo.Cli.Commands;

/// <summary>
/// <c>memo plan</c>: before any GPU hour is spent, answers whether a model at a sequence length fits on given GPUs
/// and host, with which strategy, policy and alpha, using how much device and host memory, at what step time,
/// tokens/s and MFU. All figures come from the cost model (src/Memo.CostModel) and the device profile.
/// </summary>
public static class PlanCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static Command Create()
    {
        var model = OptionTable.Model();
        var layers = OptionTable.Layers();
        var seq = OptionTable.SeqOptional();
        var gpus = new Option<int?>("--gpus") { Description = "Number of GPUs (default: one node of the profile)" };
        var gpu = new Option<string>("--gpu") { Description = "Device profile: " + string.Join(", ", DeviceProfile.Names), DefaultValueFactory = _ => "a800" };
        var nodeHostMemory = OptionTable.NodeHostMemory();
        // --host-memory is memo train's swap-store budget; plan names a node's host memory --node-host-memory and
        // refuses the old spelling with a line saying so (hidden from help).
        var hostMemory = OptionTable.HostMemory();
        hostMemory.Hidden = true;
        var deviceMemory = OptionTable.DeviceMemory();
        var diskTier = OptionTable.DiskTier();
        var tp = new Option<int?>("--tp") { Description = "Fix the tensor-parallel degree" };
        var cp = new Option<int?>("--cp") { Description = OptionTable.Cp().Description };
        var dp = new Option<int?>("--dp") { Description = "Fix the data-parallel degree" };
        var strategy = new Option<string[]>("--strategy")
        {
            Description = "Strategies to compare: memo, megatron, deepspeed, keep (comma-separated or repeated; default all)",
            AllowMultipleArgumentsPerToken = true,
        };
        var batch = OptionTable.Batch(1);
        var json = OptionTable.Json();
        var plot = OptionTable.Plot();
        var sweep = new Option<string?>("--sweep-seq") { Description = "Plan at each length of a doubling range, e.g. 32K..4M" };
        var maxSeq = new Option<bool>("--max-seq") { Description = "Find the longest sequence that fits, per strategy: a multiple of 1K (of 3K with 6 GPUs or ranks, so every layout can split it)" };
        var measure = new Option<bool>("--measure") { Description = "Measure what the local backend can (cpu: the engine's GEMM and attention FLOP/s at the model's shapes, element-wise and copy bandwidth)" };
        var threads = OptionTable.Threads();
        var profile = new Option<string?>("--device-profile") { Description = "JSON device-profile file overriding fields of --gpu (keys as in --json's profile)" };
        var pp = new Option<int?>("--pp") { Description = "Fix the pipeline-parallel degree (stages; must divide the layers)" };
        var lmHead = new Option<string>("--lm-head") { Description = "LM head and loss for every strategy: chunked (8K tokens at a time) or whole (all logits at once)", DefaultValueFactory = _ => "chunked" };
        var without = new Option<string[]>("--without")
        {
            Description = "Baseline features the search may not use: " + string.Join(", ", FeatureNames.All) + " (comma-separated)",
            AllowMultipleArgumentsPerToken = true,
        };
        var fragmentation = new Option<double?>("--fragmentation") { Description = "Caching-allocator factor on the activation side for megatron and deepspeed (default 1.15, the paper's measurement)" };
        var verbose = new Option<bool>("--verbose") { Description = "Print every efficiency, bandwidth and allowance with its source" };
        var sensitivity = new Option<bool>("--sensitivity") { Description = "Show how fit, alpha and MFU move when each assumed figure changes by a stated amount (with --plot: a tornado plot)" };

        var cmd = new Command("plan", "Predict memory, step time and MFU of long-sequence training for memo, megatron, deepspeed and keep, before running it. Needs --model and --seq (or --max-seq or --sweep-seq instead of --seq). Exit code 3 when nothing fits.")
        {
            model, layers, seq, gpus, gpu, nodeHostMemory, hostMemory, deviceMemory, diskTier, tp, cp, dp, pp, strategy, batch, json, plot, sweep, maxSeq, measure, profile, threads,
            lmHead, without, fragmentation, verbose, sensitivity,
        };
        cmd.SetAction(pr =>
        {
            if (pr.GetResult(hostMemory) is { Implicit: false })
                throw new MemoException("--host-memory is memo train's budget for swapped activations; for the host memory of a node use --node-host-memory");
            var options = new PlanOptions
            {
                Model = pr.GetValue(model),
                Layers = pr.GetValue(layers),
                Seq = pr.GetValue(seq)?.ToString(CultureInfo.InvariantCulture),
                Gpus = pr.GetValue(gpus),
                Gpu = pr.GetValue(gpu) ?? "a800",
                NodeHostMemory = pr.GetValue(nodeHostMemory),
                DeviceMemory = pr.GetValue(deviceMemory),
                DiskTier = pr.GetValue(diskTier),
                Tp = pr.GetValue(tp),
                Cp = pr.GetValue(cp),
                Dp = pr.GetValue(dp),
                Strategies = pr.GetValue(strategy) ?? [],
                Batch = pr.GetValue(batch),
                Json = pr.GetValue(json),
                Plot = pr.GetValue(plot),
                SweepSeq = pr.GetValue(sweep),
                MaxSeq = pr.GetValue(maxSeq),
                Measure = pr.GetValue(measure),
                Profile = pr.GetValue(profile),
                Threads = Memo.Cli.Threads.Resolve(pr.GetValue(threads), pr.InvocationConfiguration.Error),
                Pp = pr.GetValue(pp),
                LmHead = pr.GetValue(lmHead) ?? "chunked",
                Without = pr.GetValue(without) ?? [],
                Fragmentation = pr.GetValue(fragmentation),
                Verbose = pr.GetValue(verbose),
                Sensitivity = pr.GetValue(sensitivity),
            };
            return Run(options, pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error, new CpuMeasure());
        });
        return cmd;
    }

    /// <summary>The command's inputs as given on the command line (strings where the parsing is ours).</summary>
    public sealed record PlanOptions
    {
        public string? Model { get; init; }
        public int? Layers { get; init; }
        public string? Seq { get; init; }
        public int? Gpus { get; init; }
        public string Gpu { get; init; } = "a800";
        public string? NodeHostMemory { get; init; }
        public string? DeviceMemory { get; init; }
        public string? DiskTier { get; init; }
        public int? Tp { get; init; }
        public int? Cp { get; init; }
        public int? Dp { get; init; }
        public IReadOnlyList<string> Strategies { get; init; } = [];
        public long Batch { get; init; } = 1;
        public bool Json { get; init; }
        public string? Plot { get; init; }
        public string? SweepSeq { get; init; }
        public bool MaxSeq { get; init; }
        public bool Measure { get; init; }
        public string? Profile { get; init; }
        public int? Threads { get; init; }
        public int? Pp { get; init; }
        public string LmHead { get; init; } = "chunked";
        public IReadOnlyList<string> Without { get; init; } = [];
        public double? Fragmentation { get; init; }
        public bool Verbose { get; init; }
        public bool Sensitivity { get; init; }

        /// <summary>Measure memo's planned-arena overhead with the engine's planner (off in tests that need no engine layout).</summary>
        public bool MeasureArena { get; init; } = true;
    }

    /// <summary>Exit code when the command ran but no strategy fits (the table or JSON is still printed).</summary>
    public const int NothingFitsExitCode = 3;

    /// <summary>Runs the command; throws <see cref="MemoException"/> for bad input.</summary>
    public static int Run(PlanOptions o, TextWriter output, TextWriter error, ILocalMeasure? local = null)
    {
        try
        {
            return RunChecked(o, output, error, local);
        }
        catch (OverflowException)
        {
            // The cost model's arithmetic is checked: a length or batch whose memory passes 2^63 bytes lands here.
            throw new MemoException($"--seq {o.Seq ?? o.SweepSeq ?? "(searched)"} x --batch {o.Batch} is too large to plan: its memory passes {long.MaxValue} bytes; give a shorter --seq");
        }
    }

    private static int RunChecked(PlanOptions o, TextWriter output, TextWriter error, ILocalMeasure? local)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (string.IsNullOrWhiteSpace(o.Model))
            throw new MemoException($"--model is required: a preset ({string.Join(", ", Presets.Names)}) or a config.json path");
        var cfg = Presets.Resolve(o.Model);
        if (o.Layers is int layers)
        {
            if (layers < 1) throw new MemoException($"--layers must be at least 1 (got {layers})");
            cfg = cfg with { NumLayers = layers };
        }

        var dev = DeviceProfile.Resolve(o.Gpu);
        if (o.Profile is { } file)
        {
            if (!File.Exists(file)) throw new MemoException($"--device-profile: file '{file}' does not exist; give a JSON profile file");
            dev = DeviceProfile.FromJson(File.ReadAllText(file), file, dev);
        }
        if (o.DeviceMemory is { } dm) dev = dev with { DeviceMemoryBytes = Positive(Sizes.ParseBytes(dm, "--device-memory"), "--device-memory") };
        if (o.NodeHostMemory is { } hm) dev = dev with { HostMemoryBytes = Positive(Sizes.ParseBytes(hm, "--node-host-memory"), "--node-host-memory") };
        if (o.NodeHostMemory is not null && dev.HostReservedBytes >= dev.HostMemoryBytes) dev = dev with { HostReservedBytes = dev.HostMemoryBytes / 32 };
        if (o.DiskTier is { } disk) dev = dev.WithDiskTier(disk);
        dev = dev.Validate("device profile");
        if (o.Threads is int th && th < 1) throw new MemoException($"--threads must be at least 1 (got {th})");
        if (o.Threads is not null && !dev.CpuEngine) throw new MemoException($"--threads sets the CPU engine's worker threads; it applies to --gpu cpu only, not '{dev.Name}'");
        // The CPU engine's C x D ranks (mpiexec -n C*D memo train --cp C) all run on this machine: they are its "GPUs",
        // one node, sharing its cores (default threads per rank: cores / ranks) and its memory.
        var ranks = dev.CpuEngine ? CpuRanks(o) : null;
        if (ranks is { } cr) dev = dev with { GpusPerNode = o.Gpus ?? cr.Count };

        var strategies = ParseStrategies(o.Strategies);
        if (o.MaxSeq && o.SweepSeq is not null) throw new MemoException("--max-seq and --sweep-seq answer different questions; give one of them");
        long seqValue = 0;
        if (o.Seq is { } s)
        {
            if (!Sizes.TryParseCount(s, out seqValue) || seqValue < 1)
                throw new MemoException($"--seq: '{s}' is not a token count; use an integer or a K/M suffix such as 131072, 128K or 1M");
            // The rule memo train applies: each sequence splits into 2C zig-zag chunks.
            if (ranks is { Cp: > 1 } zz) Memo.Distributed.ZigZag.Create(seqValue, zz.Cp);
        }
        else if (!o.MaxSeq && o.SweepSeq is null)
        {
            throw new MemoException("--seq is required (e.g. --seq 1M), unless --max-seq or --sweep-seq is given");
        }

        long? chunk = o.LmHead.Trim().ToLowerInvariant() switch
        {
            "chunked" => 8192,
            "whole" => null,
            _ => throw new MemoException($"--lm-head: '{o.LmHead}' is not known; use chunked or whole"),
        };
        if (o.Sensitivity && (o.MaxSeq || o.SweepSeq is not null)) throw new MemoException("--sensitivity answers for one --seq; drop --max-seq / --sweep-seq");
        var request = new PlanRequest
        {
            Pp = o.Pp,
            LogitsChunkTokens = chunk,
            Without = FeatureNames.Parse(o.Without.SelectMany(w => w.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))),
            FragmentationFactor = o.Fragmentation ?? 1.15,
            Model = cfg,
            Seq = seqValue > 0 ? seqValue : 1024,
            Batch = o.Batch,
            Gpus = o.Gpus ?? dev.GpusPerNode,
            Device = dev,
            Tp = o.Tp,
            Cp = o.Cp,
            Dp = o.Dp,
            Threads = o.Threads ?? ranks?.DefaultThreads ?? 0,
            Engine = CpuEngineModel.Instance,
        };
        StrategySearch.Validate(request);
        if (o.MeasureArena && !dev.CpuEngine && strategies.Any(x => x is Strategy.Memo or Strategy.Keep))
        {
            var (factor, source) = PlannedArenaOverhead.Measure(cfg, seqValue > 0 ? seqValue : 1L << 20);
            request = request with { PlannedArenaOverhead = factor, PlannedArenaSource = source };
        }
        var notes = new List<string>();
        if (o.Measure)
        {
            if (local is null || !local.CanMeasure(dev))
                throw new MemoException($"--measure: no CUDA backend is available yet to measure '{dev.Name}'; drop --measure to plan with the preset profile, or give measured figures with --device-profile FILE.json");
            // Kernels are timed at the planned shapes (at 4K tokens when the length is searched or swept).
            long measureSeq = seqValue > 0 ? seqValue : 4096;
            var workload = new MeasureWorkload(cfg, o.Batch, measureSeq, dev.CpuEngine ? request.EngineThreads : 1);
            if (ranks is { Count: > 1 } mr && o.Batch % mr.Dp == 0 && measureSeq % (2L * mr.Cp) == 0)
            {
                // One rank's share (its sequences, its T/C tokens), and a probe of the rank-to-rank rate at one message's size.
                workload = workload with
                {
                    Batch = o.Batch / mr.Dp,
                    Seq = measureSeq / mr.Cp,
                    RankTransferBytes = mr.Cp > 1 ? CpuRuntime.RingBlockBytes(cfg, o.Batch / mr.Dp, measureSeq, mr.Cp) : CpuRuntime.AllReduceBytes(cfg, mr.Count),
                };
            }
            dev = local.Measure(dev, workload, notes);
            request = request with { Device = dev };
        }
        foreach (var n in notes) error.WriteLine("memo plan: " + n);

        if (o.MaxSeq) return MaxSeqMode(request, strategies, o, output, error);
        if (o.SweepSeq is { } range) return SweepMode(request, StrategySearch.ParseLengths(range), strategies, o, output);

        var plans = StrategySearch.PlanAll(request, strategies);
        int code = plans.Any(p => p.Fits) ? 0 : NothingFitsExitCode;
        if (code != 0)
            error.WriteLine($"memo plan: nothing fits: no strategy fits {cfg.Name} at {Sizes.FormatCount(request.Seq)} tokens x batch {request.Batch} on {request.Gpus} x {dev.Name}; try more --gpus, a shorter --seq, or --max-seq");
        var sens = o.Sensitivity ? Sensitivity.Run(request, strategies) : null;
        if (o.Plot is { } path)
        {
            string title = $"{cfg.Name}, {Sizes.FormatCount(request.Seq)} tokens, {request.Gpus} x {dev.Name}";
            if (sens is not null) StrategyPlots.Tornado(sens, path, title);
            else StrategyPlots.Breakdown(plans, path, title);
        }
        var diskEffect = plans.FirstOrDefault(p => p.Strategy == Strategy.Memo) is { } memoPlan ? DiskTier.Compare(request, memoPlan) : null;
        if (o.Json)
        {
            var root = PlanJson.Request(request);
            root["strategies"] = PlanJson.Plans(plans);
            if (diskEffect is not null) root["disk_tier"] = diskEffect.ToJson();
            if (sens is not null) root["sensitivity"] = PlanJson.Sensitivity(sens);
            output.WriteLine(root.ToJsonString(PlanJson.Indented));
            return code;
        }
        var console = Console(output);
        Header(console, request);
        console.Write(SummaryTable(plans, request.Device.HasDiskTier));
        console.Write(FeatureTable(plans));
        console.Write(BreakdownTable(plans));
        if (ranks is { Count: > 1 }) console.Write(RanksTable(plans, request));
        foreach (var p in plans) console.WriteLine($"{StrategyPlan.StrategyName(p.Strategy)}: {p.Reason}");
        if (diskEffect is not null) console.WriteLine(diskEffect.Describe());
        if (sens is not null) console.Write(SensitivityTable(sens));
        Assumptions(console, request, o.Verbose);
        if (o.Plot is { } written) console.WriteLine($"wrote {written}");
        return code;
    }

    private static int MaxSeqMode(PlanRequest request, IReadOnlyList<Strategy> strategies, PlanOptions o, TextWriter output, TextWriter error)
    {
        var results = strategies.Select(s => (Strategy: s, Result: StrategySearch.MaxSeq(request, s))).ToArray();
        var diskEffect = results.Where(x => x.Strategy == Strategy.Memo).Select(x => DiskTier.CompareMaxSeq(request, x.Result.MaxSeq, x.Result.Plan)).FirstOrDefault();
        int code = results.Any(r => r.Result.MaxSeq > 0) ? 0 : NothingFitsExitCode;
        if (code != 0) error.WriteLine($"memo plan: nothing fits: no strategy fits {request.Model.Name} at any length on {request.Gpus} x {request.Device.Name}; try more --gpus");
        if (o.Plot is { } path) StrategyPlots.Breakdown(results.Select(r => r.Result.Plan).ToArray(), path, $"{request.Model.Name} at its longest sequence, {request.Gpus} x {request.Device.Name}");
        if (o.Json)
        {
            var root = PlanJson.Request(request);
            root.Remove("seq");
            root["max_seq"] = new JsonArray(results.Select(r => (JsonNode?)new JsonObject
            {
                ["strategy"] = StrategyPlan.StrategyName(r.Strategy),
                ["max_seq"] = r.Result.MaxSeq,
                ["plan"] = PlanJson.Plan(r.Result.Plan),
            }).ToArray());
            if (diskEffect is not null) root["disk_tier"] = diskEffect.ToJson();
            output.WriteLine(root.ToJsonString(PlanJson.Indented));
            return code;
        }
        var console = Console(output);
        Header(console, request, showSeq: false);
        var t = new Table().Border(TableBorder.Rounded).Title($"longest sequence that fits (multiple of {Sizes.FormatCount(StrategySearch.MaxSeqStep(request.Gpus))})");
        foreach (var c in new[] { "strategy", "max seq", "tokens", "layout", "policy", "features", "alpha", "device peak", "host / node", "step (s)", "MFU (causal)", "MFU (full attn)" }) t.AddColumn(c);
        foreach (var (s, (max, p)) in results)
        {
            bool any = max > 0;
            t.AddRow(
                StrategyPlan.StrategyName(s),
                any ? Sizes.FormatCount(max) : "none",
                any ? max.ToString("N0", Inv) : "-",
                p.Layout?.ToString() ?? "-",
                any ? Markup.Escape(p.PolicyDescription) : Markup.Escape(p.Reason),
                any ? Markup.Escape(string.Join(", ", p.FeatureList)) : "-",
                p.Alpha is double a && any ? a.ToString("0.000", Inv) : "-",
                any && p.DevicePeakBytes is long pk ? Sizes.FormatBytes(pk) : "-",
                any ? Sizes.FormatBytes(p.HostBytesPerNode) : "-",
                p.StepSeconds is double st ? st.ToString("0.00", Inv) : "-",
                p.Mfu is double m ? m.ToString("P1", Inv) : "-",
                p.MfuFullAttention is double mf ? mf.ToString("P1", Inv) : "-");
        }
        console.Write(t);
        if (diskEffect is not null) console.WriteLine(diskEffect.Describe());
        Assumptions(console, request, o.Verbose);
        if (o.Plot is { } written) console.WriteLine($"wrote {written}");
        return code;
    }

    private static int SweepMode(PlanRequest request, IReadOnlyList<long> seqs, IReadOnlyList<Strategy> strategies, PlanOptions o, TextWriter output)
    {
        var sweep = StrategySearch.PlanLengths(request, seqs, strategies);
        if (o.Plot is { } path) StrategyPlots.Lengths(sweep, request.Device, path, $"{request.Model.Name}, {request.Gpus} x {request.Device.Name}");
        if (o.Json)
        {
            var root = PlanJson.Request(request);
            root.Remove("seq");
            root["sweep"] = new JsonArray(sweep.Select(x => (JsonNode?)new JsonObject
            {
                ["seq"] = x.Seq,
                ["strategies"] = PlanJson.Plans(x.Plans),
            }).ToArray());
            output.WriteLine(root.ToJsonString(PlanJson.Indented));
            return 0;
        }
        var console = Console(output);
        Header(console, request, showSeq: false);
        var t = new Table().Border(TableBorder.Rounded).Title("MFU (device peak per GPU), or OOM (needed)");
        t.AddColumn("seq");
        foreach (var s in strategies) t.AddColumn(StrategyPlan.StrategyName(s));
        foreach (var (len, plans) in sweep)
        {
            var cells = new List<string> { Sizes.FormatCount(len) };
            foreach (var p in plans)
            {
                string peak = p.DevicePeakBytes is long b ? $"{b / (double)(1L << 30):0.0} GiB" : "";
                cells.Add(p.Fits
                    ? $"{p.Mfu!.Value.ToString("P1", Inv)} ({peak}{(p.Alpha is double a ? $", a={a.ToString("0.00", Inv)}" : "")}{(p.DiskBytesPerNode > 0 ? ", disk" : "")})"
                    : p.DevicePeakBytes is null ? "n/a" : $"OOM ({peak}{(p.Reason.StartsWith("out of host", StringComparison.Ordinal) ? ", host" : "")})");
            }
            t.AddRow(cells.Select(Markup.Escape).ToArray());
        }
        console.Write(t);
        Assumptions(console, request, o.Verbose);
        if (o.Plot is { } written) console.WriteLine($"wrote {written}");
        return 0;
    }

    /// <summary>The CPU engine's ranks: C context-parallel x D data-parallel processes on this machine.</summary>
    private sealed record CpuRankLayout(int Cp, int Dp)
    {
        public int Count => Cp * Dp;

        /// <summary>Worker threads per rank when --threads is not given: the machine's cores shared by the ranks (one process: the engine's default).</summary>
        public int? DefaultThreads => Count > 1 ? Math.Max(1, Environment.ProcessorCount / Count) : null;
    }

    private static CpuRankLayout CpuRanks(PlanOptions o)
    {
        if (o.Cp is < 1) throw new MemoException($"--cp must be at least 1 (got {o.Cp})");
        if (o.Dp is < 1) throw new MemoException($"--dp must be at least 1 (got {o.Dp})");
        int cp = o.Cp ?? 1, dp = o.Dp ?? 1;
        if ((long)cp * dp > 4096) throw new MemoException($"--cp {cp} x --dp {dp} ranks on one machine is more than 4096 processes; give fewer ranks");
        return new CpuRankLayout(cp, dp);
    }

    /// <summary>Per rank of the CPU engine's C x D ranks: device peak, bytes sent and the communication's part of the step.</summary>
    private static Table RanksTable(IReadOnlyList<StrategyPlan> plans, PlanRequest r)
    {
        var t = new Table().Border(TableBorder.Rounded).Title(string.Create(Inv,
            $"per rank: {r.Cp ?? 1} context-parallel x {r.Dp ?? 1} data-parallel ranks on this machine, {r.EngineThreads} thread(s) each, {r.Batch / (r.Dp ?? 1)} x {r.Seq / (r.Cp ?? 1)} tokens per rank"));
        foreach (var c in new[] { "strategy", "device peak", "ring bytes / step", "all-reduce bytes / step", "sent / step", "step (s)", "communication exposed (s)" }) t.AddColumn(c);
        foreach (var p in plans.Where(p => p.Time is not null))
        {
            var time = p.Time!;
            t.AddRow(
                StrategyPlan.StrategyName(p.Strategy),
                p.DevicePeakBytes is long pk ? Sizes.FormatBytes(pk) : "-",
                time.LayerCommunicationBytes.ToString("N0", Inv),
                time.DataParallelBytes.ToString("N0", Inv),
                Sizes.FormatBytes(time.CommunicatedBytes),
                time.Step.ToString("0.000", Inv),
                (time.LayerCommunication + time.DataParallel).ToString("0.000", Inv));
        }
        t.Caption(string.Create(Inv,
            $"ring: key/value and dK/dV blocks of ring attention, forward and backward of every layer (what the training log reports as ring_bytes); all-reduce: the gradient sum over the {r.Gpus} ranks; transfers at {r.Device.IntraNodeBandwidth / 1e9:0.#} GB/s rank to rank; exposed: the ring transfers compute does not hide plus the all-reduce"));
        return t;
    }

    private static IReadOnlyList<Strategy> ParseStrategies(IReadOnlyList<string> given)
    {
        var names = given.SelectMany(g => g.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
        if (names.Length == 0) return StrategySearch.AllStrategies;
        return names.Select(StrategySearch.ParseStrategy).Distinct().ToArray();
    }

    private static long Positive(long v, string flag) => v > 0 ? v : throw new MemoException($"{flag} must be larger than 0");

    private static IAnsiConsole Console(TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 200;
        return console;
    }

    private static void Header(IAnsiConsole console, PlanRequest r, bool showSeq = true)
    {
        var dev = r.Device;
        long p = MemoryModel.Parameters(r.Model, learnedPositionTable: false);
        string seq = showSeq ? $", {Sizes.FormatCount(r.Seq)} tokens x batch {r.Batch}" : $", batch {r.Batch}";
        console.WriteLine(string.Create(Inv,
            $"memo plan: {r.Model.Name} ({r.Model.ModelType}, {r.Model.NumLayers} layers, hidden {r.Model.HiddenSize}, {p / 1e9:0.00}B parameters){seq}"));
        console.WriteLine(string.Create(Inv,
            $"devices: {r.Gpus} x {dev.Name} ({Sizes.FormatBytes(dev.DeviceMemoryBytes)} each, {dev.PeakFlops / 1e12:0.#} TFLOP/s {dev.Precision} peak), {r.Nodes} node(s) of {dev.GpusPerNode}, host {Sizes.FormatBytes(dev.HostMemoryBytes)} per node"));
        if (dev.HasDiskTier)
        {
            console.WriteLine(string.Create(Inv,
                $"disk tier: {Sizes.FormatBytes(dev.DiskCapacityBytes!.Value)} per node behind host memory for memo's swapped activations, read {dev.DiskReadBandwidth!.Value / 1e9:0.##} / write {dev.DiskWriteBandwidth!.Value / 1e9:0.##} GB/s per node, shared by its GPUs"));
        }
    }

    private static Table SummaryTable(IReadOnlyList<StrategyPlan> plans, bool diskTier)
    {
        var t = new Table().Border(TableBorder.Rounded);
        foreach (var c in new[] { "strategy", "fits", "layout", "policy", "alpha", "device peak", "host / node" }) t.AddColumn(c);
        if (diskTier) t.AddColumn("disk / node");
        foreach (var c in new[] { "step (s)", "tokens/s", "MFU (causal)", "MFU (full attn)" }) t.AddColumn(c);
        foreach (var p in plans)
        {
            var cells = new List<string>
            {
                StrategyPlan.StrategyName(p.Strategy),
                p.Fits ? "yes" : p.Layout is null ? "n/a" : "OOM",
                p.Layout?.ToString() ?? "-",
                Markup.Escape(p.Layout is null ? "-" : p.PolicyDescription),
                p.Alpha is double a ? a.ToString("0.000", Inv) : "-",
                p.DevicePeakBytes is long pk ? Sizes.FormatBytes(pk) : "-",
                p.Layout is null ? "-" : Sizes.FormatBytes(p.HostBytesPerNode),
            };
            if (diskTier) cells.Add(p.Layout is null ? "-" : Sizes.FormatBytes(p.DiskBytesPerNode));
            cells.AddRange(
            [
                p.StepSeconds is double st ? st.ToString("0.00", Inv) : "-",
                p.TokensPerSecond is double tps ? tps.ToString("N0", Inv) : "-",
                p.Mfu is double m ? m.ToString("P1", Inv) : "-",
                p.MfuFullAttention is double mf ? mf.ToString("P1", Inv) : "-",
            ]);
            t.AddRow(cells.ToArray());
        }
        t.Caption("MFU (causal): attention FLOPs counted for the causal half, as the MEMO paper counts; MFU (full attn): over the full score matrix, which counts the FLOPs a causal kernel skips and so can pass 100 %");
        return t;
    }

    private static Table FeatureTable(IReadOnlyList<StrategyPlan> plans)
    {
        var t = new Table().Border(TableBorder.Rounded).Title("best configuration per strategy");
        foreach (var c in new[] { "strategy", "layout", "checkpointing", "features", "allocator (fragmentation x)" }) t.AddColumn(c);
        foreach (var p in plans.Where(p => p.Layout is not null))
        {
            bool planned = p.FragmentationSource.StartsWith("planned", StringComparison.Ordinal) || p.FragmentationSource.StartsWith("the engine", StringComparison.Ordinal);
            t.AddRow(
                StrategyPlan.StrategyName(p.Strategy),
                p.Layout!.Value.ToString(),
                Markup.Escape(p.Checkpointing),
                Markup.Escape(string.Join(", ", p.FeatureList)),
                (planned ? "planned arena, " : "caching, assumed ") + p.FragmentationFactor.ToString("0.000", Inv));
        }
        return t;
    }

    private static Table SensitivityTable(IReadOnlyList<SensitivityRow> rows)
    {
        var t = new Table().Border(TableBorder.Rounded).Title("sensitivity: MFU (causal) worse / base / better, and fit; memo's alpha worse / better");
        t.AddColumn("parameter");
        t.AddColumn("change");
        t.AddColumn("values");
        var strategies = rows.Count > 0 ? rows[0].Base : [];
        foreach (var s in strategies) t.AddColumn(StrategyPlan.StrategyName(s.Strategy));
        static string Mfu(StrategyPlan p) => p.Mfu is double m ? (100 * m).ToString("0.0", Inv) : p.Layout is null ? "n/a" : "OOM";
        static string Num(double v) => Math.Abs(v) >= 1e6 ? v.ToString("0.###e0", Inv) : v.ToString("0.###", Inv);
        foreach (var row in rows)
        {
            var cells = new List<string> { row.Parameter.Key, row.Parameter.Change, $"{Num(row.WorseValue)} / {Num(row.BaseValue)} / {Num(row.BetterValue)}" };
            for (int i = 0; i < row.Base.Count; i++)
            {
                string cell = $"{Mfu(row.Worse[i])} / {Mfu(row.Base[i])} / {Mfu(row.Better[i])}";
                if (row.Base[i].Strategy == Strategy.Memo && row.Worse[i].Alpha is double aw && row.Better[i].Alpha is double ab)
                    cell += $" (a {aw.ToString("0.00", Inv)} / {ab.ToString("0.00", Inv)})";
                cells.Add(cell);
            }
            t.AddRow(cells.Select(Markup.Escape).ToArray());
        }
        return t;
    }

    private static Table BreakdownTable(IReadOnlyList<StrategyPlan> plans)
    {
        var shown = plans.Where(p => p.Memory is not null).ToArray();
        // GiB for GPU-sized plans, MiB for small models (the cpu device's test models peak at tens of MiB).
        bool mib = shown.Length > 0 && shown.Max(p => p.Memory!.Peak) < 1L << 30;
        string unit = mib ? "MiB" : "GiB";
        string Gib(long bytes) => (bytes / (double)(mib ? 1L << 20 : 1L << 30)).ToString("0.00", Inv);
        var t = new Table().Border(TableBorder.Rounded).Title($"per-GPU memory at the peak ({unit})");
        t.AddColumn("part");
        foreach (var p in shown) t.AddColumn(new TableColumn(StrategyPlan.StrategyName(p.Strategy)).RightAligned());
        if (shown.Length == 0) return t;
        var parts = shown[0].Memory!.Parts;
        for (int i = 0; i < parts.Count; i++)
        {
            var row = new List<string> { parts[i].Label };
            row.AddRange(shown.Select(p => Gib(p.Memory!.Parts[i].Bytes)));
            t.AddRow(row.ToArray());
        }
        t.AddRow(new[] { "peak" }.Concat(shown.Select(p => Gib(p.Memory!.Peak))).ToArray());
        t.AddRow(new[] { "capacity" }.Concat(shown.Select(p => Gib(p.DeviceCapacityBytes))).ToArray());
        t.AddRow(new[] { "peak phase" }.Concat(shown.Select(p => p.Memory!.PeakPhase)).ToArray());
        t.AddRow(new[] { "host per GPU" }.Concat(shown.Select(p => Gib(p.Memory!.HostBytes))).ToArray());
        if (shown.Any(p => p.DiskCapacityBytesPerNode is not null))
            t.AddRow(new[] { "  of which on disk" }.Concat(shown.Select(p => Gib(p.Memory!.HostDiskBytes))).ToArray());
        return t;
    }

    private static void Assumptions(IAnsiConsole console, PlanRequest r, bool verbose)
    {
        var dev = r.Device;
        if (verbose)
        {
            var t = new Table().Border(TableBorder.Rounded).Title("assumptions and their sources");
            foreach (var c in new[] { "figure", "value", "kind", "source" }) t.AddColumn(c);
            foreach (var a in CostModel.Assumptions.For(r))
                t.AddRow(Markup.Escape(a.Key), Markup.Escape(a.Value.ToString("G4", Inv) + (a.Unit.Length > 0 ? " " + a.Unit : "")), a.Kind, Markup.Escape(a.Source));
            console.Write(t);
        }
        else
        {
            console.WriteLine(string.Create(Inv, $"fragmentation: caching allocator {r.FragmentationFactor:0.00}x (assumed, from the paper's 73.5 GB reserved / 65.7 GB allocated) for the baselines; planned arena {r.PlannedArenaOverhead:0.000}x ({r.PlannedArenaSource})"));
        }
        string measured = dev.Measured.Count > 0 ? $" (measured: {string.Join(", ", dev.Measured)})" : "";
        if (dev.CpuEngine)
        {
            console.WriteLine(string.Create(Inv,
                $"profile {dev.Name}: Memo's CPU engine; device memory is its arena layout (what memo train measures as device_peak_bytes); GEMM {dev.PeakFp32Flops * dev.GemmEfficiency / 1e9:0.0} GFLOP/s, attention fwd {dev.PeakFp32Flops * dev.AttentionForwardEfficiency / 1e9:0.0} / bwd {dev.PeakFp32Flops * dev.AttentionBackwardEfficiency / 1e9:0.0} GFLOP/s, element-wise {dev.MemoryBandwidth / 1e9:0.0} GB/s, copy {dev.HostLinkBandwidth / 1e9:0.0} GB/s{(r.Gpus > 1 ? $", rank to rank {dev.IntraNodeBandwidth / 1e9:0.0} GB/s" : "")} (assumed unless measured){measured}"));
            return;
        }
        string shared = dev.GpusPerHostLink > 1
            ? string.Create(Inv, $", {dev.ConcurrentHostLinkBandwidth / 1e9:0.#} GB/s when the {dev.GpusPerHostLink} GPUs sharing an uplink copy at once (gpus_per_host_link {dev.GpusPerHostLink}: fitted to the paper's 192K whole-layer-swap point, not measured)")
            : "";
        console.WriteLine(string.Create(Inv,
            $"profile {dev.Name}: efficiency GEMM {dev.GemmEfficiency:0.00}, attention fwd {dev.AttentionForwardEfficiency:0.00} / bwd {dev.AttentionBackwardEfficiency:0.00} (assumed unless measured); host link {dev.HostLinkBandwidth / 1e9:0.#} GB/s per device{shared}{measured}; --verbose lists every figure with its source"));
    }
}
