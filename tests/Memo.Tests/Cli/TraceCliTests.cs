using System.Text.Json;
using Memo.Cli.Commands;
using Memo.Model.Memory;
using Memo.Planner;

namespace Memo.Tests.Cli;

/// <summary><c>memo trace</c>: the engine's iteration as a minimalloc CSV that <c>memo allocate</c> and <c>memo fragmentation</c> read.</summary>
public sealed class TraceCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("memo-trace-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Trace_writes_a_csv_that_allocate_and_fragmentation_read()
    {
        string trace = Path.Combine(_dir, "trace.csv");
        string plot = Path.Combine(_dir, "trace.png");
        var stdout = new StringWriter();
        var settings = new TraceCommand.Settings { Model = "llama-small", Seq = 1024, Batch = 1, Policy = "memo", Alpha = "0.5", Threads = 2, Output = trace, Plot = plot };
        Assert.Equal(0, TraceCommand.Run(settings, stdout));
        var layout = MemoryLayout.Build(Presets.Resolve("llama-small"), 1, 1024, PolicyKind.Memo, 2);
        string text = stdout.ToString();
        Assert.Contains($"buffers                {layout.Buffers.Count}", text, StringComparison.Ordinal);
        Assert.Contains($"lower bound            {layout.LowerBound} bytes", text, StringComparison.Ordinal);
        Assert.Contains($"planned peak           {layout.TotalBytes} bytes", text, StringComparison.Ordinal);
        Assert.Equal(2, Directory.GetFiles(_dir).Length); // the trace and the plot, no temporary files

        string[] lines = File.ReadAllLines(trace);
        Assert.Equal("id,lower,upper,size,alignment", lines[0]);
        Assert.Equal(layout.Buffers.Count + 1, lines.Length);
        var problem = PlanCsv.Read(trace);
        Assert.Equal(layout.LowerBound, problem.LowerBound());
        Assert.Equal(layout.Buffers.Select(b => b.Bytes), problem.Buffers.Select(b => b.Size));

        string plan = Path.Combine(_dir, "plan.csv");
        var allocated = new StringWriter();
        int code = AllocateCommand.Run(new AllocateCommand.Settings { Input = trace, Output = plan, Json = true, Validate = true, Solver = SolverKind.BestFit, TimeLimit = 5 }, allocated, new StringWriter());
        Assert.Equal(0, code);
        using (var json = JsonDocument.Parse(allocated.ToString()))
        {
            Assert.Equal(layout.Buffers.Count, json.RootElement.GetProperty("buffers").GetInt32());
            Assert.Equal(layout.LowerBound, json.RootElement.GetProperty("lower_bound").GetInt64());
            Assert.True(json.RootElement.GetProperty("valid").GetBoolean());
        }
        var fragmentation = new StringWriter();
        Assert.Equal(0, FragmentationCommand.Run(new FragmentationCommand.Settings { Input = trace, Json = true, Solver = SolverKind.BestFit, TimeLimit = 1 }, fragmentation));
        using (var json = JsonDocument.Parse(fragmentation.ToString()))
        {
            Assert.True(json.RootElement.GetProperty("caching_reserved_peak").GetInt64() >= layout.TotalBytes);
            Assert.Equal(layout.TotalBytes, json.RootElement.GetProperty("planned_peak").GetInt64());
        }
    }

    public static TheoryData<TraceCommand.Settings, string> BadSettings => new()
    {
        { new TraceCommand.Settings { Output = "t.csv", Policy = "offload" }, "unknown policy" },
        { new TraceCommand.Settings { Output = "t.csv", Model = "llama-99b" }, "unknown model" },
        { new TraceCommand.Settings { Output = "t.csv", Seq = 0 }, "--seq" },
        { new TraceCommand.Settings { Output = "t.csv", Batch = 0 }, "--batch" },
        { new TraceCommand.Settings { Output = "t.csv", Model = "gpt2", Seq = 4096 }, "max_position_embeddings" },
        { new TraceCommand.Settings { Output = "t.csv", Policy = "keep", Alpha = "0.5" }, "--alpha" },
        { new TraceCommand.Settings { Output = "t.csv", Policy = "memo", Alpha = "2" }, "--alpha" },
        { new TraceCommand.Settings { Output = "no-such-dir/t.csv", Seq = 64, Batch = 1 }, "does not exist" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public void Bad_input_is_one_line(TraceCommand.Settings settings, string expected)
    {
        var s = settings with { Output = Path.Combine(_dir, settings.Output) };
        var e = Assert.Throws<MemoException>(() => TraceCommand.Run(s, new StringWriter()));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void The_executable_exits_2_on_bad_input_and_0_on_a_trace()
    {
        var bad = MemoProcess.Run(_dir, "trace", "--policy", "offload", "--output", "t.csv");
        Assert.Equal(2, bad.Exit);
        Assert.StartsWith("memo: unknown policy 'offload'", bad.Stderr, StringComparison.Ordinal);
        Assert.Single(bad.Stderr.Trim().Split('\n'));
        var ok = MemoProcess.Run(_dir, "trace", "--model", "llama-tiny", "--seq", "128", "--batch", "1", "--policy", "recompute", "--output", "t.csv");
        Assert.Equal(0, ok.Exit);
        Assert.Contains("planned peak", ok.Stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(_dir, "t.csv")));
    }
}
