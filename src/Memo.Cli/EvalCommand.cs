using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Memo.Model;
using Memo.Training;
using Memo.Training.Data;

namespace Memo.Cli;

/// <summary><c>memo eval</c>: the loss of the first batch of a data file, and optionally its gradients.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var checkpoint = CliOptions.Text("--checkpoint", "checkpoint directory (config.json + model.safetensors)");
        checkpoint.Required = true;
        var data = CliOptions.Text("--data", "a text file (the checkpoint's tokenizer, else byte tokens) or token shard(s)");
        data.Required = true;
        var seq = CliOptions.Count("--seq", "sequence length T", 256);
        var batch = CliOptions.Int("--batch", "batch rows B", 1);
        var grads = CliOptions.Text("--grads", "write the gradient of the loss for every parameter to this safetensors file");
        var json = CliOptions.Flag("--json", "print {\"loss\": ...} instead of a line of text");
        var backend = CliOptions.Text("--backend", "kernels to run on: cpu (vectorized, all threads) or reference (scalar, one thread; for checking)", "cpu");
        var cmd = new Command("eval", "Print the mean cross-entropy of the first batch of a data file.") { checkpoint, data, seq, batch, grads, json, backend };
        cmd.SetAction(p => Run(p.GetValue(checkpoint)!, p.GetValue(data)!, p.GetValue(seq), p.GetValue(batch), p.GetValue(grads), p.GetValue(json), p.GetValue(backend)!));
        return cmd;
    }

    private static unsafe int Run(string dir, string dataPath, long seqLong, int batch, string? gradsPath, bool json, string backendName)
    {
        if (batch < 1) throw new MemoException($"--batch must be at least 1 (got {batch})");
        if (seqLong < 1 || seqLong > int.MaxValue) throw new MemoException($"--seq must be between 1 and {int.MaxValue} (got {seqLong})");
        int seq = (int)seqLong;
        var cfg = Checkpoint.ReadConfig(dir);
        if (cfg.HasLearnedPositions && seq > cfg.MaxPositions)
            throw new MemoException($"--seq {seq} exceeds max_position_embeddings {cfg.MaxPositions} of this gpt2 model; use --seq {cfg.MaxPositions} or less");
        using (var tokenizer = Memo.Text.TokenizerRegistry.FromCheckpoint(dir))
        {
            // A text file is read with the checkpoint's tokenizer when it has one (tokenized once, cached).
            if (tokenizer != null && File.Exists(dataPath) && !TokenShards.LooksLikeShard(dataPath) && !dataPath.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
                dataPath = TokenCache.Resolve(dataPath, tokenizer, null);
        }
        using var source = DataSources.Open(dataPath, cfg.VocabSize);
        using var backend = BackendRegistry.Create(backendName);
        using var model = new Transformer(backend, cfg, batch, seq);
        Checkpoint.LoadWeights(dir, model);
        int n = batch * seq;
        var inputs = new int[n];
        var targets = new int[n];
        var mask = new byte[n];
        source.NextBatch(batch, seq, inputs, targets, mask);
        bool backward = gradsPath != null;
        model.ZeroGrads();
        double loss = model.Step(batch, seq, inputs, targets, backward, (float)(1.0 / n));
        if (gradsPath != null)
        {
            using var grads = model.CopyBlockToHost(model.Grads);
            Checkpoint.WriteTensors(gradsPath, model.Layout, grads.Floats, "gradients");
        }
        Console.WriteLine(json
            ? new JsonObject { ["loss"] = loss }.ToJsonString()
            : string.Create(CultureInfo.InvariantCulture, $"loss {loss:0.000000} ({batch} x {seq} tokens of {source.Description})"));
        return 0;
    }
}
