using System.Diagnostics;

namespace Memo.Tests.Distributed;

/// <summary>
/// The watchdog that bounds MPI_Finalize: a shutdown step that never returns (a thread asleep forever, in a
/// real process) ends the process with the given exit code and one line, shortly after the limit, with what
/// the process had written to standard output kept.
/// </summary>
public sealed class ExitWatchdogTests
{
    [Fact]
    public async Task A_step_that_never_returns_ends_the_process_with_the_given_code_and_one_line()
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Mpi.HostProgram);
        psi.ArgumentList.Add("stuck-exit");
        psi.ArgumentList.Add("7");
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        bool ended = p.WaitForExit(TimeSpan.FromSeconds(60));
        if (!ended) p.Kill(entireProcessTree: true);
        Assert.True(ended, "the process was still running 60 s after a 1 s watchdog was armed");
        p.WaitForExit();
        Assert.Equal(7, p.ExitCode);
        Assert.True(sw.Elapsed.TotalSeconds >= 1, $"ended after {sw.Elapsed.TotalSeconds:0.00} s, before the 1 s limit");
        Assert.Equal("work done; ", await stdout);
        Assert.Equal("stuck-exit: the shutdown step did not return within 1 s", (await stderr).Trim());
    }

    [Fact]
    public void A_step_that_returns_disarms_it()
    {
        using (Memo.Distributed.ExitWatchdog.Arm(TimeSpan.FromMilliseconds(200), 9, "must not be printed"))
        {
        }
        Thread.Sleep(400); // past the limit: had the watchdog fired, this test process would have exited with 9
        Assert.Throws<ArgumentOutOfRangeException>(() => Memo.Distributed.ExitWatchdog.Arm(TimeSpan.Zero, 1, "x"));
    }
}
