using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Memo.Model;
using Memo.Training;
using Memo.Training.Data;

namespace Memo.Cli.Commands;

/// <summary><c>memo eval</c>: the loss of the first batch of a data file, and optionally its gradients.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var checkpoint = OptionTable.Checkpoint();
        checkpoint.Required = true;
        var data = OptionTable.Data();
        data.Required = true;
        var seq = OptionTable.Seq(256);
        var batch = OptionTable.Batch(1);
        var grads = OptionTable.Text("--grads", "write the gradient of the loss for every parameter to this safetensors file");
        var json = OptionTable.Json();
        var backend = OptionTable.Backend();
        var cp = OptionTable.Cp();
        var policy = OptionTable.Policy();
        var alpha = OptionTable.Alpha();
        var commTimeout = OptionTable.CommTimeout();
        var cmd = new Command("eval", "Print the mean cross-entropy of the first batch of a data file.") { checkpoint, data, seq, batch, grads, json, backend, cp, policy, alpha, commTimeout };
        cmd.SetAction(p => Run(p.GetValue(checkpoint)!, p.GetValue(data)!, p.GetValue(seq), p.GetValue(batch), p.GetValue(grads), p.GetValue(json), p.GetValue(backend)!,
            p.GetValue(cp), Train.TrainCommand.ParseMemory(p.GetValue(policy)!, p.GetValue(alpha), null, null, false), p.GetValue(commTimeout)));
        return cmd;
    }
    /// <summary>Gradients never go into a checkpoint directory, nor over a file that holds weights.</summary>
    private static void CheckGradsPath(string gradsPath, string checkpointDir)
    {
        string grads = Path.GetFullPath(gradsPath);
        string ck = Path.GetFullPath(checkpointDir).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        if (grads.StartsWith(ck, StringComparison.Ordinal))
            throw new MemoException($"--grads {gradsPath} is inside the checkpoint directory {checkpointDir}; write the gradients elsewhere");
        if (File.Exists(grads))
        {
            string? content = null;
            try
            {
                using var reader = Memo.Model.IO.SafeTensorsReader.Open(grads);
                content = reader.Metadata.GetValueOrDefault("memo_content");
            }
            catch (MemoException)
            {
                // not a safetensors file memo can read: replacing it is the user's call
            }
            if (content is "weights")
                throw new MemoException($"--grads {gradsPath} holds model weights; write the gradients to another file");
        }
    }

    private static unsafe int Run(string dir, string dataPath, long seqLong, int batch, string? gradsPath, bool json, string backendName,
        int cp, Memo.Model.Memory.MemoryOptions memory, double commTimeout)
    {
        if (batch < 1) throw new MemoException($"--batch must be at least 1 (got {batch})");
        if (seqLong < 1 || seqLong > int.MaxValue) throw new MemoException($"--seq must be between 1 and {int.MaxValue} (got {seqLong})");
        int seq = (int)seqLong;
        if (gradsPath != null) CheckGradsPath(gradsPath, dir);
        var cfg = Checkpoint.ReadConfig(dir);
        if (cfg.HasLearnedPositions && seq > cfg.MaxPositions)
            throw new MemoException($"--seq {seq} exceeds max_position_embeddings {cfg.MaxPositions} of this gpt2 model; use --seq {cfg.MaxPositions} or less");
        using (var tokenizer = Memo.Text.TokenizerRegistry.FromCheckpoint(dir))
        {
            // A text file is read with the checkpoint's tokenizer when it has one (tokenized once, cached).
            if (tokenizer != null && File.Exists(dataPath) && !TokenShards.LooksLikeShard(dataPath) && !dataPath.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
                dataPath = TokenCache.Resolve(dataPath, tokenizer, null);
        }
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
