using System.Globalization;

namespace Memo.Model.Memory;

/// <summary>
/// The logical timeline of one training iteration, the time axis of the device-buffer lifespans in
/// <see cref="MemoryLayout"/>. One time step per phase the runtime goes through, in order:
/// <code>
///   0            begin          token ids and targets arrive
///   1            embed          embedding forward: writes layer 0's input
///   2+2l         attention(l)   norm 1, q/k/v, rotary, attention of layer l
///   3+2l         mlp(l)         out projection, norm 2, MLP of layer l: writes the next layer's input
///   2+2L         final norm
///   3+2L         head           LM head and loss in token chunks (fused with their backward)
///   4+2L         final norm backward
///   5+2L+(L-1-l) backward(l)    layers in reverse order (recomputation included)
///   5+3L         embed backward
///   6+3L         step end       the copy engine is drained; staging is released
///   7+3L         optimizer
/// </code>
/// A buffer's lifespan [lower, upper) starts at the phase that first writes it and ends after the
/// phase that last reads it; the runtime acquires it on entering lower and releases it on entering
/// upper. Buffers that outlive the iteration (parameters, gradients, optimizer moments, tables) span
/// [0, <see cref="End"/>).
/// </summary>
public sealed class IterationTimeline
{
    public const long Begin = 0;
    public const long Embed = 1;

    public IterationTimeline(int layers)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        Layers = layers;
    }

    public int Layers { get; }

    public long Attention(int layer) => 2 + 2L * layer;

    public long Mlp(int layer) => 3 + 2L * layer;

    public long FinalNorm => 2 + 2L * Layers;

    public long Head => FinalNorm + 1;

    public long FinalNormBackward => FinalNorm + 2;

    public long Backward(int layer) => FinalNormBackward + 1 + (Layers - 1 - layer);

    public long EmbedBackward => FinalNormBackward + 1 + Layers;

    public long StepEnd => EmbedBackward + 1;

    public long Optimizer => StepEnd + 1;

    /// <summary>One past the last time step: the upper end of buffers that live for the whole run.</summary>
    public long End => Optimizer + 1;

    /// <summary>Name of time step <paramref name="t"/>, e.g. "attention(3)".</summary>
    public string PhaseName(long t)
    {
        var inv = CultureInfo.InvariantCulture;
        if (t == Begin) return "begin";
        if (t == Embed) return "embed";
        if (t < FinalNorm) return string.Create(inv, $"{((t - 2) % 2 == 0 ? "attention" : "mlp")}({(t - 2) / 2})");
        if (t == FinalNorm) return "final norm";
        if (t == Head) return "head";
        if (t == FinalNormBackward) return "final norm backward";
        if (t < EmbedBackward) return string.Create(inv, $"backward({Layers - 1 - (t - FinalNormBackward - 1)})");
        if (t == EmbedBackward) return "embed backward";
        if (t == StepEnd) return "step end";
        if (t == Optimizer) return "optimizer";
        throw new ArgumentOutOfRangeException(nameof(t), t, $"time step outside the iteration [0, {End})");
    }
}
