// The planner on google/minimalloc's "challenging" suite (shared/benchmarks/minimalloc), next to
// minimalloc's own figures from that folder's README (parsed from its table, not typed in).
//
//   minimalloc [--dir DIR] [--time-limit SECONDS] [--solver auto|cpsat|search|bestfit]
//              [--threads N] [--only A,B,...] [--output FILE.md] [--solutions DIR] [--no-capacity]
//
// Each instance is solved with the capacity in its file name (1048576) as the problem capacity,
// as minimalloc is run, unless --no-capacity; every plan is checked by the independent validator.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Memo.Planner;

namespace Memo.Benchmarks;

public static class MinimallocBench
{
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        string? dir = null, output = null, only = null, solutions = null;
        double seconds = 60;
        int threads = 0;
        bool useCapacity = true;
        var solver = SolverKind.Auto;
        for (int a = 0; a < args.Length; a++)
        {
            string Next() => a + 1 < args.Length ? args[++a] : throw new MemoException($"{args[a]} needs a value");
            switch (args[a])
            {
                case "--dir": dir = Next(); break;
                case "--time-limit": seconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--solver": solver = Planners.Parse(Next()); break;
                case "--threads": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--only": only = Next(); break;
                case "--output": output = Next(); break;
                case "--solutions": solutions = Next(); break;
                case "--no-capacity": useCapacity = false; break;
                default: throw new MemoException($"unknown argument '{args[a]}'; see the header of MinimallocBench.cs");
            }
        }
        dir ??= FindSuite() ?? throw new MemoException("shared/benchmarks/minimalloc not found above the working directory; pass --dir");
        var reference = ReadReference(Path.Combine(dir, "README.md"));
        var files = Directory.GetFiles(Path.Combine(dir, "challenging"), "*.csv").Order(StringComparer.Ordinal).ToList();
        if (only is not null)
        {
            var wanted = only.Split(',').ToHashSet(StringComparer.OrdinalIgnoreCase);
            files = files.Where(f => wanted.Contains(Path.GetFileName(f).Split('.')[0])).ToList();
        }
        var options = new PlannerOptions { Solver = solver, TimeLimit = TimeSpan.FromSeconds(seconds), Threads = threads };

        var sb = new StringBuilder();
        sb.AppendLine("# Memo planner on minimalloc's challenging suite");
        sb.AppendLine();
        sb.AppendLine("Written by `bench/Memo.Benchmarks` (`minimalloc` subcommand, MinimallocBench.cs); the minimalloc columns are parsed from shared/benchmarks/minimalloc/README.md.");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"* Machine: {CpuModel()}, {Environment.ProcessorCount} logical cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}, Google.OrTools {typeof(Google.OrTools.Sat.CpModel).Assembly.GetName().Version}.");
        sb.AppendLine(CultureInfo.InvariantCulture, $"* Load average (1, 5, 15 min) at the start: {LoadAverage()} (the machine is shared; wall times stretch when other work runs, CPU time is this process's).");
        sb.AppendLine(CultureInfo.InvariantCulture, $"* Solver `{Planners.NameOf(solver)}`, time limit {seconds} s per instance, CP-SAT threads {options.EffectiveThreads}, search threads {options.SearchThreads}, capacity {(useCapacity ? "1048576 from the file name (as minimalloc is run)" : "none")}; every plan checked by the independent validator.");
        sb.AppendLine("* \"time to <= 1048576\" is when Memo first held a plan within the capacity (minimalloc's time column measures the same event); \"time to final peak\" when it found the plan it returned; the total includes the time spent trying to improve or prove it.");
        sb.AppendLine();
        sb.AppendLine("| instance | buffers | LB | Memo peak | <= 1048576 | Memo time to <= 1048576 | Memo time to final peak | Memo total time (CPU) | Memo optimal | engine | minimalloc peak @1048576 | minimalloc time | minimalloc best in 60 s | minimalloc status |");
        sb.AppendLine("|---|---:|---:|---:|---|---:|---:|---:|---|---|---:|---:|---:|---|");
        Console.WriteLine(sb.ToString().TrimEnd());
        int failures = 0;
        var total = Stopwatch.StartNew();
        var logs = new StringBuilder();
        foreach (string file in files)
        {
            string name = Path.GetFileName(file).Split('.')[0];
            long? capacity = null;
            if (useCapacity && long.TryParse(Path.GetFileName(file).Split('.')[1], NumberStyles.None, CultureInfo.InvariantCulture, out long cap))
                capacity = cap;
            Problem problem = PlanCsv.Read(file, capacity);
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            PlanResult r = Planners.Solve(problem, options);
            double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
            var check = PlanValidator.Validate(new Problem(problem.Buffers), r.ToSolution());
            if (!check.IsOk) failures++;
            if (solutions is not null) PlanCsv.Write(Path.Combine(solutions, $"{name}.memo.csv"), problem, r.Offsets);
            reference.TryGetValue(name, out var refRow);
            double? toCapacity = r.SecondsToReach(1048576);
            double toFinal = r.SecondsToReach(r.Peak) ?? r.Seconds;
            string row = string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {problem.Count} | {r.LowerBound} | {r.Peak}{(check.IsOk ? "" : " INVALID")} | {(r.Peak <= 1048576 ? "yes" : "NO")} | {(toCapacity is double t ? $"{t:F2} s" : "-")} | {toFinal:F2} s | {r.Seconds:F2} s ({cpuSeconds:F2} s) | {(r.Optimal ? "yes" : $"no (gap {r.Gap:P2})")} | {r.Solver} | {refRow?.Peak ?? "-"} | {refRow?.Time ?? "-"} | {refRow?.Best ?? "-"} | {refRow?.Status ?? "-"} |");
            Console.WriteLine(row);
            sb.AppendLine(row);
            logs.AppendLine(CultureInfo.InvariantCulture, $"{name}:");
            foreach (string l in r.Log)
            {
                Console.Error.WriteLine($"  {name}: {l}");
                logs.AppendLine(CultureInfo.InvariantCulture, $"  {l}");
            }
        }
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Total wall time {total.Elapsed.TotalSeconds:F1} s; {failures} invalid plans; load average at the end: {LoadAverage()}.");
        sb.AppendLine();
        sb.AppendLine("## Engine log");
        sb.AppendLine();
        sb.AppendLine("```");
        sb.Append(logs);
        sb.AppendLine("```");
        Console.WriteLine($"total {total.Elapsed.TotalSeconds:F1} s, {failures} invalid plans");
        if (output is not null) PlanCsv.WriteAtomic(output, sb.ToString());
        return failures == 0 ? 0 : 1;
    }

    private sealed record Reference(string Peak, string Time, string Best, string Status);

    /// <summary>Rows of the README's measured table: instance -> minimalloc's figures.</summary>
    private static Dictionary<string, Reference> ReadReference(string readme)
    {
        var rows = new Dictionary<string, Reference>(StringComparer.Ordinal);
        if (!File.Exists(readme)) return rows;
        foreach (string line in File.ReadLines(readme))
        {
            // | instance | buffers | max live | LB | peak @1048576 | time @1048576 | authors' time | best in 60 s | status |
            var cells = line.Split('|').Select(c => c.Trim()).ToArray();
            if (cells.Length < 10 || cells[1].Length != 1 || !char.IsAsciiLetterUpper(cells[1][0])) continue;
            rows[cells[1]] = new Reference(cells[5], cells[6], cells[8], cells[9]);
        }
        return rows;
    }

    private static string CpuModel()
    {
        const string path = "/proc/cpuinfo";
        if (!File.Exists(path)) return "unknown CPU";
        string? line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? "unknown CPU" : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
    }

    private static string LoadAverage()
    {
        const string path = "/proc/loadavg";
        return File.Exists(path) ? string.Join(", ", File.ReadAllText(path).Split(' ').Take(3)) : "unknown";
    }

    private static string? FindSuite()
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                string candidate = Path.Combine(d.FullName, "shared", "benchmarks", "minimalloc");
                if (Directory.Exists(Path.Combine(candidate, "challenging"))) return candidate;
            }
        }
        return null;
    }
}
