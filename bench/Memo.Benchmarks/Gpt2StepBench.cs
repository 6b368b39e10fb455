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
/// (bench/pytorch/gpt2_step.py, same shapes and thread count), alternated A B A B: both are warmed up,
/// then each round runs <c>--steps</c> Memo steps and then as many PyTorch steps in a PyTorch process kept
/// alive for the whole run (its --serve mode), so both see the same machine load. PyTorch gets transparent
/// huge pages for its buffers (GLIBC_TUNABLES=glibc.malloc.hugetlb=1), as Memo's arena has them, and runs
/// with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, so OpenBLAS picks its own kernels. Reports medians
/// with their spread, the ratio of medians and the per-round ratios, the load, and the BLAS PyTorch loaded.
/// </summary>
internal static class Gpt2StepBench
{
    public static int Run(string[] args)
    {
        int rounds = IntArg(args, "--rounds", 5);
        int steps = IntArg(args, "--steps", 1);
        int warmup = IntArg(args, "--warmup", 2);
        int threads = IntArg(args, "--threads", 2);
        int batch = IntArg(args, "--batch", 4);
        int seq = IntArg(args, "--seq", 1024);
        bool skipTorch = args.Contains("--no-pytorch");
        string python = Arg(args, "--python") ?? "/usr/bin/python3";
        string? script = skipTorch ? null : Arg(args, "--script") ?? FindScript();
        string loadStart = LoadAverage();

        WorkerPool.SetDefaultThreads(threads);
        Presets.TryGet("gpt2", out var cfg);
        var rng = new SplitMix64(1337);
        int memoSteps = warmup + rounds * steps;
        var tokens = Enumerable.Range(0, memoSteps * batch * seq + 1).Select(_ => (int)(rng.Next() % (ulong)cfg.VocabSize)).ToArray();
        var memoMs = new List<double>();
        var torchMs = new List<double>();
        var roundRatios = new List<double>();
        JsonObject? torchInfo = null;

        using var model = new Transformer(cfg, batch, seq);
        using var trainer = new Trainer(model, new MemoryTokenSource(tokens, cfg.VocabSize), new TrainHyper { LearningRate = 6e-4, WarmupSteps = 1, TotalSteps = 100 }, batch, seq, 1);
        Initializer.Initialize(model, 1337);
        for (int s = 0; s < warmup; s++)
        {
            var m = trainer.TrainStep();
            Console.Error.WriteLine($"memo warm-up step {s}: {F(m.StepMs)} ms, loss {F(m.Loss, "0.0000")}");
        }

        using var torch = skipTorch ? null : TorchServer.Start(python, script!, threads, batch, seq, warmup);
        if (torch != null)
        {
            torchInfo = torch.Info;
            Console.Error.WriteLine($"pytorch ready: {torchInfo.ToJsonString()}");
        }
        for (int r = 0; r < rounds; r++)
        {
            var memoRound = new List<double>();
            for (int s = 0; s < steps; s++) memoRound.Add(trainer.TrainStep().StepMs);
            memoMs.AddRange(memoRound);
            Console.Error.WriteLine($"round {r}: memo {string.Join(", ", memoRound.Select(x => F(x)))} ms");
            if (torch == null) continue;
            var torchRound = torch.Steps(steps);
            torchMs.AddRange(torchRound);
            roundRatios.Add(Median(torchRound) / Median(memoRound));
            Console.Error.WriteLine($"round {r}: pytorch {string.Join(", ", torchRound.Select(x => F(x)))} ms");
        }

        double memo = Median(memoMs), pt = torch == null ? double.NaN : Median(torchMs);
        double tokensPerStep = (double)batch * seq;
        var sb = new StringBuilder();
        sb.AppendLine($"### GPT-2 124M training step, B={batch}, T={seq}, {threads} threads");
        sb.AppendLine();
        sb.AppendLine($"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; machine: {Machine()}; shared with other work while measured");
        sb.AppendLine($"- command: `Memo.Benchmarks gpt2 {string.Join(' ', args)}` (bench/run-cpu.sh)");
        sb.AppendLine($"- {warmup} warm-up steps each, then {rounds} rounds of {steps} Memo step(s) followed by {steps} PyTorch step(s) (A B A B); figures are median (min-max) over all timed steps");
        sb.AppendLine($"- load average (1, 5, 15 min): {loadStart} at start, {LoadAverage()} at end");
        if (torchInfo != null)
        {
            sb.AppendLine($"- PyTorch {torchInfo["torch"]}, environment GLIBC_TUNABLES={torchInfo["hugepages"]}, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset");
            sb.AppendLine($"- PyTorch BLAS: build {torchInfo["blas"]?["config"]}; loaded (threadpoolctl): {torchInfo["blas"]?["threadpoolctl"]?.ToJsonString()}");
        }
        else
        {
            sb.AppendLine("- PyTorch not run (--no-pytorch)");
        }
        sb.AppendLine();
        sb.AppendLine("| implementation | step ms | tokens/s (at median) | vs PyTorch (ratio of medians) |");
        sb.AppendLine("|---|---|---|---|");
        sb.AppendLine($"| Memo | {MedianSpread(memoMs)} | {F(tokensPerStep / (memo / 1000))} | {(torch == null ? "n/a" : F(pt / memo, "0.00") + "x")} |");
        if (torch != null) sb.AppendLine($"| PyTorch | {MedianSpread(torchMs)} | {F(tokensPerStep / (pt / 1000))} | 1.00x |");
        if (roundRatios.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine($"Per-round speed-up (PyTorch ms / Memo ms): {string.Join(", ", roundRatios.Select(x => F(x, "0.00")))}; median {F(Median(roundRatios), "0.00")}x.");
        }
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
        throw new MemoException("bench/pytorch/gpt2_step.py not found; pass --script PATH, or --no-pytorch to run Memo alone");
    }

    /// <summary>bench/pytorch/gpt2_step.py in --serve mode: warmed up once, then N steps per request.</summary>
    private sealed class TorchServer : IDisposable
    {
        private readonly Process _p;
        private readonly string _what;

        private TorchServer(Process p, string what, JsonObject info)
        {
            _p = p;
            _what = what;
            Info = info;
        }

        public JsonObject Info { get; }

        public static TorchServer Start(string python, string script, int threads, int batch, int seq, int warmup)
        {
            var psi = new ProcessStartInfo(python, [script, "--serve", "--threads", threads.ToString(), "--batch", batch.ToString(), "--seq", seq.ToString(), "--warmup", warmup.ToString()])
            {
                RedirectStandardOutput = true,
                RedirectStandardInput = true,
                RedirectStandardError = false,
            };
            psi.Environment["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1";
            psi.Environment.Remove("OPENBLAS_CORETYPE");
            psi.Environment.Remove("OPENBLAS_L2_SIZE");
            string what = $"{python} {script}";
            Process p;
            try
            {
                p = Process.Start(psi) ?? throw new MemoException($"could not start {python}; pass --python PATH or --no-pytorch");
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new MemoException($"could not start {python} ({e.Message}); pass --python PATH or --no-pytorch");
            }
            var info = ReadJson(p, what);
            return new TorchServer(p, what, info);
        }

        public List<double> Steps(int n)
        {
            _p.StandardInput.WriteLine(n.ToString(System.Globalization.CultureInfo.InvariantCulture));
            _p.StandardInput.Flush();
            var o = ReadJson(_p, _what);
            return o["steps_ms"]!.AsArray().Select(x => x!.GetValue<double>()).ToList();
        }

        private static JsonObject ReadJson(Process p, string what)
        {
            while (p.StandardOutput.ReadLine() is { } line)
            {
                if (line.TrimStart().StartsWith('{')) return JsonNode.Parse(line)!.AsObject();
            }
            p.WaitForExit();
            throw new MemoException($"the PyTorch baseline stopped (exit {p.ExitCode}); run '{what} --steps 1' to see why, or pass --no-pytorch");
        }

        public void Dispose()
        {
            try
            {
                _p.StandardInput.WriteLine("quit");
                _p.StandardInput.Close();
                if (!_p.WaitForExit(30_000)) _p.Kill();
            }
            catch (IOException)
            {
            }
            _p.Dispose();
        }
    }
}
