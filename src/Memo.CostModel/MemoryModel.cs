namespace Memo.CostModel;

/// <summary>
/// Everything that decides one device's memory in a training step. This is the one input of
/// <see cref="MemoryModel.PerDevice"/>, the single place where per-device memory is computed: the
/// planner calls it for every strategy, and the runtime can call it with its own policy to compare
/// the prediction with its measured peak.
/// </summary>
public sealed record MemoryQuery
{
    public required ModelConfig Model { get; init; }

    /// <summary>Sequences one data-parallel rank processes together (the micro-batch).</summary>
    public long Batch { get; init; } = 1;

    /// <summary>Tokens per sequence.</summary>
    public required long Seq { get; init; }

    public required MemoryPolicy Policy { get; init; }

    public Precision Precision { get; init; } = Precision.Bf16Mixed;

    public ParallelLayout Layout { get; init; } = ParallelLayout.Single;

    /// <summary>
    /// Factor on activations and workspaces for allocator fragmentation: 1 under a planned arena; a
    /// caching allocator holds more than it hands out (the paper measured 73.5 GB reserved for 65.7 GB
    /// allocated, 7B at 512K on Megatron-LM, about 1.15x the activation part).
    /// </summary>
    public double AllocatorOverhead { get; init; } = 1.0;

    /// <summary>Tokens per chunk when the LM head and loss run chunk by chunk; null when all logits are materialized at once.</summary>
    public long? LogitsChunkTokens { get; init; }

    /// <summary>
    /// Count a learned position table (GPT-2 family) as parameters. The runtime allocates it; the planner leaves
    /// it out, treating positions as parameter-free (rotary), since a learned table for 1M positions would
    /// hold more parameters than the paper's 7B model itself.
    /// </summary>
    public bool LearnedPositionTable { get; init; } = true;

    /// <summary>Device bytes not available to training (context, library workspaces); added to the peak.</summary>
    public long ReservedBytes { get; init; }
}

/// <summary>
/// One device's memory at the peak of a training step, split by purpose. The parts sum to <see cref="Peak"/>.
/// </summary>
public sealed record MemoryBreakdown
{
    public long Parameters { get; init; }
    public long Gradients { get; init; }
    public long OptimizerState { get; init; }

    /// <summary>Saved activations of layers that stay on the device (full layers, or recompute checkpoints).</summary>
    public long KeptActivations { get; init; }

    /// <summary>Swap policies: the two rounding buffers (even/odd layers) that each hold one layer's saved activations.</summary>
    public long SwapStaging { get; init; }

    /// <summary>Full recomputation: the re-run layer's saved activations, alive during its backward.</summary>
    public long RecomputeBuffers { get; init; }

    /// <summary>Transients, communication buffers, gradients of activations, logits, gathered parameters at the peak phase.</summary>
    public long Workspaces { get; init; }

    /// <summary>Allocator fragmentation on top of the activation-side parts.</summary>
    public long Fragmentation { get; init; }

    public long Reserved { get; init; }

    /// <summary>Phase at which the peak occurs: forward, loss or backward.</summary>
    public string PeakPhase { get; init; } = "";

    /// <summary>Host memory this device's swapped activations take.</summary>
    public long HostBytes { get; init; }

    /// <summary>Parameters held by this device (after sharding).</summary>
    public long ParametersPerDevice { get; init; }

    /// <summary>One layer's saved activations on this device: skeleton and token-local parts.</summary>
    public long LayerSkeletonBytes { get; init; }

    public long LayerTokenLocalBytes { get; init; }

    public long LayerSavedBytes => LayerSkeletonBytes + LayerTokenLocalBytes;

    public long Peak => Parameters + Gradients + OptimizerState + KeptActivations + SwapStaging + RecomputeBuffers + Workspaces + Fragmentation + Reserved;

    /// <summary>The parts in a fixed order, for tables, JSON and plots.</summary>
    public IReadOnlyList<(string Key, string Label, long Bytes)> Parts =>
    [
        ("parameters", "parameters", Parameters),
        ("gradients", "gradients", Gradients),
        ("optimizer_state", "optimizer state", OptimizerState),
        ("kept_activations", "kept activations", KeptActivations),
        ("swap_staging", "swap staging", SwapStaging),
        ("recompute_buffers", "recompute buffers", RecomputeBuffers),
        ("workspaces", "workspaces", Workspaces),
        ("fragmentation", "fragmentation", Fragmentation),
        ("reserved", "reserved", Reserved),
    ];
}

/// <summary>Per-device memory of a training step (see <see cref="PerDevice"/>).</summary>
public static class MemoryModel
{
    /// <summary>DeepSpeed's default ZeRO-3 reduce bucket (reduce_bucket_size), elements.</summary>
    public const long ZeroReduceBucketElements = 500_000_000;

    /// <summary>
    /// Parameters the cost model counts for <paramref name="model"/>: <see cref="ModelConfig.ParameterCount"/>,
    /// less the learned position table unless <paramref name="learnedPositionTable"/>.
    /// </summary>
    public static long Parameters(ModelConfig model, bool learnedPositionTable)
    {
        ArgumentNullException.ThrowIfNull(model);
        long p = model.ParameterCount;
        if (model.HasLearnedPositions && !learnedPositionTable) p -= (long)model.MaxPositions * model.HiddenSize;
        return p;
    }

    /// <summary>Parameters of one decoder layer (everything but embeddings, head and final norm, spread evenly).</summary>
    public static long LayerParameters(ModelConfig model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long embed = (long)model.VocabSize * model.HiddenSize * (model.TiedHead ? 1 : 2);
        return (Parameters(model, learnedPositionTable: false) - embed) / model.NumLayers;
    }

    /// <summary>
    /// One device running the whole model (the runtime's case): memory at the peak of a step of
    /// <paramref name="batch"/> sequences of <paramref name="seq"/> tokens under <paramref name="policy"/>
    /// (which carries alpha per layer for Memo) with the dtypes of <paramref name="precision"/>.
    /// </summary>
    public static MemoryBreakdown PerDevice(ModelConfig model, long batch, long seq, MemoryPolicy policy, Precision precision, long? logitsChunkTokens = null) =>
        PerDevice(new MemoryQuery { Model = model, Batch = batch, Seq = seq, Policy = policy, Precision = precision, LogitsChunkTokens = logitsChunkTokens });

    /// <summary>
    /// One device's memory at the peak of a training step. Static state (weights, gradients, optimizer) is
    /// sharded as the layout says; activations are the inventory's rows times the tokens this device holds;
    /// the peak is the largest of three phases: the last layer's forward, the loss, and the first backward
    /// layer (or the first fully recomputed one), each adding its own workspaces to what is kept.
    /// </summary>
    public static MemoryBreakdown PerDevice(MemoryQuery q)
    {
        ArgumentNullException.ThrowIfNull(q);
        var cfg = q.Model;
        var shape = new LayerShape(cfg, q.Precision);
        var lay = q.Layout;
        int L = cfg.NumLayers;
        int act = q.Precision.ActivationBytes;
        long tokens = checked(q.Batch * q.Seq);
        long tokensPerGroup = tokens / lay.Cp;          // tokens of one tensor-parallel group (one context-parallel rank)
        long PerDevice(long bytesPerToken) => checked(bytesPerToken * tokens) / lay.SequenceShards;

        // ---- static state ----
        long p = Parameters(cfg, q.LearnedPositionTable);
        long pDev, pOpt;
        if (lay.ZeroStage >= 3)
        {
            pDev = pOpt = Ceil(p, lay.Gpus);
        }
        else
        {
            pDev = Ceil(p, lay.Tp);
            pOpt = Ceil(pDev, lay.Cp * lay.Dp);
        }
        long parameters = pDev * q.Precision.ParameterBytes;
        long gradients = pDev * q.Precision.GradientBytes;
        long optimizer = pOpt * (q.Precision.MasterBytes + q.Precision.OptimizerBytes);

        // ---- one layer on this device ----
        long skel = PerDevice(shape.SkeletonBytesPerToken);
        long local = PerDevice(shape.TokenLocalBytesPerToken);
        long saved = skel + local;
        long input = PerDevice(shape.InputBytesPerToken);

        // ---- what stays on the device between a layer's forward and its backward ----
        long kept = 0, staging = 0, recomputeLayer = 0;
        int recomputed = 0;
        long host = 0;
        switch (q.Policy.Kind)
        {
            case PolicyKind.Keep:
                kept = L * saved;
                break;
            case PolicyKind.Recompute:
                recomputed = Math.Min(q.Policy.RecomputedLayers, L);
                kept = recomputed * input + (L - recomputed) * saved;
                recomputeLayer = recomputed > 0 ? saved - input : 0;
                break;
            default:
                // Two rounding buffers (even/odd layers) each hold one layer's saved activations while its forward
                // writes them and its copy drains them; the last two layers stay in them through the turn.
                staging = Math.Min(L, 2) * saved;
                var alphas = q.Policy.Alphas ?? [];
                for (int i = 0; i < L; i++)
                {
                    if (!MemoryPolicy.IsSwapped(i, L)) continue;
                    double a = i < alphas.Count ? alphas[i] : 1.0;
                    host += skel + (long)Math.Round(a * local);
                }
                break;
        }

        // ---- workspaces ----
        long tpBuffer = lay.Tp > 1 ? checked(shape.ResidualWidth * act * tokensPerGroup) : 0; // all-gathered input / partial sum before reduce-scatter
        long kvWidth = shape.QkvWidth - shape.AttentionWidth;
        long cpBuffer = lay.Cp > 1 && lay.Sharding == SequenceSharding.TensorSequence
            ? 2 * checked(kvWidth * act * tokensPerGroup) / lay.Tp : 0;                     // double-buffered k,v chunk of the ring
        long a2aBuffer = lay.Cp > 1 && lay.Sharding == SequenceSharding.Ulysses
            ? PerDevice((shape.QkvWidth + shape.AttentionWidth) * act) : 0;                  // head-split q,k,v and o
        long zeroBuffer = lay.ZeroStage >= 3
            ? 2 * LayerParameters(cfg) * q.Precision.ParameterBytes + Math.Min(ZeroReduceBucketElements, p) * q.Precision.ParameterBytes : 0;

        long forwardWs = PerDevice(shape.TransientBytesPerToken) + tpBuffer + cpBuffer + a2aBuffer + zeroBuffer;
        long lossTokens = q.LogitsChunkTokens is long c ? Math.Min(c, tokensPerGroup) : tokensPerGroup;
        long lossWs = 2 * input                                                                // final norm input and output
            + checked(lossTokens * shape.ResidualWidth * act)                                  // head input (gathered over tp)
            + checked(lossTokens * (cfg.VocabSize / lay.Tp) * (long)(act + Precision.StatBytes)); // logits, and their fp32 copy for the loss
        long backwardWs = PerDevice(shape.LargestTwoSavedBytesPerToken + 2 * shape.InputBytesPerToken) // activation gradients
            + 2 * tpBuffer + 2 * cpBuffer + 2 * a2aBuffer + zeroBuffer;

        var phases = new List<(string Name, long Kept, long Recompute, long Ws)>
        {
            ("forward", kept, 0, forwardWs),
            ("loss", kept, 0, lossWs),
            ("backward", kept, recomputed == L ? recomputeLayer : 0, backwardWs),
        };
        if (recomputed > 0 && recomputed < L)
            phases.Add(("backward", recomputed * input, recomputeLayer, backwardWs)); // first recomputed layer: later layers' activations are gone
        var peak = phases.MaxBy(ph => ph.Kept + ph.Recompute + ph.Ws);

        long activationSide = peak.Kept + staging + peak.Recompute + peak.Ws;
        long fragmentation = (long)Math.Round(activationSide * Math.Max(0, q.AllocatorOverhead - 1));
        return new MemoryBreakdown
        {
            Parameters = parameters,
            Gradients = gradients,
            OptimizerState = optimizer,
            KeptActivations = peak.Kept,
            SwapStaging = staging,
            RecomputeBuffers = peak.Recompute,
            Workspaces = peak.Ws,
            Fragmentation = fragmentation,
            Reserved = q.ReservedBytes,
            PeakPhase = peak.Name,
            HostBytes = host,
            ParametersPerDevice = pDev,
            LayerSkeletonBytes = skel,
            LayerTokenLocalBytes = local,
        };
    }

    private static long Ceil(long a, long b) => (a + b - 1) / b;
}
