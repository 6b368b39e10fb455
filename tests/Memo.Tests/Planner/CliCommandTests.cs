using System.Text.Json;
using Memo.Cli.Commands;
using Memo.Planner;

namespace Memo.Tests.Planner;

public sealed class CliCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("memo-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Input()
    {
        string path = Path.Combine(_dir, "in.csv");
        File.WriteAllText(path, "id,lower,upper,size\nb1,0,3,4\nb2,3,9,4\nb3,0,9,4\nb4,9,21,4\nb5,0,21,4\n");
        return path;
    }

    [Fact]
    public void Allocate_json_prints_one_object_and_writes_a_valid_plan()
    {
        string output = Path.Combine(_dir, "plan.csv");
        var stdout = new StringWriter();
        int code = AllocateCommand.Run(new AllocateCommand.Settings { Input = Input(), Output = output, Json = true, Validate = true, TimeLimit = 1 }, stdout, new StringWriter());
        Assert.Equal(0, code);
        string text = stdout.ToString().Trim();
        Assert.DoesNotContain('\n', text);
        using var json = JsonDocument.Parse(text);
        var root = json.RootElement;
        Assert.Equal(12, root.GetProperty("peak").GetInt64());
        Assert.Equal(12, root.GetProperty("lower_bound").GetInt64());
        Assert.True(root.GetProperty("optimal").GetBoolean());
        Assert.True(root.GetProperty("valid").GetBoolean());
        Assert.True(root.GetProperty("seconds").GetDouble() >= 0);
        var (problem, offsets) = PlanCsv.ReadWithOffsets(output);
        Assert.True(PlanValidator.Validate(problem, Solution.FromOffsets(problem, offsets!)).IsOk);
    }

    [Fact]
    public void Allocate_table_and_plot()
    {
        string output = Path.Combine(_dir, "plan.csv");
        string plot = Path.Combine(_dir, "plan.png");
        var stdout = new StringWriter();
        int code = AllocateCommand.Run(new AllocateCommand.Settings { Input = Input(), Output = output, Plot = plot, Solver = SolverKind.BestFit }, stdout, new StringWriter());
        Assert.Equal(0, code);
        Assert.Contains("peak (bytes)", stdout.ToString(), StringComparison.Ordinal);
        byte[] png = File.ReadAllBytes(plot);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.Equal(3, Directory.GetFiles(_dir).Length);  // input, plan, plot: no temporary files
    }

    [Fact]
    public void Allocate_over_capacity_writes_the_plan_and_exits_1()
    {
        string output = Path.Combine(_dir, "plan.csv");
        var stderr = new StringWriter();
        int code = AllocateCommand.Run(new AllocateCommand.Settings { Input = Input(), Output = output, Capacity = 11, Json = true }, new StringWriter(), stderr);
        Assert.Equal(1, code);
        Assert.True(File.Exists(output));
        Assert.Contains("exceeds --capacity 11", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Allocate_bad_input_is_a_MemoException()
    {
        string bad = Path.Combine(_dir, "bad.csv");
        File.WriteAllText(bad, "id,lower,upper,size\nb1,0,3,4\nb2,9,3,4\n");
        var e = Assert.Throws<MemoException>(() => AllocateCommand.Run(new AllocateCommand.Settings { Input = bad, Output = Path.Combine(_dir, "o.csv") }, new StringWriter(), new StringWriter()));
        Assert.Contains("bad.csv:3:", e.Message, StringComparison.Ordinal);
        Assert.Throws<MemoException>(() => AllocateCommand.Run(new AllocateCommand.Settings { Input = Input(), Output = Path.Combine(_dir, "o.csv"), TimeLimit = -1 }, new StringWriter(), new StringWriter()));
    }

    [Fact]
    public void Allocate_command_parses_its_options()
    {
        string output = Path.Combine(_dir, "plan.csv");
        var command = AllocateCommand.Create();
        var parse = command.Parse(["--input", Input(), "--output", output, "--solver", "search", "--time-limit", "1", "--json"]);
        Assert.Empty(parse.Errors);
        Assert.NotEmpty(command.Parse(["--input", Input(), "--output", output, "--solver", "simplex"]).Errors);
        Assert.NotEmpty(command.Parse(["--output", output]).Errors);
    }

    [Fact]
    public void Fragmentation_reports_the_simulation_beside_the_plan()
    {
        var stdout = new StringWriter();
        int code = FragmentationCommand.Run(new FragmentationCommand.Settings { Input = Input(), Json = true, TimeLimit = 1 }, stdout);
        Assert.Equal(0, code);
        using var json = JsonDocument.Parse(stdout.ToString());
        var root = json.RootElement;
        // Five tiny (4-byte) requests: every one rounds to 512 B and they all fit one 2 MiB small segment.
        Assert.Equal(2 * 1024 * 1024, root.GetProperty("caching_reserved_peak").GetInt64());
        Assert.Equal(3 * 512, root.GetProperty("caching_allocated_peak").GetInt64());
        Assert.Equal(12, root.GetProperty("planned_peak").GetInt64());
        Assert.Equal(12, root.GetProperty("lower_bound").GetInt64());
        Assert.Equal(2 * 1024 * 1024 / 12.0, root.GetProperty("reserved_over_planned").GetDouble(), 3);
        Assert.NotNull(FragmentationCommand.Create());
        var table = new StringWriter();
        FragmentationCommand.Run(new FragmentationCommand.Settings { Input = Input(), TimeLimit = 1 }, table);
        Assert.Contains("caching allocator: reserved", table.ToString(), StringComparison.Ordinal);
    }
}
