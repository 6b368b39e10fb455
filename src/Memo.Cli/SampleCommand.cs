using System.CommandLine;
using System.Text;
using Memo.Model;
using Memo.Training;

namespace Memo.Cli;

/// <summary>
/// <c>memo sample</c>: greedy or temperature sampling from a checkpoint. The prompt is encoded and the output
/// decoded with the checkpoint's tokenizer (tokenizer.json / tokenizer.model / tokenizer_config.json beside
/// config.json) when it has one, else as byte-level tokens.
/// </summary>
internal static class SampleCommand
{
    public static Command Create()
    {
        var checkpoint = CliOptions.Text("--checkpoint", "checkpoint directory (config.json + model.safetensors)");
        checkpoint.Required = true;
        var prompt = CliOptions.Text("--prompt", "prompt text (encoded with the checkpoint's tokenizer, or as bytes when it has none)");
        prompt.Required = true;
        var tokens = CliOptions.Int("--tokens", "tokens to generate", 64);
        var temperature = CliOptions.Double("--temperature", "0 for greedy decoding, otherwise softmax temperature", 0);
        var seed = CliOptions.Int("--seed", "sampling seed", 1);
        var cmd = new Command("sample", "Generate text from a checkpoint.") { checkpoint, prompt, tokens, temperature, seed };
        cmd.SetAction(p => Run(p.GetValue(checkpoint)!, p.GetValue(prompt)!, p.GetValue(tokens), p.GetValue(temperature), p.GetValue(seed)));
        return cmd;
    }

    private static int Run(string dir, string prompt, int count, double temperature, int seed)
    {
        if (count < 0) throw new MemoException($"--tokens must be zero or more (got {count})");
        if (temperature < 0 || !double.IsFinite(temperature)) throw new MemoException($"--temperature must be 0 or a positive number (got {temperature})");
        var cfg = Checkpoint.ReadConfig(dir);
        using var tokenizer = Memo.Text.TokenizerRegistry.FromCheckpoint(dir);
        if (tokenizer == null && cfg.VocabSize < 256) throw new MemoException($"prompts are byte-level tokens, but this model's vocab_size is {cfg.VocabSize} (< 256) and the checkpoint has no tokenizer");
        if (tokenizer != null && tokenizer.VocabSize > cfg.VocabSize)
            throw new MemoException($"the checkpoint's tokenizer has {tokenizer.VocabSize} ids but its model's vocab_size is {cfg.VocabSize}; the tokenizer belongs to another model");
        var context = tokenizer != null ? tokenizer.Encode(prompt) : Encoding.UTF8.GetBytes(prompt).Select(b => (int)b).ToList();
        if (context.Count == 0) throw new MemoException("--prompt is empty; give at least one character");
        int maxLen = Math.Min(context.Count + count, cfg.HasLearnedPositions ? cfg.MaxPositions : 1 << 16);
        if (context.Count > maxLen) throw new MemoException($"the prompt has {context.Count} tokens, more than the model's {maxLen} positions");
        using var model = new Transformer(cfg, 1, maxLen);
        Checkpoint.LoadWeights(dir, model);
        var logits = new float[cfg.VocabSize];
        var rng = new SplitMix64((ulong)seed);
        int promptTokens = context.Count;
        while (context.Count < maxLen)
        {
            model.LastLogits(context.ToArray(), logits);
            if (tokenizer != null) logits.AsSpan(tokenizer.VocabSize).Fill(float.NegativeInfinity); // padded rows decode to nothing
            int next = temperature == 0 ? Array.IndexOf(logits, logits.Max()) : Sample(logits, temperature, ref rng);
            context.Add(next);
        }
        var generated = context.Skip(promptTokens).ToArray();
        Console.Out.Write(prompt);
        Console.Out.WriteLine(tokenizer != null
            ? tokenizer.Decode(generated)
            : Encoding.UTF8.GetString(generated.Where(t => t < 256).Select(t => (byte)t).ToArray()));
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
