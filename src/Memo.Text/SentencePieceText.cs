using Microsoft.ML.Tokenizers;

namespace Memo.Text;

/// <summary>
/// A Llama SentencePiece <c>tokenizer.model</c> (protobuf ModelProto, BPE) through Microsoft.ML.Tokenizers'
/// LlamaTokenizer, with neither BOS nor EOS added by encoding. The id space is the model's vocabulary size;
/// the end-of-text id is its EOS. In a checkpoint the file is copied beside config.json.
/// </summary>
public sealed class SentencePieceText : TextTokenizer
{
    private readonly SentencePieceTokenizer _tokenizer;
    private readonly string _path;

    public SentencePieceText(string path)
    {
        _path = path;
        Name = path;
        if (!File.Exists(path)) throw new MemoException($"{path}: no such tokenizer file; check --tokenizer");
        try
        {
            using var s = File.OpenRead(path);
            _tokenizer = LlamaTokenizer.Create(s, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or NotSupportedException
            or IOException or InvalidDataException)
        {
            throw new MemoException($"{path}: not a SentencePiece model the library can load ({e.Message.Split('\n')[0]}); give a Llama tokenizer.model");
        }
        VocabSize = _tokenizer.Vocabulary.Values.Max() + 1;
        EndOfText = _tokenizer.EndOfSentenceId;
    }

    public override string Name { get; }

    public override int VocabSize { get; }

    public override int? EndOfText { get; }

    /// <summary>SentencePiece adds a dummy prefix to every call, so a document is encoded whole.</summary>
    public override bool CutsAtWordBoundaries => false;

    public override void Encode(string text, List<int> ids) =>
        ids.AddRange(_tokenizer.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false));

    protected override string DecodeChecked(ReadOnlySpan<int> ids) => _tokenizer.Decode(ids.ToArray());

    public override void SaveTo(string dir) => TokenizerRegistry.CopyAtomic(_path, Path.Combine(dir, TokenizerRegistry.ModelFile));
}
