namespace Memo.Training.Data;

/// <summary>Opens user data given on the command line (<c>--data PATH</c>).</summary>
public static class DataSources
{
    /// <summary>
    /// A directory, a glob, a <c>.bin</c> file or any file that starts with the llm.c shard magic is
    /// read as llm.c token shards (<see cref="TokenShardSource"/>); any other file as byte-level text
    /// (<see cref="TextFileSource"/>).
    /// </summary>
    public static TokenStreamSource Open(string spec, int vocabSize)
    {
        ArgumentException.ThrowIfNullOrEmpty(spec);
        bool shards = Directory.Exists(spec)
            || spec.AsSpan().IndexOfAny('*', '?') >= 0
            || spec.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)
            || (File.Exists(spec) && TokenShards.LooksLikeShard(spec));
        if (!shards && !File.Exists(spec))
            throw new MemoException($"{spec}: no such file or directory; check --data");
        return shards ? new TokenShardSource(spec, vocabSize) : new TextFileSource(spec, vocabSize);
    }
}
