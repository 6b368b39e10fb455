namespace Memo.CostModel.Cpu;

/// <summary>
/// The CPU engine as the planner sees it: memory from <see cref="CpuRuntime"/> (the engine's arena layout), time from
/// <see cref="CpuTimeModel"/> (the engine's kernels), per rank when context- or data-parallel ranks share this machine. Pass <see cref="Instance"/> as <see cref="PlanRequest.Engine"/>.
/// </summary>
public sealed class CpuEngineModel : ILocalEngine
{
    public static CpuEngineModel Instance { get; } = new();

    private CpuEngineModel()
    {
    }

    public int DefaultThreads => CpuRuntime.DefaultThreads;

    public string? NotRunnable(ModelConfig model, long batch, long seq) => CpuRuntime.NotRunnable(model, batch, seq);

    public MemoryBreakdown Memory(ModelConfig model, long batch, long seq, MemoryPolicy policy, int threads, int cp) =>
        CpuRuntime.Memory(model, batch, seq, policy, threads, cp);

    public StepTime Step(ModelConfig model, long batch, long seq, MemoryPolicy policy, DeviceProfile dev, int threads, ParallelLayout layout) =>
        CpuTimeModel.Step(model, batch, seq, policy, dev, threads, layout);

    public double LayerForward(ModelConfig model, long batch, long seq, DeviceProfile dev, int threads, ParallelLayout layout) =>
        CpuTimeModel.LayerForward(model, batch, seq, dev, threads, layout);
}
