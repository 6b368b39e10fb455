using System.Globalization;
using System.Text.Json.Nodes;

namespace Memo.Tests.CostModel;

/// <summary>
/// <c>memo plan --disk-tier</c>: without a disk tier the output is byte for byte what it was before the tier existed
/// (Fixtures/plan-without-disk, printed at 9af7ae0); with one, the table, the notes and --json say what it changes.
/// </summary>
public sealed class DiskTierPlanCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "memo-disk-plan-tests-" + Guid.NewGuid().ToString("N"));

    public DiskTierPlanCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Invoke(params string[] args) => PlanCommandTests.Invoke(args);

    private static string Fixture(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "plan-without-disk", name));

    [Theory]
    [InlineData("a800-7b-1M.json", "--model", "paper-7b", "--seq", "1M", "--gpus", "8", "--gpu", "a800", "--json")]
    [InlineData("h100-llama7b-maxseq.json", "--model", "llama-7b", "--gpu", "h100", "--max-seq", "--strategy", "memo,megatron", "--json")]
    [InlineData("h200-13b-512K.txt", "--model", "paper-13b", "--seq", "512K", "--gpu", "h200")]
    [InlineData("a800-7b-sweep.txt", "--model", "paper-7b", "--gpu", "a800", "--sweep-seq", "256K..2M", "--strategy", "memo")]
    public void Without_a_disk_tier_the_plan_is_unchanged(string fixture, params string[] args)
    {
        var (code, output, _) = Invoke(args);
        Assert.Equal(0, code);
        Assert.Equal(Fixture(fixture), output);
    }

    [Fact]
    public void Disk_tier_none_drops_the_profile_files_disk_and_plans_as_before()
    {
        string file = Path.Combine(_dir, "nvme.json");
        File.WriteAllText(file, """{"base": "a800", "disk_capacity_bytes": "30TB", "disk_read_bandwidth": 25e9, "disk_write_bandwidth": 12e9}""");
        var (code, output, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--gpus", "8", "--gpu", "a800", "--json", "--device-profile", file, "--disk-tier", "none");
        Assert.Equal(0, code);
        Assert.Equal(Fixture("a800-7b-1M.json"), output);
    }

    [Fact]
    public void Json_states_the_bytes_per_tier_and_what_the_disk_tier_changes()
    {
        string file = Path.Combine(_dir, "nvme.json");
        File.WriteAllText(file, """{"base": "a800", "disk_capacity_bytes": "30TB", "disk_read_bandwidth": 25e9, "disk_write_bandwidth": 25e9}""");
        var (code, output, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--gpus", "8", "--device-profile", file, "--strategy", "memo,megatron", "--json");
        Assert.Equal(0, code);
        var root = JsonNode.Parse(output)!.AsObject();
        Assert.Equal(30e12, root["profile"]!["disk_capacity_bytes"]!.GetValue<double>());
        var memo = root["strategies"]!.AsArray().Single(s => s!["strategy"]!.GetValue<string>() == "memo")!;
        long ram = memo["swapped_bytes_per_node"]!["host_ram"]!.GetValue<long>();
        long disk = memo["swapped_bytes_per_node"]!["disk"]!.GetValue<long>();
        Assert.Equal(memo["host_bytes_per_node"]!.GetValue<long>(), ram);
        // The two tiers hold what the 8 GPUs swap, and RAM holds no more than the node's usable host memory.
        Assert.Equal(8 * memo["breakdown"]!["host_bytes_per_gpu"]!.GetValue<long>(), ram + disk);
        Assert.True(disk > 0);
        Assert.True(ram <= DeviceProfileUsableHost());
        Assert.InRange(memo["disk_layers"]!.GetValue<int>(), 1, 30);

        var tier = root["disk_tier"]!.AsObject();
        Assert.True(tier["uses_disk"]!.GetValue<bool>());
        Assert.True(tier["changes_alpha"]!.GetValue<bool>());
        double before = tier["without"]!["alpha"]!.GetValue<double>(), after = tier["with"]!["alpha"]!.GetValue<double>();
        Assert.True(after > before);
        Assert.Equal(memo["alpha"]!.GetValue<double>(), after);
        Assert.Equal(0, tier["without"]!["disk_bytes_per_node"]!.GetValue<long>());
        Assert.StartsWith(string.Create(CultureInfo.InvariantCulture, $"disk tier: alpha {before:0.000} -> {after:0.000}"), tier["note"]!.GetValue<string>(), StringComparison.Ordinal);
        // The baselines do not swap to disk; their plans carry the tier's capacity but no bytes on it.
        var megatron = root["strategies"]!.AsArray().Single(s => s!["strategy"]!.GetValue<string>() == "megatron")!;
        Assert.Equal(0, megatron["swapped_bytes_per_node"]!["disk"]!.GetValue<long>());
        Assert.Contains(root["assumptions"]!.AsArray(), a => a!["key"]!.GetValue<string>() == "disk_write_bandwidth");
    }

    private static long DeviceProfileUsableHost() => Memo.CostModel.DeviceProfile.A800.UsableHostBytes;

    [Fact]
    public void The_table_shows_a_disk_column_and_the_change_in_its_notes()
    {
        var (code, output, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--gpus", "8", "--gpu", "a800", "--disk-tier", "30TB@25GB/s", "--strategy", "memo");
        Assert.Equal(0, code);
        Assert.Contains("disk / node", output, StringComparison.Ordinal);
        Assert.Contains("disk tier: 27.28 TiB per node behind host memory", output, StringComparison.Ordinal);
        var note = output.Split('\n').Single(l => l.StartsWith("disk tier: alpha ", StringComparison.Ordinal));
        Assert.Contains(" -> ", note, StringComparison.Ordinal);
        Assert.Contains("swapped layers), ", note, StringComparison.Ordinal);
    }

    [Fact]
    public void Max_seq_reports_the_longest_sequence_with_and_without_the_disk_tier()
    {
        // 512 GiB of host memory bounds memo's longest sequence for paper-7b on 8 A800s; 30 TB of NVMe lifts it.
        var (code, output, _) = Invoke("--model", "paper-7b", "--gpus", "8", "--gpu", "a800", "--node-host-memory", "512GiB", "--disk-tier", "30TB@25GB/s",
            "--strategy", "memo", "--max-seq", "--json");
        Assert.Equal(0, code);
        var root = JsonNode.Parse(output)!.AsObject();
        var tier = root["disk_tier"]!.AsObject();
        long before = tier["max_seq_without"]!.GetValue<long>(), after = tier["max_seq_with"]!.GetValue<long>();
        Assert.True(tier["changes_max_seq"]!.GetValue<bool>());
        Assert.True(after > before);
        Assert.Equal(root["max_seq"]!.AsArray()[0]!["max_seq"]!.GetValue<long>(), after);
        Assert.StartsWith($"disk tier: longest sequence {Sizes.FormatCount(before)} -> {Sizes.FormatCount(after)}", tier["note"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("write CAPACITY@BANDWIDTH", "--disk-tier", "30TB")]
    [InlineData("is not a rate", "--disk-tier", "30TB@quick")]
    [InlineData("a disk tier in the plan is for GPU profiles", "--gpu", "cpu", "--disk-tier", "1TB@2GB/s")]
    public void Bad_disk_tier_input_is_one_line_with_exit_code_2(string expected, params string[] extra)
    {
        var e = Assert.Throws<MemoException>(() => Invoke(["--model", "llama-small", "--seq", "4K", .. extra]));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(2, e.ExitCode);
    }
}
