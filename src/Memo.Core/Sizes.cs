using System.Globalization;

namespace Memo;

/// <summary>Parsing and printing of byte sizes ("512MiB", "6GB") and token counts ("128K", "1M").</summary>
public static class Sizes
{
    /// <summary>
    /// Parses a token count: a plain integer, or an integer with K (x1024) or M (x1024^2) suffix,
    /// as in "32K" = 32768 and "1M" = 1048576. Anything else is rejected.
    /// </summary>
    public static bool TryParseCount(string text, out long value)
    {
        value = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim();
        long mult = 1;
        char last = char.ToUpperInvariant(s[^1]);
        if (last == 'K') { mult = 1024; s = s[..^1]; }
        else if (last == 'M') { mult = 1024 * 1024; s = s[..^1]; }
        if (!long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 0) return false;
        try { value = checked(n * mult); } catch (OverflowException) { return false; }
        return true;
    }

    public static long ParseCount(string text, string what) =>
        TryParseCount(text, out var v) ? v
            : throw new MemoException($"{what}: '{Printable(text)}' is not a count; use an integer or a K/M suffix such as 4096, 32K or 1M");

    /// <summary>
    /// <paramref name="text"/> made safe to echo in a one-line message: control and other non-printable characters
    /// (binary bytes of a garbage file) become '?', and more than <paramref name="max"/> characters are cut with "...".
    /// </summary>
    public static string Printable(string text, int max = 40)
    {
        ArgumentNullException.ThrowIfNull(text);
        var sb = new System.Text.StringBuilder(Math.Min(text.Length, max + 3));
        foreach (char c in text)
        {
            if (sb.Length >= max)
            {
                sb.Append("...");
                break;
            }
            var cat = char.GetUnicodeCategory(c);
            bool bad = char.IsControl(c) || c == '\uFFFD' || cat is UnicodeCategory.Surrogate or UnicodeCategory.OtherNotAssigned or UnicodeCategory.PrivateUse or UnicodeCategory.Format;
            sb.Append(bad ? '?' : c);
        }
        return sb.ToString();
    }

    /// <summary>
    /// Parses a byte size: an integer or decimal with an optional unit B, KB, MB, GB, TB (powers of 1000)
    /// or KiB, MiB, GiB, TiB (powers of 1024); K/M/G/T alone mean the binary units.
    /// </summary>
    public static bool TryParseBytes(string text, out long value)
    {
        value = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim();
        int i = 0;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
        if (i == 0) return false;
        if (!double.TryParse(s[..i], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number)) return false;
        var unit = s[i..].Trim().ToUpperInvariant();
        double mult = unit switch
        {
            "" or "B" => 1,
            "KB" => 1e3, "MB" => 1e6, "GB" => 1e9, "TB" => 1e12,
            "K" or "KIB" => 1024d, "M" or "MIB" => 1024d * 1024, "G" or "GIB" => 1024d * 1024 * 1024,
            "T" or "TIB" => 1024d * 1024 * 1024 * 1024,
            _ => double.NaN,
        };
        if (double.IsNaN(mult)) return false;
        double bytes = Math.Round(number * mult);
        if (bytes < 0 || bytes > long.MaxValue / 2) return false;
        value = (long)bytes;
        return true;
    }

    public static long ParseBytes(string text, string what) =>
        TryParseBytes(text, out var v) ? v
            : throw new MemoException($"{what}: '{Printable(text)}' is not a size; use bytes or a unit such as 512MiB, 6GB or 2GiB");

    /// <summary>Formats bytes with a binary unit, e.g. "1.50 GiB".</summary>
    public static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double v = bytes;
        int u = 0;
        while (Math.Abs(v) >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{bytes} B" : string.Create(CultureInfo.InvariantCulture, $"{v:0.00} {units[u]}");
    }

    /// <summary>Formats a token count compactly: 1048576 as "1M", 32768 as "32K", others as digits.</summary>
    public static string FormatCount(long n)
    {
        if (n >= 1024 * 1024 && n % (1024 * 1024) == 0) return $"{n / (1024 * 1024)}M";
        if (n >= 1024 && n % 1024 == 0) return $"{n / 1024}K";
        return n.ToString(CultureInfo.InvariantCulture);
    }
}
