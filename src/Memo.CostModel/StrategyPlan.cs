namespace Memo.CostModel;

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

    /// <summary>Swapped activations per node in host RAM (all of them without a disk tier).</summary>
    public long HostBytesPerNode { get; init; }

    /// <summary>The node's disk tier for swapped activations, bytes; null when the profile has none.</summary>
    public long? DiskCapacityBytesPerNode { get; init; }

    /// <summary>Swapped activations per node on the disk tier (0 without one, or when RAM holds them all).</summary>
    public long DiskBytesPerNode { get; init; }

    public long HostCapacityBytesPerNode { get; init; }

    public double ModelFlops { get; init; }

    public double? StepSeconds { get; init; }

    public double? TokensPerSecond { get; init; }

    /// <summary>Model FLOPs utilization with attention counted for the causal half (the paper's convention).</summary>
    public double? Mfu { get; init; }

    /// <summary>Model FLOPs of a step with attention counted over the full score matrix.</summary>
    public double ModelFlopsFullAttention { get; init; }

    /// <summary>MFU with attention counted over the full score matrix (the convention that ignores the causal mask).</summary>
    public double? MfuFullAttention { get; init; }

    /// <summary>The baseline switches the plan uses (selective recompute, cpu_checkpointing, offloaded layers).</summary>
    public StrategyFeatures Features { get; init; } = StrategyFeatures.None;

    /// <summary>Tokens per LM-head chunk, or null when all logits are materialized at once.</summary>
    public long? LogitsChunkTokens { get; init; }

    /// <summary>Factor on the activation side for allocator fragmentation (caching allocator: assumed; planned arena: measured).</summary>
    public double FragmentationFactor { get; init; } = 1.0;

    /// <summary>Where <see cref="FragmentationFactor"/> comes from.</summary>
    public string FragmentationSource { get; init; } = "";

    /// <summary>Checkpointing as the real systems name it: none, selective, full k/L.</summary>
    public string Checkpointing
    {
        get
        {
            if (Policy is not { } p) return "-";
            if (p.Kind is PolicyKind.Memo or PolicyKind.Swap) return "token-wise (memo)";
            int layers = Policy.Kind == PolicyKind.Recompute ? p.RecomputedLayers : 0;
            if (layers > 0) return $"full {layers}/{LayersPerStage}";
            return Features.SelectiveRecompute ? "selective" : "none";
        }
    }

    /// <summary>Layers of one pipeline stage (the whole model without pipeline parallelism).</summary>
    public int LayersPerStage { get; init; }

    /// <summary>The features in use, as short names (for tables): layout extras, checkpointing, offload, head, allocator.</summary>
    public IReadOnlyList<string> FeatureList
    {
        get
        {
            var list = new List<string>();
            if (Layout is not { } l) return list;
            if (l.Pp > 1) list.Add($"pp={l.Pp}");
            if (l.Sharding == SequenceSharding.Ulysses || l.ZeroStage > 1) list.Add($"zero-{l.ZeroStage}");
            string ck = Checkpointing;
            if (ck != "none" && ck != "-") list.Add(ck);
            if (Features.SelectiveRecompute && ck.StartsWith("full", StringComparison.Ordinal)) list.Add("selective");
            if (Features.CpuCheckpointing) list.Add("cpu_checkpointing");
            if (Features.OffloadedLayers > 0) list.Add($"offload {Features.OffloadedLayers}/{LayersPerStage}");
            list.Add(LogitsChunkTokens is long c ? $"head chunked {Sizes.FormatCount(c)}" : "head whole");
            if (l.Tp > 1) list.Add("vocab-parallel");
            return list;
        }
    }

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
