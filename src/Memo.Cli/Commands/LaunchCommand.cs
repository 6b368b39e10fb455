// memo launch -n N [--mpiexec PATH] -- train --cp C ...
//
// Starts N ranks of a memo command with mpiexec (-disable-auto-cleanup) and speaks for the job when it ends
// early. MPICH's Hydra stops every rank with SIGKILL moments after one of them dies, so no rank can be sure
// to say what happened; the launcher outlives them. Each rank records its pid when it joins and its exit code
// when it returns (MEMO_LAUNCH_DIR); rank 0 records the last checkpoint it wrote. A rank that failed on its own
// has printed its line and the launcher returns its exit code; a job that ended without any rank failing on
// its own (a rank killed or crashed) gets one line naming the ranks that never finished and the intact
// checkpoint, and exit code 3.
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Memo.Distributed;

namespace Memo.Cli.Commands;

public static class LaunchCommand
{
    /// <summary>The directory of the ranks' records; set by the launcher in the ranks' environment.</summary>
    internal const string DirVariable = "MEMO_LAUNCH_DIR";

    public static Command Create()
    {
        var ranks = OptionTable.Ranks();
        var mpiexec = OptionTable.Mpiexec();
        var command = new Argument<string[]>("command") { Description = "the memo command and its flags, after --, e.g. -- train --cp 2 --seq 16K", Arity = ArgumentArity.ZeroOrMore };
        var launch = new Command("launch", "Run a memo command on N ranks with mpiexec, and say in one line what stopped the job if a rank dies.")
        {
            ranks, mpiexec, command,
        };
        launch.SetAction(p => Run(p.GetValue(ranks), p.GetValue(mpiexec), p.GetValue(command) ?? [], Console.Error));
        return launch;
    }

    public static int Run(int ranks, string? mpiexec, IReadOnlyList<string> command, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(error);
        if (ranks < 1) throw new MemoException($"-n must be at least 1 (got {ranks})");
        if (command.Count == 0 || command[0] is not ("train" or "eval"))
            throw new MemoException("launch runs memo train or memo eval on several ranks: give the command after --, e.g. memo launch -n 2 -- train --cp 2");
        string exec = mpiexec ?? FindOnPath("mpiexec")
            ?? throw new MemoException("launch: mpiexec not found on PATH; install MPI (apt-get install mpich) or give --mpiexec PATH");
        if (mpiexec != null && !File.Exists(mpiexec)) throw new MemoException($"--mpiexec: '{mpiexec}' does not exist; give the path of mpiexec");
        string self = Environment.ProcessPath ?? throw new MemoException("launch: cannot find the memo executable of this process");
        string dir = Directory.CreateTempSubdirectory("memo-launch-").FullName;
        try
        {
            var psi = new ProcessStartInfo(exec) { UseShellExecute = false };
            foreach (var a in new[] { "-disable-auto-cleanup", "-n", ranks.ToString(CultureInfo.InvariantCulture), self }) psi.ArgumentList.Add(a);
            // A framework-dependent build runs as 'dotnet memo.dll': the ranks start the same way.
            if (Path.GetFileNameWithoutExtension(self) == "dotnet" && Environment.GetCommandLineArgs() is [var dll, ..]) psi.ArgumentList.Add(dll);
            foreach (var a in command) psi.ArgumentList.Add(a);
            psi.Environment[DirVariable] = dir;
            Process? started;
            try
            {
                started = Process.Start(psi);
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new MemoException($"launch: cannot run '{exec}' ({e.Message}); give the path of MPI's mpiexec with --mpiexec");
            }
            using var job = started ?? throw new MemoException($"launch: could not start '{exec}'");
            var watch = new RankWatch(dir, ranks);
            var watcher = new Thread(() => watch.Run(job)) { IsBackground = true, Name = "memo-launch-watch" };
            watcher.Start();
            job.WaitForExit();
            watcher.Join(TimeSpan.FromSeconds(1));
            int code = job.ExitCode;
            if (code == 0) return 0;
            var records = Records(dir, ranks);
            // A rank that failed on its own (bad input, I/O, a peer that stopped answering) has said so: keep its code.
            var own = records.Where(r => r.Exit is int e && e != 0 && e != CommunicatorException.PeerFailedExitCode).Select(r => r.Exit!.Value).ToList();
            if (own.Count > 0) return own[0];
            var unfinished = records.Where(r => r.Joined && r.Exit is null).Select(r => r.Rank).ToList();
            string who = unfinished.Count switch
            {
                0 => "a rank ended before joining the job",
                _ when watch.First is { } f && unfinished.Contains(f.Rank) =>
                    $"rank {f.Rank} of {ranks} (pid {f.Pid}) ended first, without finishing (killed or crashed), and mpiexec stopped the others",
                _ when unfinished.Count == ranks => "every rank was stopped before finishing (one was killed or crashed, mpiexec stopped the others)",
                1 => $"rank {unfinished[0]} of {ranks} ended without finishing (killed or crashed) and mpiexec stopped the others",
                _ => $"ranks {string.Join(", ", unfinished)} of {ranks} ended without finishing (one was killed or crashed, mpiexec stopped the others)",
            };
            string checkpoint = ReadText(Path.Combine(dir, "checkpoint")) is { } c
                ? $"the last checkpoint {c} is intact; continue with --resume"
                : "no checkpoint was written by this run";
            error.WriteLine($"memo launch: the job stopped early (mpiexec exit code {code}): {who}; {checkpoint}");
            return CommunicatorException.PeerFailedExitCode;
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// Which rank ended first: the ranks' pids from their records, each watched through a pidfd (readable once the
    /// process has ended; no polling of the process table). Kernels without pidfd_open leave <see cref="First"/> null.
    /// </summary>
    private sealed class RankWatch(string dir, int ranks)
    {
        private readonly object _gate = new();

        public (int Rank, int Pid)? First { get; private set; }

        public void Run(Process job)
        {
            var seen = new HashSet<int>();
            while (!job.HasExited && seen.Count < ranks)
            {
                for (int r = 0; r < ranks; r++)
                {
                    if (seen.Contains(r) || !int.TryParse(ReadText(Path.Combine(dir, $"rank-{r}.pid")), CultureInfo.InvariantCulture, out int pid)) continue;
                    seen.Add(r);
                    int rank = r;
                    new Thread(() => WaitFor(rank, pid)) { IsBackground = true, Name = $"memo-launch-rank-{r}" }.Start();
                }
                Thread.Sleep(50);
            }
        }

        private void WaitFor(int rank, int pid)
        {
            int fd = PidFd.Open(pid);
            if (fd < 0) return;
            try
            {
                if (!PidFd.WaitReadable(fd)) return;
                lock (_gate) First ??= (rank, pid);
            }
            finally
            {
                PidFd.Close(fd);
            }
        }
    }

    private sealed record RankRecord(int Rank, bool Joined, int? Exit);

    private static List<RankRecord> Records(string dir, int ranks)
    {
        var list = new List<RankRecord>();
        for (int r = 0; r < ranks; r++)
        {
            bool joined = File.Exists(Path.Combine(dir, $"rank-{r}.pid"));
            int? exit = int.TryParse(ReadText(Path.Combine(dir, $"rank-{r}.exit")), CultureInfo.InvariantCulture, out int e) ? e : null;
            list.Add(new RankRecord(r, joined, exit));
        }
        return list;
    }

    private static string? ReadText(string path)
    {
        try { return File.Exists(path) ? File.ReadAllText(path).Trim() : null; }
        catch (IOException) { return null; }
    }

    private static string? FindOnPath(string name)
    {
        foreach (var d in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string f = Path.Combine(d, name);
            if (File.Exists(f)) return f;
        }
        return null;
    }

    /// <summary>In a rank started by <c>memo launch</c>: writes <paramref name="name"/> with <paramref name="text"/> (temporary name, then rename).</summary>
    internal static void Record(string name, string text)
    {
        if (Environment.GetEnvironmentVariable(DirVariable) is not { Length: > 0 } dir || !Directory.Exists(dir)) return;
        string path = Path.Combine(dir, name), tmp = path + ".tmp" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        try
        {
            File.WriteAllText(tmp, text);
            File.Move(tmp, path, overwrite: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>The rank's number in the job (PMI_RANK), or 0 outside MPI.</summary>
    internal static int RankNumber => int.TryParse(Environment.GetEnvironmentVariable("PMI_RANK"), CultureInfo.InvariantCulture, out int r) ? r : 0;
}
