using Memo.Cpu;
using Memo.Model;
using Memo.Model.Memory;

namespace Memo.CostModel;

/// <summary>
/// The <c>cpu</c> device is Memo's own CPU engine (src/Memo.Model), so its memory is not modelled but read off
/// the engine: the device peak is the end of the arena that <see cref="MemoryLayout.Build"/> lays out, the same
/// call the engine makes before step 0, so the planned peak equals the <c>device_peak_bytes</c> that
/// <c>memo train</c> measures; the host store is <see cref="MemoryReport.HostBytes"/>. One device only: the engine
/// has no tensor, context or data parallelism.
/// </summary>
public static class CpuRuntime
{
    /// <summary>Worker threads the engine uses when none are given (MEMO_THREADS, else one per core), as <c>memo train</c>.</summary>
    public static int DefaultThreads => WorkerPool.Default.Threads;

    /// <summary>
    /// The engine policy that runs <paramref name="policy"/>: keep, full recomputation of every layer (recomputing
    /// none is keep), swap, memo. Throws for partial recomputation, which the engine does not do.
    /// </summary>
    public static PolicyKind PolicyFor(MemoryPolicy policy, int layers)
    {
        ArgumentNullException.ThrowIfNull(policy);
        return policy.Kind switch
        {
            PolicyKind.Keep => PolicyKind.Keep,
            PolicyKind.Recompute when policy.RecomputedLayers == 0 => PolicyKind.Keep,
            PolicyKind.Recompute when policy.RecomputedLayers >= layers => PolicyKind.Recompute,
            PolicyKind.Recompute => throw new ArgumentException($"the CPU engine recomputes every layer or none, not {policy.RecomputedLayers} of {layers}", nameof(policy)),
            PolicyKind.Swap => PolicyKind.Swap,
            _ => PolicyKind.Memo,
        };
    }

    /// <summary>The cost-model policy for an engine policy (memo at <paramref name="alpha"/> on every swapped layer).</summary>
    public static MemoryPolicy PolicyOf(PolicyKind policy, int layers, double alpha = 1.0) => policy switch
    {
        PolicyKind.Keep => MemoryPolicy.Keep,
        PolicyKind.Recompute => MemoryPolicy.Recompute(layers),
        PolicyKind.Swap => MemoryPolicy.Swap(layers),
        _ => MemoryPolicy.Memo(Enumerable.Range(0, layers).Select(l => MemoryPolicy.IsSwapped(l, layers) ? alpha : 1.0).ToArray()),
    };

    /// <summary>The alpha the engine applies to every swapped layer under <paramref name="policy"/> (1 for swap; 0 for keep and recompute).</summary>
    public static double AlphaOf(MemoryPolicy policy, int layers)
    {
        ArgumentNullException.ThrowIfNull(policy);
        return policy.Kind switch
        {
            PolicyKind.Swap => 1.0,
            PolicyKind.Memo => layers > 2 && policy.Alphas is { Count: > 0 } a ? a[0] : 1.0,
            _ => 0.0,
        };
    }

    /// <summary>Batch and sequence as the engine takes them (int), or a one-line error.</summary>
    public static (int Batch, int Seq) Shape(ModelConfig model, long batch, long seq)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (seq < 1 || seq > int.MaxValue || batch < 1 || batch > int.MaxValue || batch * seq > int.MaxValue)
            throw new MemoException($"the CPU engine takes at most {int.MaxValue} tokens per step (got {batch} x {seq}); shorten --seq or --batch");
        return ((int)batch, (int)seq);
    }

    /// <summary>Why the engine cannot run <paramref name="seq"/> tokens of <paramref name="model"/>, or null when it can.</summary>
    public static string? NotRunnable(ModelConfig model, long batch, long seq)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.HasLearnedPositions && seq > model.MaxPositions)
            return $"not runnable: {seq} tokens exceed the {model.MaxPositions} learned positions of this gpt2 model";
        if (seq > int.MaxValue || batch * seq > int.MaxValue) return $"not runnable: the CPU engine takes at most {int.MaxValue} tokens per step";
        return null;
    }

    /// <summary>
    /// The engine's device memory for one step of <paramref name="batch"/> x <paramref name="seq"/> tokens under
    /// <paramref name="policy"/> with <paramref name="threads"/> worker threads, split by the layout's categories.
    /// <see cref="MemoryBreakdown.Peak"/> is the end of the arena (what the engine measures as its device peak);
    /// what the planned arena needs above the live bytes at its peak time is reported as fragmentation.
    /// </summary>
    public static MemoryBreakdown Memory(ModelConfig model, long batch, long seq, MemoryPolicy policy, int threads)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        var (b, t) = Shape(model, batch, seq);
        var engine = PolicyFor(policy, model.NumLayers);
        var layout = MemoryLayout.Build(model, b, t, engine, threads);
        // The categories are the bytes live at the plan's peak time (they add up to the lower bound);
        // what the planned arena needs beyond that is fragmentation.
        var cat = layout.LiveByCategory(layout.PeakTime);
        long n = (long)b * t;
        var (skel, local) = ActivationInventory.SavedBytesPerToken(model, sizeof(float));
        return new MemoryBreakdown
        {
            Parameters = cat[MemoryCategory.Parameters],
            Gradients = cat[MemoryCategory.Gradients],
            OptimizerState = cat[MemoryCategory.OptimizerState],
            KeptActivations = cat[MemoryCategory.KeptActivations],
            SwapStaging = cat[MemoryCategory.SwapStaging],
            RecomputeBuffers = cat[MemoryCategory.RecomputeBuffers],
            Workspaces = cat[MemoryCategory.Workspaces],
            Fragmentation = layout.TotalBytes - layout.LowerBound,
            PeakPhase = "arena",
            HostBytes = MemoryReport.HostBytes(model, b, t, engine, AlphaOf(policy, model.NumLayers)),
            ParametersPerDevice = new ParameterLayout(model).TotalElements,
            LayerSkeletonBytes = checked(skel * n),
            LayerTokenLocalBytes = checked(local * n),
        };
    }
}
