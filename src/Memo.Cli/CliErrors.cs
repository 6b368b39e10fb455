namespace Memo.Cli;

/// <summary>Turns a library error into the CLI's message: each quantity it names becomes the flag that sets it.</summary>
public static class CliErrors
{
    /// <summary>The flag that sets <paramref name="q"/> on <c>memo train</c> / <c>memo eval</c>.</summary>
    public static string Flag(Quantity q) => q switch
    {
        Quantity.HostBudget => "--host-memory",
        Quantity.DeviceBudget => "--device-memory",
        Quantity.Alpha => "--alpha",
        Quantity.Policy => "--policy",
        Quantity.SequenceLength => "--seq",
        Quantity.GradientAccumulation => "--grad-accum",
        _ => throw new ArgumentOutOfRangeException(nameof(q), q, "not a quantity"),
    };

    /// <summary><paramref name="e"/>'s message with every quantity it names written as its flag.</summary>
    public static string Describe(MemoException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        string message = e.Message;
        foreach (var q in e.Quantities) message = message.Replace(Quantities.Name(q), Flag(q), StringComparison.Ordinal);
        return message;
    }
}
