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
