using Memo.Model;

namespace Memo.Training;

/// <summary>Hyperparameters of one training run; printed and saved with every checkpoint.</summary>
public sealed record TrainHyper
{
    public double LearningRate { get; init; } = 1e-3;
    public double MinLrRatio { get; init; } = 0.1;
    public int WarmupSteps { get; init; } = 20;
    public int TotalSteps { get; init; } = 300;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    public double Eps { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 0.1;

    /// <summary>Global-norm clipping threshold; 0 disables clipping.</summary>
    public double GradClip { get; init; } = 1.0;

    /// <summary>
    /// Length curriculum: stages of (sequence length, steps) run in order from step 0 before the run's full
    /// length; empty trains at the full length throughout. Written and parsed as "16x1500,256x200".
    /// </summary>
    public IReadOnlyList<SeqStage> Curriculum { get; init; } = [];

    /// <summary>The sequence length step <paramref name="step"/> (0-based) trains at, given the full length <paramref name="seq"/>.</summary>
    public int SeqAt(long step, int seq)
    {
        long end = 0;
        foreach (var stage in Curriculum)
        {
            end += stage.Steps;
            if (step < end) return Math.Min(stage.Seq, seq);
        }
        return seq;
    }

    /// <summary>Steps spent in the curriculum's stages (before the full length).</summary>
    public long CurriculumSteps => Curriculum.Sum(s => (long)s.Steps);

    /// <summary>Linear warm-up over <see cref="WarmupSteps"/>, then cosine decay to MinLrRatio x lr at <see cref="TotalSteps"/>.</summary>
    public double LearningRateAt(long step)
    {
        double max = LearningRate, min = LearningRate * MinLrRatio;
        if (step < WarmupSteps) return max * (step + 1) / WarmupSteps;
        double progress = Math.Min(1.0, (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps));
        return min + 0.5 * (max - min) * (1 + Math.Cos(Math.PI * progress));
    }
}

/// <summary>One stage of a length curriculum: <see cref="Steps"/> optimizer steps at sequence length <see cref="Seq"/>.</summary>
public readonly record struct SeqStage(int Seq, int Steps)
{
    /// <summary>Formats stages as "16x1500,256x200" (empty for none).</summary>
    public static string Format(IEnumerable<SeqStage> stages) =>
        string.Join(",", stages.Select(s => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{s.Seq}x{s.Steps}")));

    /// <summary>Parses "16x1500,256x200" (lengths accept K suffixes); throws <see cref="MemoException"/> on bad input.</summary>
    public static SeqStage[] Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (string.IsNullOrWhiteSpace(text) || text.Trim() == "0") return [];
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var stages = new SeqStage[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            int x = parts[i].IndexOf('x', StringComparison.OrdinalIgnoreCase);
            if (x <= 0 || !Sizes.TryParseCount(parts[i][..x], out long seq) || seq < 1 || seq > int.MaxValue
                || !int.TryParse(parts[i][(x + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int steps))
                throw new MemoException($"curriculum stage '{parts[i]}' is not SEQxSTEPS; write stages like 16x1500,256x200");
            stages[i] = new SeqStage((int)seq, steps);
        }
        return stages;
    }
}

/// <summary>
/// AdamW with decoupled weight decay (on matrices and embeddings, not on norms or biases), global-norm
/// gradient clipping, fp32 master weights. The moments share the parameter layout.
/// </summary>
public sealed unsafe class AdamWOptimizer : IDisposable
{
    private readonly Transformer _model;

    public AdamWOptimizer(Transformer model) => _model = model;

    /// <summary>First moments, in the parameter layout (device memory of the model's arena).</summary>
    public float* M => _model.AdamM;

    /// <summary>Second moments, in the parameter layout.</summary>
    public float* V => _model.AdamV;

    /// <summary>Number of updates applied so far (AdamW's bias-correction step count).</summary>
    public long StepCount { get; set; }

    /// <summary>Global L2 norm of the gradients, summed in a fixed order in double.</summary>
    public double GradNorm()
    {
        var layout = _model.Layout;
        double sum = 0;
        for (int i = 0; i < layout.Specs.Count; i++)
        {
            sum += _model.Backend.SumOfSquares(layout.Specs[i].Elements, _model.G(i));
        }
        return Math.Sqrt(sum);
    }

    /// <summary>Clips (when configured) and applies one update at <paramref name="lr"/>; returns the pre-clip norm.</summary>
    public double Update(TrainHyper h, double lr)
    {
        var layout = _model.Layout;
        double norm = GradNorm();
        if (h.GradClip > 0)
        {
            double coef = h.GradClip / (norm + 1e-6);
            if (coef < 1.0) _model.Backend.Scale(layout.TotalElements, _model.Grads, (float)coef);
        }
        StepCount++;
        for (int i = 0; i < layout.Specs.Count; i++)
        {
            var spec = layout.Specs[i];
            long off = layout.Offset(i);
            _model.Backend.AdamWStep(spec.Elements, _model.W(i), _model.G(i), M + off, V + off, (float)lr,
                (float)h.Beta1, (float)h.Beta2, (float)h.Eps, spec.Decay ? (float)h.WeightDecay : 0f, StepCount);
        }
        return norm;
    }

    public void Dispose()
    {
        // The moments belong to the model's arena.
    }
}
