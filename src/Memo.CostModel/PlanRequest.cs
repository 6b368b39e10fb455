namespace Memo.CostModel;

/// <summary>A question for the planner: this model, this sequence, these devices.</summary>
public sealed record PlanRequest
{
    public required ModelConfig Model { get; init; }

    public required long Seq { get; init; }

    /// <summary>Sequences per step across all data-parallel ranks.</summary>
    public long Batch { get; init; } = 1;

    public required int Gpus { get; init; }

    public required DeviceProfile Device { get; init; }

    /// <summary>Fixed degrees; null lets the planner search.</summary>
    public int? Tp { get; init; }

    public int? Cp { get; init; }

    public int? Dp { get; init; }

    /// <summary>Fixed pipeline stages; null lets the planner search the divisors of the layer count.</summary>
    public int? Pp { get; init; }

    /// <summary>Tokens per LM-head chunk for every strategy; null materializes all logits at once (the stock loss).</summary>
    public long? LogitsChunkTokens { get; init; } = 8192;

    /// <summary>
    /// Caching-allocator factor on the activation side for the strategies that run under PyTorch's caching allocator
    /// (megatron, deepspeed): an assumption taken from the paper's one measurement (7B at 512K on Megatron-LM:
    /// 73.5 GB reserved for 65.7 GB allocated, see <see cref="MemoryQuery.AllocatorOverhead"/>).
    /// </summary>
    public double FragmentationFactor { get; init; } = 1.15;

    /// <summary>
    /// Factor on the activation side for the strategies with a planned arena (memo, keep): what the engine's offset
    /// planner needs above the live bytes at its peak, measured by laying out the engine's buffers
    /// (<see cref="PlannedArenaSource"/> says where it came from). 1 when not measured.
    /// </summary>
    public double PlannedArenaOverhead { get; init; } = 1.0;

    /// <summary>Where <see cref="PlannedArenaOverhead"/> came from, printed with it.</summary>
    public string PlannedArenaSource { get; init; } = "not measured (1.00 assumed)";

    /// <summary>Baseline features the search may not use (keys of <see cref="FeatureNames"/>).</summary>
    public IReadOnlySet<string> Without { get; init; } = new HashSet<string>();

    /// <summary>Worker threads of the CPU engine (cpu device only; its attention workspace has one slot per thread); 0: as <c>memo train</c> (MEMO_THREADS, else one per core).</summary>
    public int Threads { get; init; }

    /// <summary><see cref="Threads"/>, or the engine's default when 0.</summary>
    public int EngineThreads => Threads > 0 ? Threads : CpuRuntime.DefaultThreads;

    public int Nodes => (Gpus + Device.GpusPerNode - 1) / Device.GpusPerNode;

    public int GpusPerNodeUsed => Math.Min(Gpus, Device.GpusPerNode);

    /// <summary>True unless <paramref name="feature"/> is listed in <see cref="Without"/>.</summary>
    public bool Allows(string feature) => !Without.Contains(feature);
}
