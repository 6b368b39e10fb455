using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Memo.Backends;

/// <summary>The parts of a training step a profile reports (see <see cref="OpProfile"/>).</summary>
public enum ProfileOp
{
    Norms,
    Projections,
    AttentionForward,
    AttentionBackward,
    Mlp,
    HeadAndLoss,
    Embedding,
    Optimizer,
    Recompute,
    CopyWait,
    DiskWait,
    Other,
}

/// <summary>
/// Where a step's time goes: milliseconds per <see cref="ProfileOp"/>, filled by <see cref="ProfilingBackend"/>
/// (each kernel call timed once, attributed by the kernel and the model's current <see cref="Scope"/>) and by
/// the swap runtime (time compute waited for copies, split by tier). <see cref="Other"/> is the rest of the
/// step: what no kernel and no wait accounts for (framework, data, bookkeeping).
/// <code>
/// kernel                          scope None/Projections   Mlp     Head          Optimizer   Recompute
/// RmsNorm/LayerNorm fwd/bwd       Norms                    Norms   Norms         Norms       Recompute
/// Attention forward / backward    AttentionForward/Backward (any scope but Recompute)
/// Gemm, bias, RoPE, SwiGLU, GELU,
///   add, copy, fill, sum          Projections              Mlp     HeadAndLoss   Optimizer   Recompute
/// CrossEntropy, ArgMax            HeadAndLoss
/// Embedding fwd/bwd               Embedding
/// AdamW, sum of squares, scale    Optimizer
/// </code>
/// </summary>
public sealed class OpProfile
{
    private static readonly string[] Names =
        ["norms", "projections", "attention_fwd", "attention_bwd", "mlp", "head_loss", "embedding", "optimizer", "recompute", "copy_wait", "disk_wait", "other"];

    private readonly long[] _ticks = new long[Names.Length];
    private readonly double[] _stepMs = new double[Names.Length];

    private bool _recomputing;

    /// <summary>What the model is computing now (see <see cref="Enter"/>).</summary>
    public ProfileOp Scope { get; private set; } = ProfileOp.Other;

    /// <summary>Marks an op boundary: kernels from here on belong to <paramref name="op"/> (to recompute while recomputing).</summary>
    public void Enter(ProfileOp op) => Scope = _recomputing ? ProfileOp.Recompute : op;

    /// <summary>Everything until <see cref="EndRecompute"/> is recomputation in backward.</summary>
    public void BeginRecompute()
    {
        _recomputing = true;
        Scope = ProfileOp.Recompute;
    }

    public void EndRecompute()
    {
        _recomputing = false;
        Scope = ProfileOp.Other;
    }

    /// <summary>Milliseconds per op of the last finished step (<see cref="EndStep"/>).</summary>
    public IReadOnlyList<double> StepMs => _stepMs;

    /// <summary>Wall milliseconds of the last finished step.</summary>
    public double StepTotalMs { get; private set; }

    public static string Name(ProfileOp op) => Names[(int)op];

    public void AddTicks(ProfileOp op, long ticks) => _ticks[(int)op] += ticks;

    public void AddMs(ProfileOp op, double ms) => _ticks[(int)op] += (long)(ms * Stopwatch.Frequency / 1000.0);

    /// <summary>Clears the counters at the start of a step.</summary>
    public void BeginStep()
    {
        Array.Clear(_ticks);
        _recomputing = false;
        Scope = ProfileOp.Other;
    }

    /// <summary>Closes a step of <paramref name="stepMs"/> wall milliseconds: what no op accounts for becomes <see cref="ProfileOp.Other"/>.</summary>
    public void EndStep(double stepMs)
    {
        double sum = 0;
        for (int i = 0; i < _ticks.Length; i++)
        {
            if (i == (int)ProfileOp.Other) continue;
            _stepMs[i] = Stopwatch.GetElapsedTime(0, _ticks[i]).TotalMilliseconds;
            sum += _stepMs[i];
        }
        _stepMs[(int)ProfileOp.Other] = Math.Max(0, stepMs - sum);
        StepTotalMs = stepMs;
    }

    /// <summary>Each op's milliseconds and share of the step, one row per op, as a text table.</summary>
    public static string Table(IReadOnlyList<double> ms, double totalMs, string title)
    {
        var sb = new StringBuilder();
        sb.AppendLine(title);
        sb.AppendLine("  op               ms/step   share");
        for (int i = 0; i < Names.Length; i++)
        {
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"  {Names[i],-15} {ms[i],9:0.0}  {(totalMs > 0 ? 100 * ms[i] / totalMs : 0),5:0.0}%"));
        }
        sb.Append(string.Create(CultureInfo.InvariantCulture, $"  {"step",-15} {totalMs,9:0.0}  100.0%"));
        return sb.ToString();
    }
}
