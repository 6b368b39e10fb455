using System.Diagnostics;
using Xunit.Abstractions;

namespace Memo.Tests.Cli;

/// <summary>The <c>memo</c> command line end to end, in child processes.</summary>
public sealed class TrainCliTests(ITestOutputHelper output)
{
    private static readonly string[] Small = ["train", "--model", "llama-tiny", "--seq", "64", "--batch", "2", "--lr", "3e-3"];

    [Fact]
    public void A_killed_run_resumes_from_its_last_checkpoint_to_the_same_losses()
    {
        string dir = MemoProcess.TempDir();
        const string steps = "400";
        var full = MemoProcess.Run(dir, [.. Small, "--steps", steps, "--log", "full.jsonl"]);
        Assert.True(full.Exit == 0, full.Stderr);
        var reference = MemoProcess.ReadLog(Path.Combine(dir, "full.jsonl"));
        Assert.Equal(400, reference.Count);

        // The same run, killed once its first checkpoints exist.
        var psi = MemoProcess.Info(dir, [.. Small, "--steps", steps, "--log", "killed.jsonl", "--checkpoint", "ck", "--checkpoint-every", "10"]);
        using (var p = Process.Start(psi)!)
        {
            var sw = Stopwatch.StartNew();
            while (!File.Exists(Path.Combine(dir, "ck", "trainer.safetensors")) && !p.HasExited && sw.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(5);
            Thread.Sleep(30);
            Assert.False(p.HasExited, "the run finished before it could be killed");
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        var killed = MemoProcess.ReadLog(Path.Combine(dir, "killed.jsonl"));
        output.WriteLine($"killed after {killed.Count} logged steps");
        Assert.True(killed.Count < 400);

        var resumed = MemoProcess.Run(dir, "train", "--resume", "ck", "--log", "resumed.jsonl");
        Assert.True(resumed.Exit == 0, resumed.Stderr);
        var after = MemoProcess.ReadLog(Path.Combine(dir, "resumed.jsonl"));
        long first = after[0]["step"]!.GetValue<long>();
        output.WriteLine($"resumed at step {first}, ran {after.Count} steps");
        Assert.True(first % 10 == 1 && first > 1, $"resume should start after a checkpoint step, got {first}");
        Assert.Equal(400, after[^1]["step"]!.GetValue<long>());
        foreach (var line in after)
        {
            long step = line["step"]!.GetValue<long>();
            double a = line["loss"]!.GetValue<double>(), b = reference[(int)step - 1]["loss"]!.GetValue<double>();
            Assert.True(BitConverter.DoubleToInt64Bits(a) == BitConverter.DoubleToInt64Bits(b), $"step {step}: resumed loss {a:R} vs uninterrupted {b:R}");
        }
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public void Log_lines_carry_the_step_and_memory_fields()
    {
        string dir = MemoProcess.TempDir();
        var r = MemoProcess.Run(dir, [.. Small, "--steps", "3", "--policy", "memo", "--poison", "--log", "log.jsonl"]);
        Assert.True(r.Exit == 0, r.Stderr);
        var log = MemoProcess.ReadLog(Path.Combine(dir, "log.jsonl"));
        Assert.Equal(3, log.Count);
        foreach (var field in new[] { "step", "loss", "lr", "grad_norm", "tokens_per_s", "step_ms", "device_peak_bytes", "host_peak_bytes", "swapped_bytes", "recomputed_tokens", "copy_ms", "exposed_copy_ms", "alpha", "accuracy" })
            Assert.True(log[0].ContainsKey(field), $"missing field {field}");
        Assert.True(log[0]["device_peak_bytes"]!.GetValue<long>() > 0);
        Assert.True(double.IsFinite(log[^1]["loss"]!.GetValue<double>()));
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public void Steps_zero_saves_the_initialized_model_and_eval_and_sample_read_it()
    {
        string dir = MemoProcess.TempDir();
        var save = MemoProcess.Run(dir, "train", "--model", "llama-tiny", "--steps", "0", "--save", "init");
        Assert.True(save.Exit == 0, save.Stderr);
        Assert.True(File.Exists(Path.Combine(dir, "init", "config.json")));
        Assert.True(File.Exists(Path.Combine(dir, "init", "model.safetensors")));
        File.WriteAllText(Path.Combine(dir, "text.txt"), string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 20)));
        var eval = MemoProcess.Run(dir, "eval", "--checkpoint", "init", "--data", "text.txt", "--seq", "32", "--batch", "2", "--json", "--grads", "g.safetensors");
        Assert.True(eval.Exit == 0, eval.Stderr);
        double loss = System.Text.Json.Nodes.JsonNode.Parse(eval.Stdout)!["loss"]!.GetValue<double>();
        Assert.InRange(loss, 4.5, 6.5); // near ln(256) for an untrained byte-level model
        Assert.True(new FileInfo(Path.Combine(dir, "g.safetensors")).Length > 100_000);
        var sample = MemoProcess.Run(dir, "sample", "--checkpoint", "init", "--prompt", "hello", "--tokens", "8");
        Assert.True(sample.Exit == 0, sample.Stderr);
        Assert.StartsWith("hello", sample.Stdout, StringComparison.Ordinal);
        Directory.Delete(dir, recursive: true);
    }

    public static TheoryData<string[], string> BadInputs => new()
    {
        { ["train", "--model", "llama-huge"], "unknown model" },
        { ["train", "--model", "bad.json"], "not valid JSON" },
        { ["train", "--model", "gqa.json"], "does not divide" },
        { ["train", "--model", "gpt2-tiny", "--seq", "2048"], "max_position_embeddings" },
        { ["train", "--model", "llama-tiny", "--data", "bad.bin"], "magic" },
        { ["train", "--model", "llama-tiny", "--data", "short.bin"], "truncated" },
        { ["train", "--model", "llama-tiny", "--data", "big.bin"], "vocab_size" },
        { ["train", "--model", "llama-tiny", "--policy", "offload"], "unknown policy" },
        { ["train", "--model", "llama-tiny", "--policy", "memo", "--alpha", "1.5"], "--alpha" },
        { ["train", "--model", "llama-tiny", "--device-memory", "1MiB"], "parameters" },
        { ["train", "--model", "llama-small", "--policy", "memo", "--host-memory", "1KB"], "host-memory" },
        { ["train", "--model", "llama-tiny", "--seq", "12Q"], "not a count" },
        { ["train", "--model", "llama-tiny", "--seq", "64", "--curriculum", "128x5"], "not shorter than --seq 64" },
        { ["train", "--model", "llama-tiny", "--curriculum", "16by5"], "is not SEQxSTEPS" },
        { ["train", "--model", "llama-tiny", "--task", "recall:pairs=zero"], "positive whole number" },
        { ["train", "--model", "llama-tiny", "--eval-samples", "-1"], "--eval-samples" },
        { ["eval", "--checkpoint", "corrupt", "--data", "text.txt", "--seq", "16"], "model.safetensors" },
        { ["eval", "--checkpoint", "wrongshape", "--data", "text.txt", "--seq", "16"], "shape" },
        { ["eval", "--checkpoint", "nowhere", "--data", "text.txt"], "does not exist" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_gives_one_line_and_exit_code_2(string[] args, string expected)
    {
        string dir = BadInputDir.Value;
        var r = MemoProcess.Run(dir, args);
        output.WriteLine(r.Stderr);
        Assert.Equal(2, r.Exit);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failed_save_leaves_the_old_checkpoint_untouched()
    {
        string dir = MemoProcess.TempDir();
        Assert.Equal(0, MemoProcess.Run(dir, "train", "--model", "llama-tiny", "--steps", "0", "--save", "ck").Exit);
        byte[] before = File.ReadAllBytes(Path.Combine(dir, "ck", "model.safetensors"));
        var bad = MemoProcess.Run(dir, "train", "--model", "llama-tiny", "--steps", "2", "--lr", "-1", "--save", "ck");
        Assert.Equal(2, bad.Exit);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(dir, "ck", "model.safetensors")));
        Assert.DoesNotContain(Directory.GetDirectories(dir), d => d.Contains(".tmp", StringComparison.Ordinal));
        Directory.Delete(dir, recursive: true);
    }

    private static readonly Lazy<string> BadInputDir = new(() =>
    {
        string dir = MemoProcess.TempDir();
        File.WriteAllText(Path.Combine(dir, "bad.json"), "{\"model_type\": \"llama\", ");
        File.WriteAllText(Path.Combine(dir, "gqa.json"), """{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":3,"intermediate_size":64,"vocab_size":256}""");
        var header = new byte[1024];
        BitConverter.GetBytes(12345).CopyTo(header, 0);
        File.WriteAllBytes(Path.Combine(dir, "bad.bin"), header);
        Memo.Training.Data.TokenShards.WriteShard(Path.Combine(dir, "short.bin"), Enumerable.Range(0, 5000).Select(i => (ushort)(i % 200)).ToArray());
        using (var f = new FileStream(Path.Combine(dir, "short.bin"), FileMode.Open)) f.SetLength(f.Length - 100);
        Memo.Training.Data.TokenShards.WriteShard(Path.Combine(dir, "big.bin"), Enumerable.Range(0, 5000).Select(i => (ushort)(i == 4000 ? 300 : i % 200)).ToArray());
        File.WriteAllText(Path.Combine(dir, "text.txt"), new string('a', 4000));
        Assert.Equal(0, MemoProcess.Run(dir, "train", "--model", "llama-tiny", "--steps", "0", "--save", "corrupt").Exit);
        using (var f = new FileStream(Path.Combine(dir, "corrupt", "model.safetensors"), FileMode.Open)) f.SetLength(f.Length / 2);
        Assert.Equal(0, MemoProcess.Run(dir, "train", "--model", "llama-tiny", "--steps", "0", "--save", "wrongshape").Exit);
        string cfg = File.ReadAllText(Path.Combine(dir, "wrongshape", "config.json")).Replace("\"intermediate_size\": 176", "\"intermediate_size\": 128", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(dir, "wrongshape", "config.json"), cfg);
        return dir;
    });
}
