using System.Buffers.Binary;
using Memo.Tests.IO;
using Memo.Training.Data;

namespace Memo.Tests.Data;

public sealed class TokenShardTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static ushort[] Range(int start, int count, int modulo = 65536) =>
        Enumerable.Range(start, count).Select(i => (ushort)(i % modulo)).ToArray();

    private static string Message(Action a) => Assert.Throws<MemoException>(a).Message;

    [Fact]
    public void Shard_bytes_follow_the_llmc_layout()
    {
        string path = _dir.File("s.bin");
        TokenShards.WriteShard(path, [1, 2, 65535, 50256]);
        byte[] b = File.ReadAllBytes(path);
        Assert.Equal(1024 + 2 * 4, b.Length);
        Assert.Equal(20240520, BinaryPrimitives.ReadInt32LittleEndian(b));
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(4)));
        Assert.Equal(4, BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(8)));
        Assert.All(b[12..1024], x => Assert.Equal(0, x));
        Assert.Equal([1, 0, 2, 0, 0xFF, 0xFF, 0x50, 0xC4], b[1024..]);
        Assert.Equal([path], Directory.GetFiles(_dir.Path)); // no temporary file left behind
    }

    [Fact]
    public void Shard_round_trips_through_the_source()
    {
        string path = _dir.File("s.bin");
        ushort[] tokens = Range(100, 1000, 50257);
        TokenShards.WriteShard(path, tokens);
        using var src = new TokenShardSource(path, 50257);
        Assert.Equal(1000, src.TokenCount);
        Assert.Equal(1100, src.MinVocab);
        Assert.Contains("1000 tokens", src.Description, StringComparison.Ordinal);
        int B = 3, T = 7;
        var inp = new int[B * T];
        var tgt = new int[B * T];
        var mask = new byte[B * T];
        mask.AsSpan().Fill(9);
        src.NextBatch(B, T, inp, tgt, mask);
        for (int i = 0; i < B * T; i++)
        {
            Assert.Equal(tokens[i], inp[i]);
            Assert.Equal(tokens[i + 1], tgt[i]);
            Assert.Equal(0, mask[i]);
        }
        Assert.Equal(21, src.Position);
    }

    [Fact]
    public void Directory_and_glob_read_shards_in_name_order_as_one_stream()
    {
        string sub = Path.Combine(_dir.Path, "d");
        Directory.CreateDirectory(sub);
        // Written out of order; one empty shard; one file that is not matched by the glob.
        TokenShards.WriteShard(Path.Combine(sub, "train_002.bin"), Range(20, 15));
        TokenShards.WriteShard(Path.Combine(sub, "train_000.bin"), Range(0, 13));
        TokenShards.WriteShard(Path.Combine(sub, "train_001.bin"), []);
        TokenShards.WriteShard(Path.Combine(sub, "train_001b.bin"), Range(13, 7));
        File.WriteAllText(Path.Combine(sub, "readme.txt"), "not a shard");
        ushort[] all = Range(0, 35);

        foreach (string spec in new[] { sub, Path.Combine(sub, "train_*.bin") })
        {
            using var src = new TokenShardSource(spec, 256);
            Assert.Equal(35, src.TokenCount);
            Assert.Equal(["train_000.bin", "train_001.bin", "train_001b.bin", "train_002.bin"], src.Paths.Select(Path.GetFileName));
            var inp = new int[10];
            var tgt = new int[10];
            var mask = new byte[10];
            for (int batch = 0; batch < 3; batch++) // batches cross shard boundaries at 13 and 20
            {
                src.NextBatch(2, 5, inp, tgt, mask);
                for (int i = 0; i < 10; i++)
                {
                    Assert.Equal(all[10 * batch + i], inp[i]);
                    Assert.Equal(all[10 * batch + i + 1], tgt[i]);
                }
            }
        }
        Assert.Contains("no file matches", Message(() => _ = new TokenShardSource(Path.Combine(sub, "val_*.bin"), 256)), StringComparison.Ordinal);
        string empty = Path.Combine(_dir.Path, "empty");
        Directory.CreateDirectory(empty);
        Assert.Contains("holds no *.bin token shards", Message(() => _ = new TokenShardSource(empty, 256)), StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_magic_version_and_sizes_are_reported()
    {
        string path = _dir.File("s.bin");
        TokenShards.WriteShard(path, Range(0, 100));
        byte[] good = File.ReadAllBytes(path);

        byte[] b = (byte[])good.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(b, 12345);
        File.WriteAllBytes(path, b);
        Assert.Equal($"{path}: not an llm.c token shard (magic 12345, expected 20240520); give .bin shards written by llm.c's data scripts or by Memo",
            Message(() => _ = new TokenShardSource(path, 50257)));

        b = (byte[])good.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(4), 7);
        File.WriteAllBytes(path, b);
        Assert.Contains($"{path}: llm.c shard version 7 is not supported (expected 1", Message(() => _ = new TokenShardSource(path, 50257)), StringComparison.Ordinal);

        File.WriteAllBytes(path, good[..^7]);
        Assert.Equal($"{path}: truncated: header says 100 tokens but the file holds 96; re-create or re-download the shard",
            Message(() => _ = new TokenShardSource(path, 50257)));

        File.WriteAllBytes(path, good[..1000]);
        Assert.Contains("file is 1000 bytes, shorter than the 1024-byte llm.c shard header", Message(() => _ = new TokenShardSource(path, 50257)), StringComparison.Ordinal);

        File.WriteAllBytes(path, [.. good, 1, 2, 3]);
        Assert.Contains("3 extra bytes after the 100 tokens the header declares", Message(() => _ = new TokenShardSource(path, 50257)), StringComparison.Ordinal);

        Assert.Contains("no such token shard", Message(() => _ = new TokenShardSource(_dir.File("none.bin"), 50257)), StringComparison.Ordinal);
    }

    [Fact]
    public void Token_at_or_above_vocab_is_reported_with_its_position()
    {
        // The bad token sits past the first 1 MiB scan chunk, in the second shard.
        string sub = Path.Combine(_dir.Path, "v");
        Directory.CreateDirectory(sub);
        TokenShards.WriteShard(Path.Combine(sub, "a.bin"), Range(0, 1000, 50257));
        var tokens = Range(0, 600_000, 50257);
        tokens[550_000] = 50300;
        string bad = Path.Combine(sub, "b.bin");
        TokenShards.WriteShard(bad, tokens);
        Assert.Equal($"{bad}: token id 50300 at position 550000 is >= vocab_size 50257; the data was made for another tokenizer",
            Message(() => _ = new TokenShardSource(sub, 50257)));
        using var ok = new TokenShardSource(sub, 50301);
        Assert.Equal(50301, ok.MinVocab);
        Assert.Contains("token id 256 at position 256 is >= vocab_size 256", Message(() => _ = new TokenShardSource(Path.Combine(sub, "a.bin"), 256)), StringComparison.Ordinal);
    }

    [Fact]
    public void Too_little_data_for_one_batch_says_what_to_change()
    {
        string path = _dir.File("s.bin");
        TokenShards.WriteShard(path, Range(0, 100));
        using var src = new TokenShardSource(path, 256);
        var buf = new int[4096];
        Assert.Equal($"{path}: 100 tokens, but a batch needs B*T+1 = 4097; use a shorter --seq or --batch",
            Message(() => src.NextBatch(4, 1024, buf, buf, new byte[4096])));
        var ok = new int[99];
        src.NextBatch(1, 99, ok, new int[99], new byte[99]); // exactly B*T+1 = 100 tokens
        Assert.Equal(99, src.Position);
    }

    [Fact]
    public void Data_sources_pick_shards_or_text()
    {
        string shard = _dir.File("s.bin");
        TokenShards.WriteShard(shard, Range(0, 50));
        string renamed = _dir.File("shard.data");
        File.Copy(shard, renamed);
        string text = _dir.File("t.txt");
        File.WriteAllText(text, "hello");
        using (var a = DataSources.Open(shard, 256)) Assert.IsType<TokenShardSource>(a);
        using (var b = DataSources.Open(renamed, 256)) Assert.IsType<TokenShardSource>(b);
        using (var c = DataSources.Open(text, 256)) Assert.IsType<TextFileSource>(c);
        using (var d = DataSources.Open(_dir.File("*.bin"), 256)) Assert.Equal(50, d.TokenCount);
        Assert.Contains("no such file or directory", Message(() => DataSources.Open(_dir.File("x.txt"), 256)), StringComparison.Ordinal);
    }
}
