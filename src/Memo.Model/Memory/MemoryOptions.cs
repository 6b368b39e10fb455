namespace Memo.Model.Memory;

/// <summary>How a model's device and host memory are managed; printed in reports and logs.</summary>
public sealed record MemoryOptions
{
    public PolicyKind Policy { get; init; } = PolicyKind.Keep;

    /// <summary>Fraction of tokens whose token-local activations are swapped under <see cref="PolicyKind.Memo"/>; null chooses it from measurements.</summary>
    public double? Alpha { get; init; }

    /// <summary>
    /// One memo alpha per layer (a fixed vector, as <see cref="MemoryPolicy.Alphas"/> holds it); when set it takes
    /// the place of <see cref="Alpha"/>. The last two layers' values are not used: those layers are not swapped.
    /// </summary>
    public IReadOnlyList<double>? Alphas { get; init; }

    /// <summary>Device arena capacity in bytes; null takes exactly what the layout needs.</summary>
    public long? DeviceBudget { get; init; }

    /// <summary>Host store capacity in bytes; null takes what swapping needs at alpha = 1.</summary>
    public long? HostBudget { get; init; }

    /// <summary>
    /// Where swapped activations go: host RAM (the default) or disk, with RAM used up to
    /// <see cref="HostBudget"/> first (three tiers: device arena, RAM, disk).
    /// </summary>
    public Memo.Cpu.Device.HostStoreSpec HostStore { get; init; } = Memo.Cpu.Device.HostStoreSpec.Memory;

    /// <summary>Fill every released device region with NaN, so a use after release shows in the loss.</summary>
    public bool Poison { get; init; }

    public static PolicyKind ParsePolicy(string text) => text.ToLowerInvariant() switch
    {
        "keep" => PolicyKind.Keep,
        "recompute" => PolicyKind.Recompute,
        "swap" => PolicyKind.Swap,
        "memo" => PolicyKind.Memo,
        _ => throw new MemoException($"unknown policy '{text}'; use keep, recompute, swap or memo"),
    };
}
