namespace Memo.CostModel;

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

    /// <summary>Of <see cref="HostBytes"/>, the bytes that live on the disk tier (0 without one).</summary>
    public long HostDiskBytes { get; init; }

    /// <summary>Of <see cref="HostBytes"/>, the bytes that live in host RAM.</summary>
    public long HostRamBytes => HostBytes - HostDiskBytes;

    /// <summary>Swapped layers with some of their bytes on the disk tier: the last ones in layer order (they copy at the disk's rate).</summary>
    public int DiskLayers { get; init; }

    /// <summary>Parameters held by this device (after sharding).</summary>
    public long ParametersPerDevice { get; init; }

    /// <summary>One layer's saved activations on this device: skeleton and token-local parts.</summary>
    public long LayerSkeletonBytes { get; init; }

    public long LayerTokenLocalBytes { get; init; }

    public long LayerSavedBytes => LayerSkeletonBytes + LayerTokenLocalBytes;

    /// <summary>One kept layer's activations on this device (saved bytes less what selective recompute drops).</summary>
    public long LayerKeptBytes { get; init; }

    /// <summary>One layer's input row on this device (a full-recomputation checkpoint).</summary>
    public long LayerInputBytes { get; init; }

    public long Peak => Parameters + Gradients + OptimizerState + KeptActivations + SwapStaging + RecomputeBuffers + Workspaces + Fragmentation + Reserved;

    /// <summary>Bytes of <paramref name="category"/>.</summary>
    public long this[MemoryCategory category] => category switch
    {
        MemoryCategory.Parameters => Parameters,
        MemoryCategory.Gradients => Gradients,
        MemoryCategory.OptimizerState => OptimizerState,
        MemoryCategory.KeptActivations => KeptActivations,
        MemoryCategory.SwapStaging => SwapStaging,
        MemoryCategory.RecomputeBuffers => RecomputeBuffers,
        MemoryCategory.Workspaces => Workspaces,
        MemoryCategory.Fragmentation => Fragmentation,
        MemoryCategory.Reserved => Reserved,
        _ => throw new ArgumentOutOfRangeException(nameof(category), category, "not a memory category"),
    };

    /// <summary>The parts in <see cref="MemoryCategories.All"/>'s order with their keys and labels, for tables, JSON and plots.</summary>
    public IReadOnlyList<(string Key, string Label, long Bytes)> Parts =>
        MemoryCategories.All.Select(c => (MemoryCategories.Key(c), MemoryCategories.Label(c), this[c])).ToArray();
}
