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
        var data = CliOptions.Text("--data", "a text file (byte tokens) or llm.c token shard(s)");
        data.Required = true;
        var seq = CliOptions.Count("--seq", "sequence length T", 256);
        var batch = CliOptions.Int("--batch", "batch rows B", 1);
        var grads = CliOptions.Text("--grads", "write the gradient of the loss for every parameter to this safetensors file");
        var json = CliOptions.Flag("--json", "print {\"loss\": ...} instead of a line of text");
        var backend = CliOptions.Text("--backend", "kernels to run on: cpu (vectorized, all threads) or reference (scalar, one thread; for checking)", "cpu");
        var cp = CliOptions.Int("--cp", "context-parallel ranks C: each sequence split zig-zag over C processes (launch with mpiexec -n C)", 1);
        var policy = CliOptions.Text("--policy", "activation memory policy: keep, recompute, swap or memo", "keep");
        var alpha = CliOptions.Text("--alpha", "memo: fraction of tokens whose token-local activations are swapped");
        var commTimeout = CliOptions.Double("--comm-timeout", "with several processes: seconds to wait for another rank before stopping with an error", ParallelRun.DefaultTimeoutSeconds);
        var cmd = new Command("eval", "Print the mean cross-entropy of the first batch of a data file.") { checkpoint, data, seq, batch, grads, json, backend, cp, policy, alpha, commTimeout };
        cmd.SetAction(p => Run(p.GetValue(checkpoint)!, p.GetValue(data)!, p.GetValue(seq), p.GetValue(batch), p.GetValue(grads), p.GetValue(json), p.GetValue(backend)!,
            p.GetValue(cp), TrainCommand.ParseMemory(p.GetValue(policy)!, p.GetValue(alpha), null, null, false), p.GetValue(commTimeout)));
        return cmd;
    }

    private static unsafe int Run(string dir, string dataPath, long seqLong, int batch, string? gradsPath, bool json, string backendName,
        int cp, Memo.Model.Memory.MemoryOptions memory, double commTimeout)
    {
        if (batch < 1) throw new MemoException($"--batch must be at least 1 (got {batch})");
        if (seqLong < 1 || seqLong > int.MaxValue) throw new MemoException($"--seq must be between 1 and {int.MaxValue} (got {seqLong})");
        int seq = (int)seqLong;
        var cfg = Checkpoint.ReadConfig(dir);
        if (cfg.HasLearnedPositions && seq > cfg.MaxPositions)
            throw new MemoException($"--seq {seq} exceeds max_position_embeddings {cfg.MaxPositions} of this gpt2 model; use --seq {cfg.MaxPositions} or less");
        using var parallel = ParallelRun.Start(cp, seq, commTimeout);
        using var source = DataSources.Open(dataPath, cfg.VocabSize);
        using var baseBackend = BackendRegistry.Create(backendName);
        using var cpBackend = parallel != null && cp > 1 ? parallel.Backend(baseBackend, cfg, batch, seq) : null;
        int local = seq / Math.Max(1, cp);
        using var model = new Transformer(cpBackend ?? baseBackend, cfg, batch, local, memory);
        Checkpoint.LoadWeights(dir, model);
        int n = batch * seq;
        var inputs = new int[n];
        var targets = new int[n];
        var mask = new byte[n];
        source.NextBatch(batch, seq, inputs, targets, mask);
        if (cp > 1)
        {
            // This rank's zig-zag rows; every data-parallel group evaluates the same batch.
            var split = new Memo.Distributed.ZigZag(seq, cp);
            var li = new int[n / cp];
            var lt = new int[n / cp];
            Memo.Distributed.Replicas.Slice<int>(inputs, split, parallel!.Groups.ContextRank, li);
            Memo.Distributed.Replicas.Slice<int>(targets, split, parallel.Groups.ContextRank, lt);
            inputs = li;
            targets = lt;
        }
        bool backward = gradsPath != null;
        model.ZeroGrads();
        double loss = model.Step(batch, local, inputs, targets, backward, (float)(1.0 / n));
        if (cp > 1)
        {
            var ring = parallel!.Groups.Ring;
            loss = Memo.Distributed.Replicas.Sum(ring, loss) / cp;
            if (backward) Memo.Distributed.Replicas.SumGradients(ring, model.Grads, model.Layout.TotalElements);
        }
        if (gradsPath != null && (parallel?.IsRoot ?? true))
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
