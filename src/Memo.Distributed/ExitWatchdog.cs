namespace Memo.Distributed;

/// <summary>
/// Bounds a step of process shutdown that can block in native code, where no timeout or exception can
/// reach it (MPI_Finalize). Armed before the step and disposed after it; if the step has not returned
/// within the limit, the watchdog writes one line to the process's standard error (the real one, also on
/// a rank whose console is muted), flushes standard output and ends the process with the exit code it
/// was given. Only for steps after which the process has nothing left to do.
/// </summary>
public sealed class ExitWatchdog : IDisposable
{
    private readonly ManualResetEventSlim _done = new(false);
    private readonly Thread _thread;

    private ExitWatchdog(TimeSpan limit, int exitCode, string message)
    {
        _thread = new Thread(() =>
        {
            if (_done.Wait(limit)) return;
            try
            {
                Console.Out.Flush();
                using var stderr = new StreamWriter(Console.OpenStandardError());
                stderr.WriteLine(message);
            }
            catch (IOException)
            {
                // Standard error is gone: the exit code still tells.
            }
            Posix.Exit(exitCode);
        })
        { IsBackground = true, Name = "exit watchdog" };
        _thread.Start();
    }

    /// <summary>Starts watching: past <paramref name="limit"/> without <see cref="Dispose"/>, prints <paramref name="message"/> and exits with <paramref name="exitCode"/>.</summary>
    public static ExitWatchdog Arm(TimeSpan limit, int exitCode, string message)
    {
        if (limit <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(limit), "the watchdog's limit must be positive");
        ArgumentNullException.ThrowIfNull(message);
        return new ExitWatchdog(limit, exitCode, message);
    }

    /// <summary>The watched step returned: the process goes on.</summary>
    public void Dispose()
    {
        _done.Set();
        _thread.Join();
        _done.Dispose();
    }
}
