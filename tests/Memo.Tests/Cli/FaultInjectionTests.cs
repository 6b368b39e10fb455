using System.Diagnostics;
using Memo.Training;
using Xunit.Abstractions;

namespace Memo.Tests.Cli;

/// <summary>
/// Kills training (as kill -9 does) inside every step of a checkpoint swap (MEMO_CRASH_AT, see <see cref="FaultPoint"/>)
/// and at random instants, then resumes: the resume must find the newest complete checkpoint and continue to the
/// same loss bits as a run that was never interrupted, and leave no .tmp-/.new/.old directories behind.
/// </summary>
public sealed class FaultInjectionTests(ITestOutputHelper output) : IDisposable
{
    private const int Steps = 9;
    private const int Every = 3;
    private static readonly string[] Run = ["train", "--model", "llama-tiny", "--seq", "32", "--batch", "1", "--lr", "3e-3", "--eval-samples", "0", "--steps", "9"];
    private readonly string _dir = MemoProcess.TempDir();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private List<double> Reference()
    {
        var r = MemoProcess.Run(_dir, [.. Run, "--log", "ref.jsonl"]);
        Assert.True(r.Exit == 0, r.Stderr);
        return MemoProcess.ReadLog(Path.Combine(_dir, "ref.jsonl")).Select(l => l["loss"]!.GetValue<double>()).ToList();
    }

    /// <summary>Resumes <paramref name="ck"/> to the end and checks every resumed loss bit for bit; returns the first resumed step.</summary>
    private long ResumeAndCompare(string ck, List<double> reference)
    {
        string log = ck + "-resumed.jsonl";
        var r = MemoProcess.Run(_dir, "train", "--resume", ck, "--checkpoint", ck, "--checkpoint-every", Every.ToString(System.Globalization.CultureInfo.InvariantCulture), "--log", log, "--eval-samples", "0");
        output.WriteLine(r.Stderr);
        Assert.True(r.Exit == 0, r.Stderr);
        var after = MemoProcess.ReadLog(Path.Combine(_dir, log));
        foreach (var line in after)
        {
            long step = line["step"]!.GetValue<long>();
            double a = line["loss"]!.GetValue<double>(), b = reference[(int)step - 1];
            Assert.True(BitConverter.DoubleToInt64Bits(a) == BitConverter.DoubleToInt64Bits(b), $"{ck}: step {step}: resumed loss {a:R} vs uninterrupted {b:R}");
        }
        Assert.Equal(Steps, after[^1]["step"]!.GetValue<long>());
        var leftovers = Directory.GetDirectories(_dir).Select(d => Path.GetFileName(d)!).Where(d => d.StartsWith(ck + ".", StringComparison.Ordinal)).ToArray();
        Assert.True(leftovers.Length == 0, $"left behind: {string.Join(", ", leftovers)}");
        return after[0]["step"]!.GetValue<long>();
    }

    [Fact]
    public void A_kill_inside_every_step_of_a_checkpoint_swap_resumes_from_the_newest_complete_checkpoint()
    {
        var reference = Reference();
        foreach (string point in FaultPoint.CheckpointPoints)
        {
            // The second save (step 6) is interrupted: the first (step 3) is complete and in place.
            string ck = "ck-" + point.Replace('.', '-');
            var psi = MemoProcess.Info(_dir, [.. Run, "--checkpoint", ck, "--checkpoint-every", "3"]);
            // (The first save has no old checkpoint to retire, so "old-moved" is first reached by the second save.)
            psi.Environment["MEMO_CRASH_AT"] = point + (point == "checkpoint.old-moved" ? ":1" : ":2");
            using (var p = Process.Start(psi)!)
            {
                p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                Assert.NotEqual(0, p.ExitCode);
            }
            long first = ResumeAndCompare(ck, reference);
            // Until the new copy is complete (renamed to .new) the newest complete checkpoint is step 3; from then on, step 6.
            long expected = point is "checkpoint.tmp-partial" or "checkpoint.tmp-written" ? 4 : 7;
            output.WriteLine($"{point}: resumed at step {first}");
            Assert.Equal(expected, first);
        }
    }

    [Fact]
    public void Kills_at_random_instants_always_resume_to_the_same_losses()
    {
        var reference = Reference();
        var rng = new Random(13);
        for (int trial = 0; trial < 3; trial++)
        {
            string ck = $"rand{trial}";
            var psi = MemoProcess.Info(_dir, [.. Run, "--checkpoint", ck, "--checkpoint-every", "1"]);
            using (var p = Process.Start(psi)!)
            {
                // Wait for the first checkpoint, then kill at a random instant of the following saves and steps.
                var sw = Stopwatch.StartNew();
                while (!File.Exists(Path.Combine(_dir, ck, Checkpoint.TrainerFile)) && !p.HasExited && sw.Elapsed < TimeSpan.FromMinutes(1)) Thread.Sleep(1);
                Thread.Sleep(rng.Next(0, 40));
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                p.WaitForExit();
            }
            long first = ResumeAndCompare(ck, reference);
            output.WriteLine($"trial {trial}: resumed at step {first}");
        }
    }
}
