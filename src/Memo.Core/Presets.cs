namespace Memo;

/// <summary>Named model shapes, from test sizes to the MEMO paper's GPT models.</summary>
public static class Presets
{
    private static readonly (string Name, string Description, ModelConfig Config)[] All =
    [
        ("llama-tiny", "2-layer llama for tests (GQA 4/2)", Llama("llama-tiny", 64, 2, 4, 2, 176, 256, tied: false, maxPos: 65536)),
        ("llama-small", "4-layer llama, the built-in default for the recall task", Llama("llama-small", 128, 4, 4, 2, 352, 256, tied: true, maxPos: 1 << 20, theta: 500000)),
        ("gpt2-tiny", "2-layer GPT-2 for tests", Gpt2("gpt2-tiny", 64, 2, 4, 256, 256, 1024)),
        ("gpt2", "GPT-2 124M", Gpt2("gpt2", 768, 12, 12, 3072, 50257, 1024)),
        ("llama-1b", "Llama 3.2 1B shape", Llama("llama-1b", 2048, 16, 32, 8, 8192, 128256, tied: true, maxPos: 1 << 22, theta: 500000)),
        ("llama-3b", "Llama 3.2 3B shape", Llama("llama-3b", 3072, 28, 24, 8, 8192, 128256, tied: true, maxPos: 1 << 22, theta: 500000)),
        ("llama-7b", "Llama 2 7B shape", Llama("llama-7b", 4096, 32, 32, 32, 11008, 32000, tied: false, maxPos: 1 << 22)),
        ("paper-7b", "MEMO paper GPT 7B (32 x 4096, ffn 16384, 32 heads)", Gpt2("paper-7b", 4096, 32, 32, 16384, 50257, 1 << 22)),
        ("paper-13b", "MEMO paper GPT 13B (40 x 5120, ffn 20480, 40 heads)", Gpt2("paper-13b", 5120, 40, 40, 20480, 50257, 1 << 22)),
        ("paper-30b", "MEMO paper GPT 30B (48 x 7168, ffn 28672, 56 heads)", Gpt2("paper-30b", 7168, 48, 56, 28672, 50257, 1 << 22)),
        ("paper-65b", "MEMO paper GPT 65B (80 x 8192, ffn 32768, 64 heads)", Gpt2("paper-65b", 8192, 80, 64, 32768, 50257, 1 << 22)),
    ];

    public static IReadOnlyList<string> Names => All.Select(p => p.Name).ToArray();

    public static IEnumerable<(string Name, string Description, ModelConfig Config)> List() => All;

    public static bool TryGet(string name, out ModelConfig config)
    {
        foreach (var p in All)
        {
            if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                config = p.Config;
                return true;
            }
        }
        config = null!;
        return false;
    }

    /// <summary>
    /// Resolves <paramref name="spec"/>: a preset name, a config.json path, or a directory holding one.
    /// </summary>
    public static ModelConfig Resolve(string spec)
    {
        if (TryGet(spec, out var cfg)) return cfg;
        string path = Directory.Exists(spec) ? Path.Combine(spec, "config.json") : spec;
        if (File.Exists(path)) return ModelConfig.FromJson(File.ReadAllText(path), path);
        if (spec.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || Directory.Exists(spec))
            throw new MemoException($"model config '{path}' does not exist; give a config.json path or a preset ({string.Join(", ", Names)})");
        throw new MemoException($"unknown model '{spec}'; use a preset ({string.Join(", ", Names)}) or a config.json path");
    }

    private static ModelConfig Llama(string name, int c, int l, int h, int kv, int f, int v, bool tied, int maxPos, double theta = 10000.0) => new()
    {
        Family = ModelFamily.Llama, Name = name, HiddenSize = c, NumLayers = l, NumHeads = h, NumKvHeads = kv,
        IntermediateSize = f, VocabSize = v, MaxPositions = maxPos, TieWordEmbeddings = tied, RopeTheta = theta, NormEps = 1e-5,
    };

    private static ModelConfig Gpt2(string name, int c, int l, int h, int f, int v, int maxPos) => new()
    {
        Family = ModelFamily.Gpt2, Name = name, HiddenSize = c, NumLayers = l, NumHeads = h, NumKvHeads = h,
        IntermediateSize = f, VocabSize = v, MaxPositions = maxPos, TieWordEmbeddings = true, NormEps = 1e-5,
    };
}
