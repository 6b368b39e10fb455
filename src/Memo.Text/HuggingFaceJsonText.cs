using System.Text.Json;

namespace Memo.Text;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> run by the Rust <c>tokenizers</c> library through Tokenizers.DotNet
/// (its native library needs glibc 2.34 or later on linux-x64). The id space is read from the file: the
/// model's vocab and every added token. The end-of-text id is the <c>eos_token</c> of a tokenizer_config.json
/// beside the file when there is one, else the first special added token among the usual spellings.
/// In a checkpoint the file (and its tokenizer_config.json) is copied beside config.json, as transformers does.
/// </summary>
public sealed class HuggingFaceJsonText : TextTokenizer
{
    private static readonly string[] EndSpellings = ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eot_id|>", "<|im_end|>"];

    private readonly Tokenizers.DotNet.Tokenizer _tokenizer;
    private readonly string _path;
    private readonly string? _configPath;

    public HuggingFaceJsonText(string path)
    {
        _path = path;
        Name = path;
        var (vocab, added) = ReadIds(path);
        VocabSize = vocab;
        string? config = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", TokenizerRegistry.ConfigFile);
        _configPath = File.Exists(config) ? config : null;
        string? eos = _configPath != null ? ReadEos(_configPath) : null;
        if (eos != null && added.TryGetValue(eos, out int e)) EndOfText = e;
        else
        {
            foreach (var s in EndSpellings)
            {
                if (added.TryGetValue(s, out e))
                {
                    EndOfText = e;
                    break;
                }
            }
        }
        try
        {
            _tokenizer = new Tokenizers.DotNet.Tokenizer(path);
        }
        catch (Tokenizers.DotNet.TokenizerException ex)
        {
            throw new MemoException($"{path}: the tokenizers library cannot load it ({OneLine(ex.Message)}); give a tokenizer.json saved by Hugging Face tokenizers");
        }
        catch (DllNotFoundException ex)
        {
            throw new MemoException($"{path}: the native tokenizers library did not load ({OneLine(ex.Message)}); tokenizer.json needs linux-x64 with glibc 2.34+");
        }
    }

    public override string Name { get; }

    public override int VocabSize { get; }

    public override int? EndOfText { get; }

    public override void Encode(string text, List<int> ids)
    {
        foreach (uint id in _tokenizer.Encode(text)) ids.Add((int)id);
    }

    protected override string DecodeChecked(ReadOnlySpan<int> ids)
    {
        var u = new uint[ids.Length];
        for (int i = 0; i < ids.Length; i++) u[i] = (uint)ids[i];
        return _tokenizer.Decode(u);
    }

    public override void SaveTo(string dir)
    {
        TokenizerRegistry.CopyAtomic(_path, Path.Combine(dir, TokenizerRegistry.JsonFile));
        if (_configPath != null) TokenizerRegistry.CopyAtomic(_configPath, Path.Combine(dir, TokenizerRegistry.ConfigFile));
    }

    /// <summary>Parses the file with System.Text.Json first, so a broken file fails with a clear line.</summary>
    private static (int VocabSize, Dictionary<string, int> Added) ReadIds(string path)
    {
        if (!File.Exists(path)) throw new MemoException($"{path}: no such tokenizer file; check --tokenizer");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new MemoException($"{path}: not a tokenizer.json ({OneLine(e.Message)}); give a tokenizer.json saved by Hugging Face tokenizers");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
                throw new MemoException($"{path}: not a tokenizer.json (no \"model\" object); give a tokenizer.json saved by Hugging Face tokenizers");
            int max = -1;
            if (model.TryGetProperty("vocab", out var vocab))
            {
                if (vocab.ValueKind == JsonValueKind.Object)
                {
                    foreach (var kv in vocab.EnumerateObject())
                    {
                        if (kv.Value.TryGetInt32(out int id)) max = Math.Max(max, id);
                    }
                }
                else if (vocab.ValueKind == JsonValueKind.Array)
                {
                    max = vocab.GetArrayLength() - 1; // Unigram: [[piece, score], ...]
                }
            }
            var added = new Dictionary<string, int>(StringComparer.Ordinal);
            if (root.TryGetProperty("added_tokens", out var at) && at.ValueKind == JsonValueKind.Array)
            {
                foreach (var t in at.EnumerateArray())
                {
                    if (t.TryGetProperty("id", out var idEl) && idEl.TryGetInt32(out int id) && t.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
                    {
                        added[c.GetString()!] = id;
                        max = Math.Max(max, id);
                    }
                }
            }
            if (max < 0) throw new MemoException($"{path}: the tokenizer has no vocabulary; give a tokenizer.json saved by Hugging Face tokenizers");
            return (max + 1, added);
        }
    }

    private static string? ReadEos(string configPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(configPath));
            if (!doc.RootElement.TryGetProperty("eos_token", out var e)) return null;
            if (e.ValueKind == JsonValueKind.String) return e.GetString();
            if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) return c.GetString();
            return null;
        }
        catch (JsonException e)
        {
            throw new MemoException($"{configPath}: not valid JSON ({OneLine(e.Message)}); fix or remove it");
        }
    }

    private static string OneLine(string s) => s.Replace('\n', ' ').Replace('\r', ' ');

    protected override void Dispose(bool disposing)
    {
        if (disposing) _tokenizer.Dispose();
    }
}
