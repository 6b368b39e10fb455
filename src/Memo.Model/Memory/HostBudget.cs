using static Memo.Quantities;

namespace Memo.Model.Memory;

/// <summary>
/// The host-memory rule of the swap and memo policies, written once: the engine applies it when it builds its policy
/// runtime and <c>memo train --dry-run</c> applies it to the same numbers, so both reach the same verdict.
/// The last two layers start backward at once and are not swapped.
/// </summary>
public static class HostBudget
{
    /// <summary>Skeleton and token-local bytes per token of one layer that backward needs (fp32 rows of the inventory).</summary>
    public static (long Skeleton, long TokenLocal) PerToken(ModelConfig cfg) => ActivationInventory.SavedBytesPerToken(cfg, sizeof(float));

    /// <summary>
    /// The fixed alpha the host rule checks: the scalar <see cref="MemoryOptions.Alpha"/>, or for a per-layer vector
    /// (<see cref="MemoryOptions.Alphas"/>, one value per layer, each in [0, 1]) its mean over the swapped layers. The
    /// host store holds the skeleton of every swapped layer and alpha_l of its other rows: linear in alpha, so a vector
    /// fits exactly when its mean fits as a uniform alpha. Null when alpha is to be chosen.
    /// </summary>
    public static double? FixedAlpha(MemoryOptions memory, int layers)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (memory.Alphas is not { } alphas) return memory.Alpha;
        if (alphas.Count != layers)
            throw MemoException.About($"{Name(Quantity.Alpha)} has {alphas.Count} values but the model has {layers} layers; give one value, or one per layer", Quantity.Alpha);
        foreach (double x in alphas)
        {
            if (!(x >= 0 && x <= 1)) throw MemoException.About($"{Name(Quantity.Alpha)} must be between 0 and 1 (got {x})", Quantity.Alpha);
        }
        return alphas.Take(MemoryPolicy.SwappedLayers(layers)).DefaultIfEmpty(0).Average();
    }

    /// <summary>
    /// Checks that <paramref name="budget"/> (null: what swapping everything needs) holds what <paramref name="policy"/>
    /// swaps and that a given <paramref name="alpha"/> fits it; returns the largest alpha the budget allows
    /// (<see cref="MemoryPolicy.AlphaForHost"/>).
    /// </summary>
    /// <exception cref="MemoException">The budget is too small for the policy, its skeleton, or the given alpha.</exception>
    public static double MaxAlpha(PolicyKind policy, int layers, long skeletonPerToken, long tokenLocalPerToken, long tokens, long? budget, double? alpha)
    {
        int swapped = MemoryPolicy.SwappedLayers(layers);
        long needAll = checked(swapped * (skeletonPerToken + tokenLocalPerToken) * tokens);
        long needSkeleton = checked(swapped * skeletonPerToken * tokens);
        long b = budget ?? needAll;
        if (policy == PolicyKind.Swap && b < needAll)
            throw MemoException.About($"{Name(Quantity.Policy)} swap needs {Sizes.FormatBytes(needAll)} of host memory for {swapped} layers but {Name(Quantity.HostBudget)} is {Sizes.FormatBytes(b)}; use {Name(Quantity.Policy)} memo (swaps a fraction of tokens) or raise {Name(Quantity.HostBudget)}", Quantity.Policy, Quantity.HostBudget);
        if (b < needSkeleton)
            throw MemoException.About($"{Name(Quantity.HostBudget)} {Sizes.FormatBytes(b)} is too small for the skeleton activations of {swapped} layers ({Sizes.FormatBytes(needSkeleton)}); raise {Name(Quantity.HostBudget)} or shorten {Name(Quantity.SequenceLength)}", Quantity.HostBudget, Quantity.SequenceLength);
        double alphaHost = MemoryPolicy.AlphaForHost(b, swapped, (double)skeletonPerToken * tokens, (double)tokenLocalPerToken * tokens);
        if (alpha is double a)
        {
            if (!(a >= 0 && a <= 1)) throw MemoException.About($"{Name(Quantity.Alpha)} must be between 0 and 1 (got {a})", Quantity.Alpha);
            if (a > alphaHost + 1e-12)
                throw MemoException.About($"{Name(Quantity.Alpha)} {a} needs more host memory than {Name(Quantity.HostBudget)} {Sizes.FormatBytes(b)} allows (at most alpha {alphaHost:0.###}); lower {Name(Quantity.Alpha)} or raise {Name(Quantity.HostBudget)}", Quantity.Alpha, Quantity.HostBudget);
        }
        return alphaHost;
    }
}
