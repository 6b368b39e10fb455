using System.Text.Json.Nodes;
using Memo.Model;
using Memo.Model.IO;
using Memo.Training;
using Memo.Training.Data;
using Xunit.Abstractions;

namespace Memo.Tests.Model;

/// <summary>
/// The whole model against PyTorch: fixtures written by tools/reference/generate.py (float64 reference
/// on float32 weights). Tolerance: per tensor, max|memo - ref| / max|ref| below 1e-4.
/// </summary>
public sealed unsafe class ReferenceModelTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string> Fixtures => new() { "llama-tiny", "llama-tied", "gpt2-tiny" };

    internal static string FixtureDir(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    internal static (int B, int T, int[] Tokens) ReadBatch(string dir)
    {
        var o = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "batch.json")))!.AsObject();
        return (o["batch"]!.GetValue<int>(), o["seq"]!.GetValue<int>(), o["tokens"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray());
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Loss_and_every_gradient_match_pytorch(string name)
    {
        string dir = FixtureDir(name);
        var cfg = Checkpoint.ReadConfig(dir);
        var (b, t, tokens) = ReadBatch(dir);
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")))!.AsObject();
        using var model = new Transformer(cfg, b, t);
        Checkpoint.LoadWeights(dir, model);
        int n = b * t;
        model.ZeroGrads();
        double loss = model.Step(b, t, tokens.AsSpan(0, n), tokens.AsSpan(1, n), backward: true, 1f / n);
        double refLoss = expected["loss"]!.GetValue<double>();
        output.WriteLine($"loss memo {loss:R} torch {refLoss:R} rel {Math.Abs(loss - refLoss) / Math.Abs(refLoss):E2}");
        Assert.True(Math.Abs(loss - refLoss) / Math.Abs(refLoss) < Tolerance, $"loss {loss} vs {refLoss}");

        using var grads = SafeTensorsReader.Open(Path.Combine(dir, "grads.safetensors"));
        var tensors = HfNames.For(model.Layout);
        Assert.Equal(grads.Tensors.Count, tensors.Count);
        foreach (var tensor in tensors)
        {
            var mine = new float[tensor.Elements];
            HfNames.Export(model.Layout, tensor, model.Grads, mine);
            var reference = grads.ReadF32(tensor.Name);
            double err = RelErr(mine, reference);
            output.WriteLine($"{tensor.Name,-45} max|ref| {reference.Max(Math.Abs):E2} rel err {err:E2}");
            Assert.True(err < Tolerance, $"{tensor.Name}: relative error {err:E3}");
        }
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Ten_adamw_steps_match_pytorch(string name)
    {
        string dir = FixtureDir(name);
        var cfg = Checkpoint.ReadConfig(dir);
        var (b, t, tokens) = ReadBatch(dir);
        var train = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")))!["train"]!.AsObject();
        var hyper = new TrainHyper
        {
            LearningRate = train["lr"]!.GetValue<double>(),
            WarmupSteps = train["warmup_steps"]!.GetValue<int>(),
            TotalSteps = train["total_steps"]!.GetValue<int>(),
            MinLrRatio = train["min_lr_ratio"]!.GetValue<double>(),
            Beta1 = train["beta1"]!.GetValue<double>(),
            Beta2 = train["beta2"]!.GetValue<double>(),
            Eps = train["eps"]!.GetValue<double>(),
            WeightDecay = train["weight_decay"]!.GetValue<double>(),
            GradClip = train["grad_clip"]!.GetValue<double>(),
        };
        var losses = train["losses"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        var norms = train["grad_norms"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        using var model = new Transformer(cfg, b, t);
        Checkpoint.LoadWeights(dir, model);
        using var trainer = new Trainer(model, new MemoryTokenSource(tokens, cfg.VocabSize), hyper, b, t, 1);
        for (int s = 0; s < losses.Length; s++)
        {
            var m = trainer.TrainStep();
            double rel = Math.Abs(m.Loss - losses[s]) / Math.Abs(losses[s]);
            double relNorm = Math.Abs(m.GradNorm - norms[s]) / Math.Abs(norms[s]);
            output.WriteLine($"step {s}: loss memo {m.Loss:F8} torch {losses[s]:F8} rel {rel:E2}; |g| memo {m.GradNorm:F6} torch {norms[s]:F6} rel {relNorm:E2}");
            Assert.True(rel < Tolerance, $"step {s}: loss {m.Loss} vs {losses[s]}");
            Assert.True(relNorm < 1e-3, $"step {s}: grad norm {m.GradNorm} vs {norms[s]}");
        }
        // The fixture data are random tokens: the loss moves rather than falls; check the updates really moved it.
        Assert.True(losses.Max(l => Math.Abs(l - losses[0])) > 1e-2, "the reference run should change the loss");
    }

    internal static double RelErr(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < a.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs((double)a[i] - b[i]));
            maxRef = Math.Max(maxRef, Math.Abs((double)b[i]));
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }
}
