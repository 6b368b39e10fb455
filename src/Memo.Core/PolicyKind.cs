namespace Memo;

/// <summary>What happens to a layer's saved activations between its forward and its backward.</summary>
public enum PolicyKind
{
    /// <summary>All saved activations stay on the device.</summary>
    Keep,

    /// <summary>Full recomputation of <see cref="MemoryPolicy.RecomputedLayers"/> layers: only their input is kept and the layer is re-run before its backward; the other layers are kept.</summary>
    Recompute,

    /// <summary>Every layer but the last two is copied to host memory in full and fetched back (alpha = 1).</summary>
    Swap,

    /// <summary>Skeleton swapped in full, a fraction alpha of the tokens of every other saved row swapped, the rest recomputed token-wise; the last two layers stay on the device.</summary>
    Memo,
}
