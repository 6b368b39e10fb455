using System.Text.Json.Nodes;
using Memo.CostModel;
using Memo.CostModel.Cpu;
using Memo.Cpu;
using Memo.Distributed;
using Memo.Model;
using Memo.Model.Memory;

namespace Memo.Tests.CostModel;

/// <summary>
/// <c>memo plan --gpu cpu --cp C [--dp D]</c> without MPI: the per-rank peak is the arena the ring's backend lays out
/// (what <c>memo train --cp C</c> and its --dry-run plan), the rank's attention share matches the zig-zag split,
/// --cp 1 is the one-process plan, and bad layouts are one-line errors. Against a real 2-rank run:
/// tests/Memo.Tests/Distributed/ContextParallelPlanMpiTests.cs.
/// </summary>
public sealed class ContextParallelPlanTests
{
    private static (int Code, string Out, string Err) Invoke(params string[] args) => PlanCommandTests.Invoke(args);

    private static JsonNode Strategy(string json, string name) =>
        JsonNode.Parse(json)!["strategies"]!.AsArray().First(s => s!["strategy"]!.GetValue<string>() == name)!;

    [Theory]
    [InlineData("llama-tiny", 2, 64, 2, 1, PolicyKind.Keep)]
    [InlineData("llama-small", 2, 256, 1, 2, PolicyKind.Memo)]
    [InlineData("gpt2-tiny", 4, 128, 1, 1, PolicyKind.Recompute)]
    [InlineData("llama-small", 3, 192, 2, 1, PolicyKind.Swap)]
    public void Per_rank_peak_is_the_arena_of_the_ring_backend(string name, int cp, int seq, int batch, int threads, PolicyKind policy)
    {
        // The backend memo train builds for a rank (and --dry-run builds with a stand-in ring): its workspace sizes the arena.
        var cfg = Presets.Resolve(name);
        using var pool = new WorkerPool(threads);
        using var cpu = new CpuBackend(pool);
        var ring = LocalGroup.Create(cp, TimeSpan.FromSeconds(1));
        try
        {
            using var backend = new ContextParallelBackend(cpu, ring[0], cfg, batch, seq / cp);
            var layout = MemoryLayout.Build(cfg, batch, seq / cp, policy, backend, cached: false);
            var planned = CpuRuntime.Memory(cfg, batch, seq, CpuRuntime.PolicyOf(policy, cfg.NumLayers), threads, cp);
            Assert.Equal(layout.TotalBytes, planned.Peak);
            // The ring's key/value and dK/dV blocks are in the workspace: a rank plans more than one process of T/C tokens.
            long oneProcess = MemoryLayout.Build(cfg, batch, seq / cp, policy, threads).TotalBytes;
            Assert.True(oneProcess < planned.Peak, $"{oneProcess} vs {planned.Peak}");
        }
        finally
        {
            foreach (var c in ring) c.Dispose();
        }
    }

    [Fact]
    public void Each_rank_attends_to_one_cth_of_the_causal_pairs()
    {
        // Count the (query, key) pairs each rank's zig-zag rows see: the pairs at or before each row's global position.
        const long T = 6144;
        foreach (int cp in new[] { 2, 3, 4 })
        {
            var zz = ZigZag.Create(T, cp);
            long total = T * (T + 1) / 2;
            for (int r = 0; r < cp; r++)
            {
                long pairs = 0;
                for (long t = 0; t < zz.LocalLen; t++) pairs += zz.GlobalPosition(r, t) + 1;
                // Balanced up to the diagonal chunks: within one chunk's length of total / C.
                Assert.InRange(pairs, total / cp - zz.Chunk, total / cp + zz.Chunk);
            }
        }
        // The time model gives a rank that share: its attention forward is 1/C of the one-process forward at the same rates.
        var cfg = Presets.Resolve("llama-small");
        var dev = DeviceProfile.Cpu() with { MemoryBandwidth = 1e15, IntraNodeBandwidth = 1e15 };
        var one = CpuTimeModel.LayerForward(cfg, 1, T, dev, 1, new ParallelLayout(1, 1, 1));
        foreach (int cp in new[] { 2, 4 })
        {
            // A huge link and fast passes: what is left is the GEMMs (1/C of the tokens) and attention (1/C of the pairs),
            // at the rank's share of the machine's cores (here every rank of 1 thread has min(C, cores)/C cores' worth).
            double share = CpuTimeModel.RankShare(dev, "gemm_efficiency", 1, cp);
            Assert.Equal(share, CpuTimeModel.RankShare(dev, "attention_forward_efficiency", 1, cp));
            double rank = CpuTimeModel.LayerForward(cfg, 1, T, dev, 1, new ParallelLayout(1, cp, 1));
            Assert.Equal(one / cp / share, rank, one * 1e-9);
        }
    }

    [Fact]
    public void Ranks_share_the_cores_and_a_measured_rate_is_one_ranks()
    {
        int cores = Environment.ProcessorCount;
        var assumed = DeviceProfile.Cpu();
        Assert.Equal(1, CpuTimeModel.RankShare(assumed, "gemm_efficiency", 1, 1)); // one process: the profile's rates as they are
        // The assumed rates are the whole machine's: two ranks that keep every core busy split it.
        Assert.Equal(0.5, CpuTimeModel.RankShare(assumed, "gemm_efficiency", cores, 2), 12);
        var measured = assumed with { Measured = ["gemm_efficiency"] };
        // A rate measured at the rank's threads holds while the ranks' threads fit the cores, and splits when they do not.
        Assert.Equal(1, CpuTimeModel.RankShare(measured, "gemm_efficiency", 1, Math.Min(2, cores)));
        Assert.Equal(0.5, CpuTimeModel.RankShare(measured, "gemm_efficiency", cores, 2), 12);
    }

    [Fact]
    public void A_slower_link_exposes_the_ring_and_the_all_reduce()
    {
        var cfg = Presets.Resolve("llama-small");
        var layout = new ParallelLayout(1, 2, 1);
        var fast = DeviceProfile.Cpu() with { IntraNodeBandwidth = 1e15 };
        var slow = fast with { IntraNodeBandwidth = 1e6 };
        var a = CpuTimeModel.Step(cfg, 1, 8192, MemoryPolicy.Keep, fast, 1, layout);
        var b = CpuTimeModel.Step(cfg, 1, 8192, MemoryPolicy.Keep, slow, 1, layout);
        Assert.Equal(a.LayerCommunicationBytes, b.LayerCommunicationBytes);
        Assert.Equal(a.DataParallelBytes, b.DataParallelBytes);
        Assert.True(a.LayerCommunication < 1e-6, $"{a.LayerCommunication}");
        // At 1 MB/s every byte is exposed: the step grows by the bytes sent over the link (the ring's forward and the
        // all-reduce fully; compute hides no more than the fast case's attention).
        Assert.True(b.Step - a.Step > 0.9 * b.CommunicatedBytes / 1e6, $"{b.Step - a.Step} s for {b.CommunicatedBytes} bytes");
        Assert.True(b.Step - a.Step <= b.CommunicatedBytes / 1e6 + 1e-3, $"{b.Step - a.Step} s for {b.CommunicatedBytes} bytes");
        // With one rank nothing is sent.
        var single = CpuTimeModel.Step(cfg, 1, 8192, MemoryPolicy.Keep, slow, 1, ParallelLayout.Single);
        Assert.Equal(0, single.CommunicatedBytes);
        Assert.Equal(0, single.LayerCommunication + single.DataParallel);
    }

    [Fact]
    public void Cp_1_is_the_one_process_plan()
    {
        string[] args = ["--model", "llama-small", "--seq", "512", "--gpu", "cpu", "--threads", "1", "--json"];
        var (c0, plain, _) = Invoke(args);
        var (c1, cp1, _) = Invoke([.. args, "--cp", "1", "--dp", "1"]);
        Assert.Equal(0, c0);
        Assert.Equal(0, c1);
        var cfg = Presets.Resolve("llama-small");
        foreach (var name in new[] { "memo", "megatron", "deepspeed", "keep" })
        {
            var p = Strategy(plain, name);
            var q = Strategy(cp1, name);
            Assert.Equal(p.ToJsonString(), q.ToJsonString());
            Assert.Null(p["time"]!["communicated_bytes_per_step"]); // one process sends nothing
            // The one-process figures: the engine's arena and the one-device time model.
            var policy = name switch { "keep" or "megatron" => MemoryPolicy.Keep, "deepspeed" => MemoryPolicy.Recompute(cfg.NumLayers), _ => null };
            if (policy is null) continue;
            Assert.Equal(MemoryLayout.Build(cfg, 1, 512, CpuRuntime.PolicyFor(policy, cfg.NumLayers), 1).TotalBytes, p["device_peak_bytes"]!.GetValue<long>());
            Assert.Equal(CpuTimeModel.Step(cfg, 1, 512, policy, DeviceProfile.Cpu(), 1).Step, p["step_seconds"]!.GetValue<double>(), 12);
        }
    }

    [Fact]
    public void The_plan_reports_per_rank_figures_and_the_threads_each_rank_gets()
    {
        var (code, json, _) = Invoke("--model", "llama-tiny", "--seq", "256", "--batch", "4", "--gpu", "cpu", "--cp", "2", "--dp", "2", "--json", "--strategy", "keep");
        Assert.Equal(0, code);
        var root = JsonNode.Parse(json)!;
        Assert.Equal(4, root["gpus"]!.GetValue<int>());
        Assert.Equal(Math.Max(1, Environment.ProcessorCount / 4), root["threads"]!.GetValue<int>());
        var keep = Strategy(json, "keep");
        Assert.Equal(2, keep["cp"]!.GetValue<int>());
        Assert.Equal(2, keep["dp"]!.GetValue<int>());
        var time = keep["time"]!;
        var cfg = Presets.Resolve("llama-tiny");
        // Each rank: 2 sequences (batch 4 over 2 data-parallel groups) of 128 tokens.
        Assert.Equal(CpuRuntime.Memory(cfg, 2, 256, MemoryPolicy.Keep, root["threads"]!.GetValue<int>(), 2).Peak, keep["device_peak_bytes"]!.GetValue<long>());
        long ring = time["ring_bytes_per_step"]!.GetValue<long>(), reduce = time["allreduce_bytes_per_step"]!.GetValue<long>();
        Assert.True(ring > 0 && reduce > 0);
        Assert.Equal(ring + reduce, time["communicated_bytes_per_step"]!.GetValue<long>());
        Assert.InRange(time["communication_exposed_s"]!.GetValue<double>(), 0, time["predicted_step_s"]!.GetValue<double>());
        // Four ranks on one machine: the node's host memory holds all four arenas.
        Assert.Equal(1, root["nodes"]!.GetValue<int>());
        var (_, table, _) = Invoke("--model", "llama-tiny", "--seq", "256", "--batch", "4", "--gpu", "cpu", "--cp", "2", "--dp", "2", "--strategy", "keep");
        Assert.Contains("per rank: 2 context-parallel x 2 data-parallel ranks", table, StringComparison.Ordinal);
        Assert.Contains(ring.ToString("N0", System.Globalization.CultureInfo.InvariantCulture), table, StringComparison.Ordinal);
    }

    [Fact]
    public void Max_seq_and_sweep_plan_per_rank()
    {
        var (c1, one, _) = Invoke("--model", "llama-tiny", "--gpu", "cpu", "--max-seq", "--strategy", "keep", "--json", "--device-memory", "64MiB", "--threads", "1");
        var (c2, two, _) = Invoke("--model", "llama-tiny", "--gpu", "cpu", "--max-seq", "--strategy", "keep", "--json", "--device-memory", "64MiB", "--threads", "1", "--cp", "2");
        Assert.Equal(0, c1);
        Assert.Equal(0, c2);
        long max1 = JsonNode.Parse(one)!["max_seq"]![0]!["max_seq"]!.GetValue<long>();
        long max2 = JsonNode.Parse(two)!["max_seq"]![0]!["max_seq"]!.GetValue<long>();
        Assert.True(max2 > max1, $"--cp 2 fits {max2} tokens, one process {max1}");
        var (c3, sweep, _) = Invoke("--model", "llama-tiny", "--gpu", "cpu", "--sweep-seq", "1K..4K", "--strategy", "keep", "--json", "--cp", "2", "--threads", "1");
        Assert.Equal(0, c3);
        var rows = JsonNode.Parse(sweep)!["sweep"]!.AsArray();
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.True(r!["strategies"]![0]!["time"]!["ring_bytes_per_step"]!.GetValue<long>() > 0));
    }

    [Theory]
    [InlineData("does not split into 6 equal chunks", "--seq", "100", "--cp", "3")]
    [InlineData("no tensor or pipeline parallelism", "--seq", "256", "--cp", "2", "--tp", "2")]
    [InlineData("no tensor or pipeline parallelism", "--seq", "256", "--pp", "2")]
    [InlineData("must be the number of ranks, --cp x --dp = 2", "--seq", "256", "--cp", "2", "--gpus", "4")]
    [InlineData("must be the number of ranks, --cp x --dp = 1", "--seq", "256", "--gpus", "2")]
    [InlineData("--cp must be at least 1", "--seq", "256", "--cp", "0")]
    [InlineData("--dp 2 does not divide --batch 1", "--seq", "256", "--dp", "2")]
    public void Bad_rank_layouts_are_one_line_with_exit_code_2(string expected, params string[] args)
    {
        var e = Assert.Throws<MemoException>(() => Invoke(["--model", "llama-tiny", "--gpu", "cpu", .. args]));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(2, e.ExitCode);
    }

    [Fact]
    public void Ranks_without_a_rank_to_rank_rate_are_one_line()
    {
        string file = Path.Combine(Path.GetTempPath(), $"memo-cp-profile-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{"intra_node_bandwidth": 0}""");
        try
        {
            var e = Assert.Throws<MemoException>(() => Invoke("--model", "llama-tiny", "--gpu", "cpu", "--seq", "256", "--cp", "2", "--device-profile", file));
            Assert.Contains("intra_node_bandwidth", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', e.Message);
            Assert.Equal(0, Invoke("--model", "llama-tiny", "--gpu", "cpu", "--seq", "256", "--device-profile", file, "--json").Code); // one process sends nothing
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Measuring_with_ranks_probes_the_rank_to_rank_rate()
    {
        var notes = new List<string>();
        var cfg = Presets.Resolve("llama-tiny");
        long block = CpuRuntime.RingBlockBytes(cfg, 1, 4096, 2);
        var p = new CpuMeasure(copyBytes: 4L << 20, minSeconds: 0.005, warmSeconds: 0.01)
            .Measure(DeviceProfile.Cpu(), new MeasureWorkload(cfg, 1, 2048, 1, block), notes);
        Assert.Contains("intra_node_bandwidth", p.Measured);
        Assert.True(p.IntraNodeBandwidth > 0 && double.IsFinite(p.IntraNodeBandwidth));
        Assert.Contains(notes, n => n.Contains("rank-to-rank proxy", StringComparison.Ordinal));
        // One rank: nothing to probe, the assumed figure stays.
        var q = new CpuMeasure(copyBytes: 4L << 20, minSeconds: 0.005, warmSeconds: 0.01)
            .Measure(DeviceProfile.Cpu(), new MeasureWorkload(cfg, 1, 256, 1), notes);
        Assert.DoesNotContain("intra_node_bandwidth", q.Measured);
    }
}
