using System.CommandLine;
using System.Globalization;

namespace Memo.Cli;

/// <summary>Option constructors shared by commands, so a flag has one name, parser and help text everywhere.</summary>
internal static class CliOptions
{
    public static Option<string> Text(string name, string description, string? defaultValue = null)
    {
        var o = new Option<string>(name) { Description = description };
        if (defaultValue != null) o.DefaultValueFactory = _ => defaultValue;
        return o;
    }

    public static Option<int> Int(string name, string description, int defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    public static Option<double> Double(string name, string description, double defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    /// <summary>A token count accepting 4096, 32K, 1M.</summary>
    public static Option<long> Count(string name, string description, long defaultValue)
    {
        var o = new Option<long>(name)
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r =>
            {
                string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
                if (Sizes.TryParseCount(text, out var v)) return v;
                r.AddError($"{name}: '{text}' is not a count; use an integer or a K/M suffix such as 4096, 32K or 1M");
                return 0;
            },
        };
        return o;
    }

    public static string Invariant(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
}
