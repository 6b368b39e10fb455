using Microsoft.Win32.SafeHandles;

namespace Memo.Training.Data;

/// <summary>
/// A plain file read as byte-level tokens: token i is byte i (0..255), so any model with
/// vocab_size &gt;= 256 can train on it (the byte-level presets). Batching, shift and wrap-around
/// as in <see cref="TokenStreamSource"/>; bytes are read on demand.
/// </summary>
public sealed class TextFileSource : TokenStreamSource
{
    private readonly SafeFileHandle _handle;
    private readonly string _path;
    private readonly long _count;

    public TextFileSource(string path, int vocabSize)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (vocabSize < 256)
            throw new MemoException($"{path}: byte-level text needs vocab_size >= 256, but the model has {vocabSize}; use a byte-level preset or llm.c token shards");
        _path = path;
        _handle = FileReads.Open(path, "text file");
        _count = RandomAccess.GetLength(_handle);
    }

    public override long TokenCount => _count;

    public override string Description => $"text {_path} ({_count} bytes as byte-level tokens)";

    public override int MinVocab => 256;

    protected override string Where => _path;

    protected override void ReadTokens(long start, Span<int> destination) =>
        FileReads.ReadBytesAsInts(_path, _handle, start, destination);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _handle.Dispose();
    }
}
