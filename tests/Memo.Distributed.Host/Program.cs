using System.Runtime.InteropServices;
using Memo;
using Memo.Distributed;
using Memo.Distributed.Host;

// A small program that the tests launch under mpiexec to exercise the MPI communicator:
//   collectives            every collective and point-to-point call against values each rank can predict
//   ring B T H KvH D       ring attention over the world vs the single-process kernels (RingCheck)
//   die SECONDS            rank 1 kills itself (SIGKILL) after one all-reduce; the others keep reducing
//                          with a SECONDS timeout and must exit with one line naming the failure
//   hang SECONDS           rank 1 stops answering (sleeps) after one all-reduce; rank 0 must time out
//   stuck-exit CODE        no MPI: a shutdown step that never returns, under a 1 s ExitWatchdog that exits with CODE
// Exit codes: 0 ok, 1 a check failed, 2 bad arguments, 3 a peer failed (CommunicatorException).
try
{
    if (args.Length == 0) return Usage();
    if (args[0] == "stuck-exit" && args.Length == 2)
    {
        int code = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
        Console.Write("work done; ");
        using (ExitWatchdog.Arm(TimeSpan.FromSeconds(1), code, "stuck-exit: the shutdown step did not return within 1 s"))
            Thread.Sleep(Timeout.Infinite);
        return 1;
    }
    double timeoutSeconds = args[0] is "die" or "hang" && args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 60;
    using var world = MpiCommunicator.World(TimeSpan.FromSeconds(timeoutSeconds));
    switch (args[0])
    {
        case "collectives":
            CollectiveChecks.Run(world);
            Console.WriteLine($"rank {world.Rank}: collectives ok");
            return 0;
        case "ring" when args.Length == 6:
        {
            int[] a = args[1..].Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            var r = RingCheck.Run(world, a[0], a[1], a[2], a[3], a[4], threads: 1);
            Console.WriteLine($"rank {world.Rank}: ring {r}");
            return r.MaxErr < 1e-5 && r.SameBits ? 0 : 1;
        }
        case "die":
            return Die(world, hang: false);
        case "hang":
            return Die(world, hang: true);
        default:
            return Usage();
    }
}
catch (CommunicatorException e)
{
    Console.Error.WriteLine($"memo: {e.Message}");
    return CommunicatorException.PeerFailedExitCode;
}
catch (MemoException e)
{
    Console.Error.WriteLine($"memo: {e.Message}");
    return e.ExitCode;
}

static int Usage()
{
    Console.Error.WriteLine("usage: Memo.Distributed.Host collectives | ring B T H KvH D | die SECONDS | hang SECONDS | stuck-exit CODE");
    return 2;
}

static unsafe int Die(ICommunicator world, bool hang)
{
    double x = 1;
    world.AllReduce(&x, &x, 1, CommType.Float64, CommOp.Sum);
    if (world.Rank == 1 && hang)
    {
        Console.WriteLine("rank 1: not answering");
        Console.Out.Flush();
        Thread.Sleep(TimeSpan.FromMinutes(5));
    }
    if (world.Rank == 1)
    {
        Console.WriteLine($"rank 1: pid {Environment.ProcessId} killing itself");
        Console.Out.Flush();
        Native.kill(Environment.ProcessId, 9);
    }
    for (int i = 0; ; i++)
    {
        world.AllReduce(&x, &x, 1, CommType.Float64, CommOp.Sum);
        Thread.Sleep(10);
    }
}

internal static partial class Native
{
    [LibraryImport("libc", SetLastError = true)]
    internal static partial int kill(int pid, int signal);
}
