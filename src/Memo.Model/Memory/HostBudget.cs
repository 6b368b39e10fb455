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
            throw new MemoException($"--policy swap needs {Sizes.FormatBytes(needAll)} of host memory for {swapped} layers but --host-memory is {Sizes.FormatBytes(b)}; use --policy memo (swaps a fraction of tokens) or raise --host-memory");
        if (b < needSkeleton)
            throw new MemoException($"--host-memory {Sizes.FormatBytes(b)} is too small for the skeleton activations of {swapped} layers ({Sizes.FormatBytes(needSkeleton)}); raise --host-memory or shorten --seq");
        double alphaHost = MemoryPolicy.AlphaForHost(b, swapped, (double)skeletonPerToken * tokens, (double)tokenLocalPerToken * tokens);
        if (alpha is double a)
        {
            if (!(a >= 0 && a <= 1)) throw new MemoException($"--alpha must be between 0 and 1 (got {a})");
            if (a > alphaHost + 1e-12)
                throw new MemoException($"--alpha {a} needs more host memory than --host-memory {Sizes.FormatBytes(b)} allows (at most alpha {alphaHost:0.###}); lower --alpha or raise --host-memory");
        }
        return alphaHost;
    }
}
