using System.Diagnostics;
using Memo.Backends;
using Memo.Cpu;
using Memo.Distributed;
using Memo.Model;
using Memo.Model.Memory;
using Memo.Training.Data;

namespace Memo.Training;

/// <summary>What one optimizer step did, as measured.</summary>
public sealed record StepMetrics(long Step, double Loss, double LearningRate, double GradNorm, double StepMs, double TokensPerSecond,
    long AnswersCorrect, long AnswersTotal, long NativeBytes, long NativePeakBytes, StepMemoryMetrics Memory)
{
    /// <summary>The sequence length the step trained at (below the run's length during a length curriculum).</summary>
    public int Seq { get; init; }

    /// <summary>With <c>--profile</c>: milliseconds of the step per <see cref="ProfileOp"/> (null otherwise).</summary>
    public IReadOnlyList<double>? ProfileMs { get; init; }

    /// <summary>Recall accuracy over the step's answer positions, or NaN when the data has none.</summary>
    public double Accuracy => AnswersTotal == 0 ? double.NaN : (double)AnswersCorrect / AnswersTotal;
}

/// <summary>
/// The training loop: micro-batches with gradient accumulation, AdamW with clipping and a cosine schedule.
/// Everything it needs is allocated in the constructor; a step allocates nothing on the native side.
/// </summary>
/// <remarks>
/// With <see cref="ParallelGroups"/> of N = C x D ranks: every rank reads the same stream of batches of
/// B x T tokens, D per micro-batch; data-parallel group d takes the d-th, and each of its C ranks runs the
/// model on its zig-zag T/C tokens of every sequence (the model is built for T/C rows per sequence, on a
/// <see cref="ContextParallelBackend"/>). Gradients are scaled by 1/(tokens of all ranks) and summed over
/// the N ranks before clipping and AdamW, so every rank applies the same update; the step's loss is the
/// mean over all ranks' tokens. With D ranks and --grad-accum A the tokens and the update equal those of
/// one process with --grad-accum D x A, up to the order of the sums.
/// </remarks>
public sealed class Trainer : IDisposable
{
    private readonly int[] _inputs;
    private readonly int[] _targets;
    private readonly byte[] _mask;
    private readonly int[] _predictions;
    private readonly int[] _localInputs;
    private readonly int[] _localTargets;
    private readonly byte[] _localMask;

    public Trainer(Transformer model, IBatchSource data, TrainHyper hyper, int batch, int seq, int gradAccum, ParallelGroups? parallel = null)
    {
        if (data.MinVocab > model.Config.VocabSize)
            throw new MemoException($"{data.Description} needs a vocabulary of at least {data.MinVocab} tokens, but the model has vocab_size {model.Config.VocabSize}");
        if (gradAccum < 1) throw MemoException.About($"{Quantities.Name(Quantity.GradientAccumulation)} must be at least 1 (got {gradAccum})", Quantity.GradientAccumulation);
        Model = model;
        Data = data;
        Hyper = hyper;
        Batch = batch;
        Seq = seq;
        GradAccum = gradAccum;
        Optimizer = new AdamWOptimizer(model);
        int n = checked(batch * seq);
        _inputs = new int[n];
        _targets = new int[n];
        _mask = new byte[n];
        Parallel = parallel;
        int cp = parallel?.ContextSize ?? 1;
        if (cp > 1) ZigZag.Create(seq, cp); // one-line error unless T splits into 2C chunks
        _localInputs = cp > 1 ? new int[n / cp] : _inputs;
        _localTargets = cp > 1 ? new int[n / cp] : _targets;
        _localMask = cp > 1 ? new byte[n / cp] : _mask;
        _predictions = new int[n / cp];
    }

    /// <summary>The ranks this trainer shares its steps with; null for one process.</summary>
    public ParallelGroups? Parallel { get; }

    /// <summary>Compare parameter checksums over the ranks every this many steps (0: never).</summary>
    public int CheckReplicasEvery { get; init; }

    public Transformer Model { get; }

    public IBatchSource Data { get; }

    public TrainHyper Hyper { get; }

    public AdamWOptimizer Optimizer { get; }

    public int Batch { get; }

    public int Seq { get; }

    public int GradAccum { get; }

    /// <summary>Optimizer steps completed.</summary>
    public long Step { get; set; }

    /// <summary>Tokens per optimizer step at the full sequence length, over all data-parallel groups.</summary>
    public long TokensPerStep => (long)Batch * Seq * GradAccum * (Parallel?.DataSize ?? 1);

    /// <summary>The sequence length of the next step (shorter than <see cref="Seq"/> during a length curriculum).</summary>
    public int CurrentSeq => Hyper.SeqAt(Step, Seq);

    /// <summary>Batch rows at sequence length <paramref name="seq"/>: a curriculum stage keeps the tokens per step of the full length.</summary>
    public int Rows(int seq) => seq >= Seq ? Batch : (int)Math.Max(1, (long)Batch * Seq / seq);

    public StepMetrics TrainStep()
    {
        var sw = Stopwatch.StartNew();
        var profile = (Model.Backend as ProfilingBackend)?.Profile;
        profile?.BeginStep();
        Model.ZeroGrads();
        int seq = CurrentSeq, rows = Rows(seq), n = rows * seq;
        int cp = Parallel?.ContextSize ?? 1, dp = Parallel?.DataSize ?? 1, dataRank = Parallel?.DataRank ?? 0;
        int local = seq / cp, nLocal = rows * local;
        if (cp > 1) ZigZag.Create(seq, cp);
        long tokens = (long)n * GradAccum * dp;
        float scale = (float)(1.0 / tokens);
        double loss = 0;
        long correct = 0, total = 0;
        StepMemoryMetrics? mem = null;
        for (int micro = 0; micro < GradAccum; micro++)
        {
            for (int d = 0; d < dp; d++)
            {
                Data.NextBatch(rows, seq, _inputs, _targets, _mask);
                if (d != dataRank) continue;
                var (inputs, targets, mask) = Local(rows, seq);
                bool wantPredictions = mask.AsSpan(0, nLocal).IndexOfAnyExcept((byte)0) >= 0;
                loss += Model.Step(rows, local, inputs.AsSpan(0, nLocal), targets.AsSpan(0, nLocal), backward: true, scale,
                    wantPredictions ? _predictions.AsSpan(0, nLocal) : default);
                if (wantPredictions) Count(nLocal, targets, mask, ref correct, ref total);
                var m = Model.LastMetrics;
                mem = mem == null ? m : new StepMemoryMetrics(Math.Max(mem.DevicePeakBytes, m.DevicePeakBytes), Math.Max(mem.HostPeakBytes, m.HostPeakBytes),
                    mem.SwappedBytes + m.SwappedBytes, mem.RecomputedTokens + m.RecomputedTokens, mem.CopyMs + m.CopyMs, mem.ExposedCopyMs + m.ExposedCopyMs,
                    m.Alpha, m.LayerForwardMs, mem.RecomputeMs + m.RecomputeMs)
                {
                    DiskWrittenBytes = mem.DiskWrittenBytes + m.DiskWrittenBytes,
                    DiskReadBytes = mem.DiskReadBytes + m.DiskReadBytes,
                    DiskIoMs = mem.DiskIoMs + m.DiskIoMs,
                    DiskWaitMs = mem.DiskWaitMs + m.DiskWaitMs,
                };
            }
        }
        if (Parallel is { World.Size: > 1 } p)
        {
            // Every rank ran the same number of micro-batches on as many tokens: the mean over all is the sum over
            // ranks of their summed means, over ranks x micro-batches.
            unsafe { Replicas.SumGradients(p.World, Model.Grads, Model.Layout.TotalElements); }
            loss = Replicas.Sum(p.World, loss) / ((double)GradAccum * p.World.Size);
            correct = (long)Replicas.Sum(p.World, correct);
            total = (long)Replicas.Sum(p.World, total);
        }
        else
        {
            loss /= GradAccum;
        }
        double lr = Hyper.LearningRateAt(Step);
        profile?.Enter(ProfileOp.Optimizer);
        double norm = Optimizer.Update(Hyper, lr);
        Step++;
        if (Parallel is { World.Size: > 1 } q && CheckReplicasEvery > 0 && Step % CheckReplicasEvery == 0) CheckReplicas(q.World);
        double ms = sw.Elapsed.TotalMilliseconds;
        profile?.EndStep(ms);
        return new StepMetrics(Step, loss, lr, norm, ms, tokens / (ms / 1000.0), correct, total,
            NativeMemoryStats.Current, NativeMemoryStats.Peak, mem!) { Seq = seq, ProfileMs = profile?.StepMs.ToArray() };
    }

    /// <summary>Throws a one-line error naming the rank whose parameters differ from rank 0's (a collective).</summary>
    public unsafe void CheckReplicas(ICommunicator world)
    {
        ArgumentNullException.ThrowIfNull(world);
        using var host = Model.CopyBlockToHost(Model.Weights);
        Replicas.Check(world, host.Floats, Model.Layout.TotalElements, Step);
    }

    /// <summary>This rank's zig-zag rows of the batch just read (the batch itself for one rank per sequence).</summary>
    private (int[] Inputs, int[] Targets, byte[] Mask) Local(int rows, int seq)
    {
        int cp = Parallel?.ContextSize ?? 1;
        if (cp == 1) return (_inputs, _targets, _mask);
        var split = new ZigZag(seq, cp);
        int n = rows * seq, nLocal = n / cp, r = Parallel!.ContextRank;
        Replicas.Slice<int>(_inputs.AsSpan(0, n), split, r, _localInputs.AsSpan(0, nLocal));
        Replicas.Slice<int>(_targets.AsSpan(0, n), split, r, _localTargets.AsSpan(0, nLocal));
        Replicas.Slice<byte>(_mask.AsSpan(0, n), split, r, _localMask.AsSpan(0, nLocal));
        return (_localInputs, _localTargets, _localMask);
    }

    /// <summary>Loss and recall accuracy on <paramref name="batches"/> batches from <paramref name="source"/>, without updating.</summary>
    public (double Loss, long Correct, long Total) Evaluate(IBatchSource source, int batches)
    {
        ArgumentNullException.ThrowIfNull(source);
        int cp = Parallel?.ContextSize ?? 1, local = Seq / cp, nLocal = Batch * local;
        double loss = 0;
        long correct = 0, total = 0;
        for (int i = 0; i < batches; i++)
        {
            source.NextBatch(Batch, Seq, _inputs, _targets, _mask);
            var (inputs, targets, mask) = Local(Batch, Seq);
            loss += Model.Step(Batch, local, inputs.AsSpan(0, nLocal), targets.AsSpan(0, nLocal), backward: false, 1f, _predictions.AsSpan(0, nLocal));
            Count(nLocal, targets, mask, ref correct, ref total);
        }
        if (cp > 1)
        {
            // Every data-parallel group evaluates the same batches: reduce over the ring only.
            var ring = Parallel!.Ring;
            loss = Replicas.Sum(ring, loss) / cp;
            correct = (long)Replicas.Sum(ring, correct);
            total = (long)Replicas.Sum(ring, total);
        }
        return (loss / Math.Max(1, batches), correct, total);
    }

    private void Count(int n, int[] targets, byte[] mask, ref long correct, ref long total)
    {
        for (int i = 0; i < n; i++)
        {
            if (mask[i] == 0) continue;
            total++;
            if (_predictions[i] == targets[i]) correct++;
        }
    }

    public void Dispose() => Optimizer.Dispose();
}
