namespace Memo.Model.Memory;

/// <summary>
/// One device buffer of an iteration, live during [<see cref="Lower"/>, <see cref="Upper"/>) of the
/// <see cref="IterationTimeline"/>. Layer is the layer index for buffers of one layer (-1 otherwise); Row is
/// the inventory row of a saved activation or -1. <see cref="Id"/> is the typed handle the model asks for;
/// <see cref="Name"/> is how plans, plots and CSV files show it.
/// </summary>
public sealed record DeviceBuffer(BufferId Id, string Name, MemoryCategory Category, long Bytes, long Lower, long Upper, int Layer = -1, int Row = -1)
{
    /// <summary>True for buffers that outlive the iteration (acquired once, when the model is built).</summary>
    public bool Persistent { get; init; }
}
