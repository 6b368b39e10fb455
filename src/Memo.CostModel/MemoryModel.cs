namespace Memo.CostModel;

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
    /// sharded as the layout says (tensor parallelism, the ZeRO stage, pipeline stages); activations are the
    /// inventory's rows times the tokens this device holds, for the layers of its pipeline stage; the peak is the
    /// largest of three phases: the last layer's forward, the loss, and the first backward layer (or the first
    /// fully recomputed one), each adding its own workspaces to what is kept. With pipeline stages the first stage
    /// is costed (it holds the most micro-batches in flight under 1F1B), with the loss phase added to it, which
    /// over-counts by the last stage's smaller share of in-flight activations.
    /// </summary>
    public static MemoryBreakdown PerDevice(MemoryQuery q)
    {
        ArgumentNullException.ThrowIfNull(q);
        var cfg = q.Model;
        var shape = new LayerShape(cfg, q.Precision);
        var lay = q.Layout;
        var f = q.Features;
        int pp = Math.Max(1, lay.Pp);
        if (cfg.NumLayers % pp != 0) throw new ArgumentException($"{pp} pipeline stages do not divide {cfg.NumLayers} layers", nameof(q));
        int L = cfg.NumLayers / pp;                        // layers of this device's stage
        int act = q.Precision.ActivationBytes;
        // Under pipeline parallelism a micro-batch is one sequence and 1F1B keeps up to pp of them in flight on the first stage.
        long tokens = pp > 1 ? q.Seq : checked(q.Batch * q.Seq);
        long inFlight = pp > 1 ? Math.Min(pp, q.Batch) : 1;
        long tokensPerGroup = tokens / lay.Cp;          // tokens of one tensor-parallel group (one context-parallel rank)
        long PerDevice(long bytesPerToken) => checked(bytesPerToken * tokens) / lay.SequenceShards;

        // ---- static state ----
        long p = Parameters(cfg, q.LearnedPositionTable);
        if (pp > 1)
        {
            // A stage holds its layers and one vocabulary matrix (the first the embedding, the last the head).
            long vocab = (long)cfg.VocabSize * cfg.HiddenSize;
            long embed = vocab * (cfg.TiedHead ? 1 : 2);
            p = Ceil(p - embed, pp) + vocab;
        }
        long pDev, pGrad, pOpt;
        if (lay.ZeroStage >= 3)
        {
            pDev = pGrad = pOpt = Ceil(p, lay.StageGpus);
        }
        else
        {
            pDev = Ceil(p, lay.Tp);
            pOpt = Ceil(pDev, lay.Cp * lay.Dp);
            pGrad = lay.ZeroStage >= 2 ? pOpt : pDev;
        }
        long parameters = pDev * q.Precision.ParameterBytes;
        long gradients = pGrad * q.Precision.GradientBytes;
        long optimizer = pOpt * (q.Precision.MasterBytes + q.Precision.OptimizerBytes);

        // ---- one layer on this device ----
        long skel = PerDevice(shape.SkeletonBytesPerToken);
        long local = PerDevice(shape.TokenLocalBytesPerToken);
        long saved = skel + local;
        long keptSaved = saved - (f.SelectiveRecompute ? PerDevice(shape.SelectiveBytesPerToken) : 0); // a kept layer under selective recompute
        long input = PerDevice(shape.InputBytesPerToken);

        // ---- what stays on the device between a layer's forward and its backward ----
        long kept = 0, staging = 0, recomputeLayer = 0, fetched = 0;
        int recomputed = 0;
        long host = 0, hostDisk = 0;
        int diskLayers = 0;
        switch (q.Policy.Kind)
        {
            case PolicyKind.Keep:
            case PolicyKind.Recompute:
                recomputed = q.Policy.Kind == PolicyKind.Recompute ? Math.Min(q.Policy.RecomputedLayers, L) : 0;
                int offloaded = Math.Clamp(f.OffloadedLayers, 0, L - recomputed);
                // Checkpoints (inputs of recomputed layers) stay on the device unless cpu_checkpointing moves them to the host.
                long checkpoints = recomputed * input;
                if (f.CpuCheckpointing) { host += checkpoints * inFlight; fetched = recomputed > 0 ? input : 0; checkpoints = 0; }
                kept = checkpoints + (L - recomputed - offloaded) * keptSaved;
                if (offloaded > 0)
                {
                    // Offloaded layers leave through a double buffer: one layer draining while the next computes.
                    staging = Math.Min(offloaded, 2) * keptSaved;
                    host += offloaded * keptSaved * inFlight;
                }
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
                    host += (skel + (long)Math.Round(a * local)) * inFlight;
                    // Layers fill host RAM in order; a layer that passes the RAM budget lives (partly) on disk.
                    if (q.HostRamBudget is long ram && host > ram) diskLayers++;
                }
                if (q.HostRamBudget is long ramBudget) hostDisk = Math.Max(0, host - ramBudget);
                break;
        }
        kept *= inFlight;

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
            + checked(lossTokens * (cfg.VocabSize / lay.Tp) * (long)(act + Precision.StatBytes)); // logits (vocab-parallel over tp), and their fp32 copy for the loss
        long backwardWs = PerDevice(shape.LargestTwoSavedBytesPerToken + 2 * shape.InputBytesPerToken) // activation gradients
            + 2 * tpBuffer + 2 * cpBuffer + 2 * a2aBuffer + zeroBuffer
            + (f.SelectiveRecompute ? PerDevice(shape.SelectiveBytesPerToken) : 0);            // the dropped rows, rebuilt for this layer

        var phases = new List<(string Name, long Kept, long Recompute, long Ws)>
        {
            ("forward", kept, 0, forwardWs),
            ("loss", kept, 0, lossWs),
            ("backward", kept, recomputed == L ? recomputeLayer + fetched : 0, backwardWs),
        };
        if (recomputed > 0 && recomputed < L)
            phases.Add(("backward", (f.CpuCheckpointing ? 0 : recomputed * input) * inFlight, recomputeLayer + fetched, backwardWs)); // first recomputed layer: later layers' activations are gone
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
            HostDiskBytes = hostDisk,
            DiskLayers = diskLayers,
            ParametersPerDevice = pDev,
            LayerSkeletonBytes = skel,
            LayerTokenLocalBytes = local,
            LayerKeptBytes = keptSaved,
            LayerInputBytes = input,
        };
    }

    private static long Ceil(long a, long b) => (a + b - 1) / b;
}
