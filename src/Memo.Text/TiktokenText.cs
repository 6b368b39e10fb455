using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace Memo.Text;

/// <summary>
/// OpenAI's byte-level BPE encodings through Microsoft.ML.Tokenizers and its data packages (no download):
/// <c>gpt2</c> and <c>r50k_base</c> (GPT-2/GPT-3, 50,257 ids), <c>cl100k_base</c> (GPT-3.5/4), <c>o200k_base</c> (GPT-4o).
/// The id space is the library's special tokens' largest id + 1 (they follow the ranks). Text containing a
/// special token's spelling (e.g. "&lt;|endoftext|&gt;") encodes to that special id, as the library does.
/// In a checkpoint it is saved as <c>tokenizer_config.json</c> naming the encoding (<c>memo_tokenizer</c>).
/// </summary>
public sealed class TiktokenText : TextTokenizer
{
    public static readonly IReadOnlyList<string> Encodings = ["gpt2", "r50k_base", "cl100k_base", "o200k_base"];

    private readonly TiktokenTokenizer _tokenizer;

    public TiktokenText(string encoding)
    {
        if (!Encodings.Contains(encoding))
            throw new MemoException($"unknown tokenizer encoding '{encoding}'; use one of {string.Join(", ", Encodings)}, or a tokenizer.json / tokenizer.model path");
        Name = encoding;
        _tokenizer = encoding == "gpt2" ? TiktokenTokenizer.CreateForModel("gpt2") : TiktokenTokenizer.CreateForEncoding(encoding);
        var specials = _tokenizer.SpecialTokens ?? throw new MemoException($"tokenizer {encoding}: the library gave no special tokens");
        VocabSize = specials.Values.Max() + 1;
        EndOfText = specials.TryGetValue("<|endoftext|>", out int eot) ? eot : null;
    }

    public override string Name { get; }

    public override int VocabSize { get; }

    public override int? EndOfText { get; }

    /// <summary>The library's tokenizer (for benchmarks against the library's own throughput).</summary>
    public Tokenizer Library => _tokenizer;

    public override void Encode(string text, List<int> ids) => ids.AddRange(_tokenizer.EncodeToIds(text));

    protected override string DecodeChecked(ReadOnlySpan<int> ids) => _tokenizer.Decode(ids.ToArray());

    public override void SaveTo(string dir)
    {
        var o = new JsonObject { ["memo_tokenizer"] = Name, ["tokenizer_class"] = "GPT2TokenizerFast" };
        if (EndOfText != null) o["eos_token"] = "<|endoftext|>";
        TokenizerRegistry.WriteAtomic(Path.Combine(dir, TokenizerRegistry.ConfigFile), o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
}
