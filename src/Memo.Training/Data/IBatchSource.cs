namespace Memo.Training.Data;

/// <summary>
/// A deterministic stream of training batches. A batch is B rows of T positions, row-major:
/// <c>inputs[b*T + t]</c> is the token fed at position t of row b and <c>targets[b*T + t]</c> the
/// token the model must predict there. <c>answerMask[b*T + t]</c> is 1 where the target is a
/// graded answer (a recall task's queried value) and 0 elsewhere (all 0 for file data).
/// <see cref="Position"/> is the whole resumable state: a checkpoint saves it, and after
/// <see cref="Seek"/> to it the source yields exactly the batches an uninterrupted run would have.
/// </summary>
public interface IBatchSource : IDisposable
{
    /// <summary>One line for logs and checkpoints: what the data is (file names and token count, or the task and seed).</summary>
    string Description { get; }

    /// <summary>The smallest vocab_size that can represent every token the source yields.</summary>
    int MinVocab { get; }

    /// <summary>Where the next batch starts (a token offset for files, a sample index for tasks).</summary>
    long Position { get; }

    /// <summary>Moves to <paramref name="position"/>, a value <see cref="Position"/> had before.</summary>
    void Seek(long position);

    /// <summary>Fills the first B*T elements of each span with the next batch and advances <see cref="Position"/>.</summary>
    void NextBatch(int B, int T, Span<int> inputs, Span<int> targets, Span<byte> answerMask);
}

internal static class BatchArgs
{
    /// <summary>Checks batch dimensions and span lengths; returns B*T.</summary>
    public static int Check(int B, int T, Span<int> inputs, Span<int> targets, Span<byte> answerMask)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(B, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(T, 1);
        long n = (long)B * T;
        if (n >= int.MaxValue) throw new MemoException($"batch {B} x {T} = {n} tokens does not fit one batch buffer (limit {int.MaxValue - 1}); use a smaller --batch or --seq");
        if (inputs.Length < n) throw new ArgumentException($"inputs holds {inputs.Length} elements, the batch needs {n}", nameof(inputs));
        if (targets.Length < n) throw new ArgumentException($"targets holds {targets.Length} elements, the batch needs {n}", nameof(targets));
        if (answerMask.Length < n) throw new ArgumentException($"answerMask holds {answerMask.Length} elements, the batch needs {n}", nameof(answerMask));
        return (int)n;
    }
}
