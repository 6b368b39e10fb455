using System.Globalization;

namespace Memo.CostModel;

/// <summary>How one sequence is split across the devices that share it.</summary>
public enum SequenceSharding
{
    /// <summary>
    /// Megatron-style: tensor parallelism with sequence parallelism inside a group of <see cref="ParallelLayout.Tp"/>
    /// GPUs (all-gather before, reduce-scatter after each column/row-parallel pair), and context parallelism
    /// (ring attention) across <see cref="ParallelLayout.Cp"/> groups.
    /// </summary>
    TensorSequence,

    /// <summary>
    /// DeepSpeed-Ulysses: the sequence is split over <see cref="ParallelLayout.Cp"/> GPUs; four all-to-alls per
    /// layer turn the sequence split into a head split for attention and back. No tensor parallelism.
    /// </summary>
    Ulysses,
}

/// <summary>
/// A parallel layout: <see cref="Tp"/> x <see cref="Cp"/> x <see cref="Dp"/> devices, tensor-parallel ranks
/// innermost, then context (or Ulysses) ranks, then data-parallel ranks, as Megatron orders them.
/// </summary>
/// <param name="Tp">Tensor-parallel degree (1 under Ulysses).</param>
/// <param name="Cp">Context-parallel degree, or the Ulysses sequence-parallel degree.</param>
/// <param name="Dp">Data-parallel degree (each rank takes batch/Dp sequences).</param>
/// <param name="Sharding">How a sequence is split.</param>
/// <param name="ZeroStage">1: optimizer state sharded over data-parallel ranks (Megatron's distributed optimizer);
/// 3: parameters, gradients and optimizer state sharded over every device (DeepSpeed ZeRO-3).</param>
public readonly record struct ParallelLayout(int Tp, int Cp, int Dp, SequenceSharding Sharding = SequenceSharding.TensorSequence, int ZeroStage = 1)
{
    public static ParallelLayout Single { get; } = new(1, 1, 1);

    public int Gpus => Tp * Cp * Dp;

    /// <summary>Devices that share one sequence's activations.</summary>
    public int SequenceShards => Tp * Cp;

    public override string ToString() => Sharding == SequenceSharding.Ulysses
        ? string.Create(CultureInfo.InvariantCulture, $"sp={Cp} dp={Dp}")
        : string.Create(CultureInfo.InvariantCulture, $"tp={Tp} cp={Cp} dp={Dp}");
}
