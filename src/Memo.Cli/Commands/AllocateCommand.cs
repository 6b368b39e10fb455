// memo allocate --input FILE.csv --output PLAN.csv [--time-limit SECONDS] [--solver auto|bestfit|cpsat|search]
//               [--threads N] [--capacity BYTES] [--alignment BYTES] [--json] [--plot FILE.png] [--validate]
//
// Reads a buffer trace in google/minimalloc's CSV format, assigns offsets and writes the same CSV
// plus an offset column. Prints peak, lower bound, optimality, gap and time (a table, or exactly
// one JSON object with --json). Exit code 0 when the plan is written (and fits --capacity and
// passes --validate), 1 otherwise; bad input raises MemoException (the program prints it, exit 2).
using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Memo.Cli.Plots;
using Memo.Planner;
using Spectre.Console;

namespace Memo.Cli.Commands;

public static class AllocateCommand
{
    /// <summary>Everything the command needs, parsed.</summary>
    public sealed record Settings
    {
        public required string Input { get; init; }
        public required string Output { get; init; }
        public double TimeLimit { get; init; } = 10;
        public SolverKind Solver { get; init; } = SolverKind.Auto;
        public int Threads { get; init; }
        public long? Capacity { get; init; }
        public long Alignment { get; init; } = 1;
        public bool Json { get; init; }
        public string? Plot { get; init; }
        public bool Validate { get; init; }
    }

    public static Command Create()
    {
        var input = new Option<string>("--input", "-i") { Description = "Buffer trace: CSV with header id,lower,upper,size[,alignment] (minimalloc format).", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "Where to write the plan: the input columns plus offset.", Required = true };
        var timeLimit = new Option<double>("--time-limit") { Description = "Solver time limit in seconds.", DefaultValueFactory = _ => 10 };
        var solver = new Option<string>("--solver") { Description = "auto (best-fit, search, then CP-SAT), bestfit, cpsat or search.", DefaultValueFactory = _ => "auto" };
        solver.AcceptOnlyFromAmong("auto", "bestfit", "cpsat", "search");
        var threads = new Option<int>("--threads") { Description = "CP-SAT worker threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var capacity = new Option<long?>("--capacity") { Description = "Largest admissible peak in bytes; exit code 1 if the plan does not fit." };
        var alignment = new Option<long>("--alignment") { Description = "Every offset must be a multiple of this many bytes.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var plot = new Option<string?>("--plot") { Description = "Also draw the plan to this PNG file." };
        var validate = new Option<bool>("--validate") { Description = "Check the plan with the independent validator." };
        var command = new Command("allocate", "Assign an offset to every buffer of a trace and write the memory plan.")
        {
            input, output, timeLimit, solver, threads, capacity, alignment, json, plot, validate,
        };
        command.SetAction(parse => Run(new Settings
        {
            Input = parse.GetRequiredValue(input),
            Output = parse.GetRequiredValue(output),
            TimeLimit = parse.GetValue(timeLimit),
            Solver = Planners.Parse(parse.GetValue(solver) ?? "auto"),
            Threads = parse.GetValue(threads),
            Capacity = parse.GetValue(capacity),
            Alignment = parse.GetValue(alignment),
            Json = parse.GetValue(json),
            Plot = parse.GetValue(plot),
            Validate = parse.GetValue(validate),
        }, Console.Out, Console.Error));
        return command;
    }

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Settings settings, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        if (!(settings.TimeLimit >= 0) || double.IsInfinity(settings.TimeLimit))
            throw new MemoException($"--time-limit {settings.TimeLimit.ToString(CultureInfo.InvariantCulture)} is not a finite number of seconds >= 0");
        if (settings.Capacity is < 0)
            throw new MemoException($"--capacity {settings.Capacity} is negative; give bytes >= 0");
        var options = new PlannerOptions
        {
            Solver = settings.Solver,
            TimeLimit = TimeSpan.FromSeconds(settings.TimeLimit),
            Threads = settings.Threads,
            Alignment = settings.Alignment,
        };
        options.Check();
        Problem problem = PlanCsv.Read(settings.Input, settings.Capacity);
        PlanResult result = Planners.Solve(problem, options);
        PlanCsv.Write(settings.Output, problem, result.Offsets);
        if (settings.Plot is not null)
            ArenaPlot.Save(problem, result.Offsets, settings.Plot, $"{Path.GetFileName(settings.Input)}: {problem.Count} buffers, peak {result.Peak}, lower bound {result.LowerBound} ({result.Solver})");

        PlanValidation? check = settings.Validate
            ? PlanValidator.Validate(new Problem(problem.Buffers), result.ToSolution(), settings.Alignment)
            : null;
        bool fits = settings.Capacity is not long cap || result.Peak <= cap;

        if (settings.Json) stdout.WriteLine(Json(problem, result, settings, check, fits));
        else PrintTable(problem, result, settings, check, fits, stdout);

        if (check is { IsOk: false }) stderr.WriteLine($"memo allocate: the plan failed validation: {check.Message}");
        if (!fits) stderr.WriteLine($"memo allocate: peak {result.Peak} exceeds --capacity {settings.Capacity}; the plan was written anyway");
        return check is { IsOk: false } || !fits ? 1 : 0;
    }

    private static string Json(Problem problem, PlanResult r, Settings s, PlanValidation? check, bool fits)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteNumber("peak", r.Peak);
            w.WriteNumber("lower_bound", r.LowerBound);
            w.WriteBoolean("optimal", r.Optimal);
            w.WriteNumber("gap", Math.Round(r.Gap, 6));
            w.WriteNumber("seconds", Math.Round(r.Seconds, 4));
            w.WriteString("status", r.Status.ToString());
            w.WriteString("solver", r.Solver);
            w.WriteNumber("buffers", problem.Count);
            w.WriteNumber("parts", r.Parts);
            w.WriteNumber("nodes", r.Nodes);
            if (s.Capacity is long cap) w.WriteNumber("capacity", cap);
            else w.WriteNull("capacity");
            w.WriteBoolean("fits", fits);
            if (check is not null) w.WriteBoolean("valid", check.IsOk);
            w.WriteString("output", s.Output);
            if (s.Plot is not null) w.WriteString("plot", s.Plot);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void PrintTable(Problem problem, PlanResult r, Settings s, PlanValidation? check, bool fits, TextWriter stdout)
    {
        var console = ConsoleFor(stdout);
        var table = new Table().AddColumn("quantity").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("buffers", problem.Count.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("lower bound (bytes)", r.LowerBound.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("peak (bytes)", r.Peak.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("optimal", r.Optimal ? "yes" : "no");
        table.AddRow("gap", r.Gap.ToString("P2", CultureInfo.InvariantCulture));
        table.AddRow("seconds", r.Seconds.ToString("F3", CultureInfo.InvariantCulture));
        table.AddRow("solver", Markup.Escape(r.Solver));
        table.AddRow("status", r.Status.ToString());
        if (s.Capacity is long cap) table.AddRow("capacity (bytes)", $"{cap.ToString("N0", CultureInfo.InvariantCulture)} ({(fits ? "fits" : "exceeded")})");
        if (check is not null) table.AddRow("validation", Markup.Escape(check.IsOk ? "ok" : check.Message));
        table.AddRow("plan", Markup.Escape(s.Output));
        if (s.Plot is not null) table.AddRow("plot", Markup.Escape(s.Plot));
        console.Write(table);
    }

    /// <summary>The Spectre console for stdout, or a plain one writing to a redirected writer.</summary>
    internal static IAnsiConsole ConsoleFor(TextWriter writer) =>
        ReferenceEquals(writer, Console.Out)
            ? AnsiConsole.Console
            : AnsiConsole.Create(new AnsiConsoleSettings
            {
                Out = new AnsiConsoleOutput(writer),
                Ansi = AnsiSupport.No,
                ColorSystem = ColorSystemSupport.NoColors,
                Interactive = InteractionSupport.No,
            });
}
