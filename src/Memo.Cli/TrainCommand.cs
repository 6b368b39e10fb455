using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Memo.Backends;
using Memo.Cpu;
using Memo.Cpu.Device;
using Memo.Model;
using Memo.Model.Memory;
using Memo.Training;
using Memo.Training.Data;
using Spectre.Console;

namespace Memo.Cli;

/// <summary><c>memo train</c>: trains a model; with no arguments, the built-in default (a small llama on the recall task).</summary>
internal static class TrainCommand
{
    public const string DefaultModel = "llama-small";
    public const string DefaultTask = "recall";
    public const int DefaultSeq = 2048;
    public const int DefaultBatch = 1;
    public const int DefaultSteps = 1650;
    public const double DefaultLr = 3e-3;

    /// <summary>
    /// The default length curriculum: passkey retrieval is learned at 16 tokens in a few hundred steps, then the
    /// length doubles or quadruples stage by stage up to --seq (each stage keeps the tokens per step). Without
    /// an explicit --curriculum, the stages shorter than --seq are used when they leave steps at the full length.
    /// </summary>
    public const string DefaultCurriculum = "16x700,64x500,256x150,512x100,1024x100";
    public const int DefaultEvalSamples = 64;

    /// <summary>Mixed into the seed for the held-out samples, so they are never among the training samples.</summary>
    private const ulong HeldOutSalt = 0x5EED_0F_E7A1UL;

    public static Command Create()
    {
        var model = CliOptions.Text("--model", "preset name or config.json path", DefaultModel);
        var data = CliOptions.Text("--data", "training data: a text file (byte tokens) or llm.c token shard(s) (.bin file or directory)");
        var task = CliOptions.Text("--task", $"built-in synthetic task when no --data is given ({string.Join(", ", Tasks.Names)}); recall takes options: recall:pairs=K,queries=Q,filler=pattern|random (default: passkey, K = Q = 1, pattern)", DefaultTask);
        var seq = CliOptions.Count("--seq", "sequence length T (e.g. 256, 4K)", DefaultSeq);
        var batch = CliOptions.Int("--batch", "sequences per micro-batch B", DefaultBatch);
        var accum = CliOptions.Int("--grad-accum", "micro-batches per optimizer step", 1);
        var steps = CliOptions.Int("--steps", "optimizer steps (0 with --save writes the initialized model)", DefaultSteps);
        var lr = CliOptions.Double("--lr", "peak learning rate", DefaultLr);
        var warmup = CliOptions.Int("--warmup", "linear warm-up steps (default: 5% of --steps)", -1);
        var curriculum = CliOptions.Text("--curriculum", "length curriculum run before the full --seq: SEQxSTEPS stages at the same tokens per step (0: none; default: the stages below --seq that leave steps at --seq)", DefaultCurriculum);
        var seed = CliOptions.Int("--seed", "seed for initialization and synthetic data", 1337);
        var checkpoint = CliOptions.Text("--checkpoint", "directory for periodic resumable checkpoints");
        var every = CliOptions.Int("--checkpoint-every", "steps between checkpoints", 50);
        var save = CliOptions.Text("--save", "directory to write the final model to");
        var resume = CliOptions.Text("--resume", "checkpoint directory to resume from (continues bit-identically)");
        var log = CliOptions.Text("--log", "file to write one JSON object per step to");
        var evalSamples = CliOptions.Int("--eval-samples", "held-out samples of a synthetic task scored at the full --seq after training (0: none)", DefaultEvalSamples);
        var threads = CliOptions.Int("--threads", "CPU threads (default: all cores)", 0);
        var policy = CliOptions.Text("--policy", "activation memory policy: keep, recompute, swap or memo", "keep");
        var alpha = CliOptions.Text("--alpha", "memo: fraction of tokens whose token-local activations are swapped (default: chosen from measured layer time, copy bandwidth and host budget)");
        var deviceMemory = CliOptions.Text("--device-memory", "device memory budget, e.g. 512MiB or 6GB (default: what the plan needs)");
        var hostMemory = CliOptions.Text("--host-memory", "host memory budget for swapped activations; with --host-store disk, the RAM tier (default: what swapping needs; with disk, none)");
        var hostStore = CliOptions.Text("--host-store", "where swapped activations wait: memory (host RAM), or disk[:DIR]: RAM up to --host-memory, the rest in a file in DIR (default: the temp directory) written with direct I/O", "memory");
        var profile = CliOptions.Flag("--profile", "time each part of the step (norms, projections, attention forward/backward, MLP, head and loss, optimizer, recompute, copy and disk waits) and print each one's share at the end; --log gets the same fields");
        var poison = CliOptions.Flag("--poison", "fill every released device region with NaN (debug: a use after release shows in the loss)");
        var dryRun = CliOptions.Flag("--dry-run", "print the memory report and stop before training");
        var backend = CliOptions.Text("--backend", "kernels to run on: cpu (vectorized, all threads) or reference (scalar, one thread; for checking)", "cpu");
        var tokenizer = CliOptions.Text("--tokenizer", $"tokenizer for a text --data file (tokenized once, cached) and saved with checkpoints: {Memo.Text.TokenizerRegistry.Help} (default: --init's tokenizer)");
        var tokenCache = CliOptions.Text("--token-cache", "directory for the tokenized text (default: FILE.memo-tokens next to the file)");
        var init = CliOptions.Text("--init", "start from the weights of this checkpoint directory (Memo's or a Hugging Face one: sharded, bf16/fp16/fp32) with a fresh optimizer");
        var ropeTheta = CliOptions.Text("--rope-theta", "llama: new rope_theta (e.g. to extend the context of an --init model)");
        var ropeScaling = CliOptions.Text("--rope-scaling", "llama: rope_scaling TYPE:key=value,... with TYPE linear, dynamic, llama3 or yarn and keys as in config.json (e.g. yarn:factor=4)");

        var cmd = new Command("train", "Train a model on the CPU. With no arguments: a small llama on the synthetic recall task.")
        {
            model, data, task, seq, batch, accum, steps, lr, warmup, curriculum, seed, checkpoint, every, save, resume, log, threads,
            policy, alpha, deviceMemory, hostMemory, hostStore, profile, poison, dryRun, evalSamples, backend, init, ropeTheta, ropeScaling, tokenizer, tokenCache,
        };
        cmd.SetAction(p =>
        {
            var o = new TrainArgs
            {
                Model = p.GetValue(model)!,
                ModelGiven = p.GetResult(model) is { Implicit: false },
                Data = p.GetValue(data),
                Task = p.GetValue(task)!,
                Seq = p.GetValue(seq),
                Batch = p.GetValue(batch),
                GradAccum = p.GetValue(accum),
                Steps = p.GetValue(steps),
                StepsGiven = p.GetResult(steps) is { Implicit: false },
                Lr = p.GetValue(lr),
                Warmup = p.GetValue(warmup),
                Curriculum = p.GetValue(curriculum)!,
                CurriculumGiven = p.GetResult(curriculum) is { Implicit: false },
                Seed = p.GetValue(seed),
                CheckpointDir = p.GetValue(checkpoint),
                CheckpointEvery = p.GetValue(every),
                SaveDir = p.GetValue(save),
                ResumeDir = p.GetValue(resume),
                LogFile = p.GetValue(log),
                EvalSamples = p.GetValue(evalSamples),
                Threads = p.GetValue(threads),
                Memory = ParseMemory(p.GetValue(policy)!, p.GetValue(alpha), p.GetValue(deviceMemory), p.GetValue(hostMemory), p.GetValue(poison), p.GetValue(hostStore)!),
                Profile = p.GetValue(profile),
                DryRun = p.GetValue(dryRun),
                Backend = p.GetValue(backend)!,
                InitDir = p.GetValue(init),
                RopeTheta = p.GetValue(ropeTheta),
                RopeScalingText = p.GetValue(ropeScaling),
                Tokenizer = p.GetValue(tokenizer),
                TokenCache = p.GetValue(tokenCache),
            };
            return Run(o);
        });
        return cmd;
    }

    internal sealed record TrainArgs
    {
        public string Model { get; init; } = DefaultModel;
        public bool ModelGiven { get; init; }
        public string? Data { get; init; }
        public string Task { get; init; } = DefaultTask;
        public long Seq { get; init; } = DefaultSeq;
        public int Batch { get; init; } = DefaultBatch;
        public int GradAccum { get; init; } = 1;
        public int Steps { get; init; } = DefaultSteps;
        public bool StepsGiven { get; init; }
        public bool CurriculumGiven { get; init; }
        public double Lr { get; init; } = DefaultLr;
        public int Warmup { get; init; } = -1;
        public string Curriculum { get; init; } = DefaultCurriculum;
        public int Seed { get; init; } = 1337;
        public string? CheckpointDir { get; init; }
        public int CheckpointEvery { get; init; } = 50;
        public string? SaveDir { get; init; }
        public string? ResumeDir { get; init; }
        public string? LogFile { get; init; }
        public int EvalSamples { get; init; } = DefaultEvalSamples;
        public int Threads { get; init; }
        public MemoryOptions Memory { get; init; } = new();
        public bool DryRun { get; init; }
        public bool Profile { get; init; }
        public string Backend { get; init; } = "cpu";
        public string? InitDir { get; init; }
        public string? RopeTheta { get; init; }
        public string? RopeScalingText { get; init; }
        public string? Tokenizer { get; init; }
        public string? TokenCache { get; init; }
    }

    /// <summary>The run's tokenizer: --tokenizer, else the one saved in --resume's or --init's checkpoint (null: byte-level text or shards).</summary>
    private static Memo.Text.TextTokenizer? OpenTokenizer(TrainArgs a)
    {
        if (a.Tokenizer != null)
        {
            if (a.ResumeDir != null) throw new MemoException("--resume uses the checkpoint's data and tokenizer: drop --tokenizer");
            return Memo.Text.TokenizerRegistry.Open(a.Tokenizer);
        }
        string? dir = a.ResumeDir ?? a.InitDir;
        return dir != null ? Memo.Text.TokenizerRegistry.FromCheckpoint(dir) : null;
    }

    /// <summary>The model config of a new run: --init's checkpoint or --model, with --rope-theta/--rope-scaling applied.</summary>
    internal static ModelConfig ResolveConfig(TrainArgs a)
    {
        if (a.InitDir != null && a.ModelGiven)
            throw new MemoException("--init and --model both name a model; --init takes the config from the checkpoint, so drop --model");
        var cfg = a.InitDir != null ? Checkpoint.ReadConfig(a.InitDir) : Presets.Resolve(a.Model);
        double? theta = null;
        if (a.RopeTheta != null)
        {
            if (!double.TryParse(a.RopeTheta, NumberStyles.Float, CultureInfo.InvariantCulture, out var t) || !(t > 0) || !double.IsFinite(t))
                throw new MemoException($"--rope-theta must be a positive number (got '{a.RopeTheta}')");
            theta = t;
        }
        var scaling = a.RopeScalingText != null ? RopeScaling.Parse(a.RopeScalingText) : null;
        return cfg.WithRope(theta, scaling);
    }

    internal static MemoryOptions ParseMemory(string policy, string? alpha, string? device, string? host, bool poison, string hostStore = "memory")
    {
        double? a = null;
        if (alpha != null)
        {
            if (!double.TryParse(alpha, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !(v >= 0 && v <= 1))
                throw new MemoException($"--alpha must be a number between 0 and 1 (got '{alpha}')");
            a = v;
        }
        var p = MemoryOptions.ParsePolicy(policy);
        if (a != null && p != PolicyKind.Memo) throw new MemoException($"--alpha applies to --policy memo only (got --policy {policy})");
        long? d = device != null ? Sizes.ParseBytes(device, "--device-memory") : null;
        long? h = host != null ? Sizes.ParseBytes(host, "--host-memory") : null;
        if (d is <= 0) throw new MemoException("--device-memory must be positive");
        var store = HostStoreSpec.Parse(hostStore);
        if (store.OnDisk && p is not (PolicyKind.Swap or PolicyKind.Memo))
            throw new MemoException($"--host-store disk applies to --policy swap or memo (got --policy {policy}: it swaps nothing)");
        return new MemoryOptions { Policy = p, Alpha = a, DeviceBudget = d, HostBudget = h, Poison = poison, HostStore = store };
    }

    internal static int Run(TrainArgs a)
    {
        if (a.Threads < 0) throw new MemoException($"--threads must be positive (got {a.Threads})");
        if (a.Threads > 0) WorkerPool.SetDefaultThreads(a.Threads);
        TrainerState? resumed = null;
        ModelConfig cfg;
        string dataSpec;
        ulong seed;
        int batch, seq, accum;
        long totalSteps;
        TrainHyper hyper;
        if (a.ResumeDir != null)
        {
            if (a.InitDir != null || a.RopeTheta != null || a.RopeScalingText != null)
                throw new MemoException("--resume continues a run with its own config and weights: drop --init, --rope-theta and --rope-scaling");
            cfg = Checkpoint.ReadConfig(a.ResumeDir);
            resumed = PeekState(a.ResumeDir);
            dataSpec = resumed.DataDescription;
            seed = resumed.Seed;
            batch = resumed.Batch;
            seq = resumed.Seq;
            accum = resumed.GradAccum;
            totalSteps = a.StepsGiven ? a.Steps : resumed.TotalSteps;
            hyper = resumed.Hyper with { TotalSteps = (int)totalSteps };
        }
        else
        {
            cfg = ResolveConfig(a);
            dataSpec = a.Data != null ? "file:" + Path.GetFullPath(a.Data) : "task:" + a.Task;
            seed = (ulong)a.Seed;
            if (a.Batch < 1) throw new MemoException($"--batch must be at least 1 (got {a.Batch})");
            if (a.Seq < 1 || a.Seq > int.MaxValue) throw new MemoException($"--seq must be between 1 and {int.MaxValue} (got {a.Seq})");
            if (a.Steps < 0) throw new MemoException($"--steps must be zero or more (got {a.Steps})");
            if (!(a.Lr > 0) || !double.IsFinite(a.Lr)) throw new MemoException($"--lr must be a positive number (got {a.Lr})");
            var stages = SeqStage.Parse(a.Curriculum);
            if (a.CurriculumGiven)
            {
                foreach (var st in stages)
                {
                    if (st.Seq >= a.Seq) throw new MemoException($"--curriculum stage {st.Seq}x{st.Steps} is not shorter than --seq {a.Seq}; use stages shorter than the full length");
                }
            }
            else
            {
                stages = [.. stages.Where(st => st.Seq < a.Seq)];
                if (stages.Sum(st => (long)st.Steps) >= a.Steps) stages = [];
            }
            batch = a.Batch;
            seq = (int)a.Seq;
            accum = a.GradAccum;
            totalSteps = a.Steps;
            hyper = new TrainHyper
            {
                LearningRate = a.Lr,
                TotalSteps = a.Steps,
                WarmupSteps = a.Warmup >= 0 ? a.Warmup : Math.Max(1, a.Steps / 20),
                Curriculum = stages,
            };
        }
        if (cfg.HasLearnedPositions && seq > cfg.MaxPositions)
            throw new MemoException($"--seq {seq} exceeds max_position_embeddings {cfg.MaxPositions} of gpt2 model '{cfg.Name}'; use --seq {cfg.MaxPositions} or less");
        using var tokenizer = OpenTokenizer(a);
        if (tokenizer != null && tokenizer.VocabSize > cfg.VocabSize)
            throw new MemoException($"tokenizer {tokenizer.Name} has {tokenizer.VocabSize} ids but the model's vocab_size is {cfg.VocabSize}; use a model with vocab_size >= {tokenizer.VocabSize}");
        if (tokenizer != null && resumed == null && a.Data != null && File.Exists(a.Data) && !TokenShards.LooksLikeShard(a.Data)
            && !a.Data.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            if (a.DryRun) Console.Error.WriteLine($"data    {a.Data} would be tokenized with {tokenizer.Name}");
            else dataSpec = "file:" + TokenCache.Resolve(a.Data, tokenizer, a.TokenCache, Console.Error.WriteLine);
        }
        if (a.EvalSamples < 0) throw new MemoException($"--eval-samples must be zero or more (got {a.EvalSamples})");
        if (a.CheckpointEvery < 1) throw new MemoException($"--checkpoint-every must be at least 1 (got {a.CheckpointEvery})");

        using var inner = BackendRegistry.Create(a.Backend);
        using var profiling = a.Profile ? new ProfilingBackend(inner, new OpProfile()) : null;
        IBackend backend = profiling ?? inner;
        using var source = DataSpec.Open(dataSpec, seed, cfg.VocabSize);
        if (a.DryRun)
        {
            var layout = MemoryLayout.Build(cfg, batch, seq, a.Memory.Policy, backend);
            long capacity = a.Memory.DeviceBudget ?? layout.TotalBytes;
            if (layout.TotalBytes > capacity) throw MemoryReport.DoesNotFit(cfg, batch, seq, a.Memory, Workspaces.Of(backend, cfg), capacity);
            double alphaShown = a.Memory.Alpha ?? (a.Memory.Policy == PolicyKind.Memo ? 1.0 : 0);
            long hostBytes = MemoryReport.HostBytes(cfg, batch, seq, a.Memory.Policy, alphaShown);
            Console.WriteLine($"model   {cfg}");
            Console.WriteLine(MemoryReport.Describe(layout, capacity, hostBytes, alphaShown));
            if (a.Memory.HostStore.OnDisk && hostBytes > 0)
            {
                long ram = Math.Min(hostBytes, (a.Memory.HostBudget ?? 0) / DiskHostStore.Alignment * DiskHostStore.Alignment);
                Console.WriteLine($"  host   {"RAM tier",-20} {Sizes.FormatBytes(ram),12}  (--host-memory)");
                Console.WriteLine($"  disk   {"disk tier",-20} {Sizes.FormatBytes(hostBytes - ram),12}  in {Path.GetFullPath(a.Memory.HostStore.DiskDirectory!)} (plus up to 4 KiB padding per region)");
            }
            return 0;
        }
        using var model = new Transformer(backend, cfg, batch, seq, a.Memory);
        using var trainer = new Trainer(model, source, hyper, batch, seq, accum);
        if (resumed != null)
        {
            Checkpoint.LoadWeights(a.ResumeDir!, model);
            var state = Checkpoint.LoadTrainer(a.ResumeDir!, model, trainer.Optimizer);
            trainer.Step = state.Step;
            source.Seek(state.DataPosition);
        }
        else if (a.InitDir != null)
        {
            Checkpoint.LoadWeights(a.InitDir, model);
        }
        else
        {
            Initializer.Initialize(model, seed);
        }

        var console = Console.Error;
        console.WriteLine($"model   {cfg}");
        console.WriteLine($"data    {source.Description}");
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"batch   {batch} x {seq} tokens x {accum} micro-batches = {trainer.TokensPerStep} tokens/step, {backend.Threads} threads{(backend.Name == BackendRegistry.Default ? "" : ", backend " + backend.Name)}, native memory {Sizes.FormatBytes(NativeMemoryStats.Current)}"));
        console.WriteLine(MemoryReport.Describe(model.DeviceLayout, model.Arena.Capacity, model.HostStoreBytes, model.Alpha));
        if (model.DiskTier is { } disk)
        {
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"tiers   swap store: RAM {Sizes.FormatBytes(model.HostRamBytes)}, disk {Sizes.FormatBytes(model.HostStoreBytes - model.HostRamBytes)} in {disk.Directory} ({disk.IoMode}{(disk.Preallocated ? ", preallocated" : "")})"));
            if (model.DiskProbe is { } probe)
                console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"disk    probe: write {probe.WriteBytesPerSecond / 1e6:0} MB/s, read {probe.ReadBytesPerSecond / 1e6:0} MB/s ({Sizes.FormatBytes(probe.Bytes)})"));
        }
        if (hyper.Curriculum.Count > 0)
            console.WriteLine($"length curriculum {SeqStage.Format(hyper.Curriculum)} (SEQxSTEPS), then {seq} from step {hyper.CurriculumSteps + 1}");
        if (resumed != null) console.WriteLine($"resumed from {a.ResumeDir} at step {trainer.Step}");
        if (a.InitDir != null) console.WriteLine($"weights from {a.InitDir} (fresh optimizer)");

        using var logWriter = a.LogFile != null ? OpenLog(a.LogFile, append: resumed != null) : null;
        var history = new List<StepMetrics>();
        var runner = new Action<Action<StepMetrics>>(onStep =>
        {
            while (trainer.Step < totalSteps)
            {
                var m = trainer.TrainStep();
                history.Add(m);
                if (!double.IsFinite(m.Loss)) throw new MemoException($"the loss became {m.Loss} at step {m.Step}; lower --lr");
                logWriter?.WriteLine(LogLine(m));
                logWriter?.Flush();
                if (a.CheckpointDir != null && (trainer.Step % a.CheckpointEvery == 0 || trainer.Step == totalSteps))
                    SaveCheckpoint(a.CheckpointDir, trainer, dataSpec, seed, totalSteps, tokenizer);
                onStep(m);
            }
        });

        if (trainer.Step < totalSteps)
        {
            if (!Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive) RunWithProgress(runner, trainer, totalSteps, history);
            else RunPlain(runner, totalSteps);
        }

        if (history.Count > 0) PrintSummary(history);
        if (a.Profile) PrintProfile(history);
        if (a.EvalSamples > 0 && dataSpec.StartsWith("task:", StringComparison.Ordinal)) HeldOut(trainer, dataSpec, seed, cfg.VocabSize, a.EvalSamples);
        if (a.SaveDir != null)
        {
            Checkpoint.Save(a.SaveDir, model, tokenizer: tokenizer);
            console.WriteLine($"saved model to {a.SaveDir}");
        }
        return 0;
    }

    /// <summary>Scores samples the run never trained on (another seed) at the full sequence length, forward only.</summary>
    private static void HeldOut(Trainer trainer, string dataSpec, ulong seed, int vocab, int samples)
    {
        using var heldOut = DataSpec.Open(dataSpec, seed ^ HeldOutSalt, vocab);
        int batches = (samples + trainer.Batch - 1) / trainer.Batch;
        var (loss, correct, total) = trainer.Evaluate(heldOut, batches);
        if (total == 0) return;
        string distance = heldOut is RecallTask r ? $", answers {r.MinDistance(trainer.Seq)}+ tokens after their needle" : "";
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"held-out: {batches * trainer.Batch} samples at T {trainer.Seq}{distance}: recall accuracy {100.0 * correct / total:0.0}% ({correct}/{total}), loss {loss:0.0000}"));
    }

    private static TrainerState PeekState(string dir)
    {
        // Read the state's metadata without a model: the trainer file's metadata holds batch, seq and data.
        string path = Path.Combine(dir, Checkpoint.TrainerFile);
        if (!File.Exists(path)) throw new MemoException($"{path} is missing; this directory holds a model but no training state to resume (was it written by --save rather than --checkpoint?)");
        return Checkpoint.ReadState(path);
    }

    private static void SaveCheckpoint(string dir, Trainer t, string dataSpec, ulong seed, long totalSteps, Memo.Text.TextTokenizer? tokenizer)
    {
        var state = new TrainerState(t.Step, t.Optimizer.StepCount, t.Data.Position, dataSpec, seed, t.Batch, t.Seq, t.GradAccum, totalSteps, t.Hyper);
        Checkpoint.Save(dir, t.Model, t.Optimizer, state, tokenizer);
    }

    private static StreamWriter OpenLog(string path, bool append)
    {
        string? parent = Path.GetDirectoryName(Path.GetFullPath(path));
        if (parent != null) Directory.CreateDirectory(parent);
        return new StreamWriter(path, append, new UTF8Encoding(false));
    }

    internal static string LogLine(StepMetrics m)
    {
        var o = new JsonObject
        {
            ["step"] = m.Step,
            ["seq"] = m.Seq,
            ["loss"] = m.Loss,
            ["lr"] = m.LearningRate,
            ["grad_norm"] = m.GradNorm,
            ["tokens_per_s"] = Math.Round(m.TokensPerSecond, 2),
            ["step_ms"] = Math.Round(m.StepMs, 3),
            ["native_bytes"] = m.NativeBytes,
            ["native_peak_bytes"] = m.NativePeakBytes,
            ["rss_bytes"] = Environment.WorkingSet,
            ["device_peak_bytes"] = m.Memory.DevicePeakBytes,
            ["host_peak_bytes"] = m.Memory.HostPeakBytes,
            ["swapped_bytes"] = m.Memory.SwappedBytes,
            ["recomputed_tokens"] = m.Memory.RecomputedTokens,
            ["copy_ms"] = Math.Round(m.Memory.CopyMs, 3),
            ["exposed_copy_ms"] = Math.Round(m.Memory.ExposedCopyMs, 3),
            ["alpha"] = m.Memory.Alpha,
            ["disk_written_bytes"] = m.Memory.DiskWrittenBytes,
            ["disk_read_bytes"] = m.Memory.DiskReadBytes,
            ["disk_io_ms"] = Math.Round(m.Memory.DiskIoMs, 3),
            ["disk_wait_ms"] = Math.Round(m.Memory.DiskWaitMs, 3),
        };
        if (m.ProfileMs is { } profile)
        {
            var p = new JsonObject();
            for (int i = 0; i < profile.Count; i++) p[OpProfile.Name((ProfileOp)i)] = Math.Round(profile[i], 3);
            o["profile_ms"] = p;
        }
        if (m.AnswersTotal > 0) o["accuracy"] = m.Accuracy;
        return o.ToJsonString();
    }

    private static string Describe(StepMetrics m, long total) => string.Create(CultureInfo.InvariantCulture,
        $"step {m.Step,5}/{total}  T {m.Seq,5}  loss {m.Loss:0.0000}  {(m.AnswersTotal > 0 ? $"recall acc {m.Accuracy * 100,5:0.0}%  " : "")}lr {m.LearningRate:0.00e+0}  |g| {m.GradNorm:0.000}  {m.TokensPerSecond:0} tok/s  {m.StepMs:0} ms/step  device peak {Sizes.FormatBytes(m.Memory.DevicePeakBytes)}");

    private static void RunPlain(Action<Action<StepMetrics>> runner, long total)
    {
        long every = Math.Max(1, total / 30);
        runner(m =>
        {
            if (m.Step == 1 || m.Step % every == 0 || m.Step == total) Console.Error.WriteLine(Describe(m, total));
        });
    }

    private static void RunWithProgress(Action<Action<StepMetrics>> runner, Trainer trainer, long total, List<StepMetrics> history)
    {
        long every = Math.Max(1, total / 15);
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: total);
                task.Value = trainer.Step;
                runner(m =>
                {
                    task.Value = m.Step;
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                        $"step {m.Step}/{total} loss {m.Loss:0.000}{(m.AnswersTotal > 0 ? $" acc {Smoothed(history) * 100:0.0}%" : "")} {m.TokensPerSecond:0} tok/s mem {Sizes.FormatBytes(m.NativeBytes)}"));
                    if (m.Step == 1 || m.Step % every == 0 || m.Step == total) AnsiConsole.WriteLine(Describe(m, total));
                });
            });
    }

    private static double Smoothed(List<StepMetrics> h)
    {
        long c = 0, t = 0;
        for (int i = Math.Max(0, h.Count - 20); i < h.Count; i++)
        {
            c += h[i].AnswersCorrect;
            t += h[i].AnswersTotal;
        }
        return t == 0 ? double.NaN : (double)c / t;
    }

    /// <summary>
    /// The --profile table (stdout): each op's milliseconds per step and share of the step, averaged over the steps
    /// after the first (JIT warm-up, first disk writes), or the one step there is.
    /// </summary>
    private static void PrintProfile(List<StepMetrics> h)
    {
        var steps = h.Where(m => m.ProfileMs != null).ToList();
        if (steps.Count == 0) return;
        if (steps.Count > 1) steps = steps.Skip(1).ToList();
        int ops = steps[0].ProfileMs!.Count;
        var avg = new double[ops];
        foreach (var m in steps)
        {
            for (int i = 0; i < ops; i++) avg[i] += m.ProfileMs![i] / steps.Count;
        }
        var last = steps[^1];
        Console.WriteLine(OpProfile.Table(avg, steps.Average(m => m.StepMs), string.Create(CultureInfo.InvariantCulture,
            $"profile: mean of {steps.Count} step(s) from step {steps[0].Step}, T = {last.Seq}, alpha {last.Memory.Alpha:0.###}")));
    }

    private static void PrintSummary(List<StepMetrics> h)
    {
        var last = h[^1];
        var tps = h.Skip(Math.Min(2, h.Count - 1)).Select(m => m.TokensPerSecond).Order().ToArray();
        double median = tps.Length == 0 ? 0 : tps[tps.Length / 2];
        string acc = last.AnswersTotal > 0 ? string.Create(CultureInfo.InvariantCulture, $", recall accuracy {Smoothed(h) * 100:0.0}% (last {Math.Min(20, h.Count)} steps)") : "";
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"done: step {last.Step}, loss {h[0].Loss:0.0000} -> {last.Loss:0.0000}{acc}, median {median:0} tokens/s, native peak {Sizes.FormatBytes(last.NativePeakBytes)}"));
    }
}
