using Memo.Cpu;
using Memo.Distributed;
using Memo.Model;
using Memo.Model.Memory;

namespace Memo.CostModel.Cpu;

/// <summary>
/// The <c>cpu</c> device is Memo's own CPU engine (src/Memo.Model), so its memory is not modelled but read off
/// the engine: the device peak is the end of the arena that <see cref="MemoryLayout.Build"/> lays out, the same
/// call the engine makes before step 0, so the planned peak equals the <c>device_peak_bytes</c> that
/// <c>memo train</c> measures; the host store is <see cref="MemoryReport.HostBytes"/>. With C context-parallel ranks
/// (<c>mpiexec -n C memo train --cp C</c>) each rank plans T/C rows per sequence on the ring's backend, whose attention
/// workspace holds the ring's key/value and dK/dV blocks (<see cref="ContextParallelBackend.WorkspaceBytes"/>, the
/// figure the rank's arena asks for), so the per-rank peak is again the end of the rank's arena. The engine has no
/// tensor or pipeline parallelism.
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
    /// <remarks>
    /// With <paramref name="cp"/> &gt; 1 it is one context-parallel rank's memory: T/C rows per sequence and the ring's
    /// scratch as its attention workspace, as <c>memo train --cp C</c> (and its <c>--dry-run</c>) lays out a rank's arena.
    /// </remarks>
    public static MemoryBreakdown Memory(ModelConfig model, long batch, long seq, MemoryPolicy policy, int threads, int cp = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        var (b, t) = Shape(model, batch, seq);
        var engine = PolicyFor(policy, model.NumLayers);
        MemoryLayout layout;
        if (cp > 1)
        {
            t = (int)ZigZag.Create(t, cp).LocalLen;
            var ring = new Workspaces(ContextParallelBackend.WorkspaceBytes(b, t, model.NumHeads, model.NumKvHeads, model.HeadDim, threads));
            layout = MemoryLayout.Build(model, b, t, engine, ring);
        }
        else
        {
            layout = MemoryLayout.Build(model, b, t, engine, threads);
        }
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

    /// <summary>Bytes of one key/value (or dK/dV) block a rank of <paramref name="cp"/> passes around the ring.</summary>
    public static long RingBlockBytes(ModelConfig model, long batch, long seq, int cp)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (b, t) = Shape(model, batch, seq);
        return checked(RingShapeOf(model, b, t, cp).KvFloats * sizeof(float));
    }

    /// <summary>
    /// Bytes one rank of a ring of <paramref name="cp"/> sends per micro-batch in ring attention, forward and backward of
    /// every layer (<see cref="RingAttention.BytesPerLayer"/>), and the forward again under full recomputation, which
    /// re-runs each layer's attention before its backward: what the training log reports as <c>ring_bytes</c>.
    /// </summary>
    public static long RingBytes(ModelConfig model, long batch, long seq, MemoryPolicy policy, int cp)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(policy);
        if (cp <= 1) return 0;
        var (b, t) = Shape(model, batch, seq);
        var shape = RingShapeOf(model, b, t, cp);
        long perLayer = RingAttention.BytesPerLayer(shape, cp);
        if (PolicyFor(policy, model.NumLayers) == PolicyKind.Recompute) perLayer = checked(perLayer + RingAttention.ForwardBytesPerLayer(shape, cp));
        return checked(model.NumLayers * perLayer);
    }

    /// <summary>
    /// Bytes one of <paramref name="ranks"/> ranks sends in the step's gradient all-reduce (every parameter's gradient,
    /// fp32, summed over all ranks): 2 (N-1)/N of them, the bandwidth-optimal all-reduce (reduce-scatter then
    /// all-gather; for N = 2 every algorithm sends the whole gradient once).
    /// </summary>
    public static long AllReduceBytes(ModelConfig model, int ranks)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (ranks <= 1) return 0;
        long bytes = checked(new ParameterLayout(model).TotalElements * sizeof(float));
        return checked(2L * (ranks - 1) * bytes) / ranks;
    }

    private static RingShape RingShapeOf(ModelConfig model, int batch, int seq, int cp) =>
        ContextParallelBackend.Shape(batch, ZigZag.Create(seq, cp).LocalLen, model.NumHeads, model.NumKvHeads, model.HeadDim);
}
