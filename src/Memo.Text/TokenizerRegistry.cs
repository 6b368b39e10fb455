using System.Text.Json;

namespace Memo.Text;

/// <summary>
/// Opens a tokenizer named on the command line (<c>--tokenizer NAME|PATH</c>) or stored in a checkpoint.
/// NAME: gpt2, r50k_base, cl100k_base, o200k_base. PATH: a <c>tokenizer.json</c> (Hugging Face), a
/// <c>tokenizer.model</c> (SentencePiece), or a directory holding one of them (or Memo's tokenizer_config.json
/// naming an encoding) — the layout transformers uses beside config.json.
/// </summary>
public static class TokenizerRegistry
{
    public const string JsonFile = "tokenizer.json";
    public const string ModelFile = "tokenizer.model";
    public const string ConfigFile = "tokenizer_config.json";

    public static string Help => $"{string.Join(", ", TiktokenText.Encodings)}, or a tokenizer.json / tokenizer.model path";

    public static TextTokenizer Open(string spec)
    {
        ArgumentException.ThrowIfNullOrEmpty(spec);
        if (TiktokenText.Encodings.Contains(spec)) return new TiktokenText(spec);
        if (Directory.Exists(spec))
        {
            return FromCheckpoint(spec)
                ?? throw new MemoException($"{spec}: directory holds no {JsonFile}, {ModelFile} or {ConfigFile} naming an encoding; give --tokenizer {Help}");
        }
        if (spec.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return new HuggingFaceJsonText(spec);
        if (spec.EndsWith(".model", StringComparison.OrdinalIgnoreCase)) return new SentencePieceText(spec);
        if (!File.Exists(spec)) throw new MemoException($"unknown tokenizer '{spec}'; use {Help}");
        throw new MemoException($"{spec}: not a tokenizer file (expected a .json or .model file); use {Help}");
    }

    /// <summary>The tokenizer saved in checkpoint directory <paramref name="dir"/>, or null when it has none.</summary>
    public static TextTokenizer? FromCheckpoint(string dir)
    {
        string json = Path.Combine(dir, JsonFile), model = Path.Combine(dir, ModelFile), config = Path.Combine(dir, ConfigFile);
        if (File.Exists(json)) return new HuggingFaceJsonText(json);
        if (File.Exists(model)) return new SentencePieceText(model);
        if (File.Exists(config))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(config));
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("memo_tokenizer", out var n) && n.ValueKind == JsonValueKind.String)
                    return new TiktokenText(n.GetString()!);
            }
            catch (JsonException e)
            {
                throw new MemoException($"{config}: not valid JSON ({e.Message.Split('\n')[0]}); fix or remove it");
            }
        }
        return null;
    }

    internal static void WriteAtomic(string path, string text)
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    internal static void CopyAtomic(string from, string to)
    {
        if (Path.GetFullPath(from) == Path.GetFullPath(to)) return;
        string tmp = to + ".tmp";
        File.Copy(from, tmp, overwrite: true);
        File.Move(tmp, to, overwrite: true);
    }
}
