using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Memo.Cpu;
using Memo.Cpu.Kernels;

namespace Memo.Benchmarks;

/// <summary>
/// <c>matmul</c>: Memo's <see cref="Gemm"/> against OpenBLAS <c>cblas_sgemm</c> on the same
/// operands, square sizes plus the GEMMs of a GPT-2 124M training step at B=4, T=1024
/// (forward y = x W^T, input gradient dx = dy W, weight gradient dW += dy^T x). Reports the
/// median GFLOP/s of each and their ratio as a markdown table.
/// </summary>
internal static unsafe class MatmulBench
{
    private readonly record struct Shape(string Name, bool TransA, bool TransB, int M, int N, int K, bool Accumulate)
    {
        public string Op => $"{(TransA ? 'T' : 'N')}{(TransB ? 'T' : 'N')}{(Accumulate ? "+" : "")}";

        public double Flops => 2.0 * M * N * K;
    }

    /// <summary>Pause when switching library: OpenBLAS's and the pool's idle threads spin for a while after a call.</summary>
    private const int SwitchPauseMs = 250;

    private sealed record Options(int[] Sizes, int Threads, int Reps, bool Gpt2, bool CpuClock, string? Out);

    public static int Run(string[] args)
    {
        var o = Parse(args);
        var shapes = new List<Shape>();
        foreach (int s in o.Sizes) shapes.Add(new Shape($"square {s}", false, false, s, s, s, false));
        if (o.Gpt2) shapes.AddRange(Gpt2Shapes());

        string? blasMissing = OpenBlas.TryLoad(o.Threads);
        string blasInfo = blasMissing == null ? OpenBlas.Describe() : $"unavailable: {blasMissing}";
        if (blasMissing != null) Console.WriteLine($"OpenBLAS {blasInfo}; reporting Memo only");
        using var pool = new WorkerPool(o.Threads);

        var header = new StringBuilder();
        header.AppendLine(CultureInfo.InvariantCulture, $"# CPU matmul: Memo vs OpenBLAS");
        header.AppendLine();
        header.AppendLine(CultureInfo.InvariantCulture, $"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        header.AppendLine(CultureInfo.InvariantCulture, $"- command: `dotnet run -c Release --project bench/Memo.Benchmarks -- matmul {string.Join(' ', args)}`");
        header.AppendLine(CultureInfo.InvariantCulture, $"- cpu: {CpuName()}, {Environment.ProcessorCount} logical cores; threads: {o.Threads}");
        header.AppendLine(CultureInfo.InvariantCulture, $"- runtime: .NET {Environment.Version}, {RuntimeInformation.OSDescription}");
        header.AppendLine(CultureInfo.InvariantCulture, $"- Memo kernel: {Gemm.BestVariant}, KC={Gemm.KC}");
        header.AppendLine(CultureInfo.InvariantCulture, $"- OpenBLAS: {blasInfo}; OPENBLAS_L2_SIZE={Environment.GetEnvironmentVariable("OPENBLAS_L2_SIZE") ?? "unset"}");
        header.AppendLine(CultureInfo.InvariantCulture, $"- GFLOP/s = 2MNK / {(o.CpuClock ? "(process CPU time / threads)" : "wall time")}: median (and min-max spread) of {o.Reps} timed runs per library after one warm-up run, the libraries alternating run by run; the ratio is of medians");
        header.AppendLine(CultureInfo.InvariantCulture, $"- load average (1, 5, 15 min) at start: {BenchUtil.LoadAverage()} (the machine is shared with other work)");
        header.AppendLine(CultureInfo.InvariantCulture, $"- op: N/T = op(A), op(B) stored plain/transposed; + = accumulate into C (beta = 1)");
        header.AppendLine(CultureInfo.InvariantCulture, $"- max rel diff = max |C_memo - C_openblas| / max |C_openblas|");
        header.AppendLine();
        Console.Write(header);

        var table = new StringBuilder();
        table.AppendLine("| shape | op | M | N | K | Memo GFLOP/s | OpenBLAS GFLOP/s | Memo/OpenBLAS | Memo min-max | OpenBLAS min-max | max rel diff |");
        table.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        Console.Write(table);
        var ratios = new List<double>();
        foreach (var s in shapes)
        {
            var row = Measure(s, o, pool, blasMissing == null);
            string line = string.Create(CultureInfo.InvariantCulture,
                $"| {s.Name} | {s.Op} | {s.M} | {s.N} | {s.K} | {row.Memo:F1} | {Fmt(row.Blas, "F1")} | {Fmt(row.Memo / row.Blas, "F2")} | {row.MemoWorst:F1}-{row.MemoBest:F1} | {Fmt(row.BlasWorst, "F1")}-{Fmt(row.BlasBest, "F1")} | {Fmt(row.Diff, "E1")} |");
            Console.WriteLine(line);
            table.AppendLine(line);
            if (!double.IsNaN(row.Blas)) ratios.Add(row.Memo / row.Blas);
        }
        var footer = new StringBuilder();
        if (ratios.Count > 0)
        {
            footer.AppendLine(CultureInfo.InvariantCulture,
                $"\nMemo/OpenBLAS over all shapes: min {ratios.Min():F2}, geometric mean {Math.Exp(ratios.Average(Math.Log)):F2}");
        }
        footer.AppendLine(CultureInfo.InvariantCulture, $"\nload average (1, 5, 15 min) at end: {BenchUtil.LoadAverage()}");
        Console.Write(footer);
        table.Append(footer);
        if (o.Out != null)
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(o.Out));
            if (dir != null) Directory.CreateDirectory(dir);
            File.WriteAllText(o.Out, header.ToString() + table);
            Console.WriteLine($"wrote {o.Out}");
        }
        return 0;
    }

    private static string Fmt(double v, string format)
        => double.IsNaN(v) ? "n/a" : v.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>The GEMMs of one GPT-2 124M layer (and head) at B=4, T=1024, as Memo's model calls them.</summary>
    private static IEnumerable<Shape> Gpt2Shapes()
    {
        const int BT = 4 * 1024, C = 768;
        (string Name, int Out, int In)[] layers =
        [
            ("qkv", 3 * C, C), ("attn proj", C, C), ("fc", 4 * C, C), ("fc proj", C, 4 * C), ("lm head", 50257, C),
        ];
        foreach (var l in layers) yield return new Shape($"{l.Name} fwd", false, true, BT, l.Out, l.In, false);
        foreach (var l in layers) yield return new Shape($"{l.Name} dx", false, false, BT, l.In, l.Out, false);
        foreach (var l in layers) yield return new Shape($"{l.Name} dW", true, false, l.Out, l.In, BT, true);
    }

    private readonly record struct Result(double Memo, double Blas, double MemoBest, double BlasBest, double Diff, double MemoWorst = double.NaN, double BlasWorst = double.NaN);

    private static Result Measure(Shape s, Options o, WorkerPool pool, bool withBlas)
    {
        // Stored shapes: A is M x K (or K x M), B is K x N (or N x K), C is M x N; all packed.
        int lda = s.TransA ? s.M : s.K, ldb = s.TransB ? s.K : s.N, ldc = s.N;
        using var a = new NativeBuffer((long)s.M * s.K * sizeof(float), zero: false);
        using var b = new NativeBuffer((long)s.K * s.N * sizeof(float), zero: false);
        using var cm = new NativeBuffer((long)s.M * s.N * sizeof(float));
        using var cb = new NativeBuffer((long)s.M * s.N * sizeof(float));
        Fill(a.Floats, (long)s.M * s.K, 1);
        Fill(b.Floats, (long)s.K * s.N, 2);

        Action memoRun = () =>
            Gemm.Multiply(s.TransA, s.TransB, s.M, s.N, s.K, a.Floats, lda, b.Floats, ldb, cm.Floats, ldc, s.Accumulate, pool);
        Action blasRun = () =>
            OpenBlas.Sgemm(s.TransA, s.TransB, s.M, s.N, s.K, a.Floats, lda, b.Floats, ldb, cb.Floats, ldc, s.Accumulate);
        if (!withBlas)
        {
            memoRun();
            var only = new double[o.Reps];
            for (int r = 0; r < o.Reps; r++) only[r] = Time(memoRun, o);
            return new Result(s.Flops / Median(only) / 1e9, double.NaN, s.Flops / only.Min() / 1e9, double.NaN, double.NaN, s.Flops / only.Max() / 1e9);
        }

        // Alternate the two libraries run by run, so both see the same machine; pause at each
        // switch until the other library's idle threads have stopped spinning.
        var memo = new double[o.Reps];
        var blas = new double[o.Reps];
        memoRun();
        Thread.Sleep(SwitchPauseMs);
        blasRun();
        for (int r = 0; r < o.Reps; r++)
        {
            Thread.Sleep(SwitchPauseMs);
            memo[r] = Time(memoRun, o);
            Thread.Sleep(SwitchPauseMs);
            blas[r] = Time(blasRun, o);
        }
        Thread.Sleep(SwitchPauseMs);

        // Compare one fresh product of each (accumulating shapes ran reps+1 times on their C).
        Gemm.Multiply(s.TransA, s.TransB, s.M, s.N, s.K, a.Floats, lda, b.Floats, ldb, cm.Floats, ldc, false, pool);
        OpenBlas.Sgemm(s.TransA, s.TransB, s.M, s.N, s.K, a.Floats, lda, b.Floats, ldb, cb.Floats, ldc, false);
        double maxDiff = 0, maxRef = 0;
        long n = (long)s.M * s.N;
        for (long i = 0; i < n; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs((double)cm.Floats[i] - cb.Floats[i]));
            maxRef = Math.Max(maxRef, Math.Abs((double)cb.Floats[i]));
        }
        return new Result(s.Flops / Median(memo) / 1e9, s.Flops / Median(blas) / 1e9,
            s.Flops / memo.Min() / 1e9, s.Flops / blas.Min() / 1e9, maxDiff / Math.Max(maxRef, double.Epsilon),
            s.Flops / memo.Max() / 1e9, s.Flops / blas.Max() / 1e9);
    }

    /// <summary>
    /// Seconds one run takes: wall time, or with <c>--clock cpu</c> the process's CPU time divided by
    /// the thread count, which leaves out time the threads spent preempted by other processes.
    /// </summary>
    private static double Time(Action run, Options o)
    {
        if (o.CpuClock)
        {
            var before = Environment.CpuUsage.TotalTime;
            run();
            return (Environment.CpuUsage.TotalTime - before).TotalSeconds / o.Threads;
        }
        long start = Stopwatch.GetTimestamp();
        run();
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private static double Median(double[] t)
    {
        Array.Sort(t);
        int n = t.Length;
        return n % 2 == 1 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    }

    /// <summary>Uniform values in [-1, 1) from a fixed seed (xorshift; fast enough for 10^8 values).</summary>
    private static void Fill(float* p, long n, ulong seed)
    {
        ulong x = 0x9E3779B97F4A7C15UL * seed + 1;
        for (long i = 0; i < n; i++)
        {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p[i] = (x >> 40) * (2f / (1 << 24)) - 1f;
        }
    }

    private static string CpuName()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("model name", StringComparison.Ordinal)) return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
            }
        }
        catch (IOException)
        {
        }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    private static Options Parse(string[] args)
    {
        int[] sizes = [1024, 2048, 4096];
        int threads = Environment.ProcessorCount, reps = 5;
        bool gpt2 = true, cpuClock = false;
        string? output = null;
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new MemoException($"matmul: {args[i]} needs a value");
            switch (args[i])
            {
                case "--sizes":
                    sizes = Value().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(v => ParseInt(v, "--sizes")).ToArray();
                    break;
                case "--threads":
                    threads = ParseInt(Value(), "--threads");
                    break;
                case "--reps":
                    reps = ParseInt(Value(), "--reps");
                    break;
                case "--no-gpt2":
                    gpt2 = false;
                    break;
                case "--clock":
                    cpuClock = Value() switch
                    {
                        "wall" => false,
                        "cpu" => true,
                        var v => throw new MemoException($"matmul: --clock expects wall or cpu, got '{v}'"),
                    };
                    break;
                case "--out":
                    output = Value();
                    break;
                default:
                    throw new MemoException($"matmul: unknown option '{args[i]}'; see the usage line (run with no arguments)");
            }
        }
        return new Options(sizes, threads, reps, gpt2, cpuClock, output);
    }

    private static int ParseInt(string v, string flag)
        => int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int x) && x > 0
            ? x
            : throw new MemoException($"matmul: {flag} expects positive integers, got '{v}'");
}
