using System.Globalization;
using Memo.Backends;
using Memo.Model;
using Memo.Model.Memory;
using Memo.Tests.Cli;
using Memo.Training;
using Memo.Training.Data;
using Xunit.Abstractions;

namespace Memo.Tests.Backends;

/// <summary>
/// Every registered backend trains like the scalar reference backend: the same weights, data and
/// hyperparameters give step losses within 1e-5 relative over five optimizer steps, under every memory
/// policy. The models have four layers so that swap and memo really move two layers through the host
/// store (the last two layers are never swapped).
/// </summary>
public sealed class BackendTrainingTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;
    private const int Steps = 5, Batch = 2, Seq = 24;

    public static TheoryData<string, string, string> Cases()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var backend in BackendRegistry.Names.Where(n => n != "reference"))
            foreach (var model in new[] { "llama-tiny", "gpt2-tiny" })
                foreach (var policy in new[] { "keep", "recompute", "swap", "memo" })
                    data.Add(backend, model, policy);
        return data;
    }

    private static MemoryOptions Options(string policy) => new()
    {
        Policy = MemoryOptions.ParsePolicy(policy),
        Alpha = policy == "memo" ? 0.5 : null,
        Poison = true,
    };

    internal static double[] Train(string backendName, string model, string policy)
    {
        var cfg = Presets.Resolve(model) with { NumLayers = 4 };
        using var backend = BackendRegistry.Create(backendName);
        using var m = new Transformer(backend, cfg, Batch, Seq, Options(policy));
        Initializer.Initialize(m, 11);
        var rng = new SplitMix64(5);
        var tokens = new int[Steps * Batch * Seq + 1];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = (int)(rng.Next() % (ulong)cfg.VocabSize);
        using var source = new MemoryTokenSource(tokens, cfg.VocabSize);
        var hyper = new TrainHyper { LearningRate = 3e-3, WarmupSteps = 1, TotalSteps = Steps };
        using var trainer = new Trainer(m, source, hyper, Batch, Seq, gradAccum: 1);
        var losses = new double[Steps];
        for (int s = 0; s < Steps; s++) losses[s] = trainer.TrainStep().Loss;
        return losses;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Backend_trains_like_the_reference(string backend, string model, string policy)
    {
        var want = Train("reference", model, policy);
        var got = Train(backend, model, policy);
        for (int s = 0; s < Steps; s++)
        {
            double rel = Math.Abs(got[s] - want[s]) / Math.Abs(want[s]);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {s + 1}: {backend} {got[s]:R} reference {want[s]:R} rel {rel:E2}"));
            Assert.True(double.IsFinite(got[s]) && double.IsFinite(want[s]), $"step {s + 1}: a loss is not finite");
            Assert.True(rel <= Tolerance, $"{model} {policy} step {s + 1}: {backend} loss {got[s]:R} vs reference {want[s]:R} (relative {rel:E2} > {Tolerance:E0})");
        }
        // The losses must move: five identical losses would mean the optimizer step did nothing on one side.
        Assert.NotEqual(want[0], want[^1]);
    }

    [Fact]
    public void Cli_trains_on_the_reference_backend_like_cpu()
    {
        string dir = MemoProcess.TempDir();
        try
        {
            var losses = new Dictionary<string, double[]>();
            foreach (var backend in new[] { "cpu", "reference" })
            {
                string log = Path.Combine(dir, backend + ".jsonl");
                var (exit, _, err) = MemoProcess.Run(dir, "train", "--model", "llama-tiny", "--seq", "32", "--batch", "1", "--steps", "5",
                    "--policy", "memo", "--alpha", "0.5", "--eval-samples", "0", "--backend", backend, "--log", log);
                Assert.True(exit == 0, err);
                losses[backend] = MemoProcess.ReadLog(log).Select(o => (double)o["loss"]!).ToArray();
            }
            Assert.Equal(5, losses["cpu"].Length);
            for (int s = 0; s < 5; s++)
            {
                double rel = Math.Abs(losses["cpu"][s] - losses["reference"][s]) / Math.Abs(losses["reference"][s]);
                Assert.True(rel <= Tolerance, $"step {s + 1}: cpu {losses["cpu"][s]:R} vs reference {losses["reference"][s]:R}");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Unknown_backend_is_a_one_line_usage_error()
    {
        string dir = MemoProcess.TempDir();
        try
        {
            var (exit, _, err) = MemoProcess.Run(dir, "train", "--model", "llama-tiny", "--steps", "1", "--backend", "tpu");
            Assert.Equal(2, exit);
            Assert.Contains("unknown backend 'tpu'", err, StringComparison.Ordinal);
            Assert.DoesNotContain(" at Memo.", err, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
