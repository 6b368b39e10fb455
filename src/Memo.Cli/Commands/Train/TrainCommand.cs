// memo train: binds the command line to a TrainArgs record and sets a run up (model, data, trainer, resume);
// TrainLoop runs the steps with their progress display and checkpoints, TrainLog writes the JSON step log and
// the result lines. With no arguments it trains the built-in default: a small llama on the recall task.
using System.CommandLine;
using System.Globalization;
using Memo.Backends;
using Memo.Cpu;
using Memo.Cpu.Device;
using Memo.Model;
using Memo.Model.Memory;
using Memo.Training;
using Memo.Training.Data;

namespace Memo.Cli.Commands.Train;

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

    public static Command Create()
    {
        var model = OptionTable.Model(DefaultModel);
        var layers = OptionTable.Layers();
        var data = OptionTable.Data();
        var task = OptionTable.Task(DefaultTask);
        var seq = OptionTable.Seq(DefaultSeq);
        var batch = OptionTable.Batch(DefaultBatch);
        var accum = OptionTable.Int("--grad-accum", "micro-batches per optimizer step", 1);
        var steps = OptionTable.Int("--steps", "optimizer steps (0 with --save writes the initialized model)", DefaultSteps);
        var lr = OptionTable.Double("--lr", "peak learning rate", DefaultLr);
        var warmup = new Option<int?>("--warmup") { Description = "linear warm-up steps (default: 5% of --steps)" };
        var curriculum = OptionTable.Text("--curriculum", "length curriculum run before the full --seq: SEQxSTEPS stages at the same tokens per step (0: none; default: the stages below --seq that leave steps at --seq)", DefaultCurriculum);
        var seed = OptionTable.Seed(1337);
        var checkpoint = OptionTable.Checkpoint();
        var every = OptionTable.Int("--checkpoint-every", "steps between checkpoints", 50);
        var save = OptionTable.Text("--save", "directory to write the final model to");
        var resume = OptionTable.Text("--resume", "checkpoint directory to resume from (continues bit-identically)");
        var log = OptionTable.Text("--log", "file to write one JSON object per step to");
        var evalSamples = OptionTable.Int("--eval-samples", "held-out samples of a synthetic task scored at the full --seq after training (0: none)", DefaultEvalSamples);
        var threads = OptionTable.Threads();
        var policy = OptionTable.Policy();
        var alpha = OptionTable.Alpha();
        var deviceMemory = OptionTable.DeviceMemory();
        var hostMemory = OptionTable.HostMemory();
        var hostStore = OptionTable.HostStore();
        var profile = OptionTable.Profile();
        var poison = OptionTable.Flag("--poison", "fill every released device region with NaN (debug: a use after release shows in the loss)");
        var dryRun = OptionTable.Flag("--dry-run", "print the memory report and stop before training");
        var backend = OptionTable.Backend();
        var cp = OptionTable.Cp();
        var checkReplicas = OptionTable.CheckReplicas();
        var commTimeout = OptionTable.CommTimeout();
        var tokenizer = OptionTable.Tokenizer();
        var tokenCache = OptionTable.TokenCache();
        var init = OptionTable.Init();
        var ropeTheta = OptionTable.RopeTheta();
        var ropeScaling = OptionTable.RopeScaling();
        var reschedule = OptionTable.Flag("--reschedule", "with --resume and --steps: stretch the learning-rate schedule to the new --steps (default: the original run's schedule continues, at its minimum after its last step)");

        var cmd = new Command("train", "Train a model on the CPU. With no arguments: a small llama on the synthetic recall task.")
        {
            model, layers, data, task, seq, batch, accum, steps, lr, warmup, curriculum, seed, checkpoint, every, save, resume, log, threads,
            policy, alpha, deviceMemory, hostMemory, poison, dryRun, evalSamples, reschedule, backend, init, ropeTheta, ropeScaling, tokenizer, tokenCache, cp, checkReplicas, commTimeout, hostStore, profile,
        };
        cmd.SetAction(p =>
        {
            var given = cmd.Options.Where(o => p.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
            var o = new TrainArgs
            {
                Model = p.GetValue(model)!,
                Layers = p.GetValue(layers),
                Data = p.GetValue(data),
                Task = p.GetValue(task)!,
                Seq = p.GetValue(seq),
                Batch = p.GetValue(batch),
                GradAccum = p.GetValue(accum),
                Steps = p.GetValue(steps),
                Lr = p.GetValue(lr),
                Warmup = p.GetValue(warmup),
                Curriculum = p.GetValue(curriculum)!,
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
                Reschedule = p.GetValue(reschedule),
                Backend = p.GetValue(backend)!,
                InitDir = p.GetValue(init),
                RopeTheta = p.GetValue(ropeTheta),
                RopeScalingText = p.GetValue(ropeScaling),
                Tokenizer = p.GetValue(tokenizer),
                TokenCache = p.GetValue(tokenCache),
                Cp = p.GetValue(cp),
                CheckReplicas = p.GetValue(checkReplicas),
                CommTimeout = p.GetValue(commTimeout),
                Given = given,
            };
            return Run(o);
        });
        return cmd;
    }

    /// <summary>The parsed command line; <see cref="Given"/> names the flags the user typed (the rest are defaults).</summary>
    internal sealed record TrainArgs
    {
        public string Model { get; init; } = DefaultModel;
        public int? Layers { get; init; }
        public string? Data { get; init; }
        public string Task { get; init; } = DefaultTask;
        public long Seq { get; init; } = DefaultSeq;
        public int Batch { get; init; } = DefaultBatch;
        public int GradAccum { get; init; } = 1;
        public int Steps { get; init; } = DefaultSteps;
        public double Lr { get; init; } = DefaultLr;
        public int? Warmup { get; init; }
        public string Curriculum { get; init; } = DefaultCurriculum;
        public int Seed { get; init; } = 1337;
        public string? CheckpointDir { get; init; }
        public int CheckpointEvery { get; init; } = 50;
        public string? SaveDir { get; init; }
        public string? ResumeDir { get; init; }
        public string? LogFile { get; init; }
        public int EvalSamples { get; init; } = DefaultEvalSamples;
        public int? Threads { get; init; }
        public MemoryOptions Memory { get; init; } = new();
        public bool DryRun { get; init; }
        public bool Profile { get; init; }
        public bool Reschedule { get; init; }
        public string Backend { get; init; } = "cpu";
        public string? InitDir { get; init; }
        public string? RopeTheta { get; init; }
        public string? RopeScalingText { get; init; }
        public string? Tokenizer { get; init; }
        public string? TokenCache { get; init; }
        public int Cp { get; init; } = 1;
        public int CheckReplicas { get; init; }
        public double CommTimeout { get; init; } = ParallelRun.DefaultTimeoutSeconds;
        public IReadOnlySet<string> Given { get; init; } = new HashSet<string>();

        public bool IsGiven(string flag) => Given.Contains(flag);
    }

    /// <summary>The run's tokenizer: --tokenizer, else the one saved in --resume's or --init's checkpoint (null: byte-level text or shards).</summary>
    private static Memo.Text.TextTokenizer? OpenTokenizer(TrainArgs a)
    {
        if (a.Tokenizer != null) return Memo.Text.TokenizerRegistry.Open(a.Tokenizer);
        string? dir = a.ResumeDir ?? a.InitDir;
        return dir != null ? Memo.Text.TokenizerRegistry.FromCheckpoint(dir) : null;
    }

    /// <summary>The model config of a new run: --init's checkpoint or --model, with --rope-theta/--rope-scaling applied.</summary>
    internal static ModelConfig ResolveConfig(TrainArgs a)
    {
        if (a.InitDir != null && a.IsGiven("--model"))
            throw new MemoException("--init and --model both name a model; --init takes the config from the checkpoint, so drop --model");
        var cfg = a.InitDir != null ? Checkpoint.ReadConfig(a.InitDir) : Presets.Resolve(a.Model);
        double? theta = null;
        if (a.RopeTheta != null)
        {
            if (!double.TryParse(a.RopeTheta, NumberStyles.Float, CultureInfo.InvariantCulture, out var t) || !(t > 0) || !double.IsFinite(t))
                throw new MemoException($"--rope-theta must be a positive number (got '{Sizes.Printable(a.RopeTheta)}')");
            theta = t;
        }
        var scaling = a.RopeScalingText != null ? RopeScaling.Parse(a.RopeScalingText) : null;
        return cfg.WithRope(theta, scaling);
    }

    internal static MemoryOptions ParseMemory(string policy, string? alpha, string? device, string? host, bool poison, string hostStore = "memory")
    {
        double? a = null;
        double[]? perLayer = null;
        if (alpha != null)
        {
            // One value for every layer, or one per layer (comma-separated).
            var parts = alpha.Split(',');
            var values = new double[parts.Length];
            for (int i = 0; i < parts.Length; i++)
            {
                if (!double.TryParse(parts[i].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !(values[i] >= 0 && values[i] <= 1))
                    throw new MemoException($"--alpha must be a number between 0 and 1, or one such number per layer separated by commas (got '{Sizes.Printable(alpha)}')");
            }
            if (values.Length == 1) a = values[0];
            else perLayer = values;
        }
        var p = MemoryOptions.ParsePolicy(policy);
        if (perLayer != null && p != PolicyKind.Memo) throw new MemoException($"--alpha applies to --policy memo only (got --policy {policy})");
        if (a != null && p != PolicyKind.Memo) throw new MemoException($"--alpha applies to --policy memo only (got --policy {policy})");
        long? d = device != null ? Sizes.ParseBytes(device, "--device-memory") : null;
        long? h = host != null ? Sizes.ParseBytes(host, "--host-memory") : null;
        if (d is <= 0) throw new MemoException("--device-memory must be positive");
        var store = HostStoreSpec.Parse(hostStore);
        if (store.OnDisk && p is not (PolicyKind.Swap or PolicyKind.Memo))
            throw new MemoException($"--host-store disk applies to --policy swap or memo (got --policy {policy}: it swaps nothing)");
        HostStoreSpec.CheckDirectory(store.DiskDirectory);
        return new MemoryOptions { Policy = p, Alpha = a, Alphas = perLayer, DeviceBudget = d, HostBudget = h, Poison = poison, HostStore = store };
    }

    /// <summary>What a run trains: resolved from the flags, or from the trainer state of <c>--resume</c>.</summary>
    internal sealed record RunSetup(ModelConfig Config, string DataSpec, ulong Seed, int Batch, int Seq, int GradAccum, long TotalSteps, TrainHyper Hyper, TrainerState? Resumed);

    internal static int Run(TrainArgs a)
    {
        Threads.Apply(a.Threads, Console.Error);
        if (a.Seed < 0) throw new MemoException($"--seed must be zero or more (got {a.Seed})");
        if (a.EvalSamples < 0) throw new MemoException($"--eval-samples must be zero or more (got {a.EvalSamples})");
        if (a.CheckpointEvery < 1) throw new MemoException($"--checkpoint-every must be at least 1 (got {a.CheckpointEvery})");
        if (a.Cp < 1) throw new MemoException($"--cp must be at least 1 (got {a.Cp})");
        if (a.CheckReplicas < 0) throw new MemoException($"--check-replicas must be zero or more (got {a.CheckReplicas})");
        if (a.Reschedule && (a.ResumeDir == null || !a.IsGiven("--steps"))) throw new MemoException("--reschedule stretches a resumed run's schedule to a new --steps; give it with --resume and --steps");

        // Lock every checkpoint directory the run reads or writes before looking inside, so that a second run on
        // the same directory stops here, and finish a save that a crash interrupted.
        // With several processes rank 0 alone writes, so it alone locks and repairs.
        bool writer = !a.DryRun && !ParallelRun.IsOtherRank;
        using var locks = writer ? Locks.Take(a) : null;
        if (a.ResumeDir != null && writer && Checkpoint.Recover(a.ResumeDir) is { } repaired) Console.Error.WriteLine($"memo: {a.ResumeDir}: {repaired}");
        var s = a.ResumeDir != null ? FromResume(a) : FromFlags(a);
        var cfg = s.Config;
        if (cfg.HasLearnedPositions && s.Seq > cfg.MaxPositions)
            throw new MemoException($"--seq {s.Seq} exceeds max_position_embeddings {cfg.MaxPositions} of gpt2 model '{cfg.Name}'; use --seq {cfg.MaxPositions} or less");
        using var tokenizer = OpenTokenizer(a);
        if (tokenizer != null && tokenizer.VocabSize > cfg.VocabSize)
            throw new MemoException($"tokenizer {tokenizer.Name} has {tokenizer.VocabSize} ids but the model's vocab_size is {cfg.VocabSize}; use a model with vocab_size >= {tokenizer.VocabSize}");
        if (tokenizer != null && s.Resumed == null && a.Data != null && File.Exists(a.Data) && !TokenShards.LooksLikeShard(a.Data)
            && !a.Data.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            if (a.DryRun) Console.Error.WriteLine($"data    {a.Data} would be tokenized with {tokenizer.Name}");
            else s = s with { DataSpec = "file:" + TokenCache.Resolve(a.Data, tokenizer, a.TokenCache, Console.Error.WriteLine) };
        }

        if (a.Cp > 1)
        {
            foreach (var st in s.Hyper.Curriculum)
            {
                if (st.Seq % (2 * a.Cp) != 0)
                    throw new MemoException($"curriculum stage {st.Seq}x{st.Steps} does not split into {2 * a.Cp} equal chunks for --cp {a.Cp}; use stage lengths that are multiples of {2 * a.Cp} or --curriculum 0");
            }
        }
        int cp = a.Cp, local = s.Seq / cp;

        using var baseBackend = BackendRegistry.Create(a.Backend);
        using var source = DataSpec.Open(s.DataSpec, s.Seed, cfg.VocabSize);
        if (a.DryRun) return DryRun(a, s, baseBackend);
        if (writer) Preflight.Check(a, cfg);
        using var parallel = ParallelRun.Start(cp, s.Seq, a.CommTimeout);
        using var cpBackend = parallel != null && cp > 1 ? parallel.Backend(baseBackend, cfg, s.Batch, s.Seq) : null;
        using var profiling = a.Profile ? new ProfilingBackend(cpBackend ?? baseBackend, new OpProfile()) : null;
        IBackend backend = profiling ?? cpBackend ?? baseBackend;
        bool root = parallel?.IsRoot ?? true;
        using var model = new Transformer(backend, cfg, s.Batch, local, a.Memory);
        using var trainer = new Trainer(model, source, s.Hyper, s.Batch, s.Seq, s.GradAccum, parallel?.Groups) { CheckReplicasEvery = a.CheckReplicas };
        if (s.Resumed != null)
        {
            string? id = Checkpoint.LoadWeights(a.ResumeDir!, model);
            var state = Checkpoint.LoadTrainer(a.ResumeDir!, model, trainer.Optimizer, id);
            trainer.Step = state.Step;
            source.Seek(state.DataPosition);
        }
        else if (a.InitDir != null)
        {
            Checkpoint.LoadWeights(a.InitDir, model);
        }
        else
        {
            Initializer.Initialize(model, s.Seed);
        }

        TrainLog.Header(Console.Error, s, trainer, backend, a.ResumeDir);
        if (model.DiskTier is { } disk)
        {
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"tiers   swap store: RAM {Sizes.FormatBytes(model.HostRamBytes)}, disk {Sizes.FormatBytes(model.HostStoreBytes - model.HostRamBytes)} in {disk.Directory} ({disk.IoMode}{(disk.Preallocated ? ", preallocated" : "")})"));
            if (model.DiskProbe is { } probe)
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"disk    probe: write {probe.WriteBytesPerSecond / 1e6:0} MB/s, read {probe.ReadBytesPerSecond / 1e6:0} MB/s ({Sizes.FormatBytes(probe.Bytes)})"));
        }
        if (parallel != null)
            Console.Error.WriteLine($"ranks   {parallel.Groups.World.Size} processes: {parallel.Groups.DataSize} data-parallel groups of {cp} context-parallel ranks, {s.Batch} x {local} tokens per rank; memory above is rank 0's");
        if (a.InitDir != null) Console.Error.WriteLine($"weights from {a.InitDir} (fresh optimizer)");
        if (s.Resumed != null && trainer.Step >= s.TotalSteps)
            Console.Error.WriteLine($"memo: the checkpoint is at step {trainer.Step}, the run's last; nothing to train (give --steps above {trainer.Step} to continue)");
        using var log = a.LogFile != null && root ? TrainLog.Open(a.LogFile, append: s.Resumed != null) : null;
        if (s.Resumed != null) log?.MarkResume(trainer.Step, a.ResumeDir!);
        using var signals = new Interrupts();
        var loop = new TrainLoop(trainer, s, a.CheckpointDir, a.CheckpointEvery, log, signals, tokenizer, root, cpBackend as Memo.Distributed.ContextParallelBackend);
        long? saved = loop.Run();
        if (signals.Signal is { } signal)
        {
            string where = a.CheckpointDir == null
                ? "no --checkpoint was given, nothing saved"
                : saved is long st ? $"checkpoint {a.CheckpointDir} holds step {st}" : $"no checkpoint written";
            Console.Error.WriteLine($"memo: interrupted by {signal.Name} after step {trainer.Step}; {where}");
            return signal.ExitCode;
        }
        if (loop.History.Count > 0) TrainLog.Summary(Console.Out, loop.History);
        if (a.Profile) TrainLog.Profile(Console.Out, loop.History);
        if (a.EvalSamples > 0 && s.DataSpec.StartsWith("task:", StringComparison.Ordinal)) TrainLog.HeldOut(Console.Out, trainer, s.DataSpec, s.Seed, cfg.VocabSize, a.EvalSamples);
        if (a.SaveDir != null && root) Save(a, loop, saved, tokenizer);
        return 0;
    }

    /// <summary>
    /// Writes --save. Into the --checkpoint directory, the final checkpoint already is the final model; into a
    /// directory that holds a resumable checkpoint, the training state is written too, so a save never turns a
    /// resumable checkpoint into one that cannot be resumed.
    /// </summary>
    private static void Save(TrainArgs a, TrainLoop loop, long? lastCheckpoint, Memo.Text.TextTokenizer? tokenizer)
    {
        if (a.CheckpointDir != null && SameDir(a.SaveDir!, a.CheckpointDir) && lastCheckpoint == loop.Step)
        {
            Console.Error.WriteLine($"saved model to {a.SaveDir} (the final checkpoint, resumable)");
            return;
        }
        bool resumable = File.Exists(Path.Combine(a.SaveDir!, Checkpoint.TrainerFile));
        if (resumable) loop.SaveCheckpoint(a.SaveDir!);
        else Checkpoint.Save(a.SaveDir!, loop.Model, tokenizer: tokenizer);
        Console.Error.WriteLine($"saved model to {a.SaveDir}{(resumable ? " (with its training state: it was a resumable checkpoint)" : "")}");
    }

    internal static bool SameDir(string a, string b) =>
        string.Equals(Path.GetFullPath(a).TrimEnd(Path.DirectorySeparatorChar), Path.GetFullPath(b).TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal);

    /// <summary>The flags a resumed run may change; every other flag must match the checkpoint or be left out.</summary>
    private static readonly HashSet<string> ChangeableOnResume = new(StringComparer.Ordinal)
    {
        "--resume", "--steps", "--reschedule", "--log", "--threads", "--checkpoint", "--checkpoint-every", "--save", "--eval-samples",
        "--policy", "--alpha", "--device-memory", "--host-memory", "--host-store", "--profile", "--poison", "--dry-run", "--backend",
        "--cp", "--check-replicas", "--comm-timeout", // a checkpoint resumes on any number of ranks
    };

    private static RunSetup FromResume(TrainArgs a)
    {
        var cfg = Checkpoint.ReadConfig(a.ResumeDir!);
        var resumed = PeekState(a.ResumeDir!);
        var h = resumed.Hyper;
        foreach (var flag in a.Given.Where(f => !ChangeableOnResume.Contains(f)).Order(StringComparer.Ordinal))
        {
            string? stored = flag switch
            {
                "--seq" => a.Seq == resumed.Seq ? null : resumed.Seq.ToString(CultureInfo.InvariantCulture),
                "--batch" => a.Batch == resumed.Batch ? null : resumed.Batch.ToString(CultureInfo.InvariantCulture),
                "--grad-accum" => a.GradAccum == resumed.GradAccum ? null : resumed.GradAccum.ToString(CultureInfo.InvariantCulture),
                "--seed" => a.Seed >= 0 && (ulong)a.Seed == resumed.Seed ? null : resumed.Seed.ToString(CultureInfo.InvariantCulture),
                "--lr" => a.Lr == h.LearningRate ? null : h.LearningRate.ToString("R", CultureInfo.InvariantCulture),
                "--warmup" => a.Warmup == h.WarmupSteps ? null : h.WarmupSteps.ToString(CultureInfo.InvariantCulture),
                "--data" => a.Data != null && "file:" + Path.GetFullPath(a.Data) == resumed.DataDescription ? null : resumed.DataDescription,
                "--task" => "task:" + a.Task == resumed.DataDescription ? null : resumed.DataDescription,
                "--curriculum" => SeqStage.Format(h.Curriculum),
                "--model" or "--layers" => $"the config.json of {a.ResumeDir}",
                _ => "the checkpoint's",
            };
            if (stored != null)
                throw new MemoException($"{flag} cannot change when resuming (the checkpoint's run uses {stored}); drop {flag} to continue that run, or start a new run without --resume");
        }
        long totalSteps = a.IsGiven("--steps") ? a.Steps : resumed.TotalSteps;
        if (totalSteps < 0) throw new MemoException($"--steps must be zero or more (got {totalSteps})");
        // The learning-rate schedule stays a function of the original total unless --reschedule asks for the new one.
        var hyper = a.Reschedule ? h with { TotalSteps = (int)totalSteps } : h;
        return new RunSetup(cfg, resumed.DataDescription, resumed.Seed, resumed.Batch, resumed.Seq, resumed.GradAccum, totalSteps, hyper, resumed);
    }

    private static RunSetup FromFlags(TrainArgs a)
    {
        var cfg = ResolveConfig(a);
        if (a.Layers is int layers)
        {
            if (layers < 1) throw new MemoException($"--layers must be at least 1 (got {layers})");
            cfg = cfg with { NumLayers = layers };
        }
        string dataSpec = a.Data != null ? "file:" + Path.GetFullPath(a.Data) : "task:" + a.Task;
        if (a.Batch < 1) throw new MemoException($"--batch must be at least 1 (got {a.Batch})");
        if (a.Seq < 1 || a.Seq > int.MaxValue) throw new MemoException($"--seq must be between 1 and {int.MaxValue} (got {a.Seq})");
        if (a.Steps < 0) throw new MemoException($"--steps must be zero or more (got {a.Steps})");
        if (!(a.Lr > 0) || !double.IsFinite(a.Lr)) throw new MemoException($"--lr must be a positive number (got {a.Lr})");
        if (a.Warmup is < 0) throw new MemoException($"--warmup must be zero or more (got {a.Warmup})");
        var stages = SeqStage.Parse(a.Curriculum);
        if (a.IsGiven("--curriculum"))
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
        var hyper = new TrainHyper
        {
            LearningRate = a.Lr,
            TotalSteps = a.Steps,
            WarmupSteps = a.Warmup ?? Math.Max(1, a.Steps / 20),
            Curriculum = stages,
        };
        return new RunSetup(cfg, dataSpec, (ulong)a.Seed, a.Batch, (int)a.Seq, a.GradAccum, a.Steps, hyper, null);
    }

    private static int DryRun(TrainArgs a, RunSetup s, IBackend baseBackend)
    {
        var cfg = s.Config;
        int cp = a.Cp, seq = s.Seq / cp;
        // Per rank: the plan of T/C rows per sequence on the ring's backend (no peers needed to plan).
        if (cp > 1) Memo.Distributed.ZigZag.Create(s.Seq, cp);
        using var standIn = cp > 1 ? ParallelRun.ContextBackend(baseBackend, Memo.Distributed.LocalGroup.Create(cp, TimeSpan.FromSeconds(1))[0], cfg, s.Batch, s.Seq) : null;
        var backend = standIn ?? baseBackend;
        var layout = MemoryLayout.Build(cfg, s.Batch, seq, a.Memory.Policy, backend);
        long capacity = a.Memory.DeviceBudget ?? layout.TotalBytes;
        if (layout.TotalBytes > capacity) throw MemoryReport.DoesNotFit(cfg, s.Batch, seq, a.Memory, Workspaces.Of(backend, cfg), capacity);
        // The host rule the engine applies when it builds its policy (same function, same numbers): a budget the real
        // run refuses is refused here too, and the alpha shown is the largest the host budget allows.
        double alphaShown = 0;
        if (a.Memory.Policy is PolicyKind.Swap or PolicyKind.Memo)
        {
            var (skel, rest) = HostBudget.PerToken(cfg);
            double? fixedAlpha = HostBudget.FixedAlpha(a.Memory, cfg.NumLayers);
            double alphaHost = HostBudget.MaxAlpha(a.Memory.Policy, cfg.NumLayers, skel, rest, (long)s.Batch * seq, a.Memory.HostStore.OnDisk ? null : a.Memory.HostBudget, fixedAlpha);
            alphaShown = a.Memory.Policy == PolicyKind.Swap ? 1.0 : fixedAlpha ?? alphaHost;
        }
        long hostBytes = MemoryReport.HostBytes(cfg, s.Batch, seq, a.Memory.Policy, alphaShown);
        Console.WriteLine($"model   {cfg}");
        if (cp > 1)
        {
            // What memo plan --gpu cpu --cp C predicts (full recomputation runs each layer's ring forward again).
            long block = Memo.CostModel.Cpu.CpuRuntime.RingBlockBytes(cfg, s.Batch, s.Seq, cp);
            long ringBytes = Memo.CostModel.Cpu.CpuRuntime.RingBytes(cfg, s.Batch, s.Seq, Memo.CostModel.Cpu.CpuRuntime.PolicyOf(a.Memory.Policy, cfg.NumLayers), cp);
            Console.WriteLine($"per rank: {cp} context-parallel ranks, {s.Batch} x {seq} of the {s.Batch} x {s.Seq} tokens each; ring key/value and dK/dV blocks in the attention workspace");
            Console.WriteLine($"ring    each rank sends {ringBytes} bytes per micro-batch ({Sizes.FormatBytes(ringBytes)}: {ringBytes / (block * cfg.NumLayers)} key/value blocks of {Sizes.FormatBytes(block)} per layer)");
        }
        Console.WriteLine(MemoryReport.Describe(layout, capacity, hostBytes, alphaShown));
        if (a.Memory.HostStore.OnDisk && hostBytes > 0)
        {
            long ram = Math.Min(hostBytes, (a.Memory.HostBudget ?? 0) / DiskHostStore.Alignment * DiskHostStore.Alignment);
            Console.WriteLine($"  host   {"RAM tier",-20} {Sizes.FormatBytes(ram),12}  (--host-memory)");
            Console.WriteLine($"  disk   {"disk tier",-20} {Sizes.FormatBytes(hostBytes - ram),12}  in {Path.GetFullPath(a.Memory.HostStore.DiskDirectory!)} (plus up to 4 KiB padding per region)");
        }
        return 0;
    }

    private static TrainerState PeekState(string dir)
    {
        // Read the state's metadata without a model: the trainer file's metadata holds batch, seq and data.
        string path = Path.Combine(dir, Checkpoint.TrainerFile);
        if (!File.Exists(path)) throw new MemoException($"{path} is missing; this directory holds a model but no training state to resume (was it written by --save rather than --checkpoint?)");
        return Checkpoint.ReadState(path);
    }
}
