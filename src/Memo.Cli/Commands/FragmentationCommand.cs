// memo fragmentation --input FILE.csv [--json] [--solver auto|bestfit|cpsat|search] [--time-limit SECONDS]
//
// Replays the trace through a simulation of PyTorch's CUDA caching allocator and prints what it
// reserves next to the planned peak and the max-load lower bound, with the overhead ratios.
using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Memo.Planner;
using Spectre.Console;

namespace Memo.Cli.Commands;

public static class FragmentationCommand
{
    public sealed record Settings
    {
        public required string Input { get; init; }
        public bool Json { get; init; }
        public SolverKind Solver { get; init; } = SolverKind.Auto;
        public double TimeLimit { get; init; } = 2;
        public int Threads { get; init; }
    }

    public static Command Create()
    {
        var input = OptionTable.Input();
        var json = OptionTable.Json();
        var solver = OptionTable.Solver();
        var timeLimit = OptionTable.TimeLimit(2);
        var threads = OptionTable.Threads();
        var command = new Command("fragmentation", "Compare PyTorch's caching allocator (simulated) with a planned arena on a buffer trace.")
        {
            input, json, solver, timeLimit, threads,
        };
        command.SetAction(parse => Run(new Settings
        {
            Input = parse.GetRequiredValue(input),
            Json = parse.GetValue(json),
            Solver = Planners.Parse(parse.GetValue(solver) ?? "auto"),
            TimeLimit = parse.GetValue(timeLimit),
            Threads = Memo.Cli.Threads.Resolve(parse.GetValue(threads), Console.Error) ?? 0,
        }, Console.Out));
        return command;
    }

    /// <summary>The figures the command prints.</summary>
    public sealed record Report(int Buffers, long LowerBound, long PlannedPeak, bool PlannedOptimal, string Solver,
        long ReservedPeak, long AllocatedPeak, int Segments, double PlanSeconds)
    {
        public double ReservedOverLowerBound => LowerBound == 0 ? 1 : (double)ReservedPeak / LowerBound;

        public double PlannedOverLowerBound => LowerBound == 0 ? 1 : (double)PlannedPeak / LowerBound;

        public double ReservedOverPlanned => PlannedPeak == 0 ? 1 : (double)ReservedPeak / PlannedPeak;
    }

    /// <summary>Simulates and plans; no output.</summary>
    public static Report Measure(Problem problem, PlannerOptions options)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var sim = CachingAllocatorSim.Run(problem);
        var plan = Planners.Solve(problem, options);
        return new Report(problem.Count, plan.LowerBound, plan.Peak, plan.Optimal, plan.Solver,
            sim.ReservedPeak, sim.AllocatedPeak, sim.Segments, plan.Seconds);
    }

    public static int Run(Settings settings, TextWriter stdout)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(stdout);
        if (!(settings.TimeLimit >= 0) || double.IsInfinity(settings.TimeLimit))
            throw new MemoException($"--time-limit {settings.TimeLimit.ToString(CultureInfo.InvariantCulture)} is not a finite number of seconds >= 0");
        var options = new PlannerOptions { Solver = settings.Solver, TimeLimit = TimeSpan.FromSeconds(settings.TimeLimit), Threads = settings.Threads };
        options.Check();
        Problem problem = PlanCsv.Read(settings.Input);
        Report r = Measure(problem, options);
        if (settings.Json)
        {
            using var stream = new MemoryStream();
            using (var w = new Utf8JsonWriter(stream))
            {
                w.WriteStartObject();
                w.WriteNumber("buffers", r.Buffers);
                w.WriteNumber("lower_bound", r.LowerBound);
                w.WriteNumber("planned_peak", r.PlannedPeak);
                w.WriteBoolean("planned_optimal", r.PlannedOptimal);
                w.WriteString("solver", r.Solver);
                w.WriteNumber("plan_seconds", Math.Round(r.PlanSeconds, 4));
                w.WriteNumber("caching_reserved_peak", r.ReservedPeak);
                w.WriteNumber("caching_allocated_peak", r.AllocatedPeak);
                w.WriteNumber("caching_segments", r.Segments);
                w.WriteNumber("reserved_over_lower_bound", Math.Round(r.ReservedOverLowerBound, 6));
                w.WriteNumber("planned_over_lower_bound", Math.Round(r.PlannedOverLowerBound, 6));
                w.WriteNumber("reserved_over_planned", Math.Round(r.ReservedOverPlanned, 6));
                w.WriteEndObject();
            }
            stdout.WriteLine(Encoding.UTF8.GetString(stream.ToArray()));
            return 0;
        }
        var console = AllocateCommand.ConsoleFor(stdout);
        var table = new Table().AddColumn("").AddColumn(new TableColumn("bytes").RightAligned()).AddColumn(new TableColumn("/ lower bound").RightAligned());
        string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
        string X(double v) => v.ToString("F3", CultureInfo.InvariantCulture) + "x";
        table.AddRow("lower bound (max live bytes)", N(r.LowerBound), X(1));
        table.AddRow(Markup.Escape($"planned peak ({r.Solver}{(r.PlannedOptimal ? ", optimal" : "")}, {r.PlanSeconds:F2} s)"), N(r.PlannedPeak), X(r.PlannedOverLowerBound));
        table.AddRow($"caching allocator: reserved ({r.Segments} segments)", N(r.ReservedPeak), X(r.ReservedOverLowerBound));
        table.AddRow("caching allocator: allocated peak", N(r.AllocatedPeak), X(r.LowerBound == 0 ? 1 : (double)r.AllocatedPeak / r.LowerBound));
        console.Write(table);
        console.WriteLine($"{r.Buffers} buffers; the caching allocator reserves {X(r.ReservedOverPlanned)} the planned peak.");
        return 0;
    }
}
