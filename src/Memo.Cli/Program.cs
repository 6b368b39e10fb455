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
        ParallelRun.MuteOtherRanks();
        int code = Run(root, args);
        Memo.Cli.Commands.LaunchCommand.Record($"rank-{Memo.Cli.Commands.LaunchCommand.RankNumber}.exit", code.ToString(System.Globalization.CultureInfo.InvariantCulture));
        ParallelRun.Shutdown(code);
        return code;
    }

    internal static IEnumerable<Command> Commands() =>
    [
        Memo.Cli.Commands.Train.TrainCommand.Create(),
        Memo.Cli.Commands.EvalCommand.Create(),
        Memo.Cli.Commands.SampleCommand.Create(),
        Memo.Cli.Commands.PlanCommand.Create(),
        Memo.Cli.Commands.AllocateCommand.Create(),
        Memo.Cli.Commands.FragmentationCommand.Create(),
        Memo.Cli.Commands.TraceCommand.Create(),
        Memo.Cli.Commands.TokenizeCommand.Create(),
        Memo.Cli.Commands.LaunchCommand.Create(),
    ];

    /// <summary>Parses and invokes, mapping parse errors and <see cref="MemoException"/> to one stderr line and exit code 2.</summary>
    public static int Run(RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            Console.Error.WriteLine($"memo: {Friendly(parse.Errors[0].Message)} (see '{string.Join(' ', CommandPath(parse).Prepend("memo"))} --help')");
            return 2;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (MemoException e)
        {
            // Bad input is the same on every rank of an MPI job: rank 0 says it once (the others are muted).
            Console.Error.WriteLine($"memo: {CliErrors.Describe(e)}");
            return e.ExitCode;
        }
        catch (Memo.Distributed.CommunicatorException e)
        {
            ParallelRun.Unmute();
            Console.Error.WriteLine($"memo: {e.Message}");
            return Memo.Distributed.CommunicatorException.PeerFailedExitCode;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ParallelRun.Unmute();
            Console.Error.WriteLine($"memo: {e.Message}");
            return 2;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("MEMO_DEBUG") != "1")
        {
            ParallelRun.Unmute();
            Console.Error.WriteLine($"memo: internal error: {e.GetType().Name}: {e.Message} (set MEMO_DEBUG=1 for details)");
            return 1;
        }
    }

    /// <summary>
    /// A parse error in the user's terms: System.CommandLine's "Cannot parse argument 'x' for option '--n' as expected
    /// type 'System.Int32'" names a .NET type; say what the flag takes instead, and never echo control characters.
    /// </summary>
    internal static string Friendly(string message)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, @"^Cannot parse argument '(.*)' for option '(.*)' as expected type '(.*)'\.?$", System.Text.RegularExpressions.RegexOptions.Singleline);
        if (!m.Success) return Sizes.Printable(message, 200);
        string type = m.Groups[3].Value;
        string wanted = type.Contains("Int32", StringComparison.Ordinal) ? $"a whole number from {int.MinValue} to {int.MaxValue}"
            : type.Contains("Int64", StringComparison.Ordinal) ? "a whole number (64-bit)"
            : type.Contains("Double", StringComparison.Ordinal) ? "a number such as 0.5 or 3e-4"
            : type.Contains("Boolean", StringComparison.Ordinal) ? "true or false"
            : "a value of another form";
        return $"{m.Groups[2].Value}: '{Sizes.Printable(m.Groups[1].Value)}' is not {wanted}";
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
