using System.Globalization;

namespace Memo.CostModel;

/// <summary>
/// A parallel layout: <see cref="Tp"/> x <see cref="Cp"/> x <see cref="Dp"/> x <see cref="Pp"/> devices,
/// tensor-parallel ranks innermost, then context (or Ulysses) ranks, then data-parallel ranks, then pipeline
/// stages, as Megatron orders them.
/// </summary>
/// <param name="Tp">Tensor-parallel degree (1 under Ulysses).</param>
/// <param name="Cp">Context-parallel degree, or the Ulysses sequence-parallel degree.</param>
/// <param name="Dp">Data-parallel degree (each rank takes batch/Dp sequences).</param>
/// <param name="Sharding">How a sequence is split.</param>
/// <param name="ZeroStage">1: optimizer state sharded over the context and data-parallel ranks (Megatron's
/// distributed optimizer, ZeRO-1); 2: gradients too (ZeRO-2); 3: parameters, gradients and optimizer state
/// sharded over every device (ZeRO-3).</param>
/// <param name="Pp">Pipeline stages (1F1B schedule, one sequence per micro-batch); each holds NumLayers/Pp layers.</param>
public readonly record struct ParallelLayout(int Tp, int Cp, int Dp, SequenceSharding Sharding = SequenceSharding.TensorSequence, int ZeroStage = 1, int Pp = 1)
{
    public static ParallelLayout Single { get; } = new(1, 1, 1);

    public int Gpus => Tp * Cp * Dp * Pp;

    /// <summary>Devices that share one sequence's activations inside one pipeline stage.</summary>
    public int SequenceShards => Tp * Cp;

    /// <summary>Devices of one pipeline stage (the span of data-parallel collectives).</summary>
    public int StageGpus => Tp * Cp * Dp;

    public override string ToString()
    {
        string s = Sharding == SequenceSharding.Ulysses
            ? string.Create(CultureInfo.InvariantCulture, $"sp={Cp} dp={Dp}")
            : string.Create(CultureInfo.InvariantCulture, $"tp={Tp} cp={Cp} dp={Dp}");
        return Pp > 1 ? string.Create(CultureInfo.InvariantCulture, $"{s} pp={Pp}") : s;
    }
}
