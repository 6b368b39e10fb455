using System.Numerics.Tensors;

namespace Memo.Training.Data;

/// <summary>Accuracy on graded positions (a recall task's answers): how many predictions equal the target where the mask is set.</summary>
public static class AnswerAccuracy
{
    /// <summary>Counts masked positions (Total) and those where <paramref name="predicted"/> equals <paramref name="targets"/> (Correct).</summary>
    public static (long Correct, long Total) Count(ReadOnlySpan<int> predicted, ReadOnlySpan<int> targets, ReadOnlySpan<byte> answerMask)
    {
        if (predicted.Length != targets.Length || answerMask.Length != targets.Length)
            throw new ArgumentException($"lengths differ: predicted {predicted.Length}, targets {targets.Length}, mask {answerMask.Length}");
        long correct = 0, total = 0;
        for (int i = 0; i < targets.Length; i++)
        {
            if (answerMask[i] == 0) continue;
            total++;
            if (predicted[i] == targets[i]) correct++;
        }
        return (correct, total);
    }

    /// <summary>Index of the largest logit in one row (the first on ties).</summary>
    public static int Argmax(ReadOnlySpan<float> logits) => TensorPrimitives.IndexOfMax(logits);

    /// <summary>Argmax of each of <c>predicted.Length</c> rows of <paramref name="vocab"/> logits (row-major).</summary>
    public static unsafe void ArgmaxRows(float* logits, int vocab, Span<int> predicted)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocab, 1);
        for (int r = 0; r < predicted.Length; r++)
            predicted[r] = TensorPrimitives.IndexOfMax(new ReadOnlySpan<float>(logits + (long)r * vocab, vocab));
    }
}
