// memo trace [--model NAME|config.json] [--seq T] [--batch B] [--policy keep|recompute|swap|memo] [--alpha A]
//            [--threads N] --output FILE.csv [--plot FILE.png]
//
// Writes the device-buffer requests of one training iteration (the engine's MemoryLayout: every buffer
// with its lifespan in the iteration timeline) in google/minimalloc's CSV format, id,lower,upper,size,alignment,
// so that `memo allocate` and `memo fragmentation` can read it. Prints the buffer count, the lower bound
// (most bytes live at once) and the peak of the engine's own plan. Bad input raises MemoException (exit 2).
using System.CommandLine;
using System.Globalization;
using Memo.Cli.Plots;
using Memo.Cpu;
using Memo.Model.Memory;
using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Cli.Commands;

public static class TraceCommand
{
    /// <summary>Everything the command needs, parsed.</summary>
    public sealed record Settings
    {
        public string Model { get; init; } = TrainCommand.DefaultModel;
        public long Seq { get; init; } = TrainCommand.DefaultSeq;
        public int Batch { get; init; } = TrainCommand.DefaultBatch;
        public string Policy { get; init; } = "keep";
        public string? Alpha { get; init; }
        public int Threads { get; init; }
        public required string Output { get; init; }
        public string? Plot { get; init; }
    }

    /// <summary>What the command found (also printed).</summary>
    public sealed record Report(int Buffers, long LowerBound, long PlannedPeak, long WithoutReuse, string Solver, double PlanSeconds);

    public static Command Create()
    {
        var model = CliOptions.Text("--model", "preset name or config.json path", TrainCommand.DefaultModel);
        var seq = CliOptions.Count("--seq", "sequence length T (e.g. 256, 4K)", TrainCommand.DefaultSeq);
        var batch = CliOptions.Int("--batch", "sequences per micro-batch B", TrainCommand.DefaultBatch);
        var policy = CliOptions.Text("--policy", "activation memory policy: keep, recompute, swap or memo", "keep");
        var alpha = CliOptions.Text("--alpha", "memo: fraction of tokens whose token-local activations are swapped (host memory only; the device trace does not depend on it)");
        var threads = CliOptions.Int("--threads", "CPU threads the attention workspace is sized for (default: all cores)", 0);
        var output = new Option<string>("--output", "-o") { Description = "Where to write the trace: CSV with header id,lower,upper,size,alignment (minimalloc format).", Required = true };
        var plot = new Option<string?>("--plot") { Description = "Also draw the engine's plan of the trace to this PNG file." };
        var command = new Command("trace", "Write the device-buffer requests of one training iteration as a minimalloc CSV trace.")
        {
            model, seq, batch, policy, alpha, threads, output, plot,
        };
        command.SetAction(p => Run(new Settings
        {
            Model = p.GetValue(model)!,
            Seq = p.GetValue(seq),
            Batch = p.GetValue(batch),
            Policy = p.GetValue(policy)!,
            Alpha = p.GetValue(alpha),
            Threads = p.GetValue(threads),
            Output = p.GetRequiredValue(output),
            Plot = p.GetValue(plot),
        }, Console.Out));
        return command;
    }

    /// <summary>Builds the layout, writes the trace (and plot); returns the exit code.</summary>
    public static int Run(Settings settings, TextWriter stdout)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(stdout);
        var (layout, report) = Trace(settings);
        var inv = CultureInfo.InvariantCulture;
        // Plain minimalloc columns: the tags the engine's planner uses stay out of the file.
        var plain = new Problem(layout.Problem.Buffers.Select(b => new Buffer(b.Id, b.Lifespan, b.Size, b.Alignment)).ToArray());
        PlanCsv.Write(settings.Output, plain, null);
        if (settings.Plot is not null)
        {
            long[] offsets = Enumerable.Range(0, layout.Buffers.Count).Select(layout.OffsetOf).ToArray();
            ArenaPlot.Save(layout.Problem, offsets, settings.Plot,
                string.Create(inv, $"{layout.Config.Name}, {layout.Batch} x {layout.Seq} tokens, policy {layout.Policy.ToString().ToLowerInvariant()}: peak {Sizes.FormatBytes(report.PlannedPeak)}, lower bound {Sizes.FormatBytes(report.LowerBound)}"));
        }
        stdout.WriteLine(string.Create(inv, $"trace   {layout.Config.Name}, {layout.Batch} x {layout.Seq} tokens, policy {layout.Policy.ToString().ToLowerInvariant()}, {layout.Timeline.End} time steps"));
        stdout.WriteLine(string.Create(inv, $"  buffers                {report.Buffers}"));
        stdout.WriteLine(string.Create(inv, $"  lower bound            {report.LowerBound} bytes ({Sizes.FormatBytes(report.LowerBound)}): most bytes live at once"));
        stdout.WriteLine(string.Create(inv, $"  planned peak           {report.PlannedPeak} bytes ({Sizes.FormatBytes(report.PlannedPeak)}, {(report.LowerBound > 0 ? (double)report.PlannedPeak / report.LowerBound : 1):0.0000} x lower bound) by {report.Solver} in {report.PlanSeconds * 1000:0.0} ms"));
        stdout.WriteLine(string.Create(inv, $"  without reuse          {report.WithoutReuse} bytes ({Sizes.FormatBytes(report.WithoutReuse)}): every buffer at its own offset"));
        stdout.WriteLine($"  trace                  {settings.Output}");
        if (settings.Plot is not null) stdout.WriteLine($"  plot                   {settings.Plot}");
        return 0;
    }

    /// <summary>Checks the settings and builds the planned layout; no output.</summary>
    public static (MemoryLayout Layout, Report Report) Trace(Settings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (string.IsNullOrWhiteSpace(settings.Output)) throw new MemoException("--output is empty; give the path of the CSV file to write");
        var cfg = Presets.Resolve(settings.Model);
        if (settings.Batch < 1) throw new MemoException($"--batch must be at least 1 (got {settings.Batch})");
        if (settings.Seq < 1 || settings.Seq > int.MaxValue) throw new MemoException($"--seq must be between 1 and {int.MaxValue} (got {settings.Seq})");
        if (settings.Batch * settings.Seq > int.MaxValue)
            throw new MemoException($"--batch {settings.Batch} x --seq {settings.Seq} exceeds {int.MaxValue} tokens per step; shorten --seq or --batch");
        if (cfg.HasLearnedPositions && settings.Seq > cfg.MaxPositions)
            throw new MemoException($"--seq {settings.Seq} exceeds max_position_embeddings {cfg.MaxPositions} of gpt2 model '{cfg.Name}'; use --seq {cfg.MaxPositions} or less");
        if (settings.Threads < 0) throw new MemoException($"--threads must be positive (got {settings.Threads})");
        var memory = TrainCommand.ParseMemory(settings.Policy, settings.Alpha, null, null, false);
        int threads = settings.Threads > 0 ? settings.Threads : WorkerPool.Default.Threads;
        var layout = MemoryLayout.Build(cfg, settings.Batch, (int)settings.Seq, memory.Policy, threads);
        var report = new Report(layout.Buffers.Count, layout.LowerBound, layout.TotalBytes, layout.Buffers.Sum(b => b.Bytes), layout.Solver, layout.PlanSeconds);
        return (layout, report);
    }
}
