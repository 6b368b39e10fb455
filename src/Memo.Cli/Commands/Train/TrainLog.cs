// What memo train reports: the header lines (diagnostics, stderr), the JSON step log (--log), and the results
// (the summary and the held-out score, stdout).
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Memo.Backends;
using Memo.Cpu;
using Memo.Model.Memory;
using Memo.Training;
using Memo.Training.Data;

namespace Memo.Cli.Commands.Train;

internal static class TrainLog
{
    /// <summary>Mixed into the seed for the held-out samples, so they are never among the training samples.</summary>
    private const ulong HeldOutSalt = 0x5EED_0F_E7A1UL;

    /// <summary>The one-JSON-object-per-step log file.</summary>
    internal sealed class StepLog(StreamWriter writer, bool continues) : IDisposable
    {
        public void Write(StepMetrics m, Memo.Distributed.RingStats? ring = null)
        {
            writer.WriteLine(Line(m, ring));
            writer.Flush();
        }

        /// <summary>
        /// Marks a resume in a log that already has lines: <c>{"event":"resume","from_step":N,...}</c>; the step lines
        /// after it continue from step N + 1 and replace those logged after N before the interruption.
        /// </summary>
        public void MarkResume(long step, string checkpoint)
        {
            if (!continues) return; // a fresh file repeats nothing
            writer.WriteLine(new JsonObject { ["event"] = "resume", ["from_step"] = step, ["checkpoint"] = checkpoint }.ToJsonString());
            writer.Flush();
        }

        public void Dispose() => writer.Dispose();
    }

    public static StepLog Open(string path, bool append)
    {
        string? parent = Path.GetDirectoryName(Path.GetFullPath(path));
        if (parent != null) Directory.CreateDirectory(parent);
        bool continues = append && File.Exists(path) && new FileInfo(path).Length > 0;
        return new StepLog(new StreamWriter(path, append, new UTF8Encoding(false)), continues);
    }

    public static void Header(TextWriter w, TrainCommand.RunSetup s, Trainer trainer, IBackend backend, string? resumeDir)
    {
        w.WriteLine($"model   {s.Config}");
        w.WriteLine($"data    {trainer.Data.Description}");
        w.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"batch   {s.Batch} x {s.Seq} tokens x {s.GradAccum} micro-batches = {trainer.TokensPerStep} tokens/step, {backend.Threads} threads{(backend.Name == BackendRegistry.Default ? "" : ", backend " + backend.Name)}, native memory {Sizes.FormatBytes(NativeMemoryStats.Current)}"));
        var model = trainer.Model;
        w.WriteLine(MemoryReport.Describe(model.DeviceLayout, model.Arena.Capacity, model.HostStoreBytes, model.Alpha));
        if (s.Hyper.Curriculum.Count > 0)
            w.WriteLine($"length curriculum {SeqStage.Format(s.Hyper.Curriculum)} (SEQxSTEPS), then {s.Seq} from step {s.Hyper.CurriculumSteps + 1}");
        if (resumeDir != null) w.WriteLine($"resumed from {resumeDir} at step {trainer.Step}");
    }

    internal static string Line(StepMetrics m, Memo.Distributed.RingStats? ring = null)
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
        };
        o["disk_written_bytes"] = m.Memory.DiskWrittenBytes;
        o["disk_read_bytes"] = m.Memory.DiskReadBytes;
        o["disk_io_ms"] = Math.Round(m.Memory.DiskIoMs, 3);
        o["disk_wait_ms"] = Math.Round(m.Memory.DiskWaitMs, 3);
        if (m.ProfileMs is { } profile)
        {
            var p = new JsonObject();
            for (int i = 0; i < profile.Count; i++) p[OpProfile.Name((ProfileOp)i)] = Math.Round(profile[i], 3);
            o["profile_ms"] = p;
        }
        if (m.AnswersTotal > 0) o["accuracy"] = m.Accuracy;
        if (ring is { } r)
        {
            // Rank 0's ring attention in this step: bytes it sent, attention compute, waits after it, the
            // transfers' post-to-completion time and the part of it after the overlapped compute had ended
            // (share hidden = 1 - ring_exposed_ms / ring_transfer_ms).
            o["ring_bytes"] = r.BytesSent;
            o["ring_compute_ms"] = Math.Round(r.ComputeSeconds * 1000, 3);
            o["ring_wait_ms"] = Math.Round(r.WaitSeconds * 1000, 3);
            o["ring_transfer_ms"] = Math.Round(r.TransferSeconds * 1000, 3);
            o["ring_exposed_ms"] = Math.Round(r.ExposedSeconds * 1000, 3);
            o["ring_transfers"] = r.Transfers;
        }
        return o.ToJsonString();
    }

    /// <summary>
    /// The --profile table: each op's milliseconds per step and share of the step, averaged over the steps after the
    /// first (JIT warm-up, first disk writes), or the one step there is.
    /// </summary>
    public static void Profile(TextWriter w, List<StepMetrics> h)
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
        w.WriteLine(OpProfile.Table(avg, steps.Average(m => m.StepMs), string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"profile: mean of {steps.Count} step(s) from step {steps[0].Step}, T = {last.Seq}, alpha {last.Memory.Alpha:0.###}")));
    }

    /// <summary>Recall accuracy over the last 20 steps.</summary>
    public static double Smoothed(List<StepMetrics> h)
    {
        long c = 0, t = 0;
        for (int i = Math.Max(0, h.Count - 20); i < h.Count; i++)
        {
            c += h[i].AnswersCorrect;
            t += h[i].AnswersTotal;
        }
        return t == 0 ? double.NaN : (double)c / t;
    }

    public static void Summary(TextWriter w, List<StepMetrics> h)
    {
        var last = h[^1];
        var tps = h.Skip(Math.Min(2, h.Count - 1)).Select(m => m.TokensPerSecond).Order().ToArray();
        double median = tps.Length == 0 ? 0 : tps[tps.Length / 2];
        string acc = last.AnswersTotal > 0 ? string.Create(CultureInfo.InvariantCulture, $", recall accuracy {Smoothed(h) * 100:0.0}% (last {Math.Min(20, h.Count)} steps)") : "";
        w.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"done: step {last.Step}, loss {h[0].Loss:0.0000} -> {last.Loss:0.0000}{acc}, median {median:0} tokens/s, native peak {Sizes.FormatBytes(last.NativePeakBytes)}"));
    }

    /// <summary>Scores samples the run never trained on (another seed) at the full sequence length, forward only.</summary>
    public static void HeldOut(TextWriter w, Trainer trainer, string dataSpec, ulong seed, int vocab, int samples)
    {
        using var heldOut = DataSpec.Open(dataSpec, seed ^ HeldOutSalt, vocab);
        int batches = (samples + trainer.Batch - 1) / trainer.Batch;
        var (loss, correct, total) = trainer.Evaluate(heldOut, batches);
        if (total == 0) return;
        string distance = heldOut is RecallTask r ? $", answers {r.MinDistance(trainer.Seq)}+ tokens after their needle" : "";
        w.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"held-out: {batches * trainer.Batch} samples at T {trainer.Seq}{distance}: recall accuracy {100.0 * correct / total:0.0}% ({correct}/{total}), loss {loss:0.0000}"));
    }
}
