namespace Memo;

/// <summary>
/// A user-set quantity a library error is about. Library messages name it with <see cref="Quantities.Name"/>;
/// a front end (the CLI) replaces that name with its own spelling (a flag) through <see cref="MemoException.Quantities"/>.
/// </summary>
public enum Quantity
{
    /// <summary>Host bytes the swap store may take.</summary>
    HostBudget,

    /// <summary>Device bytes the arena may take.</summary>
    DeviceBudget,

    /// <summary>A fixed share of tokens swapped per layer (memo policy).</summary>
    Alpha,

    /// <summary>The memory policy (keep, recompute, swap, memo).</summary>
    Policy,

    /// <summary>Tokens per sequence.</summary>
    SequenceLength,

    /// <summary>Micro-batches accumulated per optimizer step.</summary>
    GradientAccumulation,
}
