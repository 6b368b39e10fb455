using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Memo.Cpu;
using Memo.Model;
using Memo.Model.IO;

namespace Memo.Training;

/// <summary>Everything besides weights and moments that a resumed run needs to continue bit-identically.</summary>
public sealed record TrainerState(long Step, long AdamStep, long DataPosition, string DataDescription, ulong Seed,
    int Batch, int Seq, int GradAccum, long TotalSteps, TrainHyper Hyper);

/// <summary>
/// Checkpoint directories: <c>config.json</c> and <c>model.safetensors</c> (Hugging Face names and
/// layouts), and <c>trainer.safetensors</c> with the AdamW moments plus the step, data position, seed and
/// hyperparameters as metadata; the tokenizer's files when the run has one. A save is a swap that can be interrupted at any instant and finished later:
/// <code>
///   DIR.tmp-PID   being written (incomplete: removed by the next save or resume)
///   DIR.new       complete, not yet in place     (rename of DIR.tmp-PID: the commit point)
///   DIR.old       the previous checkpoint, being retired
///   DIR           the checkpoint
///
///   write DIR.tmp-PID -> rename to DIR.new -> rename DIR to DIR.old -> rename DIR.new to DIR -> delete DIR.old
/// </code>
/// <see cref="Recover"/> (called by every save and before every resume) finishes an interrupted swap: DIR.new, when
/// present, is the newest complete checkpoint; otherwise DIR, else DIR.old. The model and trainer files of one save
/// carry the same <c>memo_checkpoint</c> id, so files of different saves are never combined.
/// </summary>
public static unsafe class Checkpoint
{
    public const string ConfigFile = "config.json";
    public const string ModelFile = "model.safetensors";
    public const string TrainerFile = "trainer.safetensors";

    /// <summary>Metadata key holding the id shared by the model and trainer files of one save.</summary>
    public const string CheckpointIdKey = "memo_checkpoint";

    /// <summary>Writes the model (and, when given, the optimizer and trainer state) to <paramref name="dir"/> atomically.</summary>
    public static void Save(string dir, Transformer model, AdamWOptimizer? optimizer = null, TrainerState? state = null, Memo.Text.TextTokenizer? tokenizer = null)
    {
        string full = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar);
        string parent = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(parent);
        Recover(full);
        string tmp = full + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        string id = Guid.NewGuid().ToString("N");
        try
        {
            WriteFileAtomic(Path.Combine(tmp, ConfigFile), model.Config.ToJson());
            using (var weights = model.CopyBlockToHost(model.Weights)) WriteTensors(Path.Combine(tmp, ModelFile), model.Layout, weights.Floats, "weights", id);
            FaultPoint.Reach("checkpoint.tmp-partial");
            if (optimizer != null && state != null) WriteTrainer(Path.Combine(tmp, TrainerFile), model, optimizer, state, id);
            tokenizer?.SaveTo(tmp); // beside config.json, as transformers keeps tokenizer.json / tokenizer.model
            FaultPoint.Reach("checkpoint.tmp-written");
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
        Directory.Move(tmp, full + NewSuffix);
        FaultPoint.Reach("checkpoint.new-complete");
        FinishSwap(full);
    }

    private const string NewSuffix = ".new";
    private const string OldSuffix = ".old";

    /// <summary>
    /// Finishes a save that was interrupted (by a crash or a kill) and removes its leftovers, so that
    /// <paramref name="dir"/> holds the newest complete checkpoint. Call it with the directory locked.
    /// </summary>
    /// <returns>A line describing what was repaired, or null when there was nothing to do.</returns>
    public static string? Recover(string dir)
    {
        string full = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar);
        string? parent = Path.GetDirectoryName(full);
        if (parent == null || !Directory.Exists(parent)) return null;
        string? note = null;
        string name = Path.GetFileName(full);
        foreach (var tmp in Directory.GetDirectories(parent, name + ".tmp-*"))
        {
            Directory.Delete(tmp, recursive: true);
            note ??= $"removed the incomplete save {Path.GetFileName(tmp)}";
        }
        if (Directory.Exists(full + NewSuffix))
        {
            FinishSwap(full);
            return $"finished an interrupted save: {name} now holds the newest complete checkpoint";
        }
        if (!Directory.Exists(full) && Directory.Exists(full + OldSuffix))
        {
            Directory.Move(full + OldSuffix, full);
            return $"restored {name} from {name}{OldSuffix} (a save was interrupted)";
        }
        if (Directory.Exists(full + OldSuffix))
        {
            Directory.Delete(full + OldSuffix, recursive: true);
            note ??= $"removed the retired checkpoint {name}{OldSuffix}";
        }
        return note;
    }

    /// <summary>DIR.new is complete: retire DIR to DIR.old, move DIR.new into place, delete DIR.old.</summary>
    private static void FinishSwap(string full)
    {
        string old = full + OldSuffix;
        if (Directory.Exists(full))
        {
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
            Directory.Move(full, old);
            FaultPoint.Reach("checkpoint.old-moved");
        }
        Directory.Move(full + NewSuffix, full);
        FaultPoint.Reach("checkpoint.swapped");
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }

    /// <summary>Writes every parameter-layout tensor of <paramref name="block"/> (weights or gradients) under Hugging Face names.</summary>
    public static void WriteTensors(string path, ParameterLayout layout, float* block, string kind, string? checkpointId = null)
    {
        var writer = new SafeTensorsWriter();
        writer.SetMetadata("format", "pt");
        writer.SetMetadata("memo_content", kind);
        if (checkpointId != null) writer.SetMetadata(CheckpointIdKey, checkpointId);
        foreach (var t in HfNames.For(layout))
        {
            var data = new float[t.Elements];
            HfNames.Export(layout, t, block, data);
            writer.Add<float>(t.Name, t.Shape, data);
        }
        writer.Save(path);
    }

    /// <summary>Reads the model config of a checkpoint directory.</summary>
    public static ModelConfig ReadConfig(string dir)
    {
        if (!Directory.Exists(dir))
        {
            string full = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar);
            if (Directory.Exists(full + NewSuffix) || Directory.Exists(full + OldSuffix))
                throw new MemoException($"checkpoint directory '{dir}' is in the middle of an interrupted save; 'memo train --resume {dir}' finishes it");
            throw new MemoException($"checkpoint directory '{dir}' does not exist; pass a directory written by 'memo train --save' or '--checkpoint'");
        }
        string path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path)) throw new MemoException($"{path} is missing; the checkpoint is incomplete — re-save it");
        return ModelConfig.FromJson(File.ReadAllText(path), path);
    }

    /// <summary>
    /// Loads a checkpoint's weights into <paramref name="model"/>, checking every name and shape first: Memo's own
    /// checkpoints and Hugging Face ones as published (sharded with model.safetensors.index.json, F32/F16/BF16).
    /// A file that holds something other than weights (gradients), an lm_head beside a tied config, or a tensor the
    /// model does not have (other than the known non-parameter buffers) is refused.
    /// </summary>
    /// <returns>The file's <see cref="CheckpointIdKey"/> (null when it has none).</returns>
    public static string? LoadWeights(string dir, Transformer model)
    {
        if (!HfWeights.Exists(dir)) throw new MemoException($"{Path.Combine(dir, ModelFile)} is missing; the checkpoint is incomplete — re-save it");
        using var weights = HfWeights.Open(dir);
        foreach (var reader in weights.Files)
        {
            if (reader.Metadata.TryGetValue("memo_content", out var content) && content != "weights")
                throw new MemoException($"{reader.Path} holds {Sizes.Printable(content)}, not weights (its metadata says memo_content={Sizes.Printable(content)}); restore the weights from another checkpoint");
        }
        var expected = HfNames.For(model.Layout).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        bool Used(string n) => expected.Contains(n) || expected.Contains("transformer." + n);
        var extra = weights.TensorNames.Where(n => !Used(n) && !HfWeights.IsKnownBuffer(n)).Order(StringComparer.Ordinal).ToArray();
        if (extra.Contains("lm_head.weight") && model.Config.TiedHead)
            throw new MemoException($"{dir}: holds lm_head.weight but config.json ties the head to the embeddings (tie_word_embeddings); set \"tie_word_embeddings\": false to use it, or remove the tensor");
        if (extra.Length > 0)
            throw new MemoException($"{dir}: {extra.Length} tensor(s) that config.json's model does not have ({string.Join(", ", extra.Take(3).Select(n => Sizes.Printable(n)))}{(extra.Length > 3 ? ", ..." : "")}); the weights do not match config.json");
        using var host = model.CopyBlockToHost(model.Weights);
        weights.LoadInto(model.Layout, host.Floats);
        model.CopyBlockToDevice(host, model.Weights);
        return weights.Files[0].Metadata.GetValueOrDefault(CheckpointIdKey);
    }

    /// <summary>Loads the optimizer moments and returns the trainer state of a checkpoint.</summary>
    public static TrainerState LoadTrainer(string dir, Transformer model, AdamWOptimizer optimizer, string? modelId)
    {
        string path = Path.Combine(dir, TrainerFile);
        if (!File.Exists(path)) throw new MemoException($"{path} is missing; this directory holds a model but no training state to resume (was it written by --save rather than --checkpoint?)");
        using var reader = SafeTensorsReader.Open(path);
        string? id = reader.Metadata.GetValueOrDefault(CheckpointIdKey);
        if (id == null || id != modelId)
            throw new MemoException($"{path} was not saved with {ModelFile} of this directory (their {CheckpointIdKey} ids differ); the files come from different checkpoints — resume from a directory written whole by --checkpoint");
        long total = model.Layout.TotalElements;
        foreach (var name in new[] { "adam_m", "adam_v" })
        {
            if (!reader.Contains(name)) throw new MemoException($"{path}: tensor '{name}' is missing; the file is corrupt — resume from another checkpoint");
        }
        using (var m = new NativeBuffer(checked(total * sizeof(float)), zero: false))
        {
            reader.ReadF32("adam_m", m.Floats, [total]);
            model.CopyBlockToDevice(m, optimizer.M);
            reader.ReadF32("adam_v", m.Floats, [total]);
            model.CopyBlockToDevice(m, optimizer.V);
        }
        var state = ReadState(reader);
        optimizer.StepCount = state.AdamStep;
        return state;
    }

    /// <summary>Reads the trainer state stored in a trainer.safetensors file, without the moments.</summary>
    public static TrainerState ReadState(string path)
    {
        using var reader = SafeTensorsReader.Open(path);
        return ReadState(reader);
    }

    private static TrainerState ReadState(SafeTensorsReader reader)
    {
        if (!reader.Metadata.TryGetValue("memo_trainer_state", out var json))
            throw new MemoException($"{reader.Path}: the training state metadata is missing; the file is corrupt — resume from another checkpoint");
        TrainerState state;
        try
        {
            state = ParseState(json);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or NullReferenceException or KeyNotFoundException or OverflowException or MemoException)
        {
            throw new MemoException($"{reader.Path}: the training state metadata is unreadable ({e.Message.Split('\n')[0]}); resume from another checkpoint");
        }
        string? bad = Invalid(state);
        if (bad != null) throw new MemoException($"{reader.Path}: the training state is invalid ({bad}); resume from another checkpoint");
        return state;
    }

    /// <summary>The first field of <paramref name="s"/> outside its range, or null when every field is usable.</summary>
    private static string? Invalid(TrainerState s)
    {
        var h = s.Hyper;
        if (s.TotalSteps < 0 || s.TotalSteps > int.MaxValue) return $"total_steps {s.TotalSteps}";
        if (s.Step < 0 || s.Step > s.TotalSteps) return $"step {s.Step} is outside 0..total_steps {s.TotalSteps}";
        if (s.AdamStep < 0 || s.AdamStep > s.Step) return $"adam_step {s.AdamStep} is outside 0..step {s.Step}";
        if (s.DataPosition < 0) return $"data_position {s.DataPosition}";
        if (s.Batch < 1) return $"batch {s.Batch}";
        if (s.Seq < 1) return $"seq {s.Seq}";
        if (s.GradAccum < 1) return $"grad_accum {s.GradAccum}";
        if (!(h.LearningRate > 0) || !double.IsFinite(h.LearningRate)) return $"lr {h.LearningRate}";
        if (!(h.MinLrRatio >= 0 && h.MinLrRatio <= 1)) return $"min_lr_ratio {h.MinLrRatio}";
        if (h.WarmupSteps < 0) return $"warmup_steps {h.WarmupSteps}";
        if (!(h.Beta1 >= 0 && h.Beta1 < 1)) return $"beta1 {h.Beta1}";
        if (!(h.Beta2 >= 0 && h.Beta2 < 1)) return $"beta2 {h.Beta2}";
        if (!(h.Eps > 0) || !double.IsFinite(h.Eps)) return $"eps {h.Eps}";
        if (!(h.WeightDecay >= 0) || !double.IsFinite(h.WeightDecay)) return $"weight_decay {h.WeightDecay}";
        if (!(h.GradClip >= 0) || double.IsNaN(h.GradClip)) return $"grad_clip {h.GradClip}";
        if (!s.DataDescription.StartsWith("task:", StringComparison.Ordinal) && !s.DataDescription.StartsWith("file:", StringComparison.Ordinal)) return $"data '{s.DataDescription}'";
        return null;
    }

    private static void WriteTrainer(string path, Transformer model, AdamWOptimizer optimizer, TrainerState state, string id)
    {
        long total = model.Layout.TotalElements;
        var writer = new SafeTensorsWriter();
        writer.SetMetadata(CheckpointIdKey, id);
        writer.SetMetadata("memo_trainer_state", StateJson(state));
        using var m = model.CopyBlockToHost(optimizer.M);
        using var v = model.CopyBlockToHost(optimizer.V);
        writer.Add("adam_m", SafeTensorDType.F32, [total], m.Floats);
        writer.Add("adam_v", SafeTensorDType.F32, [total], v.Floats);
        writer.Save(path);
    }

    private static string StateJson(TrainerState s)
    {
        var h = s.Hyper;
        var o = new JsonObject
        {
            ["step"] = s.Step,
            ["adam_step"] = s.AdamStep,
            ["data_position"] = s.DataPosition,
            ["data"] = s.DataDescription,
            ["seed"] = s.Seed.ToString(CultureInfo.InvariantCulture),
            ["batch"] = s.Batch,
            ["seq"] = s.Seq,
            ["grad_accum"] = s.GradAccum,
            ["total_steps"] = s.TotalSteps,
            ["lr"] = h.LearningRate,
            ["min_lr_ratio"] = h.MinLrRatio,
            ["warmup_steps"] = h.WarmupSteps,
            ["beta1"] = h.Beta1,
            ["beta2"] = h.Beta2,
            ["eps"] = h.Eps,
            ["weight_decay"] = h.WeightDecay,
            ["grad_clip"] = h.GradClip,
            ["curriculum"] = SeqStage.Format(h.Curriculum),
        };
        return o.ToJsonString();
    }

    private static TrainerState ParseState(string json)
    {
        var o = JsonNode.Parse(json)!.AsObject();
        var hyper = new TrainHyper
        {
            LearningRate = o["lr"]!.GetValue<double>(),
            MinLrRatio = o["min_lr_ratio"]!.GetValue<double>(),
            WarmupSteps = o["warmup_steps"]!.GetValue<int>(),
            TotalSteps = (int)o["total_steps"]!.GetValue<long>(),
            Beta1 = o["beta1"]!.GetValue<double>(),
            Beta2 = o["beta2"]!.GetValue<double>(),
            Eps = o["eps"]!.GetValue<double>(),
            WeightDecay = o["weight_decay"]!.GetValue<double>(),
            GradClip = o["grad_clip"]!.GetValue<double>(),
            Curriculum = SeqStage.Parse(o["curriculum"]?.GetValue<string>() ?? ""),
        };
        return new TrainerState(o["step"]!.GetValue<long>(), o["adam_step"]!.GetValue<long>(), o["data_position"]!.GetValue<long>(),
            o["data"]!.GetValue<string>(), ulong.Parse(o["seed"]!.GetValue<string>(), CultureInfo.InvariantCulture),
            o["batch"]!.GetValue<int>(), o["seq"]!.GetValue<int>(), o["grad_accum"]!.GetValue<int>(), o["total_steps"]!.GetValue<long>(), hyper);
    }

    private static void WriteFileAtomic(string path, string text)
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }
}
