using Memo.Training.Data;

namespace Memo.Tests.Data;

public sealed class RecallTaskTests
{
    private static (int[] Inputs, int[] Targets, byte[] Mask) Batch(IBatchSource s, int B, int T)
    {
        var r = (new int[B * T], new int[B * T], new byte[B * T]);
        s.NextBatch(B, T, r.Item1, r.Item2, r.Item3);
        return r;
    }

    [Fact]
    public void Same_seed_gives_the_same_bits_and_another_seed_does_not()
    {
        using var a = new RecallTask(7, 50257);
        using var b = new RecallTask(7, 50257);
        using var c = new RecallTask(8, 50257);
        for (int k = 0; k < 3; k++)
        {
            var x = Batch(a, 3, 256);
            var y = Batch(b, 3, 256);
            var z = Batch(c, 3, 256);
            Assert.Equal(x.Inputs, y.Inputs);
            Assert.Equal(x.Targets, y.Targets);
            Assert.Equal(x.Mask, y.Mask);
            Assert.NotEqual(x.Inputs, z.Inputs);
        }
        Assert.Equal(9, a.Position);
    }

    [Fact]
    public void Seek_resumes_identically_and_rows_are_independent_samples()
    {
        using var run = new RecallTask(3, 256);
        var all = new List<int[]>();
        for (int k = 0; k < 6; k++)
        {
            var (i, t, m) = Batch(run, 2, 128);
            all.Add([.. i, .. t, .. m.Select(x => (int)x)]);
        }
        using var resumed = new RecallTask(3, 256);
        resumed.Seek(6); // after 3 batches of 2 samples
        for (int k = 3; k < 6; k++)
        {
            var (i, t, m) = Batch(resumed, 2, 128);
            int[] again = [.. i, .. t, .. m.Select(x => (int)x)];
            Assert.Equal(all[k], again);
        }
        // Sample n is the same whatever batch it lands in: B=1 at position 5 equals row 1 of the 3rd batch.
        resumed.Seek(5);
        var (one, _, _) = Batch(resumed, 1, 128);
        Assert.Equal(all[2][128..256], one);
    }

    [Theory]
    [InlineData(64, 16, 1, 1, RecallFiller.Pattern)]
    [InlineData(256, 512, 2, 1, RecallFiller.Pattern)]
    [InlineData(256, 512, 2, 16, RecallFiller.Random)]
    [InlineData(50257, 4096, 2, 1, RecallFiller.Pattern)]
    [InlineData(50257, 4096, 2, 8, RecallFiller.Random)]
    [InlineData(100, 1000, 1, 4, RecallFiller.Pattern)]
    public void Answers_are_the_values_paired_with_the_queried_keys_far_back(int vocab, int T, int B, int pairs, RecallFiller fill)
    {
        using var task = new RecallTask(11, vocab, pairs, filler: fill);
        int K = task.Pairs, Q = task.Queries, ctx = RecallTask.ContextLength(T);
        Assert.Equal(pairs, K);
        Assert.Equal(pairs, Q);
        for (int k = 0; k < 2; k++)
        {
            var (inp, tgt, mask) = Batch(task, B, T);
            for (int b = 0; b < B; b++)
            {
                var s = new int[T + 1]; // the sample: s[0..T) = inputs row, s[1..T] = targets row
                inp.AsSpan(b * T, T).CopyTo(s);
                s[T] = tgt[b * T + T - 1];
                for (int t = 0; t < T - 1; t++) Assert.Equal(inp[b * T + t + 1], tgt[b * T + t]);
                Assert.All(s, x => Assert.InRange(x, 1, task.Alphabet - 1));

                bool IsKey(int x) => x >= task.KeyFirst && x < task.KeyFirst + task.KeyCount;
                bool IsValue(int x) => x >= task.ValueFirst && x < task.ValueFirst + task.ValueCount;

                // K distinct keys in the context region, each followed by a value; no keys elsewhere except in queries.
                var contextKeys = Enumerable.Range(0, ctx).Where(p => IsKey(s[p])).ToList();
                Assert.Equal(K, contextKeys.Count);
                Assert.Equal(K, contextKeys.Select(p => s[p]).Distinct().Count());
                Assert.All(contextKeys, p => Assert.True(IsValue(s[p + 1])));
                Assert.Equal(K, Enumerable.Range(0, ctx).Count(p => IsValue(s[p])));

                int answers = 0;
                for (int t = 0; t < T; t++)
                {
                    if (mask[b * T + t] == 0) continue;
                    answers++;
                    int key = inp[b * T + t];
                    Assert.True(IsKey(key));
                    Assert.Equal(RecallTask.QueryToken, s[t - 1]);
                    int c = contextKeys.Single(p => s[p] == key);
                    Assert.Equal(s[c + 1], tgt[b * T + t]); // the target is the value that followed the key
                    Assert.True(t - c >= T / 2, $"answer at {t} recalls position {c}: distance {t - c} < T/2");
                    if (T >= 4096) Assert.True(t - c >= 3 * T / 4 - 3 * Q - 1);
                }
                Assert.Equal(Q, answers);
                Assert.Equal(Q, s.Count(x => x == RecallTask.QueryToken));
                var filler = s.Where(x => x >= task.FillerFirst).ToList();
                Assert.Equal(T + 1 - 2 * K - 3 * Q, filler.Count);
                if (fill == RecallFiller.Pattern) Assert.All(filler, x => Assert.InRange(x, task.FillerFirst, task.FillerFirst + RecallTask.PatternLength - 1));
                else Assert.True(filler.Distinct().Count() > RecallTask.PatternLength, "random filler uses many ids");
                Assert.All(Enumerable.Range(0, T).Where(t => mask[b * T + t] != 0), t => Assert.True(t - ctx + 1 >= task.MinDistance(T)));
            }
        }
    }

    [Fact]
    public void Accuracy_counts_only_masked_positions()
    {
        using var task = new RecallTask(1, 256, pairs: 16);
        var (_, tgt, mask) = Batch(task, 2, 512);
        Assert.Equal((32L, 32L), AnswerAccuracy.Count(tgt, tgt, mask));
        var wrong = (int[])tgt.Clone();
        int changed = 0;
        for (int i = 0; i < wrong.Length; i++)
        {
            if (mask[i] == 0) wrong[i] = -1; // errors outside the mask do not count
            else if (changed++ < 5) wrong[i] = -1;
        }
        Assert.Equal((27L, 32L), AnswerAccuracy.Count(wrong, tgt, mask));
        Assert.Equal((0L, 0L), AnswerAccuracy.Count([1, 2], [1, 2], [0, 0]));
        Assert.Equal(2, AnswerAccuracy.Argmax([0.5f, -1f, 3f, 3f]));
    }

    [Fact]
    public unsafe void Argmax_rows_reads_row_major_logits()
    {
        float[] logits = [0, 1, 2, 9, 0, 0, -1, -2, -0.5f];
        var pred = new int[3];
        fixed (float* p = logits) AnswerAccuracy.ArgmaxRows(p, 3, pred);
        Assert.Equal([2, 0, 2], pred);
    }

    [Fact]
    public void Bad_settings_give_clear_errors()
    {
        var e = Assert.Throws<MemoException>(() => new RecallTask(1, 63));
        Assert.Contains("vocab_size 63 is too small (needs >= 64", e.Message, StringComparison.Ordinal);
        using var task = new RecallTask(1, 256);
        e = Assert.Throws<MemoException>(() => Batch(task, 1, 4));
        Assert.Contains("sequence length 4 is too short", e.Message, StringComparison.Ordinal);
        using var many = new RecallTask(1, 256, pairs: 20);
        e = Assert.Throws<MemoException>(() => Batch(many, 1, 64));
        Assert.Contains("20 key-value pairs do not fit in the context region (first 16 tokens of 64)", e.Message, StringComparison.Ordinal);
        using var queries = new RecallTask(1, 256, pairs: 2, queries: 30);
        e = Assert.Throws<MemoException>(() => Batch(queries, 1, 64));
        Assert.Contains("30 queries (90 tokens) do not fit", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<MemoException>(() => new RecallTask(1, 64, pairs: 17));
        Assert.Contains("there are 16 distinct keys at vocab_size 64", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void More_queries_than_pairs_cycle_through_the_keys()
    {
        using var task = new RecallTask(5, 256, pairs: 3, queries: 7);
        var (inp, tgt, mask) = Batch(task, 1, 256);
        var asked = Enumerable.Range(0, 256).Where(t => mask[t] == 1).Select(t => (inp[t], tgt[t])).ToList();
        Assert.Equal(7, asked.Count);
        Assert.Equal(3, asked.Distinct().Count());
        Assert.Equal(asked[0], asked[3]);
        Assert.Equal(asked[1], asked[4]);
    }

    [Fact]
    public void Tasks_registry_creates_recall_and_lists_tasks_for_unknown_names()
    {
        using var t = Tasks.Create("Recall", 1, 256);
        Assert.IsType<RecallTask>(t);
        Assert.Equal("recall", Tasks.Default);
        Assert.Contains("recall task (seed 1", t.Description, StringComparison.Ordinal);
        Assert.Equal(256, t.MinVocab);
        using var small = Tasks.Create("recall", 1, 64);
        Assert.Equal(64, small.MinVocab);
        var e = Assert.Throws<MemoException>(() => Tasks.Create("copy", 1, 256));
        Assert.Equal("unknown task 'copy'; available tasks: recall", e.Message);
    }

    [Fact]
    public void Task_options_select_pairs_queries_and_filler()
    {
        using var passkey = (RecallTask)Tasks.Create("recall", 1, 256);
        Assert.Equal((1, 1, RecallFiller.Pattern), (passkey.Pairs, passkey.Queries, passkey.Filler));
        Assert.Contains("passkey", passkey.Description, StringComparison.Ordinal);
        using var mqar = (RecallTask)Tasks.Create("recall:pairs=8, queries=12,filler=random", 1, 256);
        Assert.Equal((8, 12, RecallFiller.Random), (mqar.Pairs, mqar.Queries, mqar.Filler));
        Assert.Equal("task 'recall:pairs=x': pairs must be a positive whole number (got 'x')",
            Assert.Throws<MemoException>(() => Tasks.Create("recall:pairs=x", 1, 256)).Message);
        Assert.Contains("filler must be pattern or random (got 'noise')",
            Assert.Throws<MemoException>(() => Tasks.Create("recall:filler=noise", 1, 256)).Message, StringComparison.Ordinal);
        Assert.Contains("unknown option 'keys'",
            Assert.Throws<MemoException>(() => Tasks.Create("recall:keys=3", 1, 256)).Message, StringComparison.Ordinal);
        Assert.Contains("option 'pairs' is not key=value",
            Assert.Throws<MemoException>(() => Tasks.Create("recall:pairs", 1, 256)).Message, StringComparison.Ordinal);
    }
}
