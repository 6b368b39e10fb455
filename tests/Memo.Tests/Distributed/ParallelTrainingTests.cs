using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Memo.Tests.Cli;

namespace Memo.Tests.Distributed;

/// <summary>
/// <c>memo train</c> and <c>memo eval</c> over 2 MPI ranks (mpiexec -n 2, one thread each) against one
/// process: context parallel (--cp 2, ring attention, zig-zag rows, global positions) for llama (GQA,
/// RoPE) and gpt2 (learned positions) under keep and memo; 2 data-parallel ranks against --grad-accum 2;
/// bit-identical repeats; checkpoints that resume across rank counts; a killed rank; one-line errors.
/// Tiny models and 64-token sequences keep each case to a few seconds.
/// </summary>
[Collection("mpi")]
public sealed class ParallelTrainingTests
{
    private const double Tolerance = 1e-5;

    private static readonly string[] Tiny = ["--seq", "64", "--batch", "2", "--curriculum", "0", "--eval-samples", "0"];

    private static string Text => string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. ", 8));

    private static (int Exit, string Stdout, string Stderr) Mpi2(string dir, params string[] args)
    {
        var all = new List<string> { "-wdir", dir, MemoProcess.Executable };
        all.AddRange(args);
        var r = Mpi.Run(2, 240, [.. all]);
        return (r.Exit, r.Stdout, r.Stderr);
    }

    private static string Init(string dir, string model)
    {
        var r = MemoProcess.Run(dir, "train", "--model", model, "--steps", "0", "--seq", "64", "--save", "init");
        Assert.True(r.Exit == 0, r.Stderr);
        File.WriteAllText(Path.Combine(dir, "text.txt"), Text);
        return "init";
    }

    private static double Loss(string stdout) => JsonNode.Parse(stdout.Trim().Split('\n')[^1])!["loss"]!.GetValue<double>();

    private static double Rel(double a, double b) => Math.Abs(a - b) / Math.Max(Math.Abs(b), 1e-30);

    /// <summary>The same parameters, each gradient of the cp2 run within <see cref="Tolerance"/> of one process's (relative to its largest entry).</summary>
    private static void AssertSameGradients(Dictionary<string, float[]> one, Dictionary<string, float[]> two)
    {
        Assert.Equal(one.Keys.Order(), two.Keys.Order());
        foreach (var (name, x) in one)
        {
            double err = SafeTensorsF32.RelErr(two[name], x);
            Assert.True(err < Tolerance, $"{name}: max |cp2 - one| / max |one| = {err:E2}");
        }
    }

    [MpiTheory]
    [InlineData("llama-tiny", "keep")]
    [InlineData("llama-tiny", "memo")]
    [InlineData("gpt2-tiny", "keep")]
    [InlineData("gpt2-tiny", "memo")]
    public void Cp2_loss_and_every_gradient_match_one_process(string model, string policy)
    {
        string dir = MemoProcess.TempDir();
        string init = Init(dir, model);
        string[] common = ["eval", "--checkpoint", init, "--data", "text.txt", "--seq", "64", "--batch", "2", "--json", "--policy", policy,
            .. policy == "memo" ? new[] { "--alpha", "0.5" } : []];
        var one = MemoProcess.Run(dir, [.. common, "--grads", "one.safetensors"]);
        Assert.True(one.Exit == 0, one.Stderr);
        var two = Mpi2(dir, [.. common, "--cp", "2", "--grads", "two.safetensors"]);
        Assert.True(two.Exit == 0, two.Stdout + two.Stderr);
        Assert.True(Rel(Loss(two.Stdout), Loss(one.Stdout)) < Tolerance, $"loss {Loss(two.Stdout)} vs {Loss(one.Stdout)}");
        AssertSameGradients(SafeTensorsF32.Read(Path.Combine(dir, "one.safetensors")), SafeTensorsF32.Read(Path.Combine(dir, "two.safetensors")));
        Directory.Delete(dir, recursive: true);
    }

    [MpiFact]
    public void Cp2_with_dynamic_rope_scaling_uses_the_global_length_and_matches_one_process()
    {
        // Dynamic NTK scaling raises theta once the sequence passes original_max_position_embeddings
        // (32 here): at T = 64 it is active, while each rank's T/C = 32 rows alone would leave it off.
        string dir = MemoProcess.TempDir();
        File.WriteAllText(Path.Combine(dir, "text.txt"), Text);
        string[] make = ["train", "--model", "llama-tiny", "--steps", "0", "--seq", "64"];
        var init = MemoProcess.Run(dir, [.. make, "--rope-scaling", "dynamic:factor=4,original_max_position_embeddings=32", "--save", "dyn"]);
        Assert.True(init.Exit == 0, init.Stderr);
        var plain = MemoProcess.Run(dir, [.. make, "--save", "plain"]);
        Assert.True(plain.Exit == 0, plain.Stderr);
        string[] eval = ["eval", "--data", "text.txt", "--seq", "64", "--batch", "2", "--json"];
        var one = MemoProcess.Run(dir, [.. eval, "--checkpoint", "dyn", "--grads", "one.safetensors"]);
        Assert.True(one.Exit == 0, one.Stderr);
        var unscaled = MemoProcess.Run(dir, [.. eval, "--checkpoint", "plain", "--grads", "plain.safetensors"]);
        Assert.True(unscaled.Exit == 0, unscaled.Stderr);
        var a = SafeTensorsF32.Read(Path.Combine(dir, "one.safetensors"));
        // Same weights (same seed), so the gradients differ only by the scaling: a rank that scaled by its own
        // T/C rows would get the unscaled gradients, so they must be far outside the tolerance.
        var p = SafeTensorsF32.Read(Path.Combine(dir, "plain.safetensors"));
        double off = a.Max(t => SafeTensorsF32.RelErr(p[t.Key], t.Value));
        Assert.True(off > 100 * Tolerance, $"dynamic scaling is not active at T = 64: gradients differ from unscaled ones by {off:E2} only");
        var two = Mpi2(dir, [.. eval, "--checkpoint", "dyn", "--cp", "2", "--grads", "two.safetensors"]);
        Assert.True(two.Exit == 0, two.Stdout + two.Stderr);
        Assert.True(Rel(Loss(two.Stdout), Loss(one.Stdout)) < Tolerance, $"loss {Loss(two.Stdout)} vs {Loss(one.Stdout)}");
        AssertSameGradients(a, SafeTensorsF32.Read(Path.Combine(dir, "two.safetensors")));
        Directory.Delete(dir, recursive: true);
    }

    [MpiFact]
    public void Cp2_through_a_length_curriculum_with_dynamic_rope_matches_one_process_at_every_stage()
    {
        // Each stage changes T, so each rank's global positions change (chunks of 8, 16, then 32 tokens): the RoPE
        // table a rank keeps for its rows must follow, with the frequencies of the largest T (dynamic scaling on).
        string dir = MemoProcess.TempDir();
        string[] args = ["train", "--model", "llama-tiny", "--seq", "128", "--batch", "2", "--curriculum", "32x2,64x2", "--eval-samples", "0", "--steps", "6",
            "--rope-scaling", "dynamic:factor=4,original_max_position_embeddings=64"];
        var one = MemoProcess.Run(dir, [.. args, "--log", "one.jsonl"]);
        Assert.True(one.Exit == 0, one.Stderr);
        var two = Mpi2(dir, [.. args, "--cp", "2", "--log", "cp.jsonl"]);
        Assert.True(two.Exit == 0, two.Stdout + two.Stderr);
        var l1 = MemoProcess.ReadLog(Path.Combine(dir, "one.jsonl"));
        var l2 = MemoProcess.ReadLog(Path.Combine(dir, "cp.jsonl"));
        Assert.Equal([32, 32, 64, 64, 128, 128], l2.Select(l => l["seq"]!.GetValue<int>()));
        for (int i = 0; i < 6; i++)
        {
            double a = l1[i]["loss"]!.GetValue<double>(), b = l2[i]["loss"]!.GetValue<double>();
            Assert.True(Rel(b, a) < Tolerance, $"step {i + 1} (T = {l1[i]["seq"]}): loss {b} vs {a}");
        }
        Directory.Delete(dir, recursive: true);
    }

    [MpiFact]
    public void Cp2_training_losses_match_one_process_and_repeat_bit_identically()
    {
        string dir = MemoProcess.TempDir();
        string[] args = ["train", "--model", "llama-tiny", .. Tiny, "--steps", "3"];
        var one = MemoProcess.Run(dir, [.. args, "--log", "one.jsonl"]);
        Assert.True(one.Exit == 0, one.Stderr);
        var r1 = Mpi2(dir, [.. args, "--cp", "2", "--log", "cp1.jsonl", "--save", "cp1"]);
        Assert.True(r1.Exit == 0, r1.Stdout + r1.Stderr);
        var r2 = Mpi2(dir, [.. args, "--cp", "2", "--log", "cp2.jsonl", "--save", "cp2"]);
        Assert.True(r2.Exit == 0, r2.Stdout + r2.Stderr);
        var l1 = MemoProcess.ReadLog(Path.Combine(dir, "one.jsonl"));
        var lc = MemoProcess.ReadLog(Path.Combine(dir, "cp1.jsonl"));
        var lc2 = MemoProcess.ReadLog(Path.Combine(dir, "cp2.jsonl"));
        Assert.Equal(3, lc.Count); // rank 0 alone writes the log
        for (int i = 0; i < 3; i++)
        {
            double a = l1[i]["loss"]!.GetValue<double>(), b = lc[i]["loss"]!.GetValue<double>();
            Assert.True(Rel(b, a) < Tolerance, $"step {i + 1}: loss {b} vs {a}");
            Assert.Equal(lc[i]["loss"]!.GetValue<double>(), lc2[i]["loss"]!.GetValue<double>());
            Assert.Equal(lc[i]["grad_norm"]!.GetValue<double>(), lc2[i]["grad_norm"]!.GetValue<double>());
        }
        // Same weights to the bit (the files' headers differ only in each save's checkpoint id).
        using (var w1 = Memo.Model.IO.SafeTensorsReader.Open(Path.Combine(dir, "cp1", "model.safetensors")))
        using (var w2 = Memo.Model.IO.SafeTensorsReader.Open(Path.Combine(dir, "cp2", "model.safetensors")))
        {
            Assert.Equal(w1.Tensors.Select(t => t.Name), w2.Tensors.Select(t => t.Name));
            foreach (var t in w1.Tensors) Assert.Equal(w1.ReadF32(t.Name), w2.ReadF32(t.Name));
        }
        Directory.Delete(dir, recursive: true);
    }

    [MpiFact]
    public void Two_data_parallel_ranks_match_one_process_with_grad_accum_2()
    {
        string dir = MemoProcess.TempDir();
        string[] args = ["train", "--model", "llama-tiny", .. Tiny, "--steps", "3"];
        var one = MemoProcess.Run(dir, [.. args, "--grad-accum", "2", "--log", "one.jsonl"]);
        Assert.True(one.Exit == 0, one.Stderr);
        var dp = Mpi2(dir, [.. args, "--cp", "1", "--check-replicas", "1", "--log", "dp.jsonl"]);
        Assert.True(dp.Exit == 0, dp.Stdout + dp.Stderr);
        var a = MemoProcess.ReadLog(Path.Combine(dir, "one.jsonl"));
        var b = MemoProcess.ReadLog(Path.Combine(dir, "dp.jsonl"));
        Assert.Equal(3, b.Count);
        for (int i = 0; i < 3; i++)
        {
            foreach (var field in new[] { "loss", "grad_norm" })
            {
                double x = a[i][field]!.GetValue<double>(), y = b[i][field]!.GetValue<double>();
                Assert.True(Rel(y, x) < Tolerance, $"step {i + 1}: {field} {y} vs {x}");
            }
        }
        Directory.Delete(dir, recursive: true);
    }

    [MpiFact]
    public void A_checkpoint_resumes_across_rank_counts()
    {
        string dir = MemoProcess.TempDir();
        string[] args = ["train", "--model", "llama-tiny", .. Tiny];
        string[] resume = ["--steps", "4", "--reschedule", "--eval-samples", "0"];
        // The reference: one process trains 2 steps, then resumes to step 4 (--reschedule stretches the schedule).
        var r0 = MemoProcess.Run(dir, [.. args, "--steps", "2", "--checkpoint", "ck0"]);
        Assert.True(r0.Exit == 0, r0.Stderr);
        var r1 = MemoProcess.Run(dir, ["train", "--resume", "ck0", .. resume, "--log", "from0.jsonl"]);
        Assert.True(r1.Exit == 0, r1.Stderr);
        // Two ranks write the checkpoint, one process resumes it ...
        var a = Mpi2(dir, [.. args, "--cp", "2", "--steps", "2", "--checkpoint", "ck2"]);
        Assert.True(a.Exit == 0, a.Stdout + a.Stderr);
        var b = MemoProcess.Run(dir, ["train", "--resume", "ck2", .. resume, "--log", "from2.jsonl"]);
        Assert.True(b.Exit == 0, b.Stderr);
        // ... and the other way round.
        var c = MemoProcess.Run(dir, [.. args, "--steps", "2", "--checkpoint", "ck1"]);
        Assert.True(c.Exit == 0, c.Stderr);
        var d = Mpi2(dir, ["train", "--resume", "ck1", "--cp", "2", .. resume, "--log", "from1.jsonl"]);
        Assert.True(d.Exit == 0, d.Stdout + d.Stderr);
        var want = MemoProcess.ReadLog(Path.Combine(dir, "from0.jsonl"));
        foreach (var log in new[] { "from2.jsonl", "from1.jsonl" })
        {
            var got = MemoProcess.ReadLog(Path.Combine(dir, log));
            Assert.Equal([3L, 4L], got.Select(l => l["step"]!.GetValue<long>()));
            for (int i = 0; i < 2; i++)
            {
                double x = want[i]["loss"]!.GetValue<double>(), y = got[i]["loss"]!.GetValue<double>();
                Assert.True(Rel(y, x) < Tolerance, $"{log} step {i + 3}: loss {y} vs {x}");
            }
        }
        Directory.Delete(dir, recursive: true);
    }

    [MpiFact]
    public void Killing_one_training_rank_stops_the_other_non_zero_within_30_seconds_with_one_line()
    {
        // As the README runs it: memo launch starts the ranks with mpiexec and outlives them (Hydra SIGKILLs the
        // surviving ranks moments after one dies, so no rank can be sure to print), then names the rank that ended first.
        string dir = MemoProcess.TempDir();
        var psi = new ProcessStartInfo(MemoProcess.Executable) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
        foreach (var x in new[] { "launch", "-n", "2", "--mpiexec", Mpi.Exec!, "--", "train", "--model", "llama-tiny", "--seq", "256", "--curriculum", "0",
                     "--eval-samples", "0", "--steps", "100000", "--cp", "2", "--comm-timeout", "20", "--log", "run.jsonl", "--checkpoint", "ck", "--checkpoint-every", "1" })
            psi.ArgumentList.Add(x);
        psi.Environment["MEMO_THREADS"] = "1";
        using var job = Process.Start(psi)!;
        var stdout = job.StandardOutput.ReadToEndAsync();
        var stderr = job.StandardError.ReadToEndAsync();
        try
        {
            string log = Path.Combine(dir, "run.jsonl");
            var until = DateTime.UtcNow.AddSeconds(120);
            string ck = Path.Combine(dir, "ck");
            // Kill once step 2 is logged: its checkpoint or step 1's is in place (each is written whole, then renamed).
            while (DateTime.UtcNow < until && !(File.Exists(log) && File.ReadAllLines(log).Length >= 2 && Directory.Exists(ck))) Thread.Sleep(100);
            Assert.True(Directory.Exists(ck), "training did not start");
            int victim = Ranks.Find(job.Id, rank: 1);
            var sw = Stopwatch.StartNew();
            Process.GetProcessById(victim).Kill();
            bool ended = job.WaitForExit(TimeSpan.FromSeconds(60));
            Assert.True(ended && sw.Elapsed.TotalSeconds < 30, $"still running {sw.Elapsed.TotalSeconds:0.0} s after rank 1 was killed");
            job.WaitForExit();
            string all = stdout.Result + stderr.Result;
            Assert.True(job.ExitCode == 3, $"exit {job.ExitCode} after a rank was killed\n{all}");
            var line = Assert.Single(stderr.Result.Split('\n'), l => l.StartsWith("memo launch:", StringComparison.Ordinal));
            Assert.Matches($@"^memo launch: the job stopped early \(mpiexec exit code \d+\): rank 1 of 2 \(pid {victim}\) ended first, without finishing \(killed or crashed\), and mpiexec stopped the others; the last checkpoint ck \(step \d+\) is intact; continue with --resume$", line);
            // The checkpoint it names loads.
            File.WriteAllText(Path.Combine(dir, "text.txt"), Text);
            var resume = MemoProcess.Run(dir, "eval", "--checkpoint", "ck", "--data", "text.txt", "--seq", "64", "--json");
            Assert.True(resume.Exit == 0, resume.Stderr);
        }
        finally
        {
            if (!job.HasExited) job.Kill(entireProcessTree: true);
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(new[] { "launch", "-n", "2" }, "give the command after --")]
    [InlineData(new[] { "launch", "-n", "0", "--", "train" }, "-n must be at least 1")]
    [InlineData(new[] { "launch", "-n", "2", "--", "plan" }, "launch runs memo train or memo eval")]
    [InlineData(new[] { "launch", "-n", "2", "--mpiexec", "/nonexistent/mpiexec", "--", "train" }, "--mpiexec: '/nonexistent/mpiexec' does not exist")]
    [InlineData(new[] { "launch", "-n", "2", "--mpiexec", "/proc/version", "--", "train" }, "launch: cannot run '/proc/version'")]
    public void Launch_bad_input_is_one_line(string[] args, string expected)
    {
        var r = MemoProcess.Run(MemoProcess.TempDir(), args);
        Assert.Equal(2, r.Exit);
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(expected, line, StringComparison.Ordinal);
    }

    [MpiFact]
    public void A_rank_count_that_is_not_a_multiple_of_cp_is_one_line_before_any_work()
    {
        string dir = MemoProcess.TempDir();
        var r = Mpi.Run(3, 120, MemoProcess.Executable, "train", "--model", "llama-tiny", "--cp", "2", "--seq", "64", "--log", Path.Combine(dir, "x.jsonl"));
        Assert.Equal(2, r.Exit);
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("memo: 3 ranks do not split into context-parallel groups of 2; launch a multiple of 2 ranks (mpiexec -n 2, 4, ...)", line);
        Assert.False(File.Exists(Path.Combine(dir, "x.jsonl")));
        Directory.Delete(dir, recursive: true);
    }

    [Theory]
    [InlineData(new[] { "train", "--model", "llama-tiny", "--cp", "2", "--seq", "66" }, "sequence length 66 does not split into 4 equal chunks for 2 context-parallel ranks")]
    [InlineData(new[] { "train", "--model", "llama-tiny", "--cp", "2", "--seq", "64" }, "--cp 2 splits each sequence over 2 processes: launch them with mpiexec -n 2")]
    [InlineData(new[] { "train", "--model", "llama-tiny", "--cp", "0" }, "--cp must be at least 1")]
    [InlineData(new[] { "train", "--model", "llama-tiny", "--cp", "2", "--seq", "64", "--curriculum", "18x5" }, "curriculum stage 18x5 does not split into 4 equal chunks")]
    public void Bad_cp_input_is_one_line_and_exit_2(string[] args, string expected)
    {
        string dir = MemoProcess.TempDir();
        var r = MemoProcess.Run(dir, args);
        Assert.Equal(2, r.Exit);
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(expected, line);
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public void Dry_run_with_cp_2_reports_the_per_rank_plan_at_half_the_tokens()
    {
        string dir = MemoProcess.TempDir();
        var one = MemoProcess.Run(dir, "train", "--model", "llama-tiny", "--seq", "1024", "--dry-run");
        var two = MemoProcess.Run(dir, "train", "--model", "llama-tiny", "--seq", "1024", "--dry-run", "--cp", "2");
        Assert.True(one.Exit == 0 && two.Exit == 0, one.Stderr + two.Stderr);
        Assert.Contains("per rank: 2 context-parallel ranks, 1 x 512 of the 1 x 1024 tokens each", two.Stdout);
        Assert.Contains("1 x 512 tokens", two.Stdout);
        static double Kept(string s) => Sizes.ParseBytes(s.Split('\n').First(l => l.Contains("kept activations", StringComparison.Ordinal)).Split("activations")[1].Trim().Replace(" ", "", StringComparison.Ordinal), "kept");
        Assert.Equal(Kept(one.Stdout) / 2, Kept(two.Stdout), 0.01 * Kept(two.Stdout));
        Directory.Delete(dir, recursive: true);
    }

    [MpiFact]
    public void Dry_run_under_mpiexec_reports_once_from_rank_0()
    {
        string dir = MemoProcess.TempDir();
        var r = Mpi2(dir, "train", "--model", "llama-tiny", "--seq", "1024", "--dry-run", "--cp", "2");
        Assert.True(r.Exit == 0, r.Stdout + r.Stderr);
        string all = r.Stdout + r.Stderr;
        Assert.Single(all.Split('\n'), l => l.Contains("per rank: 2 context-parallel ranks", StringComparison.Ordinal));
        Assert.Single(all.Split('\n'), l => l.StartsWith("model ", StringComparison.Ordinal));
        Directory.Delete(dir, recursive: true);
    }
}

/// <summary>Finds the process of one rank below an mpiexec process (Hydra: mpiexec, its proxy, then the ranks).</summary>
internal static class Ranks
{
    public static int Find(int launcher, int rank)
    {
        var pending = new Queue<int>([launcher]);
        var children = new Dictionary<int, List<int>>();
        foreach (var d in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(d), out int pid)) continue;
            try
            {
                string stat = File.ReadAllText(Path.Combine(d, "stat"));
                int ppid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
                if (!children.TryGetValue(ppid, out var list)) children[ppid] = list = [];
                list.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        while (pending.Count > 0)
        {
            int p = pending.Dequeue();
            try
            {
                string env = File.ReadAllText($"/proc/{p}/environ");
                if (env.Split('\0').Contains($"PMI_RANK={rank}")) return p;
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            foreach (int c in children.GetValueOrDefault(p) ?? []) pending.Enqueue(c);
        }
        throw new InvalidOperationException($"no process of rank {rank} below pid {launcher}");
    }
}

/// <summary>Float32 tensors of a safetensors file, by name (the format memo writes: 8-byte header length, JSON header, data).</summary>
internal static class SafeTensorsF32
{
    public static Dictionary<string, float[]> Read(string path)
    {
        byte[] all = File.ReadAllBytes(path);
        long n = BitConverter.ToInt64(all, 0);
        var header = JsonDocument.Parse(all.AsMemory(8, (int)n));
        var result = new Dictionary<string, float[]>();
        foreach (var p in header.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__") continue;
            Assert.Equal("F32", p.Value.GetProperty("dtype").GetString());
            var off = p.Value.GetProperty("data_offsets");
            long s = off[0].GetInt64(), e = off[1].GetInt64();
            var f = new float[(e - s) / 4];
            Buffer.BlockCopy(all, (int)(8 + n + s), f, 0, (int)(e - s));
            result[p.Name] = f;
        }
        return result;
    }

    /// <summary>max |got - want| / max |want|.</summary>
    public static double RelErr(float[] got, float[] want)
    {
        Assert.Equal(want.Length, got.Length);
        double err = 0, max = 0;
        for (int i = 0; i < want.Length; i++)
        {
            err = Math.Max(err, Math.Abs((double)got[i] - want[i]));
            max = Math.Max(max, Math.Abs(want[i]));
        }
        return max == 0 ? err : err / max;
    }
}
