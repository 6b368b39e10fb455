using System.Diagnostics;
using System.Globalization;
using System.Text;
using Memo.Text;

namespace Memo.Benchmarks;

/// <summary>
/// <c>tokenize</c>: `memo tokenize` (a child process, its own MB/s and peak RSS) against the tokenizer
/// library's own throughput (Microsoft.ML.Tokenizers EncodeToIds over the same documents in memory,
/// 1 thread and all threads). Interleaved A B A B on a slice, then one run over the whole generated file
/// to show memory stays bounded. The text is generated: paragraphs of English-like words with some
/// accented, CJK and emoji words, separated by blank lines.
/// </summary>
internal static class TokenizeBench
{
    public static int Run(string[] args)
    {
        long size = Sizes.ParseBytes(BenchUtil.Arg(args, "--size") ?? "1GB", "--size");
        long slice = Sizes.ParseBytes(BenchUtil.Arg(args, "--slice") ?? "32MB", "--slice");
        int rounds = BenchUtil.IntArg(args, "--rounds", 3);
        string name = BenchUtil.Arg(args, "--tokenizer") ?? "gpt2";
        string work = BenchUtil.Arg(args, "--work") ?? Path.Combine(Path.GetTempPath(), "memo-tokenize-bench");
        string memo = BenchUtil.Arg(args, "--memo") ?? FindMemo();
        Directory.CreateDirectory(work);
        string big = Path.Combine(work, "big.txt"), small = Path.Combine(work, "slice.txt");
        Generate(big, size);
        CopyPrefix(big, small, slice);
        using var tok = TokenizerRegistry.Open(name);
        var lib = ((TiktokenText)tok).Library;
        var docs = File.ReadAllText(small).Split("\n\n");
        long sliceBytes = new FileInfo(small).Length;

        var libOne = new List<double>();
        var libAll = new List<double>();
        var memoRuns = new List<(double MBs, double Wall, long RssMiB, double CpuSeconds)>();
        var inProc = new List<double>();
        var libOneCpu = new List<double>();
        var libAllCpu = new List<double>();
        var inProcCpu = new List<double>();
        using var self = Process.GetCurrentProcess();
        double Cpu()
        {
            self.Refresh();
            return self.TotalProcessorTime.TotalSeconds;
        }
        for (int r = 0; r < rounds; r++)
        {
            double c0 = Cpu();
            var sw = Stopwatch.StartNew();
            long n = 0;
            foreach (var d in docs) n += lib.EncodeToIds(d).Count;
            libOne.Add(sliceBytes / 1e6 / sw.Elapsed.TotalSeconds);
            libOneCpu.Add(sliceBytes / 1e6 / (Cpu() - c0));

            c0 = Cpu();
            sw.Restart();
            long total = 0;
            Parallel.ForEach(System.Collections.Concurrent.Partitioner.Create(0, docs.Length, 64), range =>
            {
                long c = 0;
                for (int i = range.Item1; i < range.Item2; i++) c += lib.EncodeToIds(docs[i]).Count;
                Interlocked.Add(ref total, c);
            });
            libAll.Add(sliceBytes / 1e6 / sw.Elapsed.TotalSeconds);
            libAllCpu.Add(sliceBytes / 1e6 / (Cpu() - c0));
            if (total != n) throw new InvalidOperationException("parallel token count differs");

            string o = Path.Combine(work, "out-inproc");
            c0 = Cpu();
            var res = Memo.Training.Data.TextToShards.Run(new Memo.Training.Data.TokenizeOptions
            {
                Tokenizer = tok, Inputs = [small], OutputDir = o, DocSeparator = "\n\n", ValFraction = 0.01,
            });
            inProc.Add(res.MegabytesPerSecond);
            inProcCpu.Add(sliceBytes / 1e6 / (Cpu() - c0));
            Directory.Delete(o, recursive: true);

            memoRuns.Add(RunMemo(memo, small, Path.Combine(work, "out-slice"), name));
            Console.Error.WriteLine($"round {r + 1}: library 1 thread {BenchUtil.F(libOne[^1], "0.00")} MB/s, {Environment.ProcessorCount} threads {BenchUtil.F(libAll[^1], "0.00")} MB/s, same pipeline in this process {BenchUtil.F(inProc[^1], "0.00")} MB/s, memo tokenize {BenchUtil.F(memoRuns[^1].MBs, "0.00")} MB/s");
        }
        var whole = RunMemo(memo, big, Path.Combine(work, "out-big"), name);
        string load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";

        static string Spread(IEnumerable<double> xs) => $"{BenchUtil.F(xs.Min(), "0.00")} - {BenchUtil.F(xs.Max(), "0.00")}";
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"# memo tokenize vs the tokenizer library ({name})");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Machine: {BenchUtil.Machine()}. Load average at the end: {load}. The machine was shared with other builds and tests while this ran: absolute figures are noisy, the rounds are interleaved.");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `Memo.Benchmarks tokenize {string.Join(' ', args)}`");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Slice of {BenchUtil.F(sliceBytes / 1e6)} MB ({docs.Length} documents), {rounds} interleaved rounds, median (min - max) MB/s of UTF-8 input:");
        sb.AppendLine();
        sb.AppendLine("Wall-clock MB/s depends on how much of the 2 cores this process got; MB per CPU-second (input MB / (user + system CPU seconds)) is less sensitive to the other load.");
        sb.AppendLine();
        sb.AppendLine("| what | MB/s median | min - max | MB per CPU-second median | min - max |");
        sb.AppendLine("|---|---|---|---|---|");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| library EncodeToIds, 1 thread, in memory | {BenchUtil.F(BenchUtil.Median(libOne), "0.00")} | {Spread(libOne)} | {BenchUtil.F(BenchUtil.Median(libOneCpu), "0.00")} | {Spread(libOneCpu)} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| library EncodeToIds, {Environment.ProcessorCount} threads, in memory | {BenchUtil.F(BenchUtil.Median(libAll), "0.00")} | {Spread(libAll)} | {BenchUtil.F(BenchUtil.Median(libAllCpu), "0.00")} | {Spread(libAllCpu)} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| the same pipeline (TextToShards) in this warm process, file to shards | {BenchUtil.F(BenchUtil.Median(inProc), "0.00")} | {Spread(inProc)} | {BenchUtil.F(BenchUtil.Median(inProcCpu), "0.00")} | {Spread(inProcCpu)} |");
        var memoCpu = memoRuns.Select(m => sliceBytes / 1e6 / m.CpuSeconds).ToList();
        sb.AppendLine(CultureInfo.InvariantCulture, $"| `memo tokenize` ({Environment.ProcessorCount} threads, file to shards, process start included) | {BenchUtil.F(BenchUtil.Median(memoRuns.Select(m => m.MBs)), "0.00")} | {Spread(memoRuns.Select(m => m.MBs))} | {BenchUtil.F(BenchUtil.Median(memoCpu), "0.00")} | {Spread(memoCpu)} |");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Whole file: {BenchUtil.F(new FileInfo(big).Length / 1e6)} MB in {BenchUtil.F(whole.Wall, "0.0")} s wall = {BenchUtil.F(whole.MBs, "0.00")} MB/s (memo's own figure), {BenchUtil.F(new FileInfo(big).Length / 1e6 / whole.CpuSeconds, "0.00")} MB per CPU-second, peak RSS {whole.RssMiB} MiB (VmHWM of the memo process, as memo reports it).");
        BenchUtil.Emit(args, sb.ToString());
        return 0;
    }

    private static (double MBs, double Wall, long RssMiB, double CpuSeconds) RunMemo(string memo, string input, string outDir, string tokenizer)
    {
        if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        // /usr/bin/time reports the child's user and system CPU seconds.
        string timeFile = outDir + ".time";
        var psi = new ProcessStartInfo("/usr/bin/time", ["-o", timeFile, "-f", "%U %S", memo, "tokenize", input, "--tokenizer", tokenizer, "--output", outDir, "--doc-separator", "\\n\\n", "--val-fraction", "0.01"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        double wall = sw.Elapsed.TotalSeconds;
        if (p.ExitCode != 0) throw new MemoException($"memo tokenize failed: {err.Result}");
        // "... s, X MB/s, N threads, peak RSS M MiB"
        string line = stdout.Split('\n').First(l => l.Contains("MB/s", StringComparison.Ordinal));
        var parts = line.Split(", ");
        double mbs = double.Parse(parts[1].Split(' ')[0], CultureInfo.InvariantCulture);
        long rss = long.Parse(parts[3].Split(' ')[2], CultureInfo.InvariantCulture);
        Directory.Delete(outDir, recursive: true);
        var t = File.ReadAllText(timeFile).Trim().Split('\n')[^1].Split(' ');
        double cpu = double.Parse(t[0], CultureInfo.InvariantCulture) + double.Parse(t[1], CultureInfo.InvariantCulture);
        return (mbs, wall, rss, cpu);
    }

    private static void Generate(string path, long size)
    {
        if (File.Exists(path) && new FileInfo(path).Length >= size) return;
        string[] words = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were " +
            "memory training sequence attention token model context layer gradient swap recompute planner device host copy " +
            "café naïve résumé Ångström 東京 日本語 数据 🤖 🎉 1024 3.14 (x) don't it's").Split(' ');
        var rng = new Random(12345);
        using var w = new StreamWriter(path + ".tmp", false, new UTF8Encoding(false), 1 << 20);
        long written = 0;
        var sb = new StringBuilder();
        while (written < size)
        {
            sb.Clear();
            int n = rng.Next(50, 600);
            for (int i = 0; i < n; i++)
            {
                if (i > 0) sb.Append(rng.Next(12) == 0 ? ", " : " ");
                sb.Append(words[rng.Next(words.Length)]);
            }
            sb.Append(".\n\n");
            written += Encoding.UTF8.GetByteCount(sb.ToString());
            w.Write(sb);
        }
        w.Close();
        File.Move(path + ".tmp", path, overwrite: true);
    }

    private static void CopyPrefix(string from, string to, long bytes)
    {
        using var r = new StreamReader(from, Encoding.UTF8);
        var sb = new StringBuilder();
        string? line;
        long n = 0;
        while (n < bytes && (line = r.ReadLine()) != null)
        {
            sb.Append(line).Append('\n');
            n += Encoding.UTF8.GetByteCount(line) + 1;
        }
        File.WriteAllText(to, sb.ToString());
    }

    private static string FindMemo()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "src", "Memo.Cli", "bin", "Release", "net10.0", "memo");
            if (File.Exists(p)) return p;
        }
        throw new MemoException("memo executable not found; build src/Memo.Cli -c Release or pass --memo PATH");
    }
}
