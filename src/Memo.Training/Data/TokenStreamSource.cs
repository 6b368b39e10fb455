namespace Memo.Training.Data;

/// <summary>
/// Batches from one finite stream of tokens (a file or a list of shards read as one stream).
/// A batch takes the B*T+1 consecutive tokens that start at <see cref="Position"/>: inputs are the
/// first B*T, targets the same tokens shifted by one, both viewed as B rows of T; then
/// <see cref="Position"/> advances by B*T, so the last token of one batch's targets is the first
/// input of the next. Wrap-around: when fewer than B*T+1 tokens remain from <see cref="Position"/>,
/// the batch starts at token 0 instead (the tail is skipped for this epoch) and Position becomes B*T.
/// Tokens are read on demand; nothing is cached, so the source's memory use does not grow with the data.
/// </summary>
public abstract class TokenStreamSource : IBatchSource
{
    private long _position;

    /// <summary>Number of tokens in the stream.</summary>
    public abstract long TokenCount { get; }

    public abstract string Description { get; }

    public abstract int MinVocab { get; }

    /// <summary>Name used to start error messages (the path given by the user).</summary>
    protected abstract string Where { get; }

    public long Position => _position;

    public void Seek(long position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        if (position > TokenCount)
            throw new MemoException($"{Where}: position {position} is beyond the data's {TokenCount} tokens; the data changed since the checkpoint was saved — resume with the same data");
        _position = position;
    }

    public void NextBatch(int B, int T, Span<int> inputs, Span<int> targets, Span<byte> answerMask)
    {
        int n = BatchArgs.Check(B, T, inputs, targets, answerMask);
        long need = (long)n + 1;
        if (TokenCount < need)
            throw new MemoException($"{Where}: {TokenCount} tokens, but a batch needs B*T+1 = {need}; use a shorter --seq or --batch");
        if (_position + need > TokenCount)
            _position = 0;
        ReadTokens(_position, inputs[..n]);
        inputs[1..n].CopyTo(targets);
        ReadTokens(_position + n, targets.Slice(n - 1, 1));
        answerMask[..n].Clear();
        _position += n;
    }

    /// <summary>Reads <c>destination.Length</c> tokens starting at stream offset <paramref name="start"/>.</summary>
    protected abstract void ReadTokens(long start, Span<int> destination);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}
