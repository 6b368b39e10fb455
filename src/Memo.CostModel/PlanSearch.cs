using System.Globalization;

namespace Memo.CostModel;

/// <summary>The training systems the planner compares, each under the same cost model.</summary>
public enum Strategy
{
    /// <summary>Swap + token-wise recompute with alpha per layer, planned memory (no fragmentation), chunked LM head.</summary>
    Memo,

    /// <summary>Megatron-LM: TP + SP (+CP), full recomputation of as many layers as needed (block method) or none (selective with FlashAttention), caching allocator.</summary>
    Megatron,

    /// <summary>DeepSpeed: Ulysses sequence parallelism + ZeRO-3, full activation checkpointing, caching allocator.</summary>
    DeepSpeed,

    /// <summary>Everything kept on the device, planned memory, chunked LM head.</summary>
    Keep,
}

/// <summary>A question for the planner: this model, this sequence, these devices.</summary>
public sealed record PlanRequest
{
    public required ModelConfig Model { get; init; }

    public required long Seq { get; init; }

    /// <summary>Sequences per step across all data-parallel ranks.</summary>
    public long Batch { get; init; } = 1;

    public required int Gpus { get; init; }

    public required DeviceProfile Device { get; init; }

    /// <summary>Fixed degrees; null lets the planner search.</summary>
    public int? Tp { get; init; }

    public int? Cp { get; init; }

    public int? Dp { get; init; }

    /// <summary>Tokens per LM-head chunk for the strategies with planned memory (memo, keep).</summary>
    public long LogitsChunkTokens { get; init; } = 8192;

    /// <summary>Caching-allocator factor on activations for megatron and deepspeed (see <see cref="MemoryQuery.AllocatorOverhead"/>).</summary>
    public double FragmentationFactor { get; init; } = 1.15;

    /// <summary>Worker threads of the CPU engine (cpu device only; its attention workspace has one slot per thread); 0: as <c>memo train</c> (MEMO_THREADS, else one per core).</summary>
    public int Threads { get; init; }

    /// <summary><see cref="Threads"/>, or the engine's default when 0.</summary>
    public int EngineThreads => Threads > 0 ? Threads : CpuRuntime.DefaultThreads;

    public int Nodes => (Gpus + Device.GpusPerNode - 1) / Device.GpusPerNode;

    public int GpusPerNodeUsed => Math.Min(Gpus, Device.GpusPerNode);
}

/// <summary>The planner's answer for one strategy.</summary>
public sealed record StrategyPlan
{
    public required Strategy Strategy { get; init; }

    public required bool Fits { get; init; }

    /// <summary>Why it fits (how much room is left, what bounds alpha) or why not.</summary>
    public required string Reason { get; init; }

    public ParallelLayout? Layout { get; init; }

    public MemoryPolicy? Policy { get; init; }

    public MemoryBreakdown? Memory { get; init; }

    public StepTime? Time { get; init; }

    public long Seq { get; init; }

    public long DeviceCapacityBytes { get; init; }

    public long HostBytesPerNode { get; init; }

    public long HostCapacityBytesPerNode { get; init; }

    public double ModelFlops { get; init; }

    public double? StepSeconds { get; init; }

    public double? TokensPerSecond { get; init; }

    public double? Mfu { get; init; }

    public string PolicyDescription { get; init; } = "";

    public long? DevicePeakBytes => Memory?.Peak;

    /// <summary>The alpha applied to swapped layers (memo only).</summary>
    public double? Alpha => Policy is { Kind: PolicyKind.Memo or PolicyKind.Swap, Alphas: { Count: > 0 } a } ? a[0] : null;

    /// <summary>How far over capacity (device or host), 1 = exactly full; used to pick the closest layout when none fits.</summary>
    public double Pressure { get; init; }

    public static string StrategyName(Strategy s) => s switch
    {
        Strategy.Memo => "memo",
        Strategy.Megatron => "megatron",
        Strategy.DeepSpeed => "deepspeed",
        _ => "keep",
    };
}

/// <summary>
/// Evaluates strategies under one cost model and searches parallel degrees: tensor-parallel degrees that divide
/// the heads and fit in a node, context (or Ulysses) degree and data-parallel degree making up the GPUs; picks
/// the fastest layout that fits, per strategy.
/// </summary>
public static class PlanSearch
{
    public static IReadOnlyList<Strategy> AllStrategies { get; } = [Strategy.Memo, Strategy.Megatron, Strategy.DeepSpeed, Strategy.Keep];

    public static Strategy ParseStrategy(string name) => name.Trim().ToLowerInvariant() switch
    {
        "memo" => Strategy.Memo,
        "megatron" or "megatron-lm" => Strategy.Megatron,
        "deepspeed" or "ulysses" => Strategy.DeepSpeed,
        "keep" => Strategy.Keep,
        _ => throw new MemoException($"unknown strategy '{name}'; use memo, megatron, deepspeed or keep (comma-separated for several)"),
    };

    /// <summary>Throws a <see cref="MemoException"/> for a request that no strategy could answer (bad degrees, counts).</summary>
    public static void Validate(PlanRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var cfg = r.Model;
        int gpn = r.Device.GpusPerNode;
        if (r.Seq < 1) throw new MemoException($"--seq must be at least 1 token (got {r.Seq})");
        if (r.Batch < 1) throw new MemoException($"--batch must be at least 1 sequence (got {r.Batch})");
        if (r.Gpus < 1) throw new MemoException($"--gpus must be at least 1 (got {r.Gpus})");
        if (r.Threads < 0) throw new MemoException($"--threads must be positive (got {r.Threads})");
        if (r.Device.CpuEngine && (r.Gpus != 1 || r.Tp is > 1 || r.Cp is > 1 || r.Dp is > 1))
            throw new MemoException($"--gpu {r.Device.Name} is this machine's CPU engine, one device without tensor, context or data parallelism; use --gpus 1 and no --tp/--cp/--dp");
        if (r.Gpus > gpn && r.Gpus % gpn != 0)
            throw new MemoException($"--gpus {r.Gpus} spans nodes of {gpn} GPUs ({r.Device.Name}) but is not a multiple of {gpn}; use whole nodes");
        void Degree(int? d, string flag)
        {
            if (d is null) return;
            if (d < 1) throw new MemoException($"{flag} must be at least 1 (got {d})");
            if (r.Gpus % d != 0) throw new MemoException($"{flag} {d} does not divide --gpus {r.Gpus}; pick a divisor");
        }
        Degree(r.Tp, "--tp");
        Degree(r.Cp, "--cp");
        Degree(r.Dp, "--dp");
        if (r.Tp is int tp)
        {
            if (cfg.NumHeads % tp != 0 || cfg.NumKvHeads % tp != 0)
                throw new MemoException($"--tp {tp} does not divide the model's {cfg.NumHeads} attention heads ({cfg.NumKvHeads} key/value heads); pick a divisor");
            if (tp > gpn) throw new MemoException($"--tp {tp} exceeds the {gpn} GPUs of a node; tensor parallelism stays inside a node");
        }
        if (r.Dp is int dp && r.Batch % dp != 0)
            throw new MemoException($"--dp {dp} does not divide --batch {r.Batch}; each data-parallel rank needs whole sequences");
        long product = (long)(r.Tp ?? 1) * (r.Cp ?? 1) * (r.Dp ?? 1);
        if (r.Gpus % product != 0)
            throw new MemoException($"--tp x --cp x --dp = {product} does not divide --gpus {r.Gpus}");
        if (r.Tp is not null && r.Cp is not null && r.Dp is not null && product != r.Gpus)
            throw new MemoException($"--tp x --cp x --dp = {product} but --gpus is {r.Gpus}; the degrees must multiply to the GPU count");
    }

    /// <summary>Plans every strategy in <paramref name="strategies"/>.</summary>
    public static IReadOnlyList<StrategyPlan> PlanAll(PlanRequest r, IEnumerable<Strategy> strategies)
    {
        Validate(r);
        return strategies.Select(s => Plan(r, s)).ToArray();
    }

    /// <summary>The fastest layout of <paramref name="strategy"/> that fits, or the closest one that does not.</summary>
    public static StrategyPlan Plan(PlanRequest r, Strategy strategy)
    {
        ArgumentNullException.ThrowIfNull(r);
        var (layouts, why) = Layouts(r, strategy);
        if (layouts.Count == 0)
        {
            return new StrategyPlan
            {
                Strategy = strategy, Fits = false, Seq = r.Seq, Reason = why, Pressure = double.PositiveInfinity,
                DeviceCapacityBytes = r.Device.DeviceMemoryBytes, HostCapacityBytesPerNode = r.Device.HostMemoryBytes,
            };
        }
        StrategyPlan? best = null;
        foreach (var lay in layouts)
        {
            var p = Evaluate(r, strategy, lay);
            if (best is null
                || (p.Fits && (!best.Fits || p.StepSeconds < best.StepSeconds))
                || (!p.Fits && !best.Fits && p.Pressure < best.Pressure))
            {
                best = p;
            }
        }
        return best!;
    }

    /// <summary>Evaluates one strategy on one layout.</summary>
    public static StrategyPlan Evaluate(PlanRequest r, Strategy strategy, ParallelLayout lay)
    {
        ArgumentNullException.ThrowIfNull(r);
        var dev = r.Device;
        var prec = dev.Dtypes;
        var shape = new LayerShape(r.Model, prec);
        long batch = r.Batch / lay.Dp;
        int L = r.Model.NumLayers;
        var query = new MemoryQuery
        {
            Model = r.Model,
            Batch = batch,
            Seq = r.Seq,
            Policy = MemoryPolicy.Keep,
            Precision = prec,
            Layout = lay,
            LearnedPositionTable = false,
            ReservedBytes = dev.ReservedBytes,
        };
        if (dev.CpuEngine && CpuRuntime.NotRunnable(r.Model, batch, r.Seq) is not null) return Finish(r, strategy, lay, shape, query, "");
        switch (strategy)
        {
            case Strategy.Keep:
                return Finish(r, strategy, lay, shape, query with { LogitsChunkTokens = r.LogitsChunkTokens }, "");
            case Strategy.Megatron:
            case Strategy.DeepSpeed:
            {
                // The CPU engine runs in its planned arena (no caching allocator) and recomputes all layers or none.
                var q = dev.CpuEngine ? query : query with { AllocatorOverhead = r.FragmentationFactor };
                int from = strategy == Strategy.DeepSpeed ? L : 0; // DeepSpeed runs with full activation checkpointing
                StrategyPlan? last = null;
                for (int k = from; k <= L; k = dev.CpuEngine && k < L ? L : k + 1)
                {
                    last = Finish(r, strategy, lay, shape, q with { Policy = MemoryPolicy.Recompute(k) }, "");
                    if (last.Fits) return last; // fewest recomputed layers that fit = fastest
                }
                return last!;
            }
            default:
                return PlanMemo(r, lay, shape, query with { LogitsChunkTokens = r.LogitsChunkTokens });
        }
    }

    private static StrategyPlan PlanMemo(PlanRequest r, ParallelLayout lay, LayerShape shape, MemoryQuery query)
    {
        var dev = r.Device;
        int L = r.Model.NumLayers;
        long batch = r.Batch / lay.Dp;
        var probe = MemoryOf(r, query with { Policy = MemoryPolicy.Swap(L) });
        double sSkel = probe.LayerSkeletonBytes, sRest = probe.LayerTokenLocalBytes;
        double layerForward = dev.CpuEngine ? CpuTimeModel.LayerForward(r.Model, batch, r.Seq, dev) : TimeModel.Layer(shape, lay, dev, batch, r.Seq).Forward;
        int swapped = MemoryPolicy.SwappedLayers(L);

        // alpha: largest value with the layer's copy hidden behind its forward and all swapped layers in host memory
        // (the CPU engine re-chooses it after its first step by the same rule, from its measured layer time and copy rate).
        double aTime = MemoryPolicy.AlphaForLink(layerForward * dev.ConcurrentHostLinkBandwidth, sSkel, sRest);
        double hostBudget = HostBudgetPerDevice(r, probe.Peak);
        double aHost = 1;
        string bound;
        if (swapped > 0)
        {
            double perLayer = hostBudget / swapped;
            if (perLayer < sSkel)
            {
                var failed = Finish(r, Strategy.Memo, lay, shape, query with { Policy = MemoryPolicy.Memo(Enumerable.Repeat(0.0, L).ToArray()) }, "");
                return failed with
                {
                    Fits = false,
                    Reason = string.Create(CultureInfo.InvariantCulture,
                        $"out of host memory: the skeleton of {swapped} swapped layers needs {Sizes.FormatBytes((long)(sSkel * swapped * r.GpusPerNodeUsed))} per node, {Sizes.FormatBytes((long)(Math.Max(0, hostBudget) * r.GpusPerNodeUsed))} is available ({lay})"),
                    Pressure = Math.Max(failed.Pressure, sSkel * swapped / Math.Max(1, hostBudget)),
                };
            }
            aHost = MemoryPolicy.AlphaForHost(hostBudget, swapped, sSkel, sRest);
        }
        double alpha = Math.Floor(Math.Min(aTime, aHost) * 1e6) / 1e6;
        bound = swapped == 0 ? "no layer to swap"
            : alpha >= 1 ? "whole layers swapped, copy hidden"
            : aHost <= aTime ? "alpha bound by host memory"
            : aTime <= 0 ? "alpha 0: even the skeleton's copy is exposed"
            : "alpha bound by the host link";
        var alphas = new double[L];
        for (int i = 0; i < L; i++) alphas[i] = MemoryPolicy.IsSwapped(i, L) ? alpha : 1.0;
        return Finish(r, Strategy.Memo, lay, shape, query with { Policy = MemoryPolicy.Memo(alphas) }, bound);
    }

    /// <summary>Host bytes one device may fill with swapped activations.</summary>
    private static double HostBudgetPerDevice(PlanRequest r, long devicePeak)
    {
        var dev = r.Device;
        double usable = dev.UsableHostBytes;
        if (dev.SharedHostMemory) usable -= (double)devicePeak * r.GpusPerNodeUsed;
        return usable / r.GpusPerNodeUsed;
    }

    /// <summary>
    /// One device's memory: the cost model's <see cref="MemoryModel.PerDevice(MemoryQuery)"/>, or on the CPU engine
    /// the engine's own arena layout (<see cref="CpuRuntime.Memory"/>), which is what it will measure.
    /// </summary>
    private static MemoryBreakdown MemoryOf(PlanRequest r, MemoryQuery q) =>
        r.Device.CpuEngine ? CpuRuntime.Memory(q.Model, q.Batch, q.Seq, q.Policy, r.EngineThreads) : MemoryModel.PerDevice(q);

    private static StepTime TimeOf(PlanRequest r, LayerShape shape, ParallelLayout lay, MemoryQuery q, MemoryBreakdown mem) =>
        r.Device.CpuEngine
            ? CpuTimeModel.Step(q.Model, q.Batch, q.Seq, q.Policy, r.Device, r.EngineThreads)
            : TimeModel.Step(shape, lay, r.Device, q.Batch, r.Seq, q.Policy, mem);

    private static StrategyPlan Finish(PlanRequest r, Strategy strategy, ParallelLayout lay, LayerShape shape, MemoryQuery q, string note)
    {
        var dev = r.Device;
        if (dev.CpuEngine && CpuRuntime.NotRunnable(r.Model, q.Batch, q.Seq) is string why)
        {
            return new StrategyPlan
            {
                Strategy = strategy, Fits = false, Seq = r.Seq, Reason = why, Pressure = double.PositiveInfinity, Layout = lay, Policy = q.Policy,
                PolicyDescription = q.Policy.Describe(r.Model.NumLayers),
                DeviceCapacityBytes = dev.DeviceMemoryBytes, HostCapacityBytesPerNode = dev.HostMemoryBytes,
            };
        }
        var mem = MemoryOf(r, q);
        long hostPerNode = mem.HostBytes * r.GpusPerNodeUsed;
        long devCap = dev.DeviceMemoryBytes;
        long hostCap = dev.HostMemoryBytes;
        double devPressure = (double)mem.Peak / devCap;
        double hostUse = dev.SharedHostMemory ? (double)mem.Peak * r.GpusPerNodeUsed + hostPerNode : hostPerNode;
        double hostPressure = hostUse / dev.UsableHostBytes;
        bool devOk = mem.Peak <= devCap;
        bool hostOk = hostPerNode == 0 || hostUse <= dev.UsableHostBytes;
        string policy = q.Policy.Describe(r.Model.NumLayers);
        var time = TimeOf(r, shape, lay, q, mem);
        double modelFlops = shape.ModelFlopsPerStep(r.Batch, r.Seq);
        double step = time.Step;
        string where = $"{lay}, {policy}";
        string reason;
        if (!devOk)
        {
            reason = $"out of device memory: needs {Sizes.FormatBytes(mem.Peak)} per GPU at the {mem.PeakPhase} peak, has {Sizes.FormatBytes(devCap)} ({where})";
        }
        else if (!hostOk)
        {
            reason = $"out of host memory: needs {Sizes.FormatBytes((long)hostUse)} per node, {Sizes.FormatBytes(dev.UsableHostBytes)} usable ({where})";
        }
        else
        {
            reason = $"fits: {Sizes.FormatBytes(mem.Peak)} of {Sizes.FormatBytes(devCap)} per GPU"
                + (hostPerNode > 0 ? $", host {Sizes.FormatBytes(hostPerNode)} of {Sizes.FormatBytes(dev.UsableHostBytes)} usable per node" : "")
                + (note.Length > 0 ? $"; {note}" : "");
        }
        bool fits = devOk && hostOk;
        return new StrategyPlan
        {
            Strategy = strategy,
            Fits = fits,
            Reason = reason,
            Layout = lay,
            Policy = q.Policy,
            Memory = mem,
            Time = time,
            Seq = r.Seq,
            DeviceCapacityBytes = devCap,
            HostBytesPerNode = hostPerNode,
            HostCapacityBytesPerNode = hostCap,
            ModelFlops = modelFlops,
            StepSeconds = fits ? step : null,
            TokensPerSecond = fits ? r.Batch * r.Seq / step : null,
            Mfu = fits ? modelFlops / (step * r.Gpus * dev.PeakFlops) : null,
            PolicyDescription = policy,
            Pressure = Math.Max(devPressure, hostPerNode > 0 ? hostPressure : 0),
        };
    }

    /// <summary>The layouts a strategy may use for the request, or why there is none.</summary>
    public static (IReadOnlyList<ParallelLayout> Layouts, string Why) Layouts(PlanRequest r, Strategy strategy)
    {
        ArgumentNullException.ThrowIfNull(r);
        var cfg = r.Model;
        int gpn = r.Device.GpusPerNode;
        var list = new List<ParallelLayout>();
        var notes = new List<string>();
        if (strategy == Strategy.DeepSpeed)
        {
            if (r.Tp is > 1) return ([], $"not applicable: DeepSpeed-Ulysses uses no tensor parallelism (--tp {r.Tp})");
            for (int sp = 1; sp <= r.Gpus; sp++)
            {
                if (r.Gpus % sp != 0) continue;
                int dp = r.Gpus / sp;
                if (r.Cp is int c && c != sp) continue;
                if (r.Dp is int d && d != dp) continue;
                if (r.Batch % dp != 0) { notes.Add($"sp={sp} needs dp={dp}, which does not divide batch {r.Batch}"); continue; }
                if (cfg.NumHeads % sp != 0 || cfg.NumKvHeads % sp != 0) { notes.Add($"sp={sp} does not divide {cfg.NumHeads} heads"); continue; }
                if (r.Seq % sp != 0) { notes.Add($"seq {r.Seq} not divisible by sp={sp}"); continue; }
                list.Add(new ParallelLayout(1, sp, dp, SequenceSharding.Ulysses, ZeroStage: 3));
            }
        }
        else
        {
            for (int tp = 1; tp <= gpn; tp *= 2)
            {
                if (r.Tp is int t && t != tp) continue;
                if (gpn % tp != 0 || r.Gpus % tp != 0 || cfg.NumHeads % tp != 0 || cfg.NumKvHeads % tp != 0) continue;
                for (int dp = 1; dp <= r.Gpus / tp; dp++)
                {
                    if ((r.Gpus / tp) % dp != 0) continue;
                    if (r.Dp is int d && d != dp) continue;
                    int cp = r.Gpus / (tp * dp);
                    if (r.Cp is int c && c != cp) continue;
                    if (r.Batch % dp != 0) { notes.Add($"tp={tp} cp={cp} needs dp={dp}, which does not divide batch {r.Batch}"); continue; }
                    long unit = (long)tp * (cp > 1 ? 2 * cp : 1);
                    if (r.Seq % unit != 0) { notes.Add($"seq {r.Seq} not divisible by {unit} (tp={tp} cp={cp})"); continue; }
                    list.Add(new ParallelLayout(tp, cp, dp));
                }
            }
        }
        string why = list.Count > 0 ? "" : "no parallel layout: " + (notes.Count > 0 ? notes[0] + (notes.Count > 1 ? $" (and {notes.Count - 1} more)" : "") : "the fixed degrees leave none");
        return (list, why);
    }

    /// <summary>Plans every strategy at each sequence length.</summary>
    public static IReadOnlyList<(long Seq, IReadOnlyList<StrategyPlan> Plans)> Sweep(PlanRequest r, IReadOnlyList<long> seqs, IReadOnlyList<Strategy> strategies)
    {
        ArgumentNullException.ThrowIfNull(seqs);
        return seqs.Select(s => (s, PlanAll(r with { Seq = s }, strategies))).ToArray();
    }

    /// <summary>Upper end of the --max-seq search.</summary>
    public const long MaxSeqCap = 1L << 30;

    /// <summary>
    /// The longest sequence that fits for <paramref name="strategy"/>: doubling from 1K, then bisection between the last
    /// fit and the first failure to a multiple of 1K. Returns 0 (and the failing plan at 1K) when nothing fits.
    /// </summary>
    public static (long MaxSeq, StrategyPlan Plan) MaxSeq(PlanRequest r, Strategy strategy)
    {
        ArgumentNullException.ThrowIfNull(r);
        const long step = 1024;
        long lo = 0;
        StrategyPlan? best = null;
        long s = step;
        StrategyPlan? firstFail = null;
        while (s <= MaxSeqCap)
        {
            var p = Plan(r with { Seq = s }, strategy);
            if (!p.Fits) { firstFail = p; break; }
            lo = s;
            best = p;
            s *= 2;
        }
        if (best is null) return (0, firstFail!);
        if (firstFail is null) return (lo, best);
        long hi = s;
        while (hi - lo > step)
        {
            long mid = (lo + hi) / 2 / step * step;
            if (mid <= lo) mid = lo + step;
            var p = Plan(r with { Seq = mid }, strategy);
            if (p.Fits) { lo = mid; best = p; }
            else hi = mid;
        }
        return (lo, best);
    }

    /// <summary>Parses "32K..4M" into the doubling sequence 32K, 64K, ..., 4M (the end included when reached).</summary>
    public static IReadOnlyList<long> ParseSweep(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int dots = text.IndexOf("..", StringComparison.Ordinal);
        if (dots <= 0) throw new MemoException($"--sweep-seq '{text}' is not a range; write FROM..TO such as 32K..4M");
        string a = text[..dots], b = text[(dots + 2)..];
        if (!Sizes.TryParseCount(a, out long from) || !Sizes.TryParseCount(b, out long to))
            throw new MemoException($"--sweep-seq '{text}': both ends must be counts such as 32K, 1M or 65536");
        if (from < 1 || to < from) throw new MemoException($"--sweep-seq '{text}': need 1 <= FROM <= TO");
        if (to > MaxSeqCap) throw new MemoException($"--sweep-seq '{text}': TO must be at most {Sizes.FormatCount(MaxSeqCap)}");
        var list = new List<long>();
        for (long s = from; s <= to; s *= 2) list.Add(s);
        return list;
    }
}
