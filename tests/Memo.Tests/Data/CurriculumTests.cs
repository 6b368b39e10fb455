using Memo.Model;
using Memo.Training;
using Memo.Training.Data;

namespace Memo.Tests.Data;

/// <summary>The length curriculum: parsing, the length at each step, and the rows a trainer runs.</summary>
public sealed class CurriculumTests
{
    [Fact]
    public void Stages_parse_format_and_map_steps_to_lengths()
    {
        var stages = SeqStage.Parse("16x3, 1Kx2");
        Assert.Equal([new SeqStage(16, 3), new SeqStage(1024, 2)], stages);
        Assert.Equal("16x3,1024x2", SeqStage.Format(stages));
        Assert.Empty(SeqStage.Parse("0"));
        Assert.Empty(SeqStage.Parse(""));
        var h = new TrainHyper { Curriculum = stages };
        Assert.Equal(5, h.CurriculumSteps);
        int[] seqs = [.. Enumerable.Range(0, 7).Select(s => h.SeqAt(s, 2048))];
        Assert.Equal([16, 16, 16, 1024, 1024, 2048, 2048], seqs);
        Assert.Equal(2048, new TrainHyper().SeqAt(0, 2048));
        foreach (var bad in new[] { "16", "x3", "16x", "16x-1", "abcx3", "0x4" })
        {
            var e = Assert.Throws<MemoException>(() => SeqStage.Parse(bad));
            Assert.Contains("is not SEQxSTEPS", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Trainer_keeps_tokens_per_step_across_stages_and_checks_the_answers()
    {
        var cfg = Presets.Resolve("llama-tiny");
        using var model = new Transformer(cfg, 2, 64);
        Initializer.Initialize(model, 5);
        var hyper = new TrainHyper { TotalSteps = 4, WarmupSteps = 1, Curriculum = [new SeqStage(16, 2), new SeqStage(32, 1)] };
        using var trainer = new Trainer(model, new RecallTask(3, cfg.VocabSize), hyper, 2, 64, 1);
        Assert.Equal((8, 4, 2), (trainer.Rows(16), trainer.Rows(32), trainer.Rows(64)));
        var metrics = Enumerable.Range(0, 4).Select(_ => trainer.TrainStep()).ToList();
        Assert.Equal([16, 16, 32, 64], metrics.Select(m => m.Seq));
        // One query per sample: the answers scored are the rows of the step.
        Assert.Equal([8L, 8, 4, 2], metrics.Select(m => m.AnswersTotal));
        Assert.All(metrics, m => Assert.True(double.IsFinite(m.Loss)));
        Assert.Equal(8 + 8 + 4 + 2, trainer.Data.Position);
    }
}
