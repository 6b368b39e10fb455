using Memo.Backends;
using Memo.Cpu;
using Memo.Distributed;

namespace Memo.Cli;

/// <summary>
/// The ranks of a multi-process run (<c>mpiexec -n N memo train --cp C ...</c>): MPI's world split into
/// D = N/C context-parallel rings, and the per-rank backend. Rank 0 alone writes progress, logs and
/// checkpoints; the other ranks' console output is muted (errors are still printed, see <see cref="Unmute"/>).
/// Without an MPI launcher and with --cp 1 there is no ParallelRun: today's single process.
/// </summary>
internal sealed class ParallelRun : IDisposable
{
    /// <summary>Default seconds a rank waits for a peer before it declares it failed (--comm-timeout).</summary>
    public const double DefaultTimeoutSeconds = 120;

    /// <summary>The signal Hydra's proxy sends the other ranks when one dies, under <c>mpiexec -disable-auto-cleanup</c>.</summary>
    private const int SigUsr1 = 10;

    private static TextWriter? _stderr;
    private static MpiCommunicator? _world;
    private static System.Runtime.InteropServices.PosixSignalRegistration? _peerStopped;

    private ParallelRun(ParallelGroups groups) => Groups = groups;

    public ParallelGroups Groups { get; }

    public bool IsRoot => Groups.World.Rank == 0;

    /// <summary>
    /// Checks --cp against the sequence and the launcher's rank count, then joins the MPI job. Every
    /// check that needs no peer runs before MPI starts, so bad input is a one-line error before any work.
    /// </summary>
    public static ParallelRun? Start(int cp, long seq, double timeoutSeconds)
    {
        if (cp < 1) throw new MemoException($"--cp must be at least 1 (got {cp})");
        if (!(timeoutSeconds > 0)) throw new MemoException($"--comm-timeout must be a positive number of seconds (got {timeoutSeconds})");
        if (cp > 1) ZigZag.Create(seq, cp);
        bool launched = MpiCommunicator.LaunchedByMpi;
        int ranks = launched && int.TryParse(Environment.GetEnvironmentVariable("PMI_SIZE"), out int n) ? n : 1;
        if (!launched)
        {
            if (cp > 1) throw new MemoException($"--cp {cp} splits each sequence over {cp} processes: launch them with mpiexec -n {cp} (or a multiple of {cp} for data parallelism)");
            return null;
        }
        ParallelGroups.Check(ranks, cp);
        Commands.LaunchCommand.Record($"rank-{Commands.LaunchCommand.RankNumber}.pid", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (ranks == 1) return null;
        var world = MpiCommunicator.World(TimeSpan.FromSeconds(timeoutSeconds));
        _world = world;
        var run = new ParallelRun(ParallelGroups.Create(world, cp));
        _peerStopped = System.Runtime.InteropServices.PosixSignalRegistration.Create((System.Runtime.InteropServices.PosixSignal)SigUsr1, c =>
        {
            c.Cancel = true;
            PeerStopped(world.Rank, world.Size);
        });
        return run;
    }

    /// <summary>Where the last checkpoint of this run was written (rank 0, memo train), for the line a stopping rank prints.</summary>
    public static string? LastCheckpoint
    {
        get => _lastCheckpoint;
        set
        {
            _lastCheckpoint = value;
            if (value != null && Commands.LaunchCommand.RankNumber == 0) Commands.LaunchCommand.Record("checkpoint", value);
        }
    }

    private static string? _lastCheckpoint;

    /// <summary>
    /// Another rank died and Hydra signalled this one (SIGUSR1: <c>mpiexec -disable-auto-cleanup</c>; without that flag
    /// Hydra SIGKILLs every rank at once and no rank can print). One line, exit code 3, without waiting for MPI.
    /// </summary>
    private static void PeerStopped(int rank, int size)
    {
        Unmute();
        string checkpoint = LastCheckpoint is { } c ? $"the last checkpoint {c} is intact" : "no checkpoint was written by this run";
        Console.Error.WriteLine($"memo: rank {rank} of {size}: another rank stopped (killed or exited); stopping; {checkpoint}");
        Console.Error.Flush();
        Commands.LaunchCommand.Record($"rank-{rank}.exit", CommunicatorException.PeerFailedExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Environment.Exit(CommunicatorException.PeerFailedExitCode);
    }

    /// <summary>The rank's backend: with C &gt; 1, ring attention and global positions over the CPU backend.</summary>
    public IBackend Backend(IBackend inner, ModelConfig cfg, int batch, long seq)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(cfg);
        if (Groups.ContextSize == 1) return inner;
        return ContextBackend(inner, Groups.Ring, cfg, batch, seq);
    }

    /// <summary>A context-parallel backend on <paramref name="ring"/> for a model of B x T/C rows.</summary>
    public static IBackend ContextBackend(IBackend inner, ICommunicator ring, ModelConfig cfg, int batch, long seq)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(cfg);
        if (inner is not CpuBackend cpu)
            throw new MemoException($"--cp runs on the cpu backend only (got --backend {inner.Name})");
        return new ContextParallelBackend(cpu, ring, cfg, batch, seq / ring.Size);
    }

    /// <summary>
    /// Silences this process's console when it is a rank other than 0 of an MPI job (<see cref="Program.Main"/> calls it
    /// before parsing): parse errors, bad input, a --dry-run or a tokenizer message come once, from rank 0, also where no
    /// rank joins MPI. Failures of one rank alone (a peer lost, an I/O error) <see cref="Unmute"/> first.
    /// </summary>
    public static void MuteOtherRanks()
    {
        if (IsOtherRank) Mute();
    }

    private static void Mute()
    {
        _stderr ??= Console.Error;
        Console.SetOut(TextWriter.Null);
        Console.SetError(TextWriter.Null);
    }

    /// <summary>True in a process that an MPI launcher started as a rank other than 0.</summary>
    public static bool IsOtherRank => MpiCommunicator.LaunchedByMpi && Environment.GetEnvironmentVariable("PMI_RANK") is { } r && r != "0";

    /// <summary>Restores stderr on a muted rank, so its failure line is printed.</summary>
    public static void Unmute()
    {
        if (_stderr != null) Console.SetError(_stderr);
    }

    /// <summary>Frees the ring; MPI itself ends in <see cref="Shutdown"/>, once the command's exit code is known.</summary>
    public void Dispose()
    {
        _peerStopped?.Dispose();
        _peerStopped = null;
        Groups.Dispose();
    }

    /// <summary>
    /// Ends MPI in this process, when a run started it: every rank meets, then MPI_Finalize, and should that
    /// hang after every rank has finished, the process exits with <paramref name="exitCode"/> (see <see cref="MpiCommunicator.Close"/>).
    /// </summary>
    public static void Shutdown(int exitCode)
    {
        _world?.Close(exitCode);
        _world = null;
    }
}
