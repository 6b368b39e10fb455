namespace Memo.CostModel;

/// <summary>Predicted step time, split by where the time goes.</summary>
public sealed record StepTime
{
    public double Forward { get; init; }
    public double Backward { get; init; }
    public double Recompute { get; init; }

    /// <summary>Swap copy time not hidden behind compute.</summary>
    public double SwapExposed { get; init; }

    /// <summary>LM head and loss, forward and backward.</summary>
    public double Head { get; init; }

    public double Optimizer { get; init; }

    /// <summary>Gradient reduce-scatter and parameter all-gather across data/context-parallel ranks.</summary>
    public double DataParallel { get; init; }

    /// <summary>Communication time inside layers (included in forward/backward), for reports.</summary>
    public double LayerCommunication { get; init; }

    /// <summary>Host-device bytes copied per device per step (both directions).</summary>
    public long SwapBytes { get; init; }

    /// <summary>Bytes one device sends per step inside layers (the CPU engine's context-parallel ring: key/value and dK/dV blocks).</summary>
    public long LayerCommunicationBytes { get; init; }

    /// <summary>Bytes one device sends per step in the gradient all-reduce (the CPU engine's ranks).</summary>
    public long DataParallelBytes { get; init; }

    /// <summary>Bytes one device sends per step: <see cref="LayerCommunicationBytes"/> + <see cref="DataParallelBytes"/>.</summary>
    public long CommunicatedBytes => LayerCommunicationBytes + DataParallelBytes;

    /// <summary>Pipeline bubble and stage-to-stage sends (pipeline parallelism only).</summary>
    public double Pipeline { get; init; }

    public double Step => Forward + Backward + Recompute + SwapExposed + Head + Optimizer + DataParallel + Pipeline;
}
