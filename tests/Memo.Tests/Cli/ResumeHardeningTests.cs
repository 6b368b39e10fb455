using System.Diagnostics;
using System.Text.Json.Nodes;
using Memo.Model.IO;
using Memo.Training;
using Xunit.Abstractions;

namespace Memo.Tests.Cli;

/// <summary>
/// Issue 13 items 1, 2, 3, 5, 6, 7 and 15 (log resume marker) end to end, each in a real process: what a careless or
/// hostile user can do to checkpoints, resumes and runs, and the clear line (and untouched files) that must result.
/// </summary>
public sealed class ResumeHardeningTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string[] Small = ["train", "--model", "llama-tiny", "--seq", "32", "--batch", "1", "--lr", "3e-3", "--eval-samples", "0"];
    private readonly string _dir = MemoProcess.TempDir();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (int Exit, string Stdout, string Stderr) Memo(params string[] args)
    {
        var r = MemoProcess.Run(_dir, args);
        output.WriteLine($"memo {string.Join(' ', args)} -> {r.Exit}\n{r.Stderr}");
        return r;
    }

    private static void AssertOneLine(int expectedExit, (int Exit, string Stdout, string Stderr) r, string expected)
    {
        Assert.Equal(expectedExit, r.Exit);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, r.Stderr);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
    }

    private string P(string name) => Path.Combine(_dir, name);

    [Fact]
    public void Item1_gradients_never_replace_or_pass_for_weights()
    {
        Assert.Equal(0, Memo([.. Small, "--steps", "2", "--checkpoint", "ck", "--checkpoint-every", "2"]).Exit);
        File.WriteAllText(P("text.txt"), new string('a', 2000));
        byte[] weights = File.ReadAllBytes(P("ck/model.safetensors"));
        AssertOneLine(2, Memo("eval", "--checkpoint", "ck", "--data", "text.txt", "--seq", "16", "--grads", "ck/model.safetensors"), "inside the checkpoint directory");
        Assert.Equal(weights, File.ReadAllBytes(P("ck/model.safetensors")));

        // A gradient file put in place of the weights by hand is refused by eval and by --resume.
        Assert.Equal(0, Memo("eval", "--checkpoint", "ck", "--data", "text.txt", "--seq", "16", "--grads", "g.safetensors").Exit);
        AssertOneLine(2, Memo("eval", "--checkpoint", "ck", "--data", "text.txt", "--seq", "16", "--grads", "ck/../ck/model.safetensors"), "inside the checkpoint directory");
        File.Copy(P("g.safetensors"), P("ck/model.safetensors"), overwrite: true);
        AssertOneLine(2, Memo("eval", "--checkpoint", "ck", "--data", "text.txt", "--seq", "16"), "holds gradients, not weights");
        AssertOneLine(2, Memo("train", "--resume", "ck", "--steps", "4"), "holds gradients, not weights");
    }

    /// <summary>Rewrites trainer.safetensors with one field of its state metadata changed.</summary>
    private void EditState(string dir, string field, JsonNode value)
    {
        string path = Path.Combine(dir, Checkpoint.TrainerFile);
        float[] m, v;
        Dictionary<string, string> meta;
        using (var r = SafeTensorsReader.Open(path))
        {
            m = r.ReadF32("adam_m");
            v = r.ReadF32("adam_v");
            meta = new Dictionary<string, string>(r.Metadata);
        }
        var state = JsonNode.Parse(meta["memo_trainer_state"])!.AsObject();
        state[field] = value;
        meta["memo_trainer_state"] = state.ToJsonString();
        var w = new SafeTensorsWriter();
        foreach (var (k, val) in meta) w.SetMetadata(k, val);
        w.Add<float>("adam_m", [m.Length], m);
        w.Add<float>("adam_v", [v.Length], v);
        w.Save(path);
    }

    [Fact]
    public void Item2_trainer_state_out_of_range_or_from_another_run_is_refused()
    {
        Assert.Equal(0, Memo([.. Small, "--steps", "4", "--checkpoint", "ck", "--checkpoint-every", "2"]).Exit);
        CopyDir(P("ck"), P("neg"));
        EditState(P("neg"), "step", -5);
        AssertOneLine(2, Memo("train", "--resume", "neg"), "step -5 is outside 0..total_steps 4");
        CopyDir(P("ck"), P("far"));
        EditState(P("far"), "step", 1000000);
        AssertOneLine(2, Memo("train", "--resume", "far"), "step 1000000 is outside");

        // A trainer file of another run (another seed) beside this run's weights.
        Assert.Equal(0, Memo([.. Small, "--steps", "4", "--seed", "7", "--checkpoint", "other", "--checkpoint-every", "2"]).Exit);
        File.Copy(P("other/trainer.safetensors"), P("ck/trainer.safetensors"), overwrite: true);
        AssertOneLine(2, Memo("train", "--resume", "ck", "--steps", "6"), "come from different checkpoints");

        // A run resumed at its last step says so instead of silently doing nothing.
        var done = Memo("train", "--resume", "other");
        Assert.Equal(0, done.Exit);
        Assert.Contains("nothing to train", done.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Item3_resume_refuses_changed_run_flags_and_keeps_the_schedule()
    {
        Assert.Equal(0, Memo([.. Small, "--steps", "6", "--log", "ref.jsonl"]).Exit);
        // A step-3 checkpoint of the same run: killed once its first checkpoint is in place.
        var psi = MemoProcess.Info(_dir, [.. Small, "--steps", "6", "--checkpoint", "half", "--checkpoint-every", "3"]);
        psi.Environment["MEMO_CRASH_AT"] = "checkpoint.swapped:1";
        using (var p = Process.Start(psi)!)
        {
            p.WaitForExit();
        }
        foreach (var (flag, value) in new[] { ("--seq", "16"), ("--batch", "2"), ("--lr", "1e-3"), ("--seed", "5"), ("--model", "gpt2-tiny"), ("--grad-accum", "2"), ("--task", "copy") })
            AssertOneLine(2, Memo("train", "--resume", "half", flag, value), $"{flag} cannot change when resuming");
        // The same values as the checkpoint's are accepted; --steps extends the run but not the schedule.
        var r = Memo("train", "--resume", "half", "--seq", "32", "--steps", "8", "--log", "more.jsonl", "--eval-samples", "0");
        Assert.Equal(0, r.Exit);
        var reference = MemoProcess.ReadLog(P("ref.jsonl"));
        var more = MemoProcess.ReadLog(P("more.jsonl"));
        Assert.Equal(8, more[^1]["step"]!.GetValue<long>());
        foreach (var line in more.Where(l => l["step"]!.GetValue<long>() <= 6))
        {
            int step = (int)line["step"]!.GetValue<long>();
            Assert.Equal(reference[step - 1]["lr"]!.GetValue<double>(), line["lr"]!.GetValue<double>());
            Assert.Equal(reference[step - 1]["loss"]!.GetValue<double>(), line["loss"]!.GetValue<double>());
        }
    }

    [Fact]
    public void Item5_a_second_run_on_a_locked_checkpoint_directory_stops_at_once()
    {
        using (CheckpointLock.Acquire(P("ck"), "--checkpoint"))
        {
            // The lock is held by this (test) process; the run must stop before training.
            var sw = Stopwatch.StartNew();
            var r = Memo([.. Small, "--steps", "50", "--checkpoint", "ck", "--log", "log.jsonl"]);
            AssertOneLine(2, r, "another memo run is using this checkpoint directory");
            Assert.False(File.Exists(P("log.jsonl")));
            output.WriteLine($"refused in {sw.ElapsedMilliseconds} ms");
        }
        Assert.Equal(0, Memo([.. Small, "--steps", "2", "--checkpoint", "ck"]).Exit);
        // No stale .tmp-/.old/.new directories after a clean run.
        Assert.Equal("ck", Assert.Single(Directory.GetDirectories(_dir).Select(d => Path.GetFileName(d)!)));
    }

    [Theory]
    [InlineData("INT", 130, "SIGINT")]
    [InlineData("TERM", 143, "SIGTERM")]
    public async Task Item6_a_signal_finishes_the_step_writes_a_checkpoint_and_exits_with_one_line(string signal, int code, string name)
    {
        var psi = MemoProcess.Info(_dir, [.. Small, "--steps", "100000", "--checkpoint", "ck", "--checkpoint-every", "100000", "--log", "log.jsonl"]);
        // A process started with SIGINT ignored (a background job of a shell without job control, nohup) passes the
        // ignore on, and .NET then leaves SIGINT ignored, as a Unix program should; start memo with the default
        // disposition (env execs it under the same pid) so the test does not depend on how the suite was launched.
        psi.ArgumentList.Insert(0, psi.FileName);
        psi.ArgumentList.Insert(0, "--default-signal=INT,TERM");
        psi.FileName = "env";
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var sw = Stopwatch.StartNew();
        while ((!File.Exists(P("log.jsonl")) || File.ReadAllLines(P("log.jsonl")).Length < 3) && sw.Elapsed < TimeSpan.FromMinutes(1)) Thread.Sleep(10);
        int linesAtSignal = File.Exists(P("log.jsonl")) ? File.ReadAllLines(P("log.jsonl")).Length : 0;
        using (var kill = Process.Start("kill", ["-" + signal, p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
        if (!p.WaitForExit(60_000))
        {
            // Say where it stood: steps logged when the signal went and 60 s later, and what it printed.
            int linesAfter = File.ReadAllLines(P("log.jsonl")).Length;
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            Assert.Fail($"no exit 60 s after SIG{signal} (log lines {linesAtSignal} at the signal, {linesAfter} after); stderr:\n{await stderr}");
        }
        string err = await stderr;
        string outText = await stdout;
        output.WriteLine(err);
        Assert.Equal(code, p.ExitCode);
        string last = err.Trim().Split('\n')[^1];
        Assert.Contains($"interrupted by {name} after step", last, StringComparison.Ordinal);
        var log = MemoProcess.ReadLog(P("log.jsonl"));
        long step = log[^1]["step"]!.GetValue<long>();
        Assert.Contains($"checkpoint ck holds step {step}", last, StringComparison.Ordinal);
        Assert.Equal(step, Checkpoint.ReadState(P("ck/trainer.safetensors")).Step);
        Assert.Equal("", outText);
    }

    [Fact]
    public void Item7_unwritable_outputs_fail_before_step_0_and_save_into_the_checkpoint_stays_resumable()
    {
        File.WriteAllText(P("afile"), "x");
        AssertOneLine(2, Memo([.. Small, "--steps", "3", "--save", "afile/out", "--log", "log.jsonl"]), "--save afile/out");
        Assert.False(File.Exists(P("log.jsonl")) && File.ReadAllText(P("log.jsonl")).Length > 0);
        AssertOneLine(2, Memo([.. Small, "--steps", "3", "--checkpoint", "afile/ck", "--log", "log.jsonl"]), "--checkpoint afile/ck");
        Assert.False(File.Exists(P("log.jsonl")) && File.ReadAllText(P("log.jsonl")).Length > 0);

        Assert.Equal(0, Memo([.. Small, "--steps", "2", "--checkpoint", "ck", "--checkpoint-every", "2"]).Exit);
        Assert.Equal(0, Memo("train", "--resume", "ck", "--checkpoint", "ck", "--save", "ck", "--steps", "4", "--eval-samples", "0").Exit);
        Assert.Equal(4, Checkpoint.ReadState(P("ck/trainer.safetensors")).Step);
        Assert.Equal(0, Memo("train", "--resume", "ck", "--steps", "5", "--eval-samples", "0").Exit);
        // --save over a resumable checkpoint that is not the --checkpoint directory keeps it resumable too.
        Assert.Equal(0, Memo([.. Small, "--steps", "1", "--save", "ck"]).Exit);
        Assert.True(File.Exists(P("ck/trainer.safetensors")));
    }

    [Fact]
    public void Item15_an_appended_log_marks_the_resume()
    {
        Assert.Equal(0, Memo([.. Small, "--steps", "4", "--checkpoint", "ck", "--checkpoint-every", "2", "--log", "log.jsonl"]).Exit);
        Assert.Equal(0, Memo("train", "--resume", "ck", "--steps", "6", "--log", "log.jsonl").Exit);
        var lines = File.ReadAllLines(P("log.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        int marker = lines.FindIndex(l => l["event"]?.GetValue<string>() == "resume");
        Assert.Equal(4, marker);
        Assert.Equal(4, lines[marker]["from_step"]!.GetValue<long>());
        Assert.Equal(5, lines[marker + 1]["step"]!.GetValue<long>());
    }

    internal static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
    }
}
