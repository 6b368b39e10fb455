using Memo.Backends;
using Memo.Cpu;
using Memo.Reference;

namespace Memo.Training;

/// <summary>
/// The backends by name (<c>--backend</c>). A new backend is added here once; the tests that enumerate
/// <see cref="Names"/> then run it against the reference backend.
/// </summary>
public static class BackendRegistry
{
    /// <summary>Registered names; the first is the default.</summary>
    public static IReadOnlyList<string> Names { get; } = [CpuBackend.BackendName, ReferenceBackend.BackendName];

    public static string Default => Names[0];

    /// <summary>A new backend called <paramref name="name"/> (the CPU one on the default worker pool).</summary>
    public static IBackend Create(string name) => name switch
    {
        CpuBackend.BackendName => new CpuBackend(),
        ReferenceBackend.BackendName => new ReferenceBackend(),
        _ => throw new MemoException($"unknown backend '{name}'; the backends are {string.Join(", ", Names)}"),
    };
}
