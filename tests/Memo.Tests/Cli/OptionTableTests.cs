using System.CommandLine;
using Memo.Cli;

namespace Memo.Tests.Cli;

/// <summary>The command line's option table: one meaning (help text and value type) per flag across all commands.</summary>
public sealed class OptionTableTests
{
    [Fact]
    public void Every_flag_has_one_description_and_one_type_across_commands()
    {
        var seen = new Dictionary<string, (string Command, string? Description, Type Type)>(StringComparer.Ordinal);
        foreach (var command in Program.Commands())
        {
            foreach (var option in command.Options)
            {
                if (option.Name is "--help" or "-h" or "-?") continue;
                if (seen.TryGetValue(option.Name, out var first))
                {
                    Assert.True(first.Description == option.Description,
                        $"{option.Name}: '{first.Command}' says \"{first.Description}\" but '{command.Name}' says \"{option.Description}\"");
                    // int and int? are one type to the user: the nullable form only lacks a default.
                    Assert.True(Underlying(first.Type) == Underlying(option.ValueType), $"{option.Name}: {first.Type} in '{first.Command}' vs {option.ValueType} in '{command.Name}'");
                }
                else
                {
                    seen[option.Name] = (command.Name, option.Description, option.ValueType);
                }
            }
        }
        Assert.Contains("--node-host-memory", seen.Keys);
    }

    private static Type Underlying(Type t) => Nullable.GetUnderlyingType(t) ?? t;

    [Fact]
    public void Help_shows_no_sentinel_defaults()
    {
        // "--warmup [default: -1]" said nothing true; an option without a real default has none.
        foreach (var command in Program.Commands())
        {
            foreach (var option in command.Options.Where(o => o.HasDefaultValue))
            {
                object? value = option.GetDefaultValue();
                Assert.False(value is -1 or -1L or -1.0, $"{command.Name} {option.Name} shows the sentinel default {value}");
            }
        }
    }

    [Fact]
    public void Every_flag_the_readme_names_exists()
    {
        string readme = File.ReadAllText(Path.Combine(RepoRoot(), "README.md"));
        var known = Program.Commands().SelectMany(c => c.Options).Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        string[] dotnet = ["--project", "--add-source", "--help"];
        var missing = System.Text.RegularExpressions.Regex.Matches(readme, @"(?<![\w-])--[a-z][a-z0-9-]*")
            .Select(m => m.Value).Distinct().Where(f => !known.Contains(f) && !dotnet.Contains(f)).ToArray();
        Assert.True(missing.Length == 0, "the README names flags the CLI does not have: " + string.Join(", ", missing));
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Memo.slnx"))) return d.FullName;
        throw new InvalidOperationException("Memo.slnx not found above the test directory");
    }

    [Fact]
    public void Plan_refuses_host_memory_and_names_the_flag_it_means()
    {
        var root = new RootCommand("memo");
        foreach (var c in Program.Commands()) root.Subcommands.Add(c);
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        try
        {
            int code = Program.Run(root, ["plan", "--model", "paper-7b", "--seq", "1M", "--host-memory", "1TiB"]);
            Assert.Equal(2, code);
        }
        finally
        {
            Console.SetError(saved);
        }
        string line = error.ToString().Trim();
        Assert.Single(line.Split('\n'));
        Assert.Contains("--node-host-memory", line, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_errors_name_the_command_without_a_double_space()
    {
        var root = new RootCommand("memo");
        foreach (var c in Program.Commands()) root.Subcommands.Add(c);
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(2, Program.Run(root, ["--no-such-flag"]));
            Assert.Equal(2, Program.Run(root, ["train", "--no-such-flag"]));
        }
        finally
        {
            Console.SetError(saved);
        }
        string text = error.ToString();
        Assert.DoesNotContain("memo  ", text, StringComparison.Ordinal);
        Assert.Contains("see 'memo --help'", text, StringComparison.Ordinal);
        Assert.Contains("see 'memo train --help'", text, StringComparison.Ordinal);
    }
}
