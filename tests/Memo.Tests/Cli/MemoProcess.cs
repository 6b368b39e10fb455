using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Memo.Tests.Cli;

/// <summary>Runs the real <c>memo</c> executable (built beside the tests) in a child process.</summary>
internal static class MemoProcess
{
    public static string Executable => Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "memo.exe" : "memo");

    public static ProcessStartInfo Info(string workDir, params string[] args)
    {
        var psi = new ProcessStartInfo(Executable, args)
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["MEMO_THREADS"] = "2";
        psi.Environment.Remove("MEMO_DEBUG");
        return psi;
    }

    public static (int Exit, string Stdout, string Stderr) Run(string workDir, params string[] args) =>
        Run(workDir, TimeSpan.FromMinutes(5), args);

    /// <summary>Runs memo in <paramref name="workDir"/>; past <paramref name="limit"/> kills it and says how far it got.</summary>
    public static (int Exit, string Stdout, string Stderr) Run(string workDir, TimeSpan limit, params string[] args)
    {
        using var p = Process.Start(Info(workDir, args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(limit))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            string last = stderr.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "(nothing on stderr)";
            throw new TimeoutException($"memo {string.Join(' ', args)} did not finish within {limit.TotalMinutes:0.#} min (load average {File.ReadAllText("/proc/loadavg").Trim()}); its last line: {last}");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    public static List<JsonObject> ReadLog(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    public static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "memo-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}
