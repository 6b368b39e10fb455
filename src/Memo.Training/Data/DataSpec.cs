namespace Memo.Training.Data;

/// <summary>
/// A data source named by one string, as stored in checkpoints so a resumed run reopens the same data:
/// <c>task:NAME</c> for a built-in synthetic task (seeded) or <c>file:PATH</c> for text or token shards.
/// </summary>
public static class DataSpec
{
    public static IBatchSource Open(string spec, ulong seed, int vocabSize)
    {
        if (spec.StartsWith("task:", StringComparison.Ordinal)) return Tasks.Create(spec[5..], seed, vocabSize);
        if (spec.StartsWith("file:", StringComparison.Ordinal)) return DataSources.Open(spec[5..], vocabSize);
        throw new MemoException($"data '{spec}' is neither task:NAME nor file:PATH; the checkpoint's training state is corrupt");
    }
}
