using Memo.Cpu;

namespace Memo.Cli;

/// <summary>The <c>--threads</c> rule shared by every command: at least 1, at most the machine's cores (capped with a notice).</summary>
internal static class Threads
{
    /// <summary>The thread count to use for <paramref name="given"/> (null: the default pool's), writing a notice when it is capped.</summary>
    public static int? Resolve(int? given, TextWriter diagnostics)
    {
        if (given is not int t) return null;
        if (t < 1) throw new MemoException($"--threads must be at least 1 (got {t})");
        int cores = Environment.ProcessorCount;
        if (t <= cores) return t;
        diagnostics.WriteLine($"memo: --threads {t} is more than the {cores} cores of this machine; using {cores}");
        return cores;
    }

    /// <summary>Resolves <paramref name="given"/> and makes it the default worker pool's size.</summary>
    public static void Apply(int? given, TextWriter diagnostics)
    {
        if (Resolve(given, diagnostics) is int t) WorkerPool.SetDefaultThreads(t);
    }
}
