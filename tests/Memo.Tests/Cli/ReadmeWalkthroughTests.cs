using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Memo.Tests.Cli;

/// <summary>
/// Runs README.md's "From text to a longer-context model" walk-through as written: its config block and
/// every `memo` line of its shell block, on a generated corpus, in child processes.
/// </summary>
public sealed class ReadmeWalkthroughTests(ITestOutputHelper output)
{
    [Fact]
    public void The_readme_walkthrough_runs_from_text_to_an_extended_checkpoint_and_a_sample()
    {
        string readme = File.ReadAllText(FindReadme());
        int start = readme.IndexOf("### From text to a longer-context model", StringComparison.Ordinal);
        Assert.True(start >= 0, "README section missing");
        int end = readme.IndexOf("\n### ", start + 10, StringComparison.Ordinal);
        string section = readme[start..end];
        string json = Block(section, "```json");
        string sh = Block(section, "```sh");

        string work = MemoProcess.TempDir();
        File.WriteAllText(Path.Combine(work, "small.json"), json);
        File.WriteAllText(Path.Combine(work, "corpus.txt"), Corpus());
        var commands = sh.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("memo ", StringComparison.Ordinal)).ToList();
        Assert.Equal(5, commands.Count);
        string lastStdout = "";
        foreach (var line in commands)
        {
            var args = Split(line)[1..];
            var r = MemoProcess.Run(work, args);
            output.WriteLine($"$ {line}\n{r.Stdout}{Tail(r.Stderr)}");
            Assert.True(r.Exit == 0, $"{line}: {r.Stderr}");
            lastStdout = r.Stdout;
            if (args[0] == "eval")
            {
                double loss = double.Parse(r.Stdout.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
                Assert.True(loss < Math.Log(50257) - 3, $"held-out loss {loss} is not far below uniform; the model did not learn from the text");
            }
        }
        Assert.True(File.Exists(Path.Combine(work, "base", "tokenizer_config.json")));
        Assert.True(File.Exists(Path.Combine(work, "long", "tokenizer_config.json")));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(work, "long", "config.json")))!.AsObject();
        Assert.Equal("yarn", cfg["rope_scaling"]!["rope_type"]!.GetValue<string>());
        Assert.Equal(64, cfg["rope_scaling"]!["original_max_position_embeddings"]!.GetValue<int>());
        Assert.Equal(256, cfg["max_position_embeddings"]!.GetValue<int>());
        Assert.StartsWith("The quick", lastStdout, StringComparison.Ordinal);
        Assert.True(lastStdout.Trim().Length > "The quick".Length + 10, $"sample produced too little text: '{lastStdout}'");
    }

    private static string Tail(string s) => s.Length > 600 ? s[^600..] : s;

    private static string Block(string text, string fence)
    {
        int a = text.IndexOf(fence, StringComparison.Ordinal);
        Assert.True(a >= 0, $"{fence} block missing");
        a = text.IndexOf('\n', a) + 1;
        int b = text.IndexOf("```", a, StringComparison.Ordinal);
        return text[a..b];
    }

    /// <summary>Paragraphs of a small vocabulary, separated by blank lines (deterministic).</summary>
    private static string Corpus()
    {
        string[] words = "the quick brown fox jumps over a lazy dog while memory grows with every long context token and the model learns".Split(' ');
        var rng = new Random(3);
        var sb = new StringBuilder();
        for (int d = 0; d < 300; d++)
        {
            if (d > 0) sb.Append("\n\n");
            int n = rng.Next(20, 120);
            for (int i = 0; i < n; i++) sb.Append(i == 0 ? "" : " ").Append(words[rng.Next(words.Length)]);
            sb.Append('.');
        }
        return sb.ToString();
    }

    /// <summary>Splits a shell line into words, honouring single and double quotes (no other shell syntax).</summary>
    private static string[] Split(string line)
    {
        var words = new List<string>();
        var cur = new StringBuilder();
        char quote = '\0';
        bool any = false;
        foreach (char c in line)
        {
            if (quote != '\0')
            {
                if (c == quote) quote = '\0';
                else cur.Append(c);
            }
            else if (c is '\'' or '"')
            {
                quote = c;
                any = true;
            }
            else if (c == ' ')
            {
                if (cur.Length > 0 || any) words.Add(cur.ToString());
                cur.Clear();
                any = false;
            }
            else
            {
                cur.Append(c);
            }
        }
        if (cur.Length > 0 || any) words.Add(cur.ToString());
        return [.. words];
    }

    private static string FindReadme()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "README.md");
            if (File.Exists(p) && File.Exists(Path.Combine(d.FullName, "Memo.slnx"))) return p;
        }
        throw new FileNotFoundException("README.md not found above the test directory");
    }
}
