using System.Text.Json.Nodes;
using Memo.Model.IO;
using Memo.Tests.Cli;
using Xunit.Abstractions;

namespace Memo.Tests.Model;

/// <summary>
/// Hugging Face checkpoints as published (sharded index, bf16/fp16, GPT-2 names without "transformer." and
/// its mask buffers, llama rope_scaling llama3 and yarn) written by tools/reference/generate.py: `memo eval`
/// loads them and gives PyTorch's float64 loss and gradients within 1e-4 relative, for llama at a sequence
/// (96) longer than the original context (64).
/// </summary>
public sealed class HfCheckpointTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string> Fixtures => new() { "hf-llama3-bf16", "hf-yarn-bf16", "hf-gpt2-fp16" };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Memo_eval_matches_pytorch_loss_and_gradients(string name)
    {
        string dir = ReferenceModelTests.FixtureDir(name);
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")))!.AsObject();
        int b = expected["batch"]!.GetValue<int>(), t = expected["seq"]!.GetValue<int>();
        string work = MemoProcess.TempDir();
        string grads = Path.Combine(work, "grads.safetensors");
        var r = MemoProcess.Run(work, "eval", "--checkpoint", dir, "--data", Path.Combine(dir, "tokens.bin"),
            "--seq", t.ToString(System.Globalization.CultureInfo.InvariantCulture), "--batch", b.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--grads", grads, "--json");
        Assert.True(r.Exit == 0, r.Stderr);
        double loss = JsonNode.Parse(r.Stdout)!["loss"]!.GetValue<double>();
        double refLoss = expected["loss"]!.GetValue<double>();
        output.WriteLine($"loss memo {loss:R} torch {refLoss:R}");
        Assert.True(Math.Abs(loss - refLoss) / Math.Abs(refLoss) < Tolerance, $"loss {loss} vs {refLoss}");

        using var mine = SafeTensorsReader.Open(grads);
        using var reference = SafeTensorsReader.Open(Path.Combine(dir, "grads.safetensors"));
        Assert.Equal(reference.Tensors.Count, mine.Tensors.Count);
        foreach (var tensor in reference.Tensors)
        {
            var a = mine.ReadF32(tensor.Name);
            var e = reference.ReadF32(tensor.Name);
            double max = e.Max(Math.Abs), diff = 0;
            for (int i = 0; i < e.Length; i++) diff = Math.Max(diff, Math.Abs(a[i] - e[i]));
            output.WriteLine($"{tensor.Name,-45} rel err {diff / max:E2}");
            Assert.True(diff / max < Tolerance, $"{tensor.Name}: relative error {diff / max:E3}");
        }
    }

    [Fact]
    public void Without_its_rope_scaling_the_extended_llama_gives_other_gradients()
    {
        // Guards the test above against a rope_scaling that is parsed but not applied.
        string dir = ReferenceModelTests.FixtureDir("hf-llama3-bf16");
        string work = MemoProcess.TempDir();
        foreach (var f in Directory.GetFiles(dir)) File.Copy(f, Path.Combine(work, Path.GetFileName(f)));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        cfg.Remove("rope_scaling");
        File.WriteAllText(Path.Combine(work, "config.json"), cfg.ToJsonString());
        var r = MemoProcess.Run(work, "eval", "--checkpoint", work, "--data", "tokens.bin", "--seq", "96", "--grads", "g.safetensors");
        Assert.True(r.Exit == 0, r.Stderr);
        // With small random weights the loss barely depends on positions; the q/k gradients do.
        using var mine = SafeTensorsReader.Open(Path.Combine(work, "g.safetensors"));
        using var reference = SafeTensorsReader.Open(Path.Combine(dir, "grads.safetensors"));
        const string Name = "model.layers.0.self_attn.q_proj.weight";
        var a = mine.ReadF32(Name);
        var e = reference.ReadF32(Name);
        double max = e.Max(Math.Abs), diff = 0;
        for (int i = 0; i < e.Length; i++) diff = Math.Max(diff, Math.Abs(a[i] - e[i]));
        output.WriteLine($"{Name} without rope_scaling: rel err {diff / max:E2}");
        Assert.True(diff / max > 100 * Tolerance, $"{Name}: gradient without rope_scaling is within {diff / max:E2} of the scaled reference");
    }

    [Fact]
    public void Shapes_that_disagree_with_config_fail_in_one_line_with_exit_2()
    {
        string dir = ReferenceModelTests.FixtureDir("hf-yarn-bf16");
        string work = MemoProcess.TempDir();
        foreach (var f in Directory.GetFiles(dir)) File.Copy(f, Path.Combine(work, Path.GetFileName(f)));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        cfg["intermediate_size"] = 128;
        File.WriteAllText(Path.Combine(work, "config.json"), cfg.ToJsonString());
        var r = MemoProcess.Run(work, "eval", "--checkpoint", work, "--data", "tokens.bin", "--seq", "96", "--grads", "g.safetensors");
        Assert.Equal(2, r.Exit);
        Assert.Contains("do not match config.json", r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(File.Exists(Path.Combine(work, "g.safetensors")));
    }

    [Fact]
    public void An_unknown_rope_scaling_type_fails_in_one_line_with_exit_2()
    {
        string dir = ReferenceModelTests.FixtureDir("hf-yarn-bf16");
        string work = MemoProcess.TempDir();
        foreach (var f in Directory.GetFiles(dir)) File.Copy(f, Path.Combine(work, Path.GetFileName(f)));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        cfg["rope_scaling"]!["rope_type"] = "longrope2";
        File.WriteAllText(Path.Combine(work, "config.json"), cfg.ToJsonString());
        var r = MemoProcess.Run(work, "eval", "--checkpoint", work, "--data", "tokens.bin", "--seq", "96");
        Assert.Equal(2, r.Exit);
        Assert.Contains("rope_scaling type 'longrope2' is not supported", r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Trim().Split('\n'));

        var t = MemoProcess.Run(work, "train", "--model", "llama-tiny", "--rope-scaling", "ntk-by-parts:factor=2", "--steps", "1", "--save", "out");
        Assert.Equal(2, t.Exit);
        Assert.Contains("is not supported", t.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(work, "out")));
    }

    [Fact]
    public void A_missing_shard_is_named()
    {
        string dir = ReferenceModelTests.FixtureDir("hf-llama3-bf16");
        string work = MemoProcess.TempDir();
        foreach (var f in Directory.GetFiles(dir)) File.Copy(f, Path.Combine(work, Path.GetFileName(f)));
        File.Delete(Path.Combine(work, "model-00002-of-00003.safetensors"));
        var e = Assert.Throws<MemoException>(() => HfWeights.Open(work));
        Assert.Contains("model-00002-of-00003.safetensors", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>`memo train --init DIR` from published layouts, and what `--save` writes.</summary>
public sealed class InitFromHfTests
{
    [Theory]
    [InlineData("hf-llama3-bf16", "model.layers.1.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight")]
    [InlineData("hf-gpt2-fp16", "h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.weight")]
    public void Init_loads_half_precision_shards_exactly_and_save_writes_transformers_names(string fixture, string published, string saved)
    {
        string dir = ReferenceModelTests.FixtureDir(fixture);
        string work = MemoProcess.TempDir();
        var r = MemoProcess.Run(work, "train", "--init", dir, "--data", Path.Combine(dir, "tokens.bin"), "--seq", "16", "--steps", "0", "--save", "out");
        Assert.True(r.Exit == 0, r.Stderr);
        using var weights = HfWeights.Open(dir);
        var (reader, name) = weights.Find(published)!.Value;
        var original = reader.ReadF32(name);
        using var outReader = SafeTensorsReader.Open(Path.Combine(work, "out", "model.safetensors"));
        Assert.Equal(SafeTensorDType.F32, outReader.Get(saved).DType);
        Assert.Equal(original, outReader.ReadF32(saved)); // bf16/fp16 widen to fp32 exactly
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(work, "out", "config.json")))!.AsObject();
        Assert.Equal("float32", cfg["torch_dtype"]!.GetValue<string>());
    }

    [Fact]
    public void Init_with_rope_scaling_trains_and_saves_the_extended_config()
    {
        string dir = ReferenceModelTests.FixtureDir("hf-yarn-bf16");
        string work = MemoProcess.TempDir();
        var r = MemoProcess.Run(work, "train", "--init", dir, "--data", Path.Combine(dir, "tokens.bin"), "--seq", "64", "--steps", "2",
            "--rope-scaling", "linear:factor=2", "--save", "out");
        Assert.True(r.Exit == 0, r.Stderr);
        Assert.Contains("weights from", r.Stderr, StringComparison.Ordinal);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(work, "out", "config.json")))!.AsObject();
        Assert.Equal("linear", cfg["rope_scaling"]!["rope_type"]!.GetValue<string>());
        Assert.Equal(512, cfg["max_position_embeddings"]!.GetValue<int>());
    }
}
