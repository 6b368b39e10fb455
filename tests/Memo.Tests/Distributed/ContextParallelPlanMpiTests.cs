using System.Text.Json.Nodes;
using Memo.Cli.Commands;
using Memo.Tests.Cli;

namespace Memo.Tests.Distributed;

/// <summary>
/// <c>memo plan --gpu cpu --cp 2</c> against what <c>mpiexec -n 2 memo train --cp 2</c> measures (one thread per rank,
/// as <see cref="Mpi.Run(int, double, string[])"/> starts them): the bytes rank 0's ring sends per step
/// (<c>ring_bytes</c>) and its arena's peak (<c>device_peak_bytes</c>) are the plan's, to the byte.
/// Step time is predicted too, but a timing is no test: bench/ compares it with the measured step.
/// </summary>
[Collection("mpi")]
public sealed class ContextParallelPlanMpiTests
{
    [MpiTheory]
    [InlineData("llama-tiny", "keep", "keep")]            // GQA, RoPE; every activation kept
    [InlineData("gpt2-tiny", "recompute", "deepspeed")]   // learned positions; full recomputation runs each layer's ring forward again
    public void Plan_bytes_and_peak_equal_what_two_ranks_measure(string model, string policy, string strategy)
    {
        string dir = MemoProcess.TempDir();
        try
        {
            var run = Mpi.Run(2, 240, "-wdir", dir, MemoProcess.Executable, "train", "--model", model, "--seq", "64", "--batch", "2", "--curriculum", "0",
                "--eval-samples", "0", "--steps", "2", "--cp", "2", "--policy", policy, "--log", "cp.jsonl");
            Assert.True(run.Exit == 0, run.Stdout + run.Stderr);
            var log = MemoProcess.ReadLog(Path.Combine(dir, "cp.jsonl"));
            Assert.Equal(2, log.Count);

            var output = new StringWriter();
            var options = new PlanCommand.PlanOptions
            {
                Model = model, Seq = "64", Batch = 2, Gpu = "cpu", Cp = 2, Threads = 1, Json = true, Strategies = [strategy],
            };
            Assert.Equal(0, PlanCommand.Run(options, output, new StringWriter()));
            var plan = JsonNode.Parse(output.ToString())!["strategies"]![0]!;
            Assert.Equal(policy == "recompute" ? 2 : 0, plan["recomputed_layers"]!.GetValue<int>());
            long ringBytes = plan["time"]!["ring_bytes_per_step"]!.GetValue<long>();
            long peak = plan["device_peak_bytes"]!.GetValue<long>();
            foreach (var step in log)
            {
                Assert.Equal(ringBytes, step["ring_bytes"]!.GetValue<long>());
                Assert.Equal(peak, step["device_peak_bytes"]!.GetValue<long>());
            }
            // The plan's total adds the gradient all-reduce over the two ranks (the whole gradient once for N = 2).
            Assert.Equal(ringBytes + plan["time"]!["allreduce_bytes_per_step"]!.GetValue<long>(), plan["time"]!["communicated_bytes_per_step"]!.GetValue<long>());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
