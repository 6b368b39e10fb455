using System.Diagnostics;
using Memo.Backends;
using Memo.Cpu;
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
public sealed class Trainer : IDisposable
{
    private readonly int[] _inputs;
    private readonly int[] _targets;
    private readonly byte[] _mask;
    private readonly int[] _predictions;

    public Trainer(Transformer model, IBatchSource data, TrainHyper hyper, int batch, int seq, int gradAccum)
    {
        if (data.MinVocab > model.Config.VocabSize)
            throw new MemoException($"{data.Description} needs a vocabulary of at least {data.MinVocab} tokens, but the model has vocab_size {model.Config.VocabSize}");
        if (gradAccum < 1) throw new MemoException($"--grad-accum must be at least 1 (got {gradAccum})");
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
        _predictions = new int[n];
    }

    public Transformer Model { get; }

    public IBatchSource Data { get; }

    public TrainHyper Hyper { get; }

    public AdamWOptimizer Optimizer { get; }

    public int Batch { get; }

    public int Seq { get; }

    public int GradAccum { get; }

    /// <summary>Optimizer steps completed.</summary>
    public long Step { get; set; }

    /// <summary>Tokens per optimizer step at the full sequence length.</summary>
    public long TokensPerStep => (long)Batch * Seq * GradAccum;

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
        long tokens = (long)n * GradAccum;
        float scale = (float)(1.0 / tokens);
        double loss = 0;
        long correct = 0, total = 0;
        StepMemoryMetrics? mem = null;
        for (int micro = 0; micro < GradAccum; micro++)
        {
            Data.NextBatch(rows, seq, _inputs, _targets, _mask);
            bool wantPredictions = _mask.AsSpan(0, n).IndexOfAnyExcept((byte)0) >= 0;
            loss += Model.Step(rows, seq, _inputs.AsSpan(0, n), _targets.AsSpan(0, n), backward: true, scale,
                wantPredictions ? _predictions.AsSpan(0, n) : default);
            if (wantPredictions) Count(n, ref correct, ref total);
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
        loss /= GradAccum;
        double lr = Hyper.LearningRateAt(Step);
        profile?.Enter(ProfileOp.Optimizer);
        double norm = Optimizer.Update(Hyper, lr);
        Step++;
        double ms = sw.Elapsed.TotalMilliseconds;
        profile?.EndStep(ms);
        return new StepMetrics(Step, loss, lr, norm, ms, tokens / (ms / 1000.0), correct, total,
            NativeMemoryStats.Current, NativeMemoryStats.Peak, mem!) { Seq = seq, ProfileMs = profile?.StepMs.ToArray() };
    }

    /// <summary>Loss and recall accuracy on <paramref name="batches"/> batches from <paramref name="source"/>, without updating.</summary>
    public (double Loss, long Correct, long Total) Evaluate(IBatchSource source, int batches)
    {
        double loss = 0;
        long correct = 0, total = 0;
        for (int i = 0; i < batches; i++)
        {
            source.NextBatch(Batch, Seq, _inputs, _targets, _mask);
            loss += Model.Step(Batch, Seq, _inputs, _targets, backward: false, 1f, _predictions);
            Count(_mask.Length, ref correct, ref total);
        }
        return (loss / Math.Max(1, batches), correct, total);
    }

    private void Count(int n, ref long correct, ref long total)
    {
        for (int i = 0; i < n; i++)
        {
            if (_mask[i] == 0) continue;
            total++;
            if (_predictions[i] == _targets[i]) correct++;
        }
    }

    public void Dispose() => Optimizer.Dispose();
}
