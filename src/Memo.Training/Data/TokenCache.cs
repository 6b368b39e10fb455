using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Memo.Text;

namespace Memo.Training.Data;

/// <summary>
/// Tokenize-on-the-fly for <c>--data TEXTFILE --tokenizer T</c>: the text is tokenized once into shards
/// (<see cref="TextToShards"/>, one document per file) under a cache directory keyed by the file's full path,
/// size and modification time and the tokenizer, and later runs reuse them. The cache lives next to the file
/// (<c>FILE.memo-tokens/KEY/</c>) unless a cache directory is given.
/// </summary>
public static class TokenCache
{
    /// <summary>The shard directory holding <paramref name="textPath"/> tokenized with <paramref name="tokenizer"/>, made if missing.</summary>
    public static string Resolve(string textPath, TextTokenizer tokenizer, string? cacheDir, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var info = new FileInfo(textPath);
        if (!info.Exists) throw new MemoException($"{textPath}: no such file; check --data");
        string full = info.FullName;
        string keySource = string.Create(CultureInfo.InvariantCulture,
            $"{full}|{info.Length}|{info.LastWriteTimeUtc.Ticks}|{tokenizer.Name}|{tokenizer.VocabSize}|{tokenizer.EndOfText}");
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(keySource)))[..16];
        string root = cacheDir ?? full + ".memo-tokens";
        string dir = Path.Combine(root, $"{Sanitize(Path.GetFileName(tokenizer.Name))}-{key}");
        if (Directory.Exists(dir) && Directory.GetFiles(dir, "*.bin").Length > 0)
        {
            log?.Invoke($"tokens  cached in {dir}");
            return dir;
        }
        var result = TextToShards.Run(new TokenizeOptions { Tokenizer = tokenizer, Inputs = [full], OutputDir = dir });
        log?.Invoke(string.Create(CultureInfo.InvariantCulture,
            $"tokens  {full} -> {result.TrainTokens} tokens with {tokenizer.Name} in {result.Seconds:0.00} s, cached in {dir}"));
        return dir;
    }

    private static string Sanitize(string s)
    {
        var sb = new StringBuilder();
        foreach (char c in s) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' ? c : '_');
        return sb.ToString();
    }
}
