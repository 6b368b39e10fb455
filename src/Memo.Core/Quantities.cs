namespace Memo;

/// <summary>How library messages name each <see cref="Quantity"/> (one definition, read by the front ends that rename them).</summary>
public static class Quantities
{
    /// <summary>The words a library message uses for <paramref name="q"/>, followed in the message by its value.</summary>
    public static string Name(Quantity q) => q switch
    {
        Quantity.HostBudget => "the host budget",
        Quantity.DeviceBudget => "the device budget",
        Quantity.Alpha => "the fixed alpha",
        Quantity.Policy => "the policy",
        Quantity.SequenceLength => "the sequence length",
        Quantity.GradientAccumulation => "the gradient accumulation",
        _ => throw new ArgumentOutOfRangeException(nameof(q), q, "not a quantity"),
    };
}
