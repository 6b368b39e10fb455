using System.Diagnostics;

namespace Memo.Tests.Distributed;

/// <summary>Finds mpiexec and runs programs under it, with a wall-clock limit.</summary>
internal static class Mpi
{
    /// <summary>Path of mpiexec on PATH, or null.</summary>
    public static string? Exec { get; } = Find();

    private static string? Find()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (dir.Length == 0) continue;
            string p = Path.Combine(dir, "mpiexec");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    public static string HostProgram => Path.Combine(AppContext.BaseDirectory, "Memo.Distributed.Host.dll");

    /// <summary>Runs <c>mpiexec -n ranks</c> with the arguments; returns exit code, output and wall seconds (the process tree is killed past <paramref name="limitSeconds"/>).</summary>
    public static (int Exit, string Stdout, string Stderr, double Seconds) Run(int ranks, double limitSeconds, params string[] args) =>
        Run([], ranks, limitSeconds, args);

    /// <summary>As <see cref="Run(int, double, string[])"/>, with launcher options before <c>-n</c>.</summary>
    public static (int Exit, string Stdout, string Stderr, double Seconds) Run(string[] launcherOptions, int ranks, double limitSeconds, params string[] args)
    {
        var psi = new ProcessStartInfo(Exec ?? throw new InvalidOperationException("mpiexec not found"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var o in launcherOptions) psi.ArgumentList.Add(o);
        psi.ArgumentList.Add("-n");
        psi.ArgumentList.Add(ranks.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["MEMO_THREADS"] = "1";
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(limitSeconds)))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            return (-1, stdout.Result, stderr.Result + $"\n(killed after {limitSeconds} s)", sw.Elapsed.TotalSeconds);
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result, sw.Elapsed.TotalSeconds);
    }
}

/// <summary>
/// A fact that needs an MPI launcher: skipped, with the reason, when mpiexec is not on PATH, unless
/// MEMO_REQUIRE_MPI=1 (CI sets it after installing MPICH), in which case it runs and fails.
/// </summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (Mpi.Exec is null && Environment.GetEnvironmentVariable("MEMO_REQUIRE_MPI") != "1")
            Skip = "mpiexec not found on PATH; install MPICH (apt-get install mpich) to run the multi-process tests";
    }
}

/// <summary>The theory form of <see cref="MpiFactAttribute"/>.</summary>
public sealed class MpiTheoryAttribute : TheoryAttribute
{
    public MpiTheoryAttribute()
    {
        if (Mpi.Exec is null && Environment.GetEnvironmentVariable("MEMO_REQUIRE_MPI") != "1")
            Skip = "mpiexec not found on PATH; install MPICH (apt-get install mpich) to run the multi-process tests";
    }
}
