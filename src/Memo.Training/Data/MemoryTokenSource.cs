namespace Memo.Training.Data;

/// <summary>
/// A token stream held in memory, batched like a file source: B*T+1 consecutive tokens per batch,
/// position advancing by B*T and wrapping to 0 when fewer than B*T+1 remain. For tests and benchmarks.
/// </summary>
public sealed class MemoryTokenSource(int[] tokens, int minVocab) : IBatchSource
{
    public string Description => $"{tokens.Length} tokens in memory";

    public int MinVocab => minVocab;

    public long Position { get; private set; }

    public void Seek(long position) => Position = position;

    public void NextBatch(int B, int T, Span<int> inputs, Span<int> targets, Span<byte> answerMask)
    {
        int n = checked(B * T);
        if (n + 1 > tokens.Length) throw new MemoException($"{tokens.Length} tokens, but a batch needs B*T+1 = {n + 1}; use a shorter --seq or --batch");
        if (Position + n + 1 > tokens.Length) Position = 0;
        tokens.AsSpan((int)Position, n).CopyTo(inputs);
        tokens.AsSpan((int)Position + 1, n).CopyTo(targets);
        answerMask[..n].Clear();
        Position += n;
    }

    public void Dispose()
    {
    }
}
