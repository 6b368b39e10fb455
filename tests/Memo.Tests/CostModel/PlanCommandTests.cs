using System.CommandLine;
using System.Text.Json.Nodes;
using Memo.Cli.Commands;
using Memo.CostModel;
using Memo.CostModel.Cpu;

namespace Memo.Tests.CostModel;

public sealed class PlanCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "memo-plan-tests-" + Guid.NewGuid().ToString("N"));

    public PlanCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Runs <c>memo plan</c> with <paramref name="args"/> through the command line parser; exceptions propagate.</summary>
    internal static (int Code, string Out, string Err) Invoke(params string[] args)
    {
        var root = new RootCommand("memo") { PlanCommand.Create() };
        var output = new StringWriter();
        var error = new StringWriter();
        int code = root.Parse(["plan", .. args]).Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Table_shows_the_verdicts_for_7b_at_1M()
    {
        var (code, output, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--gpus", "8", "--gpu", "a800");
        Assert.Equal(0, code);
        var memoRow = output.Split('\n').First(l => l.Contains("│ memo ", StringComparison.Ordinal));
        Assert.Contains(" yes ", memoRow, StringComparison.Ordinal);
        var megatronRow = output.Split('\n').First(l => l.Contains("│ megatron ", StringComparison.Ordinal));
        Assert.Contains(" OOM ", megatronRow, StringComparison.Ordinal);
        Assert.Contains("per-GPU memory at the peak", output, StringComparison.Ordinal);
        Assert.Contains("assumed unless measured", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_has_every_field_per_strategy()
    {
        var (code, output, _) = Invoke("--model", "llama-7b", "--seq", "1048576", "--json");
        Assert.Equal(0, code);
        var root = JsonNode.Parse(output)!.AsObject();
        Assert.Equal(1048576, root["seq"]!.GetValue<long>());
        var strategies = root["strategies"]!.AsArray();
        Assert.Equal(4, strategies.Count);
        foreach (var s in strategies)
        {
            var o = s!.AsObject();
            foreach (var key in new[] { "strategy", "fits", "reason", "device_peak_bytes", "host_bytes_per_node", "alpha", "tp", "cp", "dp",
                         "step_seconds", "tokens_per_s", "mfu", "breakdown" })
            {
                Assert.True(o.ContainsKey(key), $"{o["strategy"]}: missing {key}");
            }
            var b = o["breakdown"]!.AsObject();
            long sum = 0;
            foreach (var part in new[] { "parameters", "gradients", "optimizer_state", "kept_activations", "swap_staging", "recompute_buffers", "workspaces", "fragmentation", "reserved" })
            {
                sum += b[part]!.GetValue<long>();
            }
            Assert.Equal(o["device_peak_bytes"]!.GetValue<long>(), sum);
        }
        var memo = strategies.Single(s => s!["strategy"]!.GetValue<string>() == "memo")!;
        Assert.True(memo["fits"]!.GetValue<bool>());
        Assert.InRange(memo["mfu"]!.GetValue<double>(), 0.40, 0.60);
        Assert.InRange(memo["alpha"]!.GetValue<double>(), 0.0, 1.0);
        Assert.Equal(32, memo["alpha_per_layer"]!.AsArray().Count);
        var megatron = strategies.Single(s => s!["strategy"]!.GetValue<string>() == "megatron")!;
        Assert.False(megatron["fits"]!.GetValue<bool>());
        Assert.Null(megatron["mfu"]);
    }

    [Fact]
    public void Json_lists_each_strategys_best_configuration_with_its_features_and_both_mfu_conventions()
    {
        var (code, output, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--gpus", "8", "--gpu", "a800", "--json");
        Assert.Equal(0, code);
        var root = JsonNode.Parse(output)!.AsObject();
        Assert.Equal("chunked", root["lm_head"]!.GetValue<string>());
        Assert.Contains("causal half", root["mfu_conventions"]!["mfu"]!.GetValue<string>(), StringComparison.Ordinal);
        var assumptions = root["assumptions"]!.AsArray();
        foreach (var key in new[] { "gemm_efficiency", "attention_forward_efficiency", "attention_backward_efficiency", "collective_efficiency",
                     "host_link_bandwidth", "gpus_per_host_link", "memory_bandwidth", "fragmentation_factor", "planned_arena_overhead" })
        {
            var a = assumptions.Single(x => x!["key"]!.GetValue<string>() == key)!;
            Assert.False(string.IsNullOrWhiteSpace(a["source"]!.GetValue<string>()), key);
        }
        Assert.Equal("fitted", assumptions.Single(x => x!["key"]!.GetValue<string>() == "gpus_per_host_link")!["kind"]!.GetValue<string>());
        // memo's arena overhead is measured by the engine's planner, not assumed.
        Assert.Equal("measured", assumptions.Single(x => x!["key"]!.GetValue<string>() == "planned_arena_overhead")!["kind"]!.GetValue<string>());
        var byName = root["strategies"]!.AsArray().ToDictionary(x => x!["strategy"]!.GetValue<string>(), x => x!.AsObject());
        Assert.Equal(["memo", "megatron", "deepspeed", "keep"], byName.Keys);
        foreach (var (name, o) in byName)
        {
            var f = o["features"]!.AsObject();
            foreach (var key in new[] { "list", "checkpointing", "selective_recompute", "cpu_checkpointing", "offloaded_layers", "pipeline_stages",
                         "zero_stage", "lm_head", "allocator", "fragmentation_factor", "fragmentation_source" })
                Assert.True(f.ContainsKey(key), $"{name}: features.{key}");
            Assert.Equal("chunked", f["lm_head"]!.GetValue<string>());
            Assert.True(o["device_peak_bytes"]!.GetValue<long>() > 0, name);
            if (o["fits"]!.GetValue<bool>())
            {
                double causal = o["mfu_causal"]!.GetValue<double>(), full = o["mfu_full_attention"]!.GetValue<double>();
                Assert.True(full > causal, name);
                Assert.Equal(o["model_flops_full_attention"]!.GetValue<double>() / o["model_flops"]!.GetValue<double>(), full / causal, 1e-9);
            }
        }
        Assert.True(byName["memo"]["fits"]!.GetValue<bool>());
        Assert.Equal("caching allocator", byName["megatron"]["features"]!["allocator"]!.GetValue<string>());
        Assert.Equal("planned arena", byName["memo"]["features"]!["allocator"]!.GetValue<string>());
        Assert.True(byName["deepspeed"]["features"]!["cpu_checkpointing"]!.GetValue<bool>());
    }

    [Fact]
    public void Sensitivity_table_json_and_tornado_plot()
    {
        string path = Path.Combine(_dir, "tornado.png");
        var (code, output, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--gpus", "8", "--strategy", "memo,deepspeed", "--sensitivity", "--plot", path, "--verbose");
        Assert.Equal(0, code);
        AssertPng(path);
        Assert.Contains("sensitivity", output, StringComparison.Ordinal);
        Assert.Contains("attention_backward_efficiency", output, StringComparison.Ordinal);
        Assert.Contains("assumptions and their sources", output, StringComparison.Ordinal);
        Assert.Contains("fitted", output, StringComparison.Ordinal);
        var (_, json, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--gpus", "8", "--strategy", "memo", "--sensitivity", "--json");
        var rows = JsonNode.Parse(json)!["sensitivity"]!.AsArray();
        var attn = rows.Single(x => x!["parameter"]!.GetValue<string>() == "attention_backward_efficiency")!;
        var mfu = attn["strategies"]![0]!["mfu"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        Assert.True(mfu[0] < mfu[1] && mfu[1] < mfu[2], string.Join(", ", mfu));
    }

    [Fact]
    public void Without_and_lm_head_switch_features_off_for_every_strategy()
    {
        var (_, json, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--gpus", "8", "--json", "--lm-head", "whole", "--without", "cpu-checkpointing,offload");
        var plans = JsonNode.Parse(json)!["strategies"]!.AsArray();
        foreach (var p in plans)
        {
            Assert.Equal("whole", p!["features"]!["lm_head"]!.GetValue<string>());
            Assert.False(p["features"]!["cpu_checkpointing"]!.GetValue<bool>());
            Assert.Equal(0, p["features"]!["offloaded_layers"]!.GetValue<int>());
        }
        // With whole logits memo itself runs out of device memory at 1M, as the baselines do.
        Assert.False(plans.Single(p => p!["strategy"]!.GetValue<string>() == "memo")!["fits"]!.GetValue<bool>());
    }

    [Fact]
    public void Breakdown_plot_is_a_png()
    {
        string path = Path.Combine(_dir, "breakdown.png");
        var (code, _, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--plot", path);
        Assert.Equal(0, code);
        AssertPng(path);
    }

    [Fact]
    public void Sweep_plot_and_table()
    {
        string path = Path.Combine(_dir, "sweep.png");
        var (code, output, _) = Invoke("--model", "paper-7b", "--sweep-seq", "32K..4M", "--plot", path, "--strategy", "memo,megatron");
        Assert.Equal(0, code);
        AssertPng(path);
        foreach (var s in new[] { "32K", "1M", "4M" }) Assert.Contains($"│ {s} ", output, StringComparison.Ordinal);
        Assert.DoesNotContain("deepspeed", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Max_seq_json_answers_per_strategy()
    {
        var (code, output, _) = Invoke("--model", "paper-7b", "--max-seq", "--json", "--strategy", "memo", "--strategy", "megatron");
        Assert.Equal(0, code);
        var list = JsonNode.Parse(output)!["max_seq"]!.AsArray();
        Assert.Equal(2, list.Count);
        long memo = list[0]!["max_seq"]!.GetValue<long>();
        long megatron = list[1]!["max_seq"]!.GetValue<long>();
        Assert.True(memo >= 1 << 20);
        Assert.True(megatron < memo);
        Assert.True(list[0]!["plan"]!["fits"]!.GetValue<bool>());
    }

    [Fact]
    public void Profile_file_overrides_the_preset()
    {
        string file = Path.Combine(_dir, "node.json");
        File.WriteAllText(file, """{"base":"a800","host_memory_bytes":"1TiB"}""");
        var (_, small, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--tp", "8", "--strategy", "memo", "--json", "--device-profile", file);
        var (_, large, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--tp", "8", "--strategy", "memo", "--json");
        double a1 = JsonNode.Parse(small)!["strategies"]![0]!["alpha"]!.GetValue<double>();
        double a2 = JsonNode.Parse(large)!["strategies"]![0]!["alpha"]!.GetValue<double>();
        Assert.True(a1 < a2);
        var (_, flag, _) = Invoke("--model", "paper-7b", "--seq", "1M", "--tp", "8", "--strategy", "memo", "--json", "--node-host-memory", "1TiB");
        Assert.Equal(a1, JsonNode.Parse(flag)!["strategies"]![0]!["alpha"]!.GetValue<double>());
    }

    [Fact]
    public void Measure_fills_the_profile_from_the_local_backend()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var options = new PlanCommand.PlanOptions { Model = "llama-tiny", Seq = "4K", Gpu = "cpu", Measure = true, Json = true, Strategies = ["keep"] };
        Assert.Equal(0, PlanCommand.Run(options, output, error, new FakeMeasure()));
        var profile = JsonNode.Parse(output.ToString())!["profile"]!;
        Assert.Equal(7e9, profile["host_link_bandwidth"]!.GetValue<double>());
        Assert.Equal("host_link_bandwidth", profile["measured"]![0]!.GetValue<string>());
        Assert.Contains("fake measurement", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Cpu_measurement_reports_a_copy_rate()
    {
        var notes = new List<string>();
        var p = new CpuMeasure(copyBytes: 8L << 20, minSeconds: 0.02, warmSeconds: 0.02).Measure(DeviceProfile.Cpu(), notes);
        Assert.True(p.HostLinkBandwidth > 0 && double.IsFinite(p.HostLinkBandwidth));
        Assert.True(p.MemoryBandwidth > 0 && double.IsFinite(p.MemoryBandwidth));
        Assert.Contains("host_link_bandwidth", p.Measured);
        Assert.Contains("memory_bandwidth", p.Measured);
        Assert.InRange(p.GemmEfficiency, 1e-6, 1.0);
        Assert.Contains(notes, n => n.StartsWith("measured memcpy", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("unknown model 'gpt5'", "--model", "gpt5", "--seq", "1M")]
    [InlineData("unknown GPU 'v100'", "--model", "paper-7b", "--seq", "1M", "--gpu", "v100")]
    [InlineData("--seq is required", "--model", "paper-7b")]
    [InlineData("--model is required", "--seq", "1M")]
    [InlineData("does not divide the model's 32 attention heads", "--model", "paper-7b", "--seq", "1M", "--gpus", "6", "--tp", "3")]
    [InlineData("does not divide --gpus 8", "--model", "paper-7b", "--seq", "1M", "--cp", "3")]
    [InlineData("unknown strategy 'zero'", "--model", "paper-7b", "--seq", "1M", "--strategy", "zero")]
    [InlineData("no CUDA backend", "--model", "paper-7b", "--seq", "1M", "--measure")]
    [InlineData("is not a range", "--model", "paper-7b", "--sweep-seq", "32K")]
    [InlineData("is not a size", "--model", "paper-7b", "--seq", "1M", "--node-host-memory", "big")]
    [InlineData("does not exist", "--model", "paper-7b", "--seq", "1M", "--device-profile", "/nonexistent/p.json")]
    [InlineData("give one of them", "--model", "paper-7b", "--max-seq", "--sweep-seq", "32K..1M")]
    [InlineData("applies to --gpu cpu only", "--model", "paper-7b", "--seq", "1M", "--threads", "2")]
    [InlineData("--gpus 2 must be the number of ranks", "--model", "llama-small", "--seq", "4K", "--gpu", "cpu", "--gpus", "2")]
    [InlineData("unknown feature 'ulysses'", "--model", "paper-7b", "--seq", "1M", "--without", "ulysses")]
    [InlineData("use chunked or whole", "--model", "paper-7b", "--seq", "1M", "--lm-head", "split")]
    [InlineData("does not divide the model's 12 layers", "--model", "gpt2", "--seq", "1K", "--gpus", "8", "--pp", "8")]
    [InlineData("--fragmentation must be between 1 and 4", "--model", "paper-7b", "--seq", "1M", "--fragmentation", "0.9")]
    [InlineData("answers for one --seq", "--model", "paper-7b", "--max-seq", "--sensitivity")]
    public void Bad_input_is_one_line_with_exit_code_2(string expected, params string[] args)
    {
        var e = Assert.Throws<MemoException>(() => Invoke(args));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(2, e.ExitCode);
    }

    [Theory]
    [InlineData("1G")]
    [InlineData("lots")]
    public void A_seq_that_is_not_a_count_is_a_parse_error_with_exit_code_2(string seq)
    {
        // --seq is parsed by the option table's count parser (as in train and eval), before the command runs.
        var root = new RootCommand("memo") { PlanCommand.Create() };
        var parse = root.Parse(["plan", "--model", "paper-7b", "--seq", seq]);
        Assert.Contains(parse.Errors, e => e.Message.Contains("is not a count", StringComparison.Ordinal));
    }

    private static void AssertPng(string path)
    {
        Assert.True(File.Exists(path), path);
        var bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length > 10_000, $"{path}: only {bytes.Length} bytes");
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
    }

    private sealed class FakeMeasure : ILocalMeasure
    {
        public bool CanMeasure(DeviceProfile profile) => profile.Name == "cpu";

        public DeviceProfile Measure(DeviceProfile profile, ICollection<string> notes)
        {
            notes.Add("fake measurement");
            return profile with { HostLinkBandwidth = 7e9, Measured = ["host_link_bandwidth"] };
        }
    }
}
