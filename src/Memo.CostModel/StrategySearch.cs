using System.Globalization;

namespace Memo.CostModel;

/// <summary>
/// Evaluates strategies under one cost model and searches, per strategy, the configurations its real system offers:
/// parallel degrees (tensor-parallel degrees that divide the heads and fit in a node, context or Ulysses degree,
/// data-parallel degree, pipeline stages that divide the layers), and the memory features (megatron: none,
/// selective or full recomputation of k layers, or activation offloading of k layers; deepspeed: ZeRO stage 1, 2
/// or 3, none, selective or full checkpointing, cpu_checkpointing; memo: alpha by the paper's rule). Picks the
/// fastest configuration that fits, or the one closest to fitting, as the paper says it tuned its baselines.
/// </summary>
public static class StrategySearch
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
        if (r.Device.CpuEngine && (r.Tp is > 1 || r.Pp is > 1))
            throw new MemoException($"--gpu {r.Device.Name} is this machine's CPU engine: it runs context-parallel (--cp) and data-parallel (--dp) ranks, no tensor or pipeline parallelism; drop --tp/--pp");
        if (r.Device.CpuEngine && r.Gpus != (long)(r.Cp ?? 1) * (r.Dp ?? 1))
            throw new MemoException($"--gpu {r.Device.Name}: --gpus {r.Gpus} must be the number of ranks, --cp x --dp = {(long)(r.Cp ?? 1) * (r.Dp ?? 1)}; give --cp and --dp (and drop --gpus)");
        if (r.Device.CpuEngine && r.Gpus > 1 && !(r.Device.IntraNodeBandwidth > 0))
            throw new MemoException($"--gpu {r.Device.Name}: {r.Gpus} ranks send to each other at intra_node_bandwidth, which is {r.Device.IntraNodeBandwidth.ToString(CultureInfo.InvariantCulture)}; give a positive rate in --device-profile");
        if (r.LogitsChunkTokens is < 1) throw new MemoException($"the LM-head chunk must be at least 1 token (got {r.LogitsChunkTokens})");
        if (!(r.FragmentationFactor >= 1) || r.FragmentationFactor > 4) throw new MemoException($"--fragmentation must be between 1 and 4 (got {r.FragmentationFactor.ToString(CultureInfo.InvariantCulture)})");
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
        Degree(r.Pp, "--pp");
        if (r.Pp is int pp && cfg.NumLayers % pp != 0)
            throw new MemoException($"--pp {pp} does not divide the model's {cfg.NumLayers} layers; pick a divisor");
        if (r.Tp is int tp)
        {
            if (cfg.NumHeads % tp != 0 || cfg.NumKvHeads % tp != 0)
                throw new MemoException($"--tp {tp} does not divide the model's {cfg.NumHeads} attention heads ({cfg.NumKvHeads} key/value heads); pick a divisor");
            if (tp > gpn) throw new MemoException($"--tp {tp} exceeds the {gpn} GPUs of a node; tensor parallelism stays inside a node");
        }
        if (r.Dp is int dp && r.Batch % dp != 0)
            throw new MemoException($"--dp {dp} does not divide --batch {r.Batch}; each data-parallel rank needs whole sequences");
        long product = (long)(r.Tp ?? 1) * (r.Cp ?? 1) * (r.Dp ?? 1) * (r.Pp ?? 1);
        if (r.Gpus % product != 0)
            throw new MemoException($"--tp x --cp x --dp x --pp = {product} does not divide --gpus {r.Gpus}");
        if (r.Tp is not null && r.Cp is not null && r.Dp is not null && r.Pp is not null && product != r.Gpus)
            throw new MemoException($"--tp x --cp x --dp x --pp = {product} but --gpus is {r.Gpus}; the degrees must multiply to the GPU count");
    }

    /// <summary>Plans every strategy in <paramref name="strategies"/>.</summary>
    public static IReadOnlyList<StrategyPlan> PlanAll(PlanRequest r, IEnumerable<Strategy> strategies)
    {
        Validate(r);
        return strategies.Select(s => Plan(r, s)).ToArray();
    }

    /// <summary>The fastest configuration of <paramref name="strategy"/> that fits, or the closest one that does not.</summary>
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
        foreach (var lay in layouts) best = Better(best, Evaluate(r, strategy, lay));
        return best!;
    }

    /// <summary>The better of two plans: fits beats not; among fits the faster; among misses the closer to fitting.</summary>
    private static StrategyPlan Better(StrategyPlan? best, StrategyPlan p) =>
        best is null
        || (p.Fits && (!best.Fits || p.StepSeconds < best.StepSeconds))
        || (!p.Fits && !best.Fits && p.Pressure < best.Pressure)
            ? p : best;

    /// <summary>The best configuration of one strategy on one layout (its features searched).</summary>
    public static StrategyPlan Evaluate(PlanRequest r, Strategy strategy, ParallelLayout lay)
    {
        ArgumentNullException.ThrowIfNull(r);
        var dev = r.Device;
        var shape = new LayerShape(r.Model, dev.Dtypes);
        int L = r.Model.NumLayers / lay.Pp;
        var query = BaseQuery(r, lay);
        if (dev.CpuEngine)
        {
            // The engine runs in its planned arena (its layout reports the real padding), has none of the baselines'
            // switches, and recomputes all layers or none.
            query = query with { AllocatorOverhead = 1.0, LogitsChunkTokens = null };
            if (r.LocalEngine.NotRunnable(r.Model, query.Batch, r.Seq) is not null) return Finish(r, strategy, lay, shape, query, "");
            return strategy switch
            {
                Strategy.Keep => Finish(r, strategy, lay, shape, query, ""),
                Strategy.Memo => PlanMemo(r, lay, shape, query),
                _ => FirstFit(r, strategy, lay, shape, strategy == Strategy.DeepSpeed ? [L] : [0, L], k => query with { Policy = MemoryPolicy.Recompute(k) }),
            };
        }
        switch (strategy)
        {
            case Strategy.Keep:
                return Finish(r, strategy, lay, shape, query, "");
            case Strategy.Memo:
                return PlanMemo(r, lay, shape, query);
            case Strategy.Megatron:
            {
                var q = query with { AllocatorOverhead = r.FragmentationFactor };
                var selective = q with { Features = new StrategyFeatures { SelectiveRecompute = true } };
                StrategyPlan? best = null;
                best = Better(best, Finish(r, strategy, lay, shape, q, ""));
                if (r.Allows(FeatureNames.Selective)) best = Better(best, Finish(r, strategy, lay, shape, selective, ""));
                if (best.Fits) return best; // recomputing or offloading more only costs time
                if (r.Allows(FeatureNames.FullRecompute))
                    best = Better(best, FirstFit(r, strategy, lay, shape, Enumerable.Range(1, L), k => q with { Policy = MemoryPolicy.Recompute(k) }));
                if (r.Allows(FeatureNames.Offload) && lay.Pp == 1)
                    best = Better(best, FirstFit(r, strategy, lay, shape, Enumerable.Range(1, L - 1), m => q with { Features = new StrategyFeatures { OffloadedLayers = m } }));
                return best;
            }
            default:
            {
                var q = query with { AllocatorOverhead = r.FragmentationFactor };
                StrategyPlan? best = null;
                var options = new List<MemoryQuery> { q };
                if (r.Allows(FeatureNames.Selective)) options.Add(q with { Features = new StrategyFeatures { SelectiveRecompute = true } });
                if (r.Allows(FeatureNames.FullRecompute))
                {
                    options.Add(q with { Policy = MemoryPolicy.Recompute(L) });
                    if (r.Allows(FeatureNames.CpuCheckpointing))
                        options.Add(q with { Policy = MemoryPolicy.Recompute(L), Features = new StrategyFeatures { CpuCheckpointing = true } });
                }
                foreach (var o in options) best = Better(best, Finish(r, strategy, lay, shape, o, ""));
                return best!;
            }
        }
    }

    /// <summary>Evaluates one fixed configuration (no search): the strategy's policy and features on a layout.</summary>
    public static StrategyPlan EvaluateConfiguration(PlanRequest r, Strategy strategy, ParallelLayout lay, MemoryPolicy policy, StrategyFeatures features)
    {
        ArgumentNullException.ThrowIfNull(r);
        var shape = new LayerShape(r.Model, r.Device.Dtypes);
        var q = BaseQuery(r, lay) with { Policy = policy, Features = features };
        if (strategy is Strategy.Megatron or Strategy.DeepSpeed && !r.Device.CpuEngine) q = q with { AllocatorOverhead = r.FragmentationFactor };
        return Finish(r, strategy, lay, shape, q, "");
    }

    private static MemoryQuery BaseQuery(PlanRequest r, ParallelLayout lay) => new()
    {
        Model = r.Model,
        Batch = r.Batch / lay.Dp,
        Seq = r.Seq,
        Policy = MemoryPolicy.Keep,
        Precision = r.Device.Dtypes,
        Layout = lay,
        LearnedPositionTable = false,
        ReservedBytes = r.Device.ReservedBytes,
        LogitsChunkTokens = r.LogitsChunkTokens,
        AllocatorOverhead = r.PlannedArenaOverhead,
    };

    /// <summary>The first of the increasingly memory-saving (and slower) configurations that fits, else the last.</summary>
    private static StrategyPlan FirstFit(PlanRequest r, Strategy strategy, ParallelLayout lay, LayerShape shape, IEnumerable<int> counts, Func<int, MemoryQuery> query)
    {
        StrategyPlan? last = null;
        foreach (int k in counts)
        {
            last = Finish(r, strategy, lay, shape, query(k), "");
            if (last.Fits) return last;
        }
        return last ?? Finish(r, strategy, lay, shape, query(0), "");
    }

    private static StrategyPlan PlanMemo(PlanRequest r, ParallelLayout lay, LayerShape shape, MemoryQuery query)
    {
        var dev = r.Device;
        int L = r.Model.NumLayers / lay.Pp;
        long batch = query.Batch;
        long inFlight = lay.Pp > 1 ? Math.Min(lay.Pp, batch) : 1;
        long micro = lay.Pp > 1 ? 1 : batch;
        var probe = MemoryOf(r, query with { Policy = MemoryPolicy.Swap(L) });
        double sSkel = probe.LayerSkeletonBytes, sRest = probe.LayerTokenLocalBytes;
        double layerForward = dev.CpuEngine ? r.LocalEngine.LayerForward(r.Model, batch, r.Seq, dev, r.EngineThreads, lay) : TimeModel.Layer(shape, lay, dev, micro, r.Seq).Forward;
        int swapped = MemoryPolicy.SwappedLayers(L);

        // alpha: largest value with the layer's copy hidden behind its forward and all swapped layers in host memory
        // (the CPU engine re-chooses it after its first step by the same rule, from its measured layer time and copy rate).
        double aTime = MemoryPolicy.AlphaForLink(layerForward * dev.ConcurrentHostLinkBandwidth, sSkel, sRest);
        double hostBudget = HostBudgetPerDevice(r, probe.Peak);
        if (dev.HasDiskTier && swapped > 0 && DiskTierPlan(r, lay, shape, query, layerForward, hostBudget, swapped, (int)inFlight, sSkel, sRest) is { } onDisk)
            return onDisk;
        double aHost = 1;
        string bound;
        if (swapped > 0)
        {
            double perLayer = hostBudget / (swapped * (double)inFlight);
            if (perLayer < sSkel)
            {
                var failed = Finish(r, Strategy.Memo, lay, shape, query with { Policy = MemoryPolicy.Memo(Enumerable.Repeat(0.0, L).ToArray()) }, "");
                return failed with
                {
                    Fits = false,
                    Reason = string.Create(CultureInfo.InvariantCulture,
                        $"out of host memory: the skeleton of {swapped} swapped layers needs {Sizes.FormatBytes((long)(sSkel * swapped * inFlight * r.GpusPerNodeUsed))} per node, {Sizes.FormatBytes((long)(Math.Max(0, hostBudget) * r.GpusPerNodeUsed))} is available{(dev.HasDiskTier ? $" in host memory and {Sizes.FormatBytes(dev.DiskCapacityBytes!.Value)} on disk" : "")} ({lay})"),
                    Pressure = Math.Max(failed.Pressure, sSkel * swapped * inFlight / Math.Max(1, hostBudget)),
                    StepSeconds = null, TokensPerSecond = null, Mfu = null, MfuFullAttention = null,
                };
            }
            aHost = MemoryPolicy.AlphaForHost(hostBudget, checked(swapped * (int)inFlight), sSkel, sRest);
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

    /// <summary>
    /// Memo with the disk tier behind host RAM, when the one rule (<see cref="MemoryPolicy.AlphaForTiers"/>) says it
    /// helps: the skeletons do not fit in RAM, or the disk gives a larger alpha than RAM alone. Null when RAM alone
    /// answers (the plan is then the same as without a disk tier).
    /// </summary>
    private static StrategyPlan? DiskTierPlan(PlanRequest r, ParallelLayout lay, LayerShape shape, MemoryQuery query, double layerForward,
        double ramBudget, int swapped, int inFlight, double sSkel, double sRest)
    {
        var dev = r.Device;
        int L = r.Model.NumLayers / lay.Pp;
        int gpus = r.GpusPerNodeUsed;
        double diskBudget = (double)dev.DiskCapacityBytes!.Value / gpus;
        double diskRate = Math.Min(dev.ConcurrentDiskBandwidth(gpus, write: true), dev.ConcurrentDiskBandwidth(gpus, write: false));
        var tiers = MemoryPolicy.AlphaForTiers(checked(swapped * inFlight), sSkel, sRest, Math.Max(0, ramBudget), diskBudget,
            layerForward * dev.ConcurrentHostLinkBandwidth, layerForward * diskRate);
        if (tiers is not { SpillsToDisk: true } t) return null;
        double alpha = Math.Floor(t.Alpha * 1e6) / 1e6;
        double aLink = MemoryPolicy.AlphaForLink(layerForward * diskRate, sSkel, sRest);
        string bound = alpha >= 1 ? "whole layers swapped to host memory and disk, copy hidden"
            : aLink <= alpha ? (aLink <= 0 ? "alpha 0: even the skeleton's copy to disk is exposed" : "alpha bound by the disk tier's bandwidth")
            : "alpha bound by host memory and disk together";
        var alphas = new double[L];
        for (int i = 0; i < L; i++) alphas[i] = MemoryPolicy.IsSwapped(i, L) ? alpha : 1.0;
        return Finish(r, Strategy.Memo, lay, shape, query with { Policy = MemoryPolicy.Memo(alphas), HostRamBudget = (long)Math.Max(0, ramBudget) }, bound);
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
    /// the engine's own arena layout (<see cref="ILocalEngine.Memory"/>), which is what it will measure.
    /// </summary>
    private static MemoryBreakdown MemoryOf(PlanRequest r, MemoryQuery q) =>
        r.Device.CpuEngine ? r.LocalEngine.Memory(q.Model, q.Batch, q.Seq, q.Policy, r.EngineThreads, q.Layout.Cp) : MemoryModel.PerDevice(q);

    private static StepTime TimeOf(PlanRequest r, LayerShape shape, ParallelLayout lay, MemoryQuery q, MemoryBreakdown mem) =>
        r.Device.CpuEngine
            ? r.LocalEngine.Step(q.Model, q.Batch, q.Seq, q.Policy, r.Device, r.EngineThreads, lay)
            : TimeModel.Step(shape, lay, r.Device, q.Batch, r.Seq, q.Policy, mem, q.Features);

    private static StrategyPlan Finish(PlanRequest r, Strategy strategy, ParallelLayout lay, LayerShape shape, MemoryQuery q, string note)
    {
        var dev = r.Device;
        int layers = r.Model.NumLayers / lay.Pp;
        bool planned = strategy is Strategy.Memo or Strategy.Keep || dev.CpuEngine;
        string fragSource = dev.CpuEngine ? "the engine's arena layout (measured)"
            : planned ? "planned arena: " + r.PlannedArenaSource
            : "caching allocator: assumed, from the paper's 73.5 GB reserved / 65.7 GB allocated (7B, 512K, Megatron-LM)";
        var common = new StrategyPlan
        {
            Strategy = strategy, Fits = false, Reason = "", Seq = r.Seq, Layout = lay, Policy = q.Policy,
            PolicyDescription = q.Policy.Describe(layers), Features = q.Features, LogitsChunkTokens = q.LogitsChunkTokens,
            FragmentationFactor = q.AllocatorOverhead, FragmentationSource = fragSource, LayersPerStage = layers,
            DeviceCapacityBytes = dev.DeviceMemoryBytes, HostCapacityBytesPerNode = dev.HostMemoryBytes, DiskCapacityBytesPerNode = dev.DiskCapacityBytes,
        };
        if (dev.CpuEngine && r.LocalEngine.NotRunnable(r.Model, q.Batch, q.Seq) is string why)
            return common with { Reason = why, Pressure = double.PositiveInfinity };
        var mem = MemoryOf(r, q);
        long hostPerNode = mem.HostRamBytes * r.GpusPerNodeUsed;
        long diskPerNode = mem.HostDiskBytes * r.GpusPerNodeUsed;
        long devCap = dev.DeviceMemoryBytes;
        double devPressure = (double)mem.Peak / devCap;
        double hostUse = dev.SharedHostMemory ? (double)mem.Peak * r.GpusPerNodeUsed + hostPerNode : hostPerNode;
        double hostPressure = hostUse / dev.UsableHostBytes;
        double diskPressure = diskPerNode > 0 ? (double)diskPerNode / (dev.DiskCapacityBytes ?? 0) : 0;
        bool devOk = mem.Peak <= devCap;
        bool hostOk = hostPerNode == 0 || hostUse <= dev.UsableHostBytes;
        bool diskOk = diskPerNode == 0 || diskPerNode <= (dev.DiskCapacityBytes ?? 0);
        var time = TimeOf(r, shape, lay, q, mem);
        double modelFlops = shape.ModelFlopsPerStep(r.Batch, r.Seq);
        double modelFlopsFull = shape.ModelFlopsPerStepFullAttention(r.Batch, r.Seq);
        double step = time.Step;
        var plan = common with { Memory = mem, Time = time, HostBytesPerNode = hostPerNode, DiskBytesPerNode = diskPerNode, ModelFlops = modelFlops, ModelFlopsFullAttention = modelFlopsFull };
        string where = $"{lay}, {string.Join(", ", plan.FeatureList)}";
        string reason;
        if (!devOk)
        {
            reason = $"out of device memory: needs {Sizes.FormatBytes(mem.Peak)} per GPU at the {mem.PeakPhase} peak, has {Sizes.FormatBytes(devCap)} ({where})";
        }
        else if (!hostOk)
        {
            reason = $"out of host memory: needs {Sizes.FormatBytes((long)hostUse)} per node, {Sizes.FormatBytes(dev.UsableHostBytes)} usable ({where})";
        }
        else if (!diskOk)
        {
            reason = $"out of disk: needs {Sizes.FormatBytes(diskPerNode)} per node, the disk tier has {Sizes.FormatBytes(dev.DiskCapacityBytes ?? 0)} ({where})";
        }
        else
        {
            reason = $"fits: {Sizes.FormatBytes(mem.Peak)} of {Sizes.FormatBytes(devCap)} per GPU"
                + (hostPerNode > 0 ? $", host {Sizes.FormatBytes(hostPerNode)} of {Sizes.FormatBytes(dev.UsableHostBytes)} usable per node" : "")
                + (diskPerNode > 0 ? $", disk {Sizes.FormatBytes(diskPerNode)} of {Sizes.FormatBytes(dev.DiskCapacityBytes ?? 0)} per node ({mem.DiskLayers} of {MemoryPolicy.SwappedLayers(layers)} swapped layers on disk)" : "")
                + (note.Length > 0 ? $"; {note}" : "");
        }
        bool fits = devOk && hostOk && diskOk;
        // The CPU engine's ranks share one machine, whose peak the cpu profile states.
        double flopsPerSecond = step * (dev.CpuEngine ? 1 : r.Gpus) * dev.PeakFlops;
        return plan with
        {
            Fits = fits,
            Reason = reason,
            StepSeconds = fits ? step : null,
            TokensPerSecond = fits ? r.Batch * r.Seq / step : null,
            Mfu = fits ? modelFlops / flopsPerSecond : null,
            MfuFullAttention = fits ? modelFlopsFull / flopsPerSecond : null,
            Pressure = Math.Max(Math.Max(devPressure, hostPerNode > 0 ? hostPressure : 0), diskPressure),
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
        var stages = new List<int>();
        for (int pp = 1; pp <= Math.Min(r.Gpus, cfg.NumLayers); pp++)
        {
            if (r.Gpus % pp != 0 || cfg.NumLayers % pp != 0) continue;
            if (r.Pp is int fixedPp ? pp != fixedPp : pp > 1 && (!r.Allows(FeatureNames.Pipeline) || r.Device.CpuEngine)) continue;
            stages.Add(pp);
        }
        if (stages.Count == 0) notes.Add($"--pp {r.Pp} does not divide both --gpus {r.Gpus} and the {cfg.NumLayers} layers");
        foreach (int pp in stages)
        {
            int perStage = r.Gpus / pp;
            // The CPU engine's ranks split a sequence one way only (the zig-zag ring), whatever the strategy.
            if (strategy == Strategy.DeepSpeed && !(r.Device.CpuEngine && r.Gpus > 1))
            {
                if (r.Tp is > 1) return ([], $"not applicable: DeepSpeed-Ulysses uses no tensor parallelism (--tp {r.Tp})");
                for (int sp = 1; sp <= perStage; sp++)
                {
                    if (perStage % sp != 0) continue;
                    int dp = perStage / sp;
                    if (r.Cp is int c && c != sp) continue;
                    if (r.Dp is int d && d != dp) continue;
                    if (r.Batch % dp != 0) { notes.Add($"sp={sp} needs dp={dp}, which does not divide batch {r.Batch}"); continue; }
                    if (cfg.NumHeads % sp != 0 || cfg.NumKvHeads % sp != 0) { notes.Add($"sp={sp} does not divide {cfg.NumHeads} heads"); continue; }
                    if (r.Seq % sp != 0) { notes.Add($"seq {r.Seq} not divisible by sp={sp}"); continue; }
                    // DeepSpeed runs pipeline parallelism with ZeRO-1 only (ZeRO-2/3 shard what the pipeline needs whole).
                    foreach (int zero in new[] { 1, 2, 3 })
                    {
                        if (!r.Allows(zero switch { 1 => FeatureNames.Zero1, 2 => FeatureNames.Zero2, _ => FeatureNames.Zero3 })) continue;
                        if (pp > 1 && zero > 1) continue;
                        list.Add(new ParallelLayout(1, sp, dp, SequenceSharding.Ulysses, ZeroStage: zero, Pp: pp));
                    }
                }
            }
            else
            {
                for (int tp = 1; tp <= gpn; tp *= 2)
                {
                    if (r.Tp is int t && t != tp) continue;
                    if (gpn % tp != 0 || perStage % tp != 0 || cfg.NumHeads % tp != 0 || cfg.NumKvHeads % tp != 0) continue;
                    for (int dp = 1; dp <= perStage / tp; dp++)
                    {
                        if ((perStage / tp) % dp != 0) continue;
                        if (r.Dp is int d && d != dp) continue;
                        int cp = perStage / (tp * dp);
                        if (r.Cp is int c && c != cp) continue;
                        if (r.Batch % dp != 0) { notes.Add($"tp={tp} cp={cp} needs dp={dp}, which does not divide batch {r.Batch}"); continue; }
                        long unit = (long)tp * (cp > 1 ? 2 * cp : 1);
                        if (r.Seq % unit != 0) { notes.Add($"seq {r.Seq} not divisible by {unit} (tp={tp} cp={cp})"); continue; }
                        list.Add(new ParallelLayout(tp, cp, dp, Pp: pp));
                    }
                }
            }
        }
        string why = list.Count > 0 ? "" : "no parallel layout: " + (notes.Count > 0 ? notes[0] + (notes.Count > 1 ? $" (and {notes.Count - 1} more)" : "") : "the fixed degrees leave none");
        return (list, why);
    }

    /// <summary>Plans every strategy at each sequence length.</summary>
    public static IReadOnlyList<(long Seq, IReadOnlyList<StrategyPlan> Plans)> PlanLengths(PlanRequest r, IReadOnlyList<long> seqs, IReadOnlyList<Strategy> strategies)
    {
        ArgumentNullException.ThrowIfNull(seqs);
        return seqs.Select(s => (s, PlanAll(r with { Seq = s }, strategies))).ToArray();
    }

    /// <summary>Upper end of the --max-seq search.</summary>
    public const long MaxSeqCap = 1L << 30;

    /// <summary>
    /// The step of the --max-seq search: 1K, or the least multiple of 1K that 2 x GPUs also divides. Every layout
    /// splits a sequence into tp x 2cp (or sp) parts, and tp x cp divides the GPU count, so every layout can take every
    /// length the search tries; with 6 GPUs or ranks (cp = 3) plain multiples of 1K would all be refused.
    /// </summary>
    public static long MaxSeqStep(int gpus)
    {
        if (gpus < 1) throw new ArgumentOutOfRangeException(nameof(gpus), "at least one GPU");
        return Arithmetic.Lcm(1024, 2L * gpus);
    }

    /// <summary>
    /// The longest sequence that fits for <paramref name="strategy"/>: doubling from <see cref="MaxSeqStep"/>, then
    /// bisection between the last fit and the first failure to a multiple of it. Returns 0 (and the failing plan at one
    /// step) when nothing fits.
    /// </summary>
    public static (long MaxSeq, StrategyPlan Plan) MaxSeq(PlanRequest r, Strategy strategy)
    {
        ArgumentNullException.ThrowIfNull(r);
        long step = MaxSeqStep(r.Gpus);
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
    public static IReadOnlyList<long> ParseLengths(string text)
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
