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
/// hyperparameters as metadata; the tokenizer's files when the run has one. A directory is written whole under a temporary name and renamed into
/// place, so a crash never leaves a half-written checkpoint and a failed save never damages the old one.
/// </summary>
public static unsafe class Checkpoint
{
    public const string ConfigFile = "config.json";
    public const string ModelFile = "model.safetensors";
    public const string TrainerFile = "trainer.safetensors";

    /// <summary>Writes the model (and, when given, the optimizer and trainer state) to <paramref name="dir"/> atomically.</summary>
    public static void Save(string dir, Transformer model, AdamWOptimizer? optimizer = null, TrainerState? state = null, Memo.Text.TextTokenizer? tokenizer = null)
    {
        string full = Path.GetFullPath(dir);
        string parent = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(parent);
        string tmp = full + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        try
        {
            WriteFileAtomic(Path.Combine(tmp, ConfigFile), model.Config.ToJson());
            using (var weights = model.CopyBlockToHost(model.Weights)) WriteTensors(Path.Combine(tmp, ModelFile), model.Layout, weights.Floats, "weights");
            if (optimizer != null && state != null) WriteTrainer(Path.Combine(tmp, TrainerFile), model, optimizer, state);
            tokenizer?.SaveTo(tmp); // beside config.json, as transformers keeps tokenizer.json / tokenizer.model
            ReplaceDirectory(tmp, full);
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
    }

    /// <summary>Writes every parameter-layout tensor of <paramref name="block"/> (weights or gradients) under Hugging Face names.</summary>
    public static void WriteTensors(string path, ParameterLayout layout, float* block, string kind)
    {
        var writer = new SafeTensorsWriter();
        writer.SetMetadata("format", "pt");
        writer.SetMetadata("memo_content", kind);
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
        if (!Directory.Exists(dir)) throw new MemoException($"checkpoint directory '{dir}' does not exist; pass a directory written by 'memo train --save' or '--checkpoint'");
        string path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path)) throw new MemoException($"{path} is missing; the checkpoint is incomplete — re-save it");
        return ModelConfig.FromJson(File.ReadAllText(path), path);
    }

    /// <summary>
    /// Loads a checkpoint's weights into <paramref name="model"/>, checking every name and shape first: Memo's own
    /// checkpoints and Hugging Face ones as published (sharded with model.safetensors.index.json, F32/F16/BF16).
    /// </summary>
    public static void LoadWeights(string dir, Transformer model)
    {
        if (!HfWeights.Exists(dir)) throw new MemoException($"{Path.Combine(dir, ModelFile)} is missing; the checkpoint is incomplete — re-save it");
        using var weights = HfWeights.Open(dir);
        using var host = model.CopyBlockToHost(model.Weights);
        weights.LoadInto(model.Layout, host.Floats);
        model.CopyBlockToDevice(host, model.Weights);
    }

    /// <summary>Loads the optimizer moments and returns the trainer state of a checkpoint.</summary>
    public static TrainerState LoadTrainer(string dir, Transformer model, AdamWOptimizer optimizer)
    {
        string path = Path.Combine(dir, TrainerFile);
        if (!File.Exists(path)) throw new MemoException($"{path} is missing; this directory holds a model but no training state to resume (was it written by --save rather than --checkpoint?)");
        using var reader = SafeTensorsReader.Open(path);
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
        try
        {
            return ParseState(json);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or NullReferenceException or KeyNotFoundException)
        {
            throw new MemoException($"{reader.Path}: the training state metadata is unreadable ({e.Message}); resume from another checkpoint");
        }
    }

    private static void WriteTrainer(string path, Transformer model, AdamWOptimizer optimizer, TrainerState state)
    {
        long total = model.Layout.TotalElements;
        var writer = new SafeTensorsWriter();
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

    /// <summary>Moves the finished directory <paramref name="tmp"/> to <paramref name="target"/>, replacing an old one.</summary>
    private static void ReplaceDirectory(string tmp, string target)
    {
        if (!Directory.Exists(target))
        {
            Directory.Move(tmp, target);
            return;
        }
        string old = target + ".old-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        Directory.Move(target, old);
        Directory.Move(tmp, target);
        Directory.Delete(old, recursive: true);
    }
}
