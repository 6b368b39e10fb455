using BenchmarkDotNet.Running;

namespace Memo.Benchmarks;

public static class Program
{
    private const string Usage = """
        usage: Memo.Benchmarks <command> [options]
          matmul [--sizes 1024,2048,4096] [--threads 2] [--reps 5] [--no-gpt2] [--clock wall|cpu] [--out FILE.md]
                 Memo's CPU GEMM vs OpenBLAS cblas_sgemm, median GFLOP/s per shape
          attention [--t 1024,4096,16384] [--d 64] [--heads 8] [--kv 8] [--batch 1] [--threads N] [--reps 5]
                 causal attention forward/backward, median time and GFLOP/s
          policies [--model llama-small] [--layers 8] [--seq 4096] [--batch 1] [--rounds 5] [--out FILE.md]
                 step time of keep / recompute / swap / memo, copy, exposed copy and recompute time
          gpt2 [--steps 5] [--threads 2] [--python /usr/bin/python3] [--out FILE.md]
                 GPT-2 124M training step (B=4, T=1024): Memo vs PyTorch, tokens/s and ratio
          minimalloc [--time-limit 60] [--only A,B] [--output FILE.md]
                 memo's planner on shared/benchmarks/minimalloc/challenging, next to minimalloc's figures
          plan-vs-measured [--configs llama-small:1024,llama-small:2048,llama-small:4096,gpt2-tiny:1024]
                 [--policies keep,recompute,swap,memo] [--threads 2] [--rounds 5] [--calibrate-seconds 0.1] [--clock wall|thread] [--out FILE.md]
                 memo plan --gpu cpu --measure vs measured training steps: step time ratio and device peak
          tokenize [--size 1GB] [--slice 32MB] [--rounds 3] [--tokenizer gpt2] [--work DIR] [--memo PATH] [--out FILE.md]
                 memo tokenize (MB/s, peak RSS) vs the tokenizer library's own EncodeToIds throughput
          bdn [BenchmarkDotNet args]   BenchmarkDotNet classes (default filter: all)
        """;

    public static int Main(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }
        try
        {
            switch (args[0])
            {
                case "matmul":
                    return MatmulBench.Run(args[1..]);
                case "attention":
                    return AttentionBench.Run(args[1..]);
                case "policies":
                    return PolicyBench.Run(args[1..]);
                case "gpt2":
                    return Gpt2StepBench.Run(args[1..]);
                case "minimalloc":
                    return MinimallocBench.Run(args[1..]);
                case "plan-vs-measured":
                    return PlanVsMeasuredBench.Run(args[1..]);
                case "tokenize":
                    return TokenizeBench.Run(args[1..]);
                case "bdn":
                    BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly)
                        .Run(args.Length > 1 ? args[1..] : ["--filter", "*"]);
                    return 0;
                default:
                    Console.Error.WriteLine($"unknown command '{args[0]}'");
                    Console.Error.WriteLine(Usage);
                    return 2;
            }
        }
        catch (MemoException e)
        {
            Console.Error.WriteLine(e.Message);
            return e.ExitCode;
        }
    }
}
