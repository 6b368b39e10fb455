namespace Memo;

/// <summary>The machine keys (JSON, CSV) and the printed labels of <see cref="MemoryCategory"/>, in report order.</summary>
public static class MemoryCategories
{
    /// <summary>Every category, in the order reports list them.</summary>
    public static IReadOnlyList<MemoryCategory> All { get; } = Enum.GetValues<MemoryCategory>();

    /// <summary>snake_case key, e.g. "optimizer_state".</summary>
    public static string Key(MemoryCategory c) => c switch
    {
        MemoryCategory.Parameters => "parameters",
        MemoryCategory.Gradients => "gradients",
        MemoryCategory.OptimizerState => "optimizer_state",
        MemoryCategory.KeptActivations => "kept_activations",
        MemoryCategory.SwapStaging => "swap_staging",
        MemoryCategory.RecomputeBuffers => "recompute_buffers",
        MemoryCategory.Workspaces => "workspaces",
        MemoryCategory.Fragmentation => "fragmentation",
        MemoryCategory.Reserved => "reserved",
        _ => throw new ArgumentOutOfRangeException(nameof(c), c, "not a memory category"),
    };

    /// <summary>Printed label: the key with spaces, e.g. "optimizer state".</summary>
    public static string Label(MemoryCategory c) => Key(c).Replace('_', ' ');
}
