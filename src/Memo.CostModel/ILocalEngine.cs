namespace Memo.CostModel;

/// <summary>
/// The cost model of a device that is Memo's own engine running on this machine (<see cref="DeviceProfile.CpuEngine"/>):
/// its memory is read off the engine's planned arena and its step time follows the engine's kernels, so the planner
/// asks the engine instead of its analytic GPU model. The CPU engine's implementation lives next to the engine
/// (src/Memo.CostModel.Cpu); the cost model itself depends on <c>Memo.Core</c> only and receives it through
/// <see cref="PlanRequest.Engine"/>.
/// </summary>
public interface ILocalEngine
{
    /// <summary>Worker threads the engine uses when none are given.</summary>
    int DefaultThreads { get; }

    /// <summary>Why the engine cannot run <paramref name="seq"/> tokens of <paramref name="model"/>, or null when it can.</summary>
    string? NotRunnable(ModelConfig model, long batch, long seq);

    /// <summary>
    /// The engine's device memory for one step under <paramref name="policy"/> with <paramref name="threads"/> worker
    /// threads: of one of <paramref name="cp"/> context-parallel ranks that split each sequence of <paramref name="seq"/> tokens.
    /// </summary>
    MemoryBreakdown Memory(ModelConfig model, long batch, long seq, MemoryPolicy policy, int threads, int cp);

    /// <summary>
    /// Seconds of one training step under <paramref name="policy"/> on <paramref name="dev"/>, on one rank of
    /// <paramref name="layout"/> (its context- and data-parallel ranks, <paramref name="threads"/> worker threads each).
    /// </summary>
    StepTime Step(ModelConfig model, long batch, long seq, MemoryPolicy policy, DeviceProfile dev, int threads, ParallelLayout layout);

    /// <summary>Seconds of one layer's forward on one rank of <paramref name="layout"/> (what the alpha rule takes as the layer time).</summary>
    double LayerForward(ModelConfig model, long batch, long seq, DeviceProfile dev, int threads, ParallelLayout layout);
}
