namespace Memo;

/// <summary>
/// What device memory is for: the one vocabulary of the engine's arena (every planned buffer has one), the cost
/// model's breakdown (<c>MemoryBreakdown</c>), <c>memo train --dry-run</c>, <c>memo plan</c> and the JSON log.
/// Keys and labels are in <see cref="MemoryCategories"/>.
/// </summary>
public enum MemoryCategory
{
    Parameters,
    Gradients,
    OptimizerState,

    /// <summary>Saved activations of layers that stay on the device (full layers, or recompute checkpoints).</summary>
    KeptActivations,

    /// <summary>Swap policies: the two staging slots (even/odd layers) that each hold one layer's saved activations.</summary>
    SwapStaging,

    /// <summary>Full recomputation: the re-run layer's saved activations, alive during its backward.</summary>
    RecomputeBuffers,

    /// <summary>Transients, gradients of activations, logits, kernel scratch, communication buffers.</summary>
    Workspaces,

    /// <summary>What an allocator or an arena plan needs above the live bytes (never a buffer of its own).</summary>
    Fragmentation,

    /// <summary>Memory the runtime reserves outside the model (context, library handles; never a buffer of its own).</summary>
    Reserved,
}
