namespace Memo.Tests.Distributed;

/// <summary>
/// The MPI communicator in real processes under <c>mpiexec -n 2</c> (MPICH): every collective and
/// point-to-point call, ring attention against the single-process kernels, and failures: a rank killed
/// with SIGKILL and a rank that stops answering must end the job non-zero within 30 s with a clear line.
/// </summary>
[Collection("mpi")]
public sealed class MpiCommunicatorTests
{
    [MpiFact]
    public void Collectives_and_point_to_point_give_the_predicted_values_on_two_ranks()
    {
        var (exit, stdout, stderr, _) = Mpi.Run(2, 120, "dotnet", Mpi.HostProgram, "collectives");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("rank 0: collectives ok", stdout);
        Assert.Contains("rank 1: collectives ok", stdout);
    }

    [MpiFact]
    public void Ring_attention_over_two_processes_matches_the_single_process_kernels()
    {
        // batch 2, T 256 (4 chunks of 64), 4 query heads over 2 kv heads (GQA), head dim 32
        var (exit, stdout, stderr, _) = Mpi.Run(2, 120, "dotnet", Mpi.HostProgram, "ring", "2", "256", "4", "2", "32");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("rank 0: ring", stdout);
        Assert.Contains("rank 1: ring", stdout);
        Assert.DoesNotContain("same-bits False", stdout);
    }

    [MpiFact]
    public void A_killed_rank_ends_the_job_non_zero_within_30_seconds_with_a_clear_line()
    {
        // Hydra (MPICH's launcher) sees the killed rank and stops the others.
        var (exit, stdout, stderr, seconds) = Mpi.Run(2, 60, "dotnet", Mpi.HostProgram, "die", "10");
        string all = stdout + stderr;
        Assert.True(exit != 0, $"exit 0 after a rank was killed\n{all}");
        Assert.True(seconds < 30, $"took {seconds:0.0} s\n{all}");
        Assert.Contains("rank 1: pid", stdout);
        Assert.Contains("Killed (signal 9)", all);
    }

    [MpiFact]
    public void A_rank_that_stops_answering_makes_the_other_exit_with_code_3_after_the_timeout()
    {
        var (exit, stdout, stderr, seconds) = Mpi.Run(2, 60, "dotnet", Mpi.HostProgram, "hang", "3");
        string all = stdout + stderr;
        Assert.True(exit != 0, $"exit 0\n{all}"); // Hydra reports rank 0's 3 or the code of rank 1, which it then stops
        Assert.True(seconds >= 3 && seconds < 30, $"took {seconds:0.0} s\n{all}");
        Assert.Contains("memo: rank 0 of 2 (world): all-reduce did not complete within 3 s; a peer rank has died or hangs", stderr);
    }
}
