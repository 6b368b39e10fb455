using System.CommandLine;
using System.Text;
using Memo.Model;
using Memo.Training;

namespace Memo.Cli.Commands;

/// <summary><c>memo sample</c>: greedy or temperature sampling from a checkpoint, with byte-level prompts.</summary>
internal static class SampleCommand
{
    public static Command Create()
    {
        var checkpoint = OptionTable.Checkpoint();
        checkpoint.Required = true;
        var prompt = OptionTable.Text("--prompt", "prompt text (byte-level tokens)");
        prompt.Required = true;
        var tokens = OptionTable.Int("--tokens", "tokens to generate", 64);
        var temperature = OptionTable.Double("--temperature", "0 for greedy decoding, otherwise softmax temperature", 0);
        var seed = OptionTable.Seed(1);
        var cmd = new Command("sample", "Generate text from a checkpoint.") { checkpoint, prompt, tokens, temperature, seed };
        cmd.SetAction(p => Run(p.GetValue(checkpoint)!, p.GetValue(prompt)!, p.GetValue(tokens), p.GetValue(temperature), p.GetValue(seed)));
        return cmd;
    }

    private static int Run(string dir, string prompt, int count, double temperature, int seed)
    {
        if (count < 0) throw new MemoException($"--tokens must be zero or more (got {count})");
        if (seed < 0) throw new MemoException($"--seed must be zero or more (got {seed})");
        if (temperature < 0 || !double.IsFinite(temperature)) throw new MemoException($"--temperature must be 0 or a positive number (got {temperature})");
        var cfg = Checkpoint.ReadConfig(dir);
        if (cfg.VocabSize < 256) throw new MemoException($"prompts are byte-level tokens, but this model's vocab_size is {cfg.VocabSize} (< 256)");
        var context = Encoding.UTF8.GetBytes(prompt).Select(b => (int)b).ToList();
        if (context.Count == 0) throw new MemoException("--prompt is empty; give at least one character");
        int maxLen = Math.Min(context.Count + count, cfg.HasLearnedPositions ? cfg.MaxPositions : 1 << 16);
        if (context.Count > maxLen) throw new MemoException($"the prompt has {context.Count} tokens, more than the model's {maxLen} positions");
        using var model = new Transformer(cfg, 1, maxLen);
        Checkpoint.LoadWeights(dir, model);
        var logits = new float[cfg.VocabSize];
        var rng = new SplitMix64((ulong)seed);
        var output = new List<byte>();
        while (context.Count < maxLen)
        {
            model.LastLogits(context.ToArray(), logits);
            int next = temperature == 0 ? Array.IndexOf(logits, logits.Max()) : Sample(logits, temperature, ref rng);
            context.Add(next);
            if (next < 256) output.Add((byte)next);
        }
        Console.Out.Write(prompt);
        Console.Out.WriteLine(Encoding.UTF8.GetString(output.ToArray()));
        return 0;
    }

    private static int Sample(float[] logits, double temperature, ref SplitMix64 rng)
    {
        double max = logits.Max();
        var p = logits.Select(l => Math.Exp((l - max) / temperature)).ToArray();
        double u = rng.NextDouble() * p.Sum();
        for (int i = 0; i < p.Length; i++)
        {
            u -= p[i];
            if (u <= 0) return i;
        }
        return p.Length - 1;
    }
}
