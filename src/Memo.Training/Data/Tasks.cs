namespace Memo.Training.Data;

/// <summary>The built-in synthetic tasks, by name (<c>--task NAME</c>).</summary>
public static class Tasks
{
    /// <summary>Task names, the default first.</summary>
    public static IReadOnlyList<string> Names { get; } = [RecallTask.TaskName];

    public static string Default => RecallTask.TaskName;

    /// <summary>Creates task <paramref name="name"/> (case-insensitive) for a model with <paramref name="vocabSize"/> ids.</summary>
    public static IBatchSource Create(string name, ulong seed, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.ToLowerInvariant() switch
        {
            RecallTask.TaskName => new RecallTask(seed, vocabSize),
            _ => throw new MemoException($"unknown task '{name}'; available tasks: {string.Join(", ", Names)}"),
        };
    }
}
