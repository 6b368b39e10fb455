using System.Diagnostics;
using System.Globalization;

namespace Memo.Training;

/// <summary>
/// Named points where a test can kill the process as <c>kill -9</c> would: set <c>MEMO_CRASH_AT=NAME</c> (the first
/// time the point is reached) or <c>NAME:N</c> (the N-th time). Used by the fault-injection tests to stop training
/// inside every step of a checkpoint swap; without the variable a point costs one comparison.
/// </summary>
public static class FaultPoint
{
    private static readonly (string Name, int Count)? Target = ParseTarget(Environment.GetEnvironmentVariable("MEMO_CRASH_AT"));
    private static int _hits;

    /// <summary>The points a checkpoint save passes, in order.</summary>
    public static IReadOnlyList<string> CheckpointPoints { get; } =
        ["checkpoint.tmp-partial", "checkpoint.tmp-written", "checkpoint.new-complete", "checkpoint.old-moved", "checkpoint.swapped"];

    public static void Reach(string name)
    {
        if (Target is not { } t || !string.Equals(t.Name, name, StringComparison.Ordinal)) return;
        if (Interlocked.Increment(ref _hits) < t.Count) return;
        Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }

    private static (string, int)? ParseTarget(string? v)
    {
        if (string.IsNullOrEmpty(v)) return null;
        int colon = v.LastIndexOf(':');
        if (colon > 0 && int.TryParse(v.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0) return (v[..colon], n);
        return (v, 1);
    }
}
