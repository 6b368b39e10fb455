using Memo.Tests.IO;
using Memo.Training.Data;

namespace Memo.Tests.Data;

public sealed class TokenStreamTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private TextFileSource Text(byte[] bytes, int vocab = 256)
    {
        string path = _dir.File("t.txt");
        File.WriteAllBytes(path, bytes);
        return new TextFileSource(path, vocab);
    }

    private static (int[] Inputs, int[] Targets, byte[] Mask) Batch(IBatchSource s, int B, int T)
    {
        var r = (new int[B * T], new int[B * T], new byte[B * T]);
        s.NextBatch(B, T, r.Item1, r.Item2, r.Item3);
        return r;
    }

    [Fact]
    public void Text_is_read_as_bytes()
    {
        byte[] bytes = [.. "Hello, wörld!\n"u8, 0, 255];
        using var src = Text(bytes);
        Assert.Equal(bytes.Length, src.TokenCount);
        Assert.Equal(256, src.MinVocab);
        Assert.Equal(17, bytes.Length);
        var (inp, tgt, mask) = Batch(src, 4, 4); // needs all 17 bytes
        for (int i = 0; i < 16; i++)
        {
            Assert.Equal(bytes[i], inp[i]);
            Assert.Equal(bytes[i + 1], tgt[i]);
        }
        Assert.All(mask, m => Assert.Equal(0, m));
        Assert.Equal(255, tgt[15]);
        Assert.Equal(0xC3, inp[8]); // first byte of the UTF-8 'ö'
    }

    [Fact]
    public void Text_needs_a_byte_level_vocab()
    {
        string path = _dir.File("t.txt");
        File.WriteAllText(path, "abc");
        var e = Assert.Throws<MemoException>(() => new TextFileSource(path, 100));
        Assert.Equal($"{path}: byte-level text needs vocab_size >= 256, but the model has 100; use a byte-level preset or llm.c token shards", e.Message);
    }

    [Fact]
    public void Batches_shift_by_one_advance_by_BT_and_wrap_when_fewer_than_BT_plus_1_remain()
    {
        byte[] bytes = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray();
        using var src = Text(bytes);
        const int B = 2, T = 15; // B*T = 30: batches start at 0, 30, 60; 90 + 31 > 100 wraps to 0
        long[] expectedStarts = [0, 30, 60, 0, 30];
        foreach (long start in expectedStarts)
        {
            var (inp, tgt, _) = Batch(src, B, T);
            for (int b = 0; b < B; b++)
            {
                for (int t = 0; t < T; t++)
                {
                    int i = b * T + t;
                    Assert.Equal(start + i, inp[i]);     // row b is tokens [start + b*T, start + (b+1)*T)
                    Assert.Equal(start + i + 1, tgt[i]); // shifted by one, across rows too
                }
            }
            Assert.Equal(start + 30, src.Position);
        }

        // Exactly B*T+1 tokens remaining does not wrap.
        using var exact = Text(bytes[..61]);
        Batch(exact, B, T);
        var (last, lastTgt, _) = Batch(exact, B, T);
        Assert.Equal(30, last[0]);
        Assert.Equal(60, lastTgt[^1]);
        Assert.Equal(60, exact.Position);
        Assert.Equal(0, Batch(exact, B, T).Inputs[0]);
    }

    [Fact]
    public void Seek_to_a_saved_position_resumes_the_same_batches()
    {
        byte[] bytes = Enumerable.Range(0, 1000).Select(i => (byte)(i * 7 + i / 13)).ToArray();
        using var run = Text(bytes);
        var batches = new List<int[]>();
        long saved = 0;
        for (int k = 0; k < 12; k++)
        {
            if (k == 5) saved = run.Position;
            var (inp, tgt, _) = Batch(run, 4, 33);
            batches.Add([.. inp, .. tgt]);
        }
        using var resumed = Text(bytes);
        resumed.Seek(saved);
        for (int k = 5; k < 12; k++)
        {
            var (inp, tgt, _) = Batch(resumed, 4, 33);
            int[] again = [.. inp, .. tgt];
            Assert.Equal(batches[k], again);
        }
        Assert.Equal(run.Position, resumed.Position);
        var e = Assert.Throws<MemoException>(() => resumed.Seek(1001));
        Assert.Contains("position 1001 is beyond the data's 1000 tokens", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Span_lengths_are_checked()
    {
        using var src = Text(new byte[100]);
        Assert.Throws<ArgumentException>(() => src.NextBatch(2, 10, new int[19], new int[20], new byte[20]));
        Assert.Throws<ArgumentException>(() => src.NextBatch(2, 10, new int[20], new int[20], new byte[19]));
        Assert.Throws<ArgumentOutOfRangeException>(() => src.NextBatch(0, 10, new int[20], new int[20], new byte[20]));
    }
}
