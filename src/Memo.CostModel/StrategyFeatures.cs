namespace Memo.CostModel;

/// <summary>
/// The baselines' own activation-memory features, beyond the memory policy (keep, or full recomputation of the
/// first k layers) and the parallel layout (which carries the ZeRO stage and the pipeline stages). Each is a
/// switch the real system has; <see cref="StrategySearch"/> tries them and reports the ones its best
/// configuration uses. <see cref="MemoryModel.PerDevice(MemoryQuery)"/> and <see cref="TimeModel.Step"/> read
/// them from the query.
/// </summary>
public sealed record StrategyFeatures
{
    public static StrategyFeatures None { get; } = new();

    /// <summary>
    /// Selective recomputation: the saved rows produced by element-wise ops (the two norm outputs and the MLP
    /// activation output; <see cref="LayerShape.SelectiveBytesPerToken"/>) are dropped after the forward and
    /// rebuilt from their kept inputs before the backward, at memory bandwidth. Megatron-Core's selective
    /// granularity recomputes norms and the activation function (core attention needs none under FlashAttention,
    /// which saves no score matrix); Megatron-DeepSpeed, which DeepSpeed-Ulysses runs on, has the same switch.
    /// Applies to the layers that are kept, not to fully recomputed or offloaded ones.
    /// </summary>
    public bool SelectiveRecompute { get; init; }

    /// <summary>
    /// DeepSpeed's <c>cpu_checkpointing</c>: the checkpoints of fully recomputed layers (their inputs) are moved to
    /// host memory after the forward and fetched back for the layer's recomputation. DeepSpeed moves them with
    /// blocking copies, so the model charges the copies as exposed time.
    /// </summary>
    public bool CpuCheckpointing { get; init; }

    /// <summary>
    /// Megatron-Core / Transformer Engine activation offloading (<c>--cpu-offloading</c>,
    /// <c>cpu_offloading_num_layers</c>): the saved activations of the first this-many layers are copied to host
    /// memory after their forward and fetched back before their backward, overlapped with compute. Modelled
    /// without full recomputation and without pipeline parallelism, as Megatron-Core configures it.
    /// </summary>
    public int OffloadedLayers { get; init; }
}
