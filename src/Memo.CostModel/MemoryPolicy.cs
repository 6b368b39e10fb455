using System.Globalization;

namespace Memo.CostModel;

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

/// <summary>A memory policy for every layer of a model.</summary>
public sealed record MemoryPolicy
{
    private MemoryPolicy(PolicyKind kind, int recomputedLayers, IReadOnlyList<double>? alphas)
    {
        Kind = kind;
        RecomputedLayers = recomputedLayers;
        Alphas = alphas;
    }

    public PolicyKind Kind { get; }

    /// <summary>Number of layers fully recomputed (the first ones, as Megatron's block method does); 0 unless <see cref="PolicyKind.Recompute"/>.</summary>
    public int RecomputedLayers { get; }

    /// <summary>Per layer, the fraction of tokens whose token-local rows are swapped (Swap: all 1; Memo: chosen). Null for Keep/Recompute.</summary>
    public IReadOnlyList<double>? Alphas { get; }

    public static MemoryPolicy Keep { get; } = new(PolicyKind.Keep, 0, null);

    /// <summary>Full recomputation of the first <paramref name="layers"/> layers (all layers when it equals the layer count).</summary>
    public static MemoryPolicy Recompute(int layers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layers);
        return new(PolicyKind.Recompute, layers, null);
    }

    public static MemoryPolicy Swap(int layers) => new(PolicyKind.Swap, 0, Enumerable.Repeat(1.0, layers).ToArray());

    /// <summary>Memo with one alpha per layer (the last two layers' values are not used: those layers stay on the device).</summary>
    public static MemoryPolicy Memo(IReadOnlyList<double> alphas)
    {
        ArgumentNullException.ThrowIfNull(alphas);
        foreach (var a in alphas)
        {
            if (!(a >= 0 && a <= 1)) throw new ArgumentOutOfRangeException(nameof(alphas), a, "alpha must be in [0, 1]");
        }
        return new(PolicyKind.Memo, 0, alphas.ToArray());
    }

    /// <summary>True for the layers whose activations go to host memory: every layer but the last two.</summary>
    public static bool IsSwapped(int layer, int layers) => layer < layers - 2;

    public string Describe(int layers) => Kind switch
    {
        PolicyKind.Keep => "keep all",
        PolicyKind.Recompute when RecomputedLayers == 0 => "selective (no recompute)",
        PolicyKind.Recompute => string.Create(CultureInfo.InvariantCulture, $"full recompute {RecomputedLayers}/{layers}"),
        PolicyKind.Swap => "swap all",
        _ => string.Create(CultureInfo.InvariantCulture, $"swap+recompute a={(Alphas is { Count: > 0 } ? Alphas[0] : 0):0.000}"),
    };
}
