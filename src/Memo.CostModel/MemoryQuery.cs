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

    /// <summary>
    /// With a disk tier: the host RAM this device's swapped activations may fill, layer by layer in order, before the
    /// rest goes to disk (<see cref="MemoryBreakdown.HostDiskBytes"/>); null: no disk tier, everything in host RAM.
    /// </summary>
    public long? HostRamBudget { get; init; }

    /// <summary>Selective recomputation, checkpoints in host memory, offloaded layers (the baselines' switches).</summary>
    public StrategyFeatures Features { get; init; } = StrategyFeatures.None;
}
