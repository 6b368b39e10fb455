using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Memo.Cpu;
using Memo.Model;
using Memo.Training;
using Memo.Training.Data;
using static Memo.Benchmarks.BenchUtil;

namespace Memo.Benchmarks;

/// <summary>
/// One GPT-2 124M training step (B=4, T=1024: forward, backward, clipping, AdamW) in Memo and in PyTorch
/// (bench/pytorch/gpt2_step.py, same shapes and thread count), run one after the other in one invocation.
/// PyTorch gets transparent huge pages for its buffers (GLIBC_TUNABLES=glibc.malloc.hugetlb=1), as Memo's
/// arena has them. Reports median step time, tokens/s of both and the ratio.
/// </summary>
internal static class Gpt2StepBench
{
    public static int Run(string[] args)
    {
        int steps = IntArg(args, "--steps", 5);
        int warmup = IntArg(args, "--warmup", 2);
        int threads = IntArg(args, "--threads", 2);
        int batch = IntArg(args, "--batch", 4);
        int seq = IntArg(args, "--seq", 1024);
        string python = Arg(args, "--python") ?? "/usr/bin/python3";
        string script = Arg(args, "--script") ?? FindScript();
        bool skipTorch = args.Contains("--no-pytorch");

        // Memo
        WorkerPool.SetDefaultThreads(threads);
        Presets.TryGet("gpt2", out var cfg);
        var rng = new SplitMix64(1337);
        var tokens = Enumerable.Range(0, (steps + warmup) * batch * seq + 1).Select(_ => (int)(rng.Next() % (ulong)cfg.VocabSize)).ToArray();
        var memoMs = new List<double>();
        using (var model = new Transformer(cfg, batch, seq))
        using (var trainer = new Trainer(model, new MemoryTokenSource(tokens, cfg.VocabSize), new TrainHyper { LearningRate = 6e-4, WarmupSteps = 1, TotalSteps = 100 }, batch, seq, 1))
        {
            Initializer.Initialize(model, 1337);
            for (int s = 0; s < warmup + steps; s++)
            {
                var m = trainer.TrainStep();
                Console.Error.WriteLine($"memo step {s}: {F(m.StepMs)} ms, loss {F(m.Loss, "0.0000")}{(s < warmup ? " (warm-up)" : "")}");
                if (s >= warmup) memoMs.Add(m.StepMs);
            }
        }
        double memo = Median(memoMs);
        double memoTps = batch * seq / (memo / 1000);

        // PyTorch
        double torchMs = double.NaN, torchTps = double.NaN;
        string torchVersion = "not run";
        if (!skipTorch)
        {
            var psi = new ProcessStartInfo(python, [script, "--threads", threads.ToString(), "--batch", batch.ToString(), "--seq", seq.ToString(), "--steps", steps.ToString(), "--warmup", warmup.ToString()])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = false,
            };
            psi.Environment["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1";
            psi.Environment.Remove("OPENBLAS_CORETYPE");
            using var p = Process.Start(psi) ?? throw new MemoException($"could not start {python}");
            string stdout = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            var line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.TrimStart().StartsWith('{'));
            if (p.ExitCode != 0 || line == null) throw new MemoException($"the PyTorch baseline failed (exit {p.ExitCode}); run '{python} {script}' to see why, or pass --no-pytorch");
            var o = JsonNode.Parse(line)!.AsObject();
            torchMs = o["step_ms_median"]!.GetValue<double>();
            torchTps = o["tokens_per_s"]!.GetValue<double>();
            torchVersion = o["torch"]!.GetValue<string>();
        }
        var sb = new StringBuilder();
        sb.AppendLine($"### GPT-2 124M training step, B={batch}, T={seq}, {threads} threads");
        sb.AppendLine();
        sb.AppendLine($"Machine: {Machine()}. {steps} timed steps after {warmup} warm-up steps, medians. PyTorch {torchVersion} with GLIBC_TUNABLES=glibc.malloc.hugetlb=1.");
        sb.AppendLine();
        sb.AppendLine("| implementation | step ms (median) | tokens/s | vs PyTorch |");
        sb.AppendLine("|---|---|---|---|");
        sb.AppendLine($"| Memo | {F(memo)} | {F(memoTps)} | {F(memoTps / torchTps, "0.00")}x |");
        sb.AppendLine($"| PyTorch | {F(torchMs)} | {F(torchTps)} | 1.00x |");
        Emit(args, sb.ToString());
        return 0;
    }

    private static string FindScript()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "bench", "pytorch", "gpt2_step.py");
            if (File.Exists(candidate)) return candidate;
        }
        throw new MemoException("bench/pytorch/gpt2_step.py not found; pass --script PATH");
    }
}
