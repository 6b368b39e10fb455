// The step loop of memo train and its progress display: a Spectre progress bar on an interactive terminal,
// otherwise about 30 plain lines on stderr. Checkpoints are written every --checkpoint-every steps and at the end;
// with several processes only rank 0 writes them. After SIGINT or SIGTERM the loop stops once the current step is done and writes a checkpoint (when --checkpoint is set).
using System.Globalization;
using Memo.Training;
using Spectre.Console;

namespace Memo.Cli.Commands.Train;

internal sealed class TrainLoop(Trainer trainer, TrainCommand.RunSetup setup, string? checkpointDir, int checkpointEvery, TrainLog.StepLog? log, Interrupts interrupts, Memo.Text.TextTokenizer? tokenizer = null,
    bool root = true, Memo.Distributed.ContextParallelBackend? ring = null)
{
    private long? _lastCheckpoint;

    public Memo.Model.Transformer Model => trainer.Model;

    /// <summary>Optimizer steps completed.</summary>
    public long Step => trainer.Step;

    /// <summary>The steps this run trained, in order.</summary>
    public List<StepMetrics> History { get; } = [];

    private long Total => setup.TotalSteps;

    /// <summary>Trains to the last step or to an interrupt; returns the step the last checkpoint written holds (null: none).</summary>
    public long? Run()
    {
        if (trainer.Step < Total)
        {
            if (!Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive) RunWithProgress();
            else RunPlain();
        }
        if (root && interrupts.Signal != null && checkpointDir != null && _lastCheckpoint != trainer.Step && History.Count > 0) SaveCheckpoint(checkpointDir);
        return _lastCheckpoint;
    }

    private void Steps(Action<StepMetrics> onStep)
    {
        while (trainer.Step < Total && interrupts.Signal == null)
        {
            ring?.ResetStats();
            var m = trainer.TrainStep();
            History.Add(m);
            if (!double.IsFinite(m.Loss)) throw new MemoException($"the loss became {m.Loss} at step {m.Step}; lower --lr");
            log?.Write(m, ring?.Stats);
            // Rank 0 alone writes checkpoints (every rank holds the same parameters and optimizer state).
            if (root && checkpointDir != null && (trainer.Step % checkpointEvery == 0 || trainer.Step == Total)) SaveCheckpoint(checkpointDir);
            onStep(m);
        }
    }

    /// <summary>Writes a resumable checkpoint of the current step to <paramref name="dir"/>.</summary>
    public void SaveCheckpoint(string dir)
    {
        var t = trainer;
        var state = new TrainerState(t.Step, t.Optimizer.StepCount, t.Data.Position, setup.DataSpec, setup.Seed, t.Batch, t.Seq, t.GradAccum, setup.TotalSteps, t.Hyper);
        Checkpoint.Save(dir, t.Model, t.Optimizer, state, tokenizer);
        if (checkpointDir != null && TrainCommand.SameDir(dir, checkpointDir)) _lastCheckpoint = t.Step;
        ParallelRun.LastCheckpoint = $"{dir} (step {t.Step})";
    }

    private static string Describe(StepMetrics m, long total) => string.Create(CultureInfo.InvariantCulture,
        $"step {m.Step,5}/{total}  T {m.Seq,5}  loss {m.Loss:0.0000}  {(m.AnswersTotal > 0 ? $"recall acc {m.Accuracy * 100,5:0.0}%  " : "")}lr {m.LearningRate:0.00e+0}  |g| {m.GradNorm:0.000}  {m.TokensPerSecond:0} tok/s  {m.StepMs:0} ms/step  device peak {Sizes.FormatBytes(m.Memory.DevicePeakBytes)}");

    private void RunPlain()
    {
        long every = Math.Max(1, Total / 30);
        Steps(m =>
        {
            if (m.Step == 1 || m.Step % every == 0 || m.Step == Total) Console.Error.WriteLine(Describe(m, Total));
        });
    }

    private void RunWithProgress()
    {
        long every = Math.Max(1, Total / 15);
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: Total);
                task.Value = trainer.Step;
                Steps(m =>
                {
                    task.Value = m.Step;
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                        $"step {m.Step}/{Total} loss {m.Loss:0.000}{(m.AnswersTotal > 0 ? $" acc {TrainLog.Smoothed(History) * 100:0.0}%" : "")} {m.TokensPerSecond:0} tok/s mem {Sizes.FormatBytes(m.NativeBytes)}"));
                    if (m.Step == 1 || m.Step % every == 0 || m.Step == Total) console.WriteLine(Describe(m, Total));
                });
            });
    }
}
