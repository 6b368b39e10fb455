using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Memo.Text;
using Memo.Training.Data;
using Spectre.Console;

namespace Memo.Cli.Commands;

/// <summary>
/// <c>memo tokenize INPUT... --tokenizer T --output DIR</c>: text files (or globs) to llm.c token shards,
/// streaming, with a validation split and end-of-text between documents (see <see cref="TextToShards"/>).
/// </summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var inputs = new Argument<string[]>("inputs") { Description = "text files (UTF-8) or globs such as corpus/*.txt", Arity = ArgumentArity.OneOrMore };
        var tokenizer = CliOptions.Text("--tokenizer", $"tokenizer: {TokenizerRegistry.Help}");
        tokenizer.Required = true;
        var output = CliOptions.Text("--output", "directory for the shards (PREFIX_train_NNNNNN.bin, PREFIX_val_NNNNNN.bin)");
        output.Required = true;
        var shardTokens = CliOptions.Count("--shard-tokens", "tokens per shard (e.g. 100M)", 100_000_000);
        var valFraction = CliOptions.Double("--val-fraction", "fraction of documents held out as the validation split", 0);
        var separator = CliOptions.Text("--doc-separator", "string that separates documents inside a file, with \\n and \\t escapes (e.g. '\\n\\n'); default: one document per file");
        var format = CliOptions.Text("--format", "token width: auto (uint16 when the ids fit), u16 (llm.c version 1) or u32 (Memo's version 2)", "auto");
        var prefix = CliOptions.Text("--prefix", "shard name prefix", "data");
        var threads = CliOptions.Int("--threads", "encoding threads (default: all cores)", 0);
        var cmd = new Command("tokenize", "Tokenize text files into token shards for training.")
        {
            inputs, tokenizer, output, shardTokens, valFraction, separator, format, prefix, threads,
        };
        cmd.SetAction(p => Run(p.GetValue(inputs)!, p.GetValue(tokenizer)!, p.GetValue(output)!, p.GetValue(shardTokens), p.GetValue(valFraction),
            p.GetValue(separator), p.GetValue(format)!, p.GetValue(prefix)!, p.GetValue(threads)));
        return cmd;
    }

    private static int Run(string[] inputs, string tokenizerSpec, string output, long shardTokens, double valFraction, string? separator,
        string format, string prefix, int threads)
    {
        int width = format switch
        {
            "auto" => 0,
            "u16" => 2,
            "u32" => 4,
            _ => throw new MemoException($"--format must be auto, u16 or u32 (got '{format}')"),
        };
        if (threads < 0) throw new MemoException($"--threads must be positive (got {threads})");
        if (prefix.Length == 0 || prefix.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || prefix.Contains('/', StringComparison.Ordinal))
            throw new MemoException($"--prefix '{prefix}' is not a plain file name part");
        var files = inputs.SelectMany(Resolve).ToList();
        using var tok = TokenizerRegistry.Open(tokenizerSpec);
        var opts = new TokenizeOptions
        {
            Tokenizer = tok,
            Inputs = files,
            OutputDir = output,
            Prefix = prefix,
            ShardTokens = shardTokens,
            ValFraction = valFraction,
            DocSeparator = separator?.Replace("\\n", "\n", StringComparison.Ordinal).Replace("\\t", "\t", StringComparison.Ordinal),
            TokenBytes = width,
            Threads = threads > 0 ? threads : Environment.ProcessorCount,
        };
        var err = Console.Error;
        err.WriteLine($"tokenizer {tok}");
        TokenizeResult result;
        if (!Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            TokenizeResult? r = null;
            AnsiConsole.Progress().AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("tokenizing", maxValue: 1);
                    var sw = Stopwatch.StartNew();
                    r = TextToShards.Run(opts with
                    {
                        Progress = (done, total, tokens) =>
                        {
                            task.MaxValue = Math.Max(1, total);
                            task.Value = done;
                            task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                                $"{done / 1e6:0} / {total / 1e6:0} MB, {tokens / 1e6:0.0}M tokens, {done / 1e6 / Math.Max(1e-9, sw.Elapsed.TotalSeconds):0.0} MB/s"));
                        },
                    });
                });
            result = r!;
        }
        else
        {
            var sw = Stopwatch.StartNew();
            double next = 0;
            result = TextToShards.Run(opts with
            {
                Progress = (done, total, tokens) =>
                {
                    if (sw.Elapsed.TotalSeconds < next) return;
                    next = sw.Elapsed.TotalSeconds + 10;
                    err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"tokenizing {done / 1e6:0} / {total / 1e6:0} MB ({100.0 * done / Math.Max(1, total):0}%), {tokens / 1e6:0.0}M tokens, {done / 1e6 / Math.Max(1e-9, sw.Elapsed.TotalSeconds):0.0} MB/s"));
                },
            });
        }
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"tokenized {result.InputBytes / 1e6:0.0} MB ({result.Documents} documents) into {result.TrainTokens} train + {result.ValTokens} val tokens, {result.Shards.Count} shards of uint{8 * result.TokenBytes} in {output}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{result.Seconds:0.00} s, {result.MegabytesPerSecond:0.00} MB/s, {opts.Threads} threads, peak RSS {self.PeakWorkingSet64 / (1 << 20)} MiB"));
        return 0;
    }

    /// <summary>A file, or a glob with * or ? in its file name part.</summary>
    private static IEnumerable<string> Resolve(string spec)
    {
        if (spec.AsSpan().IndexOfAny('*', '?') < 0)
        {
            if (!File.Exists(spec)) throw new MemoException($"{spec}: no such input file; check the path");
            return [spec];
        }
        string dir = Path.GetDirectoryName(spec) is { Length: > 0 } d ? d : ".";
        if (!Directory.Exists(dir)) throw new MemoException($"{spec}: directory '{dir}' does not exist; check the path");
        var files = Directory.GetFiles(dir, Path.GetFileName(spec));
        if (files.Length == 0) throw new MemoException($"{spec}: no file matches; check the pattern");
        Array.Sort(files, StringComparer.Ordinal);
        return files;
    }
}
