using BenchmarkDotNet.Running;

namespace Memo.Benchmarks;

public static class Program
{
    private const string Usage = """
        usage: Memo.Benchmarks <command> [options]
          matmul [--sizes 1024,2048,4096] [--threads 2] [--reps 5] [--no-gpt2] [--clock wall|cpu] [--out FILE.md]
                 Memo's CPU GEMM vs OpenBLAS cblas_sgemm, median GFLOP/s per shape
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
