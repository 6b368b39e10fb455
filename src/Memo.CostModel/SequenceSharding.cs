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
