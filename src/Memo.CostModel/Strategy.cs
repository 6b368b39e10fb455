namespace Memo.CostModel;

/// <summary>
/// The training systems the planner compares, each under the same cost model and each with the features its real
/// system has (see <see cref="StrategySearch"/>). The LM head (chunked or whole, vocabulary-parallel under tensor
/// parallelism) is the request's choice and applies to every strategy alike.
/// </summary>
public enum Strategy
{
    /// <summary>Swap + token-wise recompute with alpha per layer, planned memory (arena overhead measured by the engine's planner); TP + SP + CP, pipeline stages.</summary>
    Memo,

    /// <summary>Megatron-LM: TP + SP + CP, pipeline stages, selective or full recomputation (block method, k layers) or activation offloading; distributed optimizer; caching allocator.</summary>
    Megatron,

    /// <summary>DeepSpeed: Ulysses sequence parallelism + ZeRO stage 1, 2 or 3, no, selective or full activation checkpointing, cpu_checkpointing, pipeline stages with ZeRO-1; caching allocator.</summary>
    DeepSpeed,

    /// <summary>Everything kept on the device, planned memory; TP + SP + CP, pipeline stages.</summary>
    Keep,
}
