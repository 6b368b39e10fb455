using System.CommandLine;
using System.Text;
using Memo.Model;
using Memo.Training;

namespace Memo.Cli.Commands;

/// <summary>
/// <c>memo sample</c>: greedy or temperature sampling from a checkpoint, streamed to stdout as tokens come. The prompt
/// is encoded and the output decoded with the checkpoint's tokenizer (tokenizer.json / tokenizer.model /
/// tokenizer_config.json beside config.json) when it has one, else as byte-level tokens; a notice on stderr says when the model's context cuts generation short. Each token re-runs the
/// forward pass over the whole context (no key/value cache yet), so time grows with the square of the length.
/// </summary>
internal static class SampleCommand
{
    public static Command Create()
    {
        var checkpoint = OptionTable.Checkpoint();
        checkpoint.Required = true;
        var prompt = OptionTable.Text("--prompt", "prompt text (encoded with the checkpoint's tokenizer, or as bytes when it has none)");
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
        using var tokenizer = Memo.Text.TokenizerRegistry.FromCheckpoint(dir);
        if (tokenizer == null && cfg.VocabSize < 256) throw new MemoException($"prompts are byte-level tokens, but this model's vocab_size is {cfg.VocabSize} (< 256) and the checkpoint has no tokenizer");
        if (tokenizer != null && tokenizer.VocabSize > cfg.VocabSize)
            throw new MemoException($"the checkpoint's tokenizer has {tokenizer.VocabSize} ids but its model's vocab_size is {cfg.VocabSize}; the tokenizer belongs to another model");
        var context = tokenizer != null ? tokenizer.Encode(prompt).ToList() : Encoding.UTF8.GetBytes(prompt).Select(b => (int)b).ToList();
        if (context.Count == 0) throw new MemoException("--prompt is empty; give at least one character");
        int limit = cfg.HasLearnedPositions ? cfg.MaxPositions : 1 << 16;
        if (context.Count > limit) throw new MemoException($"the prompt has {context.Count} tokens, more than the model's {limit} positions");
        int maxLen = (int)Math.Min((long)context.Count + count, limit);
        if ((long)context.Count + count > limit)
        {
            Console.Error.WriteLine($"memo: the model's context is {limit} tokens ({(cfg.HasLearnedPositions ? "max_position_embeddings" : "the sampler's limit")}); " +
                $"with the {context.Count}-token prompt, generation stops after {maxLen - context.Count} of the {count} tokens asked for");
        }
        using var model = new Transformer(cfg, 1, maxLen);
        Checkpoint.LoadWeights(dir, model);
        var logits = new float[cfg.VocabSize];
        var rng = new SplitMix64((ulong)seed);
        // Tokens are streamed as they come: bytes go through a UTF-8 decoder, so a character split over two
        // tokens is printed once it is complete; with a tokenizer, the decoded text grows and its new complete
        // characters are printed.
        var stdout = Console.Out;
        int promptTokens = context.Count;
        int printed = 0;
        var decoder = new UTF8Encoding(false).GetDecoder();
        var chars = new char[8];
        stdout.Write(prompt);
        stdout.Flush();
        while (context.Count < maxLen)
        {
            model.LastLogits(context.ToArray(), logits);
            if (tokenizer != null) logits.AsSpan(tokenizer.VocabSize).Fill(float.NegativeInfinity); // padded rows decode to nothing
            int next = temperature == 0 ? Array.IndexOf(logits, logits.Max()) : Sample(logits, temperature, ref rng);
            context.Add(next);
            if (tokenizer != null)
            {
                string text = tokenizer.Decode(context.Skip(promptTokens).ToArray());
                int complete = text.EndsWith('\uFFFD') ? text.TrimEnd('\uFFFD').Length : text.Length;
                if (complete > printed)
                {
                    stdout.Write(text.AsSpan(printed, complete - printed));
                    stdout.Flush();
                    printed = complete;
                }
            }
            else if (next < 256)
            {
                byte b = (byte)next;
                int n = decoder.GetChars([b], chars, flush: false);
                if (n > 0)
                {
                    stdout.Write(chars, 0, n);
                    stdout.Flush();
                }
            }
        }
        if (tokenizer != null)
        {
            string text = tokenizer.Decode(context.Skip(promptTokens).ToArray());
            if (text.Length > printed) stdout.Write(text.AsSpan(printed));
        }
        int tail = decoder.GetChars([], chars, flush: true);
        if (tail > 0) stdout.Write(chars, 0, tail);
        stdout.WriteLine();
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
