namespace Memo.Text;

/// <summary>
/// A subword tokenizer from a maintained library, behind one small surface: encode text to ids, decode
/// ids to text, the size of its id space, its end-of-text id, and how to save it beside a checkpoint's
/// config.json so <see cref="TokenizerRegistry.FromCheckpoint"/> gives the same tokenizer back.
/// Implementations: <see cref="TiktokenText"/> (Microsoft.ML.Tokenizers: gpt2, r50k_base, cl100k_base,
/// o200k_base), <see cref="HuggingFaceJsonText"/> (a Hugging Face tokenizer.json, through Tokenizers.DotNet,
/// the Rust <c>tokenizers</c> library), <see cref="SentencePieceText"/> (a Llama SentencePiece tokenizer.model,
/// Microsoft.ML.Tokenizers). Encoding never adds BOS/EOS: documents are joined with <see cref="EndOfText"/>.
/// </summary>
public abstract class TextTokenizer : IDisposable
{
    /// <summary>What names it: an encoding name or the file it was read from.</summary>
    public abstract string Name { get; }

    /// <summary>Every id it produces is below this (a model needs vocab_size at least this large).</summary>
    public abstract int VocabSize { get; }

    /// <summary>The id that separates documents (end of text / end of sequence), if the tokenizer has one.</summary>
    public abstract int? EndOfText { get; }

    /// <summary>
    /// True when encoding a text in two pieces, cut before a space that follows a non-space character and
    /// precedes a letter, or after a newline that precedes a non-space character, gives the same ids as
    /// encoding it whole: so for byte-level BPEs whose pre-tokenizer splits there anyway (GPT-2, cl100k, o200k,
    /// Llama 3 style regexes). Streaming tokenization cuts long documents only there.
    /// </summary>
    public virtual bool CutsAtWordBoundaries => true;

    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="ids"/>. Thread-safe.</summary>
    public abstract void Encode(string text, List<int> ids);

    /// <summary>The ids of <paramref name="text"/>.</summary>
    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        Encode(text, ids);
        return ids;
    }

    /// <summary>The text of <paramref name="ids"/>; every id must be below <see cref="VocabSize"/>.</summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)VocabSize)
                throw new MemoException($"token id {ids[i]} at position {i} is outside tokenizer {Name}'s {VocabSize} ids; the ids were made with another tokenizer");
        }
        return DecodeChecked(ids);
    }

    protected abstract string DecodeChecked(ReadOnlySpan<int> ids);

    /// <summary>Writes the tokenizer's files into checkpoint directory <paramref name="dir"/> (beside config.json).</summary>
    public abstract void SaveTo(string dir);

    public override string ToString() => $"{Name} ({VocabSize} ids{(EndOfText is int e ? $", end of text {e}" : "")})";

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}
