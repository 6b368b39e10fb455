namespace Memo.Model.Memory;

/// <summary>The kinds of buffer in the planned device arena (<see cref="MemoryLayout"/>); a <see cref="BufferId"/> names one buffer.</summary>
public enum BufferKind
{
    Weights,
    Grads,
    AdamM,
    AdamV,
    RopeCos,
    RopeSin,
    Tokens,
    Targets,

    /// <summary>A saved activation row of one layer's own set (<see cref="BufferId.Index"/> = layer).</summary>
    LayerActivation,

    /// <summary>A saved activation row of a swap staging slot (<see cref="BufferId.Index"/> = slot 0 or 1).</summary>
    StagingActivation,

    /// <summary>A saved activation row of the one set full recomputation refills.</summary>
    RecomputeActivation,

    AttentionWorkspace,
    Tmp,
    FinalInput,
    FinalNorm,
    FinalMean,
    FinalRstd,
    Logits,
    Losses,
    Predictions,
    DH,
    DA,
    DB,
    DO,
    DQkv,
    DUp,
    DAct,
}
