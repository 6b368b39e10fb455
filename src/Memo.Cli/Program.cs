using System.CommandLine;

namespace Memo.Cli;

/// <summary>
/// The <c>memo</c> command line. Every command's action may throw <see cref="MemoException"/> for bad
/// input; it becomes one line on stderr and the exception's exit code (2), never a stack trace.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Memo: train transformer language models on very long sequences when accelerator memory is the limit.");
        foreach (var command in Commands()) root.Subcommands.Add(command);
        return Run(root, args);
    }

    internal static IEnumerable<Command> Commands() =>
    [
        TrainCommand.Create(),
        EvalCommand.Create(),
        SampleCommand.Create(),
        Memo.Cli.Commands.PlanCommand.Create(),
        Memo.Cli.Commands.AllocateCommand.Create(),
        Memo.Cli.Commands.FragmentationCommand.Create(),
        Memo.Cli.Commands.TraceCommand.Create(),
        Memo.Cli.Commands.TokenizeCommand.Create(),
    ];

    /// <summary>Parses and invokes, mapping parse errors and <see cref="MemoException"/> to one stderr line and exit code 2.</summary>
    public static int Run(RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            Console.Error.WriteLine($"memo: {parse.Errors[0].Message} (see 'memo {string.Join(' ', CommandPath(parse))} --help')");
            return 2;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (MemoException e)
        {
            Console.Error.WriteLine($"memo: {e.Message}");
            return e.ExitCode;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"memo: {e.Message}");
            return 2;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("MEMO_DEBUG") != "1")
        {
            Console.Error.WriteLine($"memo: internal error: {e.GetType().Name}: {e.Message} (set MEMO_DEBUG=1 for details)");
            return 1;
        }
    }

    private static IEnumerable<string> CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var r = parse.CommandResult; r != null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
        {
            if (r.Command is not RootCommand) names.Insert(0, r.Command.Name);
        }
        return names;
    }
}
