// The one table of command-line flags. Every flag of every command is built here, by one method per flag,
// so a name has one parser and one meaning (one help text) wherever it appears; commands choose which flags
// they take and, where it differs, their default. Cli/OptionTableTests checks that no two commands describe
// a flag differently.
using System.CommandLine;
using System.Globalization;
using Memo.Training.Data;

namespace Memo.Cli;

internal static class OptionTable
{
    // --- model, data and shape -------------------------------------------------------------------------

    public static Option<string> Model(string? defaultValue = null) =>
        Text("--model", "model: a preset (" + string.Join(", ", Presets.Names) + ") or a config.json path", defaultValue);

    public static Option<int?> Layers() =>
        new("--layers") { Description = "number of transformer layers, overriding the model's num_hidden_layers (e.g. llama-small with 8 layers)" };

    public static Option<string> Data() =>
        Text("--data", "data: a text file (byte tokens) or llm.c token shard(s) (.bin file or directory)");

    public static Option<string> Task(string defaultValue) =>
        Text("--task", $"built-in synthetic task when no --data is given ({string.Join(", ", Tasks.Names)}); recall takes options: recall:pairs=K,queries=Q,filler=pattern|random (default: passkey, K = Q = 1, pattern)", defaultValue);

    public static Option<long> Seq(long defaultValue) => Count("--seq", "tokens per sequence T: an integer or a K/M suffix (4096, 32K, 1M)", defaultValue);

    /// <summary><c>--seq</c> without a default, for commands where it is required unless another flag is given.</summary>
    public static Option<long?> SeqOptional() => CountOptional("--seq", "tokens per sequence T: an integer or a K/M suffix (4096, 32K, 1M)");

    public static Option<int> Batch(int defaultValue) => Int("--batch", "sequences per micro-batch B", defaultValue);

    public static Option<int?> Threads() =>
        new("--threads") { Description = "worker threads (default: all cores; more than the machine's cores are capped with a notice)" };

    public static Option<int> Seed(int defaultValue) => Int("--seed", "random seed (initialization, synthetic data, sampling)", defaultValue);

    public static Option<bool> Json() => Flag("--json", "print one JSON object instead of text or tables");

    public static Option<string?> Plot() =>
        new("--plot") { Description = "also draw the result to this PNG file (plan: the per-GPU memory breakdown, or MFU and memory against length with --sweep-seq; allocate and trace: the buffers of the plan)" };

    // --- memory -----------------------------------------------------------------------------------------

    public static Option<string> Backend() =>
        Text("--backend", "kernels to run on: cpu (vectorized, all threads) or reference (scalar, one thread; for checking)", "cpu");

    public static Option<string> Policy() => Text("--policy", "activation memory policy: keep, recompute, swap or memo", "keep");

    public static Option<string> Alpha() =>
        Text("--alpha", "memo: fraction of tokens whose token-local activations are swapped, for every layer (0.5) or per layer (0.2,0.4,...: one value per layer) (default: the largest the copy time and host budget allow)");

    public static Option<string> DeviceMemory() =>
        Text("--device-memory", "device memory per device, e.g. 512MiB or 80GiB (train: the arena budget, default what the plan needs; plan: overrides the profile)");

    /// <summary>The host store budget for swapped activations. <c>memo plan</c> names a node's host memory <c>--node-host-memory</c>.</summary>
    public static Option<string> HostMemory() =>
        Text("--host-memory", "host memory budget for swapped activations, e.g. 4GB; with --host-store disk, the RAM tier (default: what swapping needs; with disk, none)");

    public static Option<string> HostStore() =>
        Text("--host-store", "where swapped activations wait: memory (host RAM), or disk[:DIR]: RAM up to --host-memory, the rest in a file in DIR (default: the temp directory) written with direct I/O", "memory");

    public static Option<bool> Profile() =>
        Flag("--profile", "time each part of the step (norms, projections, attention forward/backward, MLP, head and loss, optimizer, recompute, copy and disk waits) and print each one's share at the end; --log gets the same fields");

    public static Option<string> DiskTier() =>
        Text("--disk-tier", "plan: a disk (NVMe) tier per node behind host memory for memo's swapped activations, CAPACITY@BANDWIDTH or CAPACITY@READ,WRITE, e.g. 30TB@25GB/s or 30TB@25GB/s,12GB/s (shared by the node's GPUs; none drops the profile's disk tier)");

    public static Option<string> NodeHostMemory() =>
        Text("--node-host-memory", "host memory per node, e.g. 2TiB (overrides the device profile)");

    // --- several processes (MPI) ------------------------------------------------------------------------

    public static Option<int> Cp() =>
        Int("--cp", "context-parallel ranks C: train and eval split each sequence zig-zag over C processes with ring attention (launch N = C x D processes with mpiexec -n N; D groups train on different batches); plan fixes the context-parallel degree (the Ulysses degree for deepspeed)", 1);

    public static Option<int> CheckReplicas() =>
        Int("--check-replicas", "with several processes: compare parameter checksums over all ranks every K steps (0: never)", 0);

    public static Option<double> CommTimeout() =>
        Double("--comm-timeout", "with several processes: seconds to wait for another rank before stopping with an error", ParallelRun.DefaultTimeoutSeconds);

    // --- text ------------------------------------------------------------------------------------------------

    public static Option<string> Tokenizer() =>
        Text("--tokenizer", $"tokenizer: {Memo.Text.TokenizerRegistry.Help} (train: for a text --data file, tokenized once and cached, and saved with checkpoints; default: --init's tokenizer)");

    public static Option<string> TokenCache() =>
        Text("--token-cache", "directory for the tokenized text (default: FILE.memo-tokens next to the file)");

    public static Option<string> Init() =>
        Text("--init", "start from the weights of this checkpoint directory (Memo's or a Hugging Face one: sharded, bf16/fp16/fp32) with a fresh optimizer");

    public static Option<string> RopeTheta() =>
        Text("--rope-theta", "llama: new rope_theta (e.g. to extend the context of an --init model)");

    public static Option<string> RopeScaling() =>
        Text("--rope-scaling", "llama: rope_scaling TYPE:key=value,... with TYPE linear, dynamic, llama3 or yarn and keys as in config.json (e.g. yarn:factor=4)");

    // --- checkpoints and outputs ------------------------------------------------------------------------

    public static Option<string> Checkpoint() =>
        Text("--checkpoint", "checkpoint directory (config.json, model.safetensors, trainer.safetensors): train writes it every --checkpoint-every steps; eval and sample read it");

    // --- planner ----------------------------------------------------------------------------------------

    public static Option<string> Input() =>
        new("--input", "-i") { Description = "buffer trace: CSV with header id,lower,upper,size[,alignment] (minimalloc format)", Required = true };

    public static Option<string> Output() =>
        new("--output", "-o") { Description = "where to write (allocate: a CSV of the trace plus an offset column; trace: the trace CSV; tokenize: the shard directory)", Required = true };

    public static Option<double> TimeLimit(double defaultValue) =>
        new("--time-limit") { Description = "planner time limit in seconds (the best valid plan found by then is returned)", DefaultValueFactory = _ => defaultValue };

    public static Option<string> Solver()
    {
        var o = Text("--solver", "planner: auto (best-fit, search, then CP-SAT), bestfit, cpsat or search", "auto");
        o.AcceptOnlyFromAmong("auto", "bestfit", "cpsat", "search");
        return o;
    }

    public static Option<int> Ranks() =>
        Int("-n", "launch: processes (ranks) to start with mpiexec, N = C x D for --cp C", 2);

    public static Option<string> Mpiexec() =>
        Text("--mpiexec", "launch: the MPI launcher to run (default: mpiexec on PATH)");

    // --- constructors -----------------------------------------------------------------------------------

    public static Option<string> Text(string name, string description, string? defaultValue = null)
    {
        var o = new Option<string>(name) { Description = description };
        if (defaultValue != null) o.DefaultValueFactory = _ => defaultValue;
        return o;
    }

    public static Option<int> Int(string name, string description, int defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    public static Option<double> Double(string name, string description, double defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    /// <summary>A token count accepting 4096, 32K, 1M.</summary>
    public static Option<long> Count(string name, string description, long defaultValue) =>
        new(name)
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r => ParseCount(name, r) ?? 0,
        };

    public static Option<long?> CountOptional(string name, string description) =>
        new(name) { Description = description, CustomParser = r => ParseCount(name, r) };

    private static long? ParseCount(string name, System.CommandLine.Parsing.ArgumentResult r)
    {
        string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
        if (Sizes.TryParseCount(text, out var v)) return v;
        r.AddError($"{name}: '{text}' is not a count; use an integer or a K/M suffix such as 4096, 32K or 1M");
        return null;
    }

    public static string Invariant(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
}
