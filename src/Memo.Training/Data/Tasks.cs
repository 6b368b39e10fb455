namespace Memo.Training.Data;

/// <summary>The built-in synthetic tasks, by name (<c>--task NAME</c>).</summary>
public static class Tasks
{
    /// <summary>Task names, the default first.</summary>
    public static IReadOnlyList<string> Names { get; } = [RecallTask.TaskName];

    public static string Default => RecallTask.TaskName;

    /// <summary>
    /// Creates task <paramref name="spec"/> (case-insensitive) for a model with <paramref name="vocabSize"/> ids:
    /// <c>NAME</c> or <c>NAME:key=value,...</c>; recall takes <c>pairs</c>, <c>queries</c> and <c>filler=pattern|random</c>.
    /// </summary>
    public static IBatchSource Create(string spec, ulong seed, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(spec);
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        string name = (colon < 0 ? spec : spec[..colon]).Trim().ToLowerInvariant();
        var args = ParseArgs(spec, colon < 0 ? "" : spec[(colon + 1)..]);
        return name switch
        {
            RecallTask.TaskName => CreateRecall(spec, args, seed, vocabSize),
            _ => throw new MemoException($"unknown task '{name}'; available tasks: {string.Join(", ", Names)}"),
        };
    }

    private static RecallTask CreateRecall(string spec, List<(string Key, string Value)> args, ulong seed, int vocabSize)
    {
        int pairs = 1, queries = 0;
        var filler = RecallFiller.Pattern;
        foreach (var (k, v) in args)
        {
            switch (k)
            {
                case "pairs": pairs = Int(spec, k, v); break;
                case "queries": queries = Int(spec, k, v); break;
                case "filler": filler = Filler(spec, v); break;
                default: throw new MemoException($"task '{spec}': unknown option '{k}'; recall takes pairs=N, queries=N, filler=pattern|random");
            }
        }
        return new RecallTask(seed, vocabSize, pairs, queries, filler);
    }

    private static RecallFiller Filler(string spec, string value) => value switch
    {
        "pattern" => RecallFiller.Pattern,
        "random" => RecallFiller.Random,
        _ => throw new MemoException($"task '{spec}': filler must be pattern or random (got '{value}')"),
    };

    private static List<(string Key, string Value)> ParseArgs(string spec, string text)
    {
        var list = new List<(string, string)>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0) throw new MemoException($"task '{spec}': option '{part}' is not key=value; write e.g. recall:pairs=8,filler=random");
            list.Add((part[..eq].Trim().ToLowerInvariant(), part[(eq + 1)..].Trim().ToLowerInvariant()));
        }
        return list;
    }

    private static int Int(string spec, string key, string value) =>
        int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n >= 1
            ? n
            : throw new MemoException($"task '{spec}': {key} must be a positive whole number (got '{value}')");
}
