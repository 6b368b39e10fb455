namespace Memo.CostModel;

/// <summary>Names of the switchable baseline features (for <c>memo plan --without</c> and the JSON output).</summary>
public static class FeatureNames
{
    public const string Selective = "selective";
    public const string FullRecompute = "full-recompute";
    public const string CpuCheckpointing = "cpu-checkpointing";
    public const string Offload = "offload";
    public const string Pipeline = "pipeline";
    public const string Zero1 = "zero1";
    public const string Zero2 = "zero2";
    public const string Zero3 = "zero3";

    public static IReadOnlyList<string> All { get; } = [Selective, FullRecompute, CpuCheckpointing, Offload, Pipeline, Zero1, Zero2, Zero3];

    /// <summary>Checks a list of names; throws a <see cref="MemoException"/> naming the unknown one.</summary>
    public static IReadOnlySet<string> Parse(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var set = new HashSet<string>();
        foreach (var raw in names)
        {
            string n = raw.Trim().ToLowerInvariant();
            if (n.Length == 0) continue;
            if (!All.Contains(n)) throw new MemoException($"unknown feature '{raw}'; use any of {string.Join(", ", All)}");
            set.Add(n);
        }
        return set;
    }
}
