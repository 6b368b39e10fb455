using System.Text.Json.Nodes;
using Memo.Tests.Cli;
using Memo.Text;
using Memo.Training.Data;

namespace Memo.Tests.Text;

/// <summary>
/// Each tokenizer against the ids its own implementation gives (Fixtures/tokenizers/expected.json, written by
/// tools/reference/tokenizer_fixtures.cjs with js-tiktoken and Tokenizers.js) for ASCII, accents, CJK, emoji
/// and whitespace runs; and decode(encode(s)) == s.
/// </summary>
public sealed class TokenizerTests
{
    private static string Dir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers");

    /// <summary>expected.json (js-tiktoken, Tokenizers.js) or, for SentencePiece, expected-spm.json (the sentencepiece library, tools/reference/make_sentencepiece.py).</summary>
    private static JsonObject Expected(string name) => JsonNode.Parse(File.ReadAllText(Path.Combine(Dir,
        name.EndsWith(".model", StringComparison.Ordinal) ? "expected-spm.json" : "expected.json")))!.AsObject();

    public static TheoryData<string> Names => new() { "gpt2", "r50k_base", "cl100k_base", "o200k_base", "tiny-bpe/tokenizer.json", "tiny-spm/tokenizer.model" };

    private static TextTokenizer Open(string name) =>
        TokenizerRegistry.Open(name.Contains('/', StringComparison.Ordinal) ? Path.Combine(Dir, name) : name);

    [Theory]
    [MemberData(nameof(Names))]
    public void Ids_match_the_reference_implementation_and_decode_round_trips(string name)
    {
        var expected = Expected(name);
        var strings = expected["strings"]!.AsArray().Select(s => s!.GetValue<string>()).ToArray();
        var ids = expected["tokenizers"]![name]!.AsArray();
        using var tok = Open(name);
        for (int i = 0; i < strings.Length; i++)
        {
            var want = ids[i]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
            var got = tok.Encode(strings[i]).ToArray();
            Assert.True(want.SequenceEqual(got), $"{name} string {i}: [{string.Join(",", got)}] vs [{string.Join(",", want)}]");
            Assert.Equal(strings[i], tok.Decode(got));
            Assert.All(got, id => Assert.InRange(id, 0, tok.VocabSize - 1));
        }
    }

    [Fact]
    public void End_of_text_and_id_space_come_from_the_tokenizer()
    {
        using var gpt2 = TokenizerRegistry.Open("gpt2");
        Assert.Equal(gpt2.Encode("<|endoftext|>").Single(), gpt2.EndOfText);
        using var tiny = Open("tiny-bpe/tokenizer.json");
        Assert.Equal(tiny.Encode("<|endoftext|>").Single(), tiny.EndOfText);
        Assert.Equal(tiny.EndOfText + 1, tiny.VocabSize);
    }

    [Fact]
    public void Decoding_an_id_beyond_the_vocabulary_is_a_clear_error()
    {
        using var tok = TokenizerRegistry.Open("gpt2");
        var e = Assert.Throws<MemoException>(() => tok.Decode([15496, tok.VocabSize]));
        Assert.Contains($"token id {tok.VocabSize}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tokenizer_file_that_does_not_parse_fails_in_one_line_with_exit_2_and_writes_nothing()
    {
        string work = MemoProcess.TempDir();
        File.WriteAllText(Path.Combine(work, "tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]");
        File.WriteAllText(Path.Combine(work, "in.txt"), "hello");
        var r = MemoProcess.Run(work, "tokenize", "in.txt", "--tokenizer", "tokenizer.json", "--output", "out");
        Assert.Equal(2, r.Exit);
        Assert.Contains("not a tokenizer.json", r.Stderr, StringComparison.Ordinal);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(work, "out")));

        File.WriteAllText(Path.Combine(work, "tokenizer.model"), "not a protobuf");
        r = MemoProcess.Run(work, "tokenize", "in.txt", "--tokenizer", "tokenizer.model", "--output", "out");
        Assert.Equal(2, r.Exit);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(work, "out")));
    }

    [Fact]
    public void Streamed_pieces_give_the_ids_of_whole_documents()
    {
        // Pieces of 64 characters force many cuts; the ids must equal encoding each document whole.
        string work = MemoProcess.TempDir();
        var rng = new Random(7);
        string[] words = ["the", "quick", "brown", "fox", "café", "naïve", "日本語", "🤖", "123", "x**2", "\t", "  ", "\n", "\n\n", "It's", "(a)"];
        var docs = Enumerable.Range(0, 12).Select(_ => string.Join(rng.Next(3) == 0 ? "" : " ", Enumerable.Range(0, rng.Next(20, 200)).Select(_ => words[rng.Next(words.Length)]))).ToArray();
        File.WriteAllText(Path.Combine(work, "in.txt"), string.Join("\n===\n", docs));
        foreach (var name in new[] { "gpt2", "cl100k_base", "o200k_base" })
        {
            using var tok = TokenizerRegistry.Open(name);
            string outDir = Path.Combine(work, name);
            var result = TextToShards.Run(new TokenizeOptions
            {
                Tokenizer = tok, Inputs = [Path.Combine(work, "in.txt")], OutputDir = outDir, DocSeparator = "\n===\n", PieceChars = 64, Threads = 2,
                ShardTokens = 500,
            });
            var want = new List<int>();
            foreach (var d in docs)
            {
                want.Add(tok.EndOfText!.Value);
                tok.Encode(d, want);
            }
            Assert.Equal(docs.Length, result.Documents);
            using var source = new TokenShardSource(outDir, tok.VocabSize);
            Assert.Equal(want.Count, source.TokenCount);
            Assert.True(result.Shards.Count > 1);
            var got = new int[want.Count - 1];
            var targets = new int[want.Count - 1];
            source.NextBatch(1, want.Count - 1, got, targets, new byte[want.Count - 1]);
            Assert.Equal(want.Take(want.Count - 1), got);
        }
    }

    [Fact]
    public void Validation_split_and_uint32_shards_read_back()
    {
        string work = MemoProcess.TempDir();
        File.WriteAllText(Path.Combine(work, "a.txt"), string.Join("\n\n", Enumerable.Range(0, 40).Select(i => $"document number {i} says hello")));
        var r = MemoProcess.Run(work, "tokenize", "a.txt", "--tokenizer", "o200k_base", "--output", "shards", "--doc-separator", "\\n\\n", "--val-fraction", "0.25");
        Assert.True(r.Exit == 0, r.Stderr);
        Assert.Contains("uint32", r.Stdout, StringComparison.Ordinal);
        using var tok = TokenizerRegistry.Open("o200k_base");
        using var train = new TokenShardSource(Path.Combine(work, "shards", "data_train_*.bin"), tok.VocabSize);
        using var val = new TokenShardSource(Path.Combine(work, "shards", "data_val_*.bin"), tok.VocabSize);
        var all = new List<int>();
        for (int i = 0; i < 40; i++)
        {
            all.Add(tok.EndOfText!.Value);
            tok.Encode($"document number {i} says hello", all);
        }
        Assert.Equal(all.Count, train.TokenCount + val.TokenCount);
        Assert.Equal(all.Count / 4, val.TokenCount, 2.0);
        var header = File.ReadAllBytes(Path.Combine(work, "shards", "data_train_000000.bin")).AsSpan(0, 16).ToArray();
        Assert.Equal(TokenShards.VersionU32, BitConverter.ToInt32(header, 4));
        Assert.Equal(4, BitConverter.ToInt32(header, 12));

        // A uint32 shard whose header claims uint16 tokens: the width disagrees with the header.
        string bad = Path.Combine(work, "shards", "data_val_000000.bin");
        var bytes = File.ReadAllBytes(bad);
        BitConverter.GetBytes(1).CopyTo(bytes, 4);
        File.WriteAllBytes(bad, bytes);
        var e = Assert.Throws<MemoException>(() => new TokenShardSource(bad, tok.VocabSize));
        Assert.Contains("token width disagrees with the header", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_token_id_beyond_the_model_vocab_is_reported_with_exit_2()
    {
        string work = MemoProcess.TempDir();
        File.WriteAllText(Path.Combine(work, "a.txt"), "a few words of text for the shard, enough for a batch of tokens to be read " + new string('x', 100));
        var r = MemoProcess.Run(work, "tokenize", "a.txt", "--tokenizer", "gpt2", "--output", "s");
        Assert.True(r.Exit == 0, r.Stderr);
        // llama-tiny has vocab_size 256, far below gpt2's ids.
        var t = MemoProcess.Run(work, "train", "--model", "llama-tiny", "--data", "s", "--seq", "8", "--steps", "1", "--save", "m");
        Assert.Equal(2, t.Exit);
        Assert.Contains(">= vocab_size 256", t.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(work, "m")));
    }
}
