using System.Buffers.Binary;
using System.CommandLine;
using System.Text;
using Memo.Cli;
using Memo.Cli.Commands;
using Memo.Model.IO;
using Memo.Planner;
using Xunit.Abstractions;

namespace Memo.Tests.Cli;

/// <summary>
/// Issue 13 items 8, 9, 13 and 14: wrong types, unsupported architectures, overflowing sizes, --threads beyond the
/// machine, and messages that leaked parser internals or binary bytes. Each case was reproduced on the old code.
/// </summary>
public sealed class InputMessageTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = MemoProcess.TempDir();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("""{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10,"tie_word_embeddings":"yes"}""", "field 'tie_word_embeddings' must be true or false, not a string")]
    [InlineData("""{"model_type":"llama","hidden_size":"64","num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "field 'hidden_size' must be a whole number, not a string")]
    [InlineData("""{"model_type":"llama","hidden_size":1e12,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "out of range (at most 2147483647)")]
    [InlineData("""{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10,"rope_theta":"big"}""", "field 'rope_theta' must be a number, not a string")]
    [InlineData("""{"model_type":"qwen2","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "qwen2")]
    [InlineData("""{"model_type":"mistral","sliding_window":4096,"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "sliding_window")]
    [InlineData("""{"model_type":7,"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "model_type must be a string")]
    [InlineData("""{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "model_type is missing")]
    [InlineData("""{"model_type":"llama","attention_bias":true,"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "no biases")]
    [InlineData("""{"model_type":"llama","hidden_size":64,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "not valid JSON")]
    public void Item9_config_types_and_architectures_are_checked(string json, string expected)
    {
        var e = Assert.Throws<MemoException>(() => ModelConfig.FromJson(json, "config.json"));
        output.WriteLine(e.Message);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Item9_mistral_without_a_window_is_llama()
    {
        var cfg = ModelConfig.FromJson("""{"model_type":"mistral","sliding_window":null,"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":8,"vocab_size":10}""", "config.json");
        Assert.Equal(ModelFamily.Llama, cfg.Family);
    }

    /// <summary>Copies a fixture checkpoint and rewrites its weights with one extra tensor.</summary>
    private string WithExtraTensor(string fixture, string extra)
    {
        string src = Path.Combine(AppContext.BaseDirectory, "Fixtures", fixture);
        string dst = Path.Combine(_dir, fixture + "-" + extra.Replace('.', '_'));
        ResumeHardeningTests.CopyDir(src, dst);
        string path = Path.Combine(dst, "model.safetensors");
        var w = new SafeTensorsWriter();
        using (var r = SafeTensorsReader.Open(path))
        {
            foreach (var t in r.Tensors) w.Add<float>(t.Name, t.Shape, r.ReadF32(t.Name));
            var like = r.Get("model.embed_tokens.weight");
            w.Add<float>(extra, like.Shape, new float[like.ElementCount]);
        }
        w.Save(path);
        return dst;
    }

    [Fact]
    public void Item9_a_tied_config_with_lm_head_and_unknown_tensors_are_refused()
    {
        File.WriteAllText(Path.Combine(_dir, "text.txt"), new string('a', 400));
        var tied = MemoProcess.Run(_dir, "eval", "--checkpoint", WithExtraTensor("llama-tied", "lm_head.weight"), "--data", "text.txt", "--seq", "8");
        output.WriteLine(tied.Stderr);
        Assert.Equal(2, tied.Exit);
        Assert.Contains("holds lm_head.weight but config.json ties the head", tied.Stderr, StringComparison.Ordinal);
        var extra = MemoProcess.Run(_dir, "eval", "--checkpoint", WithExtraTensor("llama-tiny", "extra.weight"), "--data", "text.txt", "--seq", "8");
        output.WriteLine(extra.Stderr);
        Assert.Equal(2, extra.Exit);
        Assert.Contains("extra.weight", extra.Stderr, StringComparison.Ordinal);
    }

    private static (int Code, string Out, string Err) Plan(params string[] args)
    {
        var root = new RootCommand("memo") { PlanCommand.Create() };
        var o = new StringWriter();
        var e = new StringWriter();
        int code = root.Parse(["plan", .. args]).Invoke(new InvocationConfiguration { Output = o, Error = e, EnableDefaultExceptionHandler = false });
        return (code, o.ToString(), e.ToString());
    }

    [Theory]
    [InlineData("70368744177664")]
    [InlineData("4611686018427387904")]
    public void Item8_plan_refuses_lengths_whose_memory_overflows(string seq)
    {
        var e = Assert.Throws<MemoException>(() => Plan("--model", "paper-7b", "--seq", seq));
        Assert.Contains("too large to plan", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Item8_plan_exits_3_with_a_line_when_nothing_fits()
    {
        var (code, _, err) = Plan("--model", "paper-65b", "--seq", "64M", "--gpus", "1");
        Assert.Equal(PlanCommand.NothingFitsExitCode, code);
        Assert.Contains("nothing fits", err, StringComparison.Ordinal);
        var (json, _, _) = Plan("--model", "paper-65b", "--seq", "64M", "--gpus", "1", "--json");
        Assert.Equal(PlanCommand.NothingFitsExitCode, json);
        Assert.Equal(0, Plan("--model", "paper-7b", "--seq", "1M", "--gpus", "8").Code);
    }

    [Fact]
    public void Item15_layers_sets_a_presets_layer_count()
    {
        var r = MemoProcess.Run(_dir, "train", "--model", "llama-tiny", "--layers", "3", "--seq", "16", "--steps", "0", "--save", "three");
        Assert.True(r.Exit == 0, r.Stderr);
        Assert.Equal(3, ModelConfig.FromJson(File.ReadAllText(Path.Combine(_dir, "three", "config.json")), "config.json").NumLayers);
        Assert.Equal(2, MemoProcess.Run(_dir, "train", "--model", "llama-tiny", "--layers", "0").Exit);
    }

    [Fact]
    public void Item13_threads_beyond_the_cores_are_capped_with_a_notice()
    {
        var r = MemoProcess.Run(_dir, "train", "--model", "llama-tiny", "--seq", "16", "--steps", "1", "--eval-samples", "0", "--threads", "1000");
        output.WriteLine(r.Stderr);
        Assert.Equal(0, r.Exit);
        int cores = Environment.ProcessorCount;
        Assert.Contains($"--threads 1000 is more than the {cores} cores of this machine; using {cores}", r.Stderr, StringComparison.Ordinal);
        Assert.Contains($"{cores} threads", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, MemoProcess.Run(_dir, "train", "--threads", "0").Exit);
    }

    [Theory]
    [InlineData("a whole number", "allocate", "-i", "x.csv", "-o", "y.csv", "--capacity", "lots")]
    [InlineData("a number such as", "allocate", "-i", "x.csv", "-o", "y.csv", "--time-limit", "soon")]
    [InlineData("is not a whole number from", "train", "--batch", "two")]
    [InlineData("--seed must be zero or more", "train", "--seed", "-1")]
    [InlineData("see 'memo --help'", "--bogus")]
    public void Item14_messages_name_what_the_flag_takes_not_dotnet_types(string expected, params string[] args)
    {
        var r = MemoProcess.Run(_dir, args);
        output.WriteLine(r.Stderr);
        Assert.Equal(2, r.Exit);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("18446744073709551615", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Item14_train_results_go_to_stdout_and_diagnostics_to_stderr()
    {
        var r = MemoProcess.Run(_dir, "train", "--model", "llama-tiny", "--seq", "16", "--steps", "2", "--eval-samples", "4");
        Assert.Equal(0, r.Exit);
        Assert.Contains("done: step 2", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("held-out:", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("done:", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("model   llama", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Item14_csv_and_safetensors_messages_are_exact_and_never_echo_binary()
    {
        var shortRow = Assert.Throws<MemoException>(() => PlanCsv.Parse(new StringReader("id,lower,upper,size\nb1,0,3\n"), "t.csv"));
        Assert.Contains("the row is short", shortRow.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("commas", shortRow.Message, StringComparison.Ordinal);
        var garbage = Assert.Throws<MemoException>(() => PlanCsv.Parse(new StringReader("id,lower,upper,size\nb1,\u0001\u0002\u00ff\u0000,3,4\n"), "t.csv"));
        Assert.DoesNotContain(garbage.Message, char.IsControl);

        string path = Path.Combine(_dir, "big.safetensors");
        WriteHeader(path, """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1180591620717411303424]}}""");
        var big = Assert.Throws<MemoException>(() => SafeTensorsReader.Open(path).Dispose());
        Assert.Contains("out of range", big.Message, StringComparison.Ordinal);

        var w = new SafeTensorsWriter();
        w.Add<double>("d", [2], [1.0, 2.0]);
        w.Save(path);
        using var r = SafeTensorsReader.Open(path);
        var f64 = Assert.Throws<MemoException>(() => r.ReadF32("d"));
        Assert.DoesNotContain("not a float", f64.Message, StringComparison.Ordinal);
        Assert.Contains("F64", f64.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("swap", "1B")]
    [InlineData("memo", "1KB")]
    [InlineData("swap", "100MB")]
    public void Item10_the_dry_run_reaches_the_real_runs_verdict(string policy, string host)
    {
        string[] run = ["train", "--model", "llama-small", "--seq", "256", "--policy", policy, "--host-memory", host, "--steps", "1", "--eval-samples", "0"];
        var dry = MemoProcess.Run(_dir, [.. run, "--dry-run"]);
        var real = MemoProcess.Run(_dir, run);
        output.WriteLine($"dry {dry.Exit}: {dry.Stderr}\nreal {real.Exit}: {real.Stderr}");
        Assert.Equal(real.Exit, dry.Exit);
        if (real.Exit != 0) Assert.Equal(real.Stderr.Trim(), dry.Stderr.Trim());
    }

    [Fact]
    public void Item12_sample_says_when_the_context_cuts_generation()
    {
        File.WriteAllText(Path.Combine(_dir, "gpt2-32.json"), """{"model_type":"gpt2","n_embd":32,"n_layer":1,"n_head":2,"vocab_size":256,"n_positions":32}""");
        Assert.Equal(0, MemoProcess.Run(_dir, "train", "--model", "gpt2-32.json", "--seq", "32", "--steps", "0", "--save", "g").Exit);
        var r = MemoProcess.Run(_dir, "sample", "--checkpoint", "g", "--prompt", "hi", "--tokens", "40");
        output.WriteLine(r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.StartsWith("hi", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("generation stops after 30 of the 40 tokens", r.Stderr, StringComparison.Ordinal);
        var ok = MemoProcess.Run(_dir, "sample", "--checkpoint", "g", "--prompt", "hi", "--tokens", "8");
        Assert.Equal("", ok.Stderr);
    }

    private static void WriteHeader(string path, string header)
    {
        byte[] h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + 4];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
    }
}
