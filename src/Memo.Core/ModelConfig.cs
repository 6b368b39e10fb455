using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Memo;

/// <summary>The two model families Memo trains.</summary>
public enum ModelFamily
{
    /// <summary>RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU MLP (Hugging Face LlamaForCausalLM).</summary>
    Llama,

    /// <summary>LayerNorm with bias, learned positions, GELU (tanh) MLP, tied head (Hugging Face GPT2LMHeadModel).</summary>
    Gpt2,
}

/// <summary>
/// The shape of a decoder-only transformer, with Hugging Face <c>config.json</c> field names.
/// Immutable; <see cref="Validate"/> checks consistency and throws <see cref="MemoException"/>.
/// </summary>
public sealed record ModelConfig
{
    public required ModelFamily Family { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int IntermediateSize { get; init; }
    public required int VocabSize { get; init; }
    public double RopeTheta { get; init; } = 10000.0;
    public double NormEps { get; init; } = 1e-5;
    public required int MaxPositions { get; init; }
    public bool TieWordEmbeddings { get; init; }

    /// <summary>llama <c>rope_scaling</c> (linear, dynamic, llama3, yarn); null for plain RoPE.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary><c>torch_dtype</c> of the checkpoint this config came from (informational: Memo loads every float dtype into
    /// fp32 master weights and writes fp32 tensors, so <see cref="ToJson"/> always says float32).</summary>
    public string TorchDtype { get; init; } = "float32";

    /// <summary>Name this config was made from (a preset name or a file path); informational only.</summary>
    public string Name { get; init; } = "custom";

    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>Width of the fused q,k,v projection output: (heads + 2 kv heads) x head dim.</summary>
    public int QkvSize => (NumHeads + 2 * NumKvHeads) * HeadDim;

    public bool HasBiases => Family == ModelFamily.Gpt2;

    public bool HasLearnedPositions => Family == ModelFamily.Gpt2;

    /// <summary>True when the output head shares the token embedding matrix.</summary>
    public bool TiedHead => Family == ModelFamily.Gpt2 || TieWordEmbeddings;

    public string ModelType => Family == ModelFamily.Llama ? "llama" : "gpt2";

    /// <summary>Throws a <see cref="MemoException"/> naming the first inconsistency.</summary>
    public ModelConfig Validate()
    {
        string where = Name == "custom" ? "model config" : $"model config '{Name}'";
        void Need(bool ok, string msg)
        {
            if (!ok) throw new MemoException($"{where}: {msg}");
        }
        Need(HiddenSize > 0, $"hidden_size must be positive (got {HiddenSize})");
        Need(NumLayers > 0, $"num_hidden_layers must be positive (got {NumLayers})");
        Need(NumHeads > 0, $"num_attention_heads must be positive (got {NumHeads})");
        Need(HiddenSize % NumHeads == 0, $"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumHeads}; pick a head count that divides it");
        Need(NumKvHeads > 0 && NumHeads % NumKvHeads == 0, $"num_key_value_heads {NumKvHeads} does not divide num_attention_heads {NumHeads}");
        Need(Family == ModelFamily.Llama || NumKvHeads == NumHeads, "gpt2 has no grouped-query attention: num_key_value_heads must equal num_attention_heads");
        Need(HeadDim % 2 == 0, $"head dimension {HeadDim} must be even for rotary embeddings");
        Need(IntermediateSize > 0, $"intermediate_size must be positive (got {IntermediateSize})");
        Need(VocabSize > 0, $"vocab_size must be positive (got {VocabSize})");
        Need(MaxPositions > 0, $"max_position_embeddings must be positive (got {MaxPositions})");
        Need(NormEps > 0 && double.IsFinite(NormEps), $"norm epsilon must be a positive number (got {NormEps})");
        Need(RopeTheta > 0 && double.IsFinite(RopeTheta), $"rope_theta must be a positive number (got {RopeTheta})");
        Need(RopeScaling == null || Family == ModelFamily.Llama, "gpt2 has learned positions, not rotary embeddings: remove rope_scaling");
        return this;
    }

    /// <summary>
    /// This config with a new rope_theta and/or rope_scaling, for extending the context of a trained model
    /// (<c>--rope-theta</c>, <c>--rope-scaling</c>). A scaling that names no original_max_position_embeddings gets
    /// this config's max_position_embeddings as the original (llama3 and yarn), and max_position_embeddings becomes
    /// original x factor (linear, llama3, yarn; dynamic keeps it, since its formula reads it as the original length).
    /// </summary>
    public ModelConfig WithRope(double? ropeTheta, RopeScaling? scaling)
    {
        if ((ropeTheta != null || scaling != null) && Family != ModelFamily.Llama)
            throw new MemoException($"{ModelType} model '{Name}' has learned positions: --rope-theta and --rope-scaling apply to llama models only");
        var c = this;
        if (ropeTheta != null) c = c with { RopeTheta = ropeTheta.Value };
        if (scaling != null)
        {
            if (scaling.Type is "yarn" or "llama3" && scaling.OriginalMaxPositions == null)
                scaling = scaling with { OriginalMaxPositions = MaxPositions };
            int original = scaling.OriginalMaxPositions ?? MaxPositions;
            int max = scaling.Type == "dynamic" ? MaxPositions : (int)Math.Min(int.MaxValue, Math.Round(original * scaling.Factor));
            c = c with { RopeScaling = scaling, MaxPositions = max };
        }
        return c.Validate();
    }

    /// <summary>Total parameter count (tied head counted once).</summary>
    public long ParameterCount
    {
        get
        {
            long c = HiddenSize, f = IntermediateSize, v = VocabSize;
            long perLayer = Family == ModelFamily.Llama
                ? c * QkvSize + c * c + 3 * c * f + 2 * c
                : c * QkvSize + QkvSize + c * c + c + 2 * c * f + f + c + 4 * c;
            long total = NumLayers * perLayer + v * c + (Family == ModelFamily.Llama ? c : 2 * c);
            if (HasLearnedPositions) total += (long)MaxPositions * c;
            if (!TiedHead) total += v * c;
            return total;
        }
    }

    /// <summary>Reads a Hugging Face style config.json (llama or gpt2 field names).</summary>
    public static ModelConfig FromJson(string json, string source)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new MemoException($"{source}: not valid JSON ({e.Message.Split('\n')[0]}); fix the file or use a preset such as --model llama-tiny");
        }
        if (root is not JsonObject o)
            throw new MemoException($"{source}: expected a JSON object with fields such as hidden_size and num_hidden_layers");

        string type = Str(o, "model_type") ?? "llama";
        ModelFamily family = type switch
        {
            "llama" or "mistral" or "qwen2" => ModelFamily.Llama,
            "gpt2" => ModelFamily.Gpt2,
            _ => throw new MemoException($"{source}: model_type '{type}' is not supported; use 'llama' or 'gpt2'"),
        };

        int Int(params string[] names)
        {
            foreach (var n in names)
            {
                if (o[n] is JsonValue v)
                {
                    if (v.TryGetValue<long>(out var l) && l is >= int.MinValue and <= int.MaxValue) return (int)l;
                    if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
                    throw new MemoException($"{source}: field '{n}' must be an integer (got {v.ToJsonString()})");
                }
            }
            throw new MemoException($"{source}: missing field '{names[0]}'");
        }
        int? OptInt(params string[] names) => names.Any(n => o[n] is JsonValue) ? Int(names) : null;
        double? Dbl(params string[] names)
        {
            foreach (var n in names)
            {
                if (o[n] is JsonValue v)
                    return v.TryGetValue<double>(out var d) ? d : throw new MemoException($"{source}: field '{n}' must be a number (got {v.ToJsonString()})");
            }
            return null;
        }

        int hidden = Int("hidden_size", "n_embd");
        int heads = Int("num_attention_heads", "n_head");
        var cfg = new ModelConfig
        {
            Family = family,
            Name = source,
            HiddenSize = hidden,
            NumLayers = Int("num_hidden_layers", "n_layer"),
            NumHeads = heads,
            NumKvHeads = OptInt("num_key_value_heads") ?? heads,
            IntermediateSize = OptInt("intermediate_size", "n_inner") ?? (family == ModelFamily.Gpt2 ? 4 * hidden : Int("intermediate_size")),
            VocabSize = Int("vocab_size"),
            RopeTheta = Dbl("rope_theta") ?? 10000.0,
            NormEps = Dbl("rms_norm_eps", "layer_norm_epsilon") ?? 1e-5,
            MaxPositions = OptInt("max_position_embeddings", "n_positions") ?? (family == ModelFamily.Gpt2 ? 1024 : 4096),
            TieWordEmbeddings = o["tie_word_embeddings"] is JsonValue t ? t.GetValue<bool>() : family == ModelFamily.Gpt2,
            RopeScaling = RopeScaling.FromJson(o["rope_scaling"], source),
            TorchDtype = Str(o, "torch_dtype") ?? Str(o, "dtype") ?? "float32",
        };
        return cfg.Validate();
    }

    private static string? Str(JsonObject o, string name) =>
        o[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    /// <summary>Writes config.json in the Hugging Face convention of the family.</summary>
    public string ToJson()
    {
        var o = new JsonObject();
        if (Family == ModelFamily.Llama)
        {
            o["architectures"] = new JsonArray("LlamaForCausalLM");
            o["model_type"] = "llama";
            o["hidden_size"] = HiddenSize;
            o["num_hidden_layers"] = NumLayers;
            o["num_attention_heads"] = NumHeads;
            o["num_key_value_heads"] = NumKvHeads;
            o["intermediate_size"] = IntermediateSize;
            o["vocab_size"] = VocabSize;
            o["rope_theta"] = RopeTheta;
            if (RopeScaling != null) o["rope_scaling"] = RopeScaling.ToJson();
            o["rms_norm_eps"] = NormEps;
            o["max_position_embeddings"] = MaxPositions;
            o["tie_word_embeddings"] = TieWordEmbeddings;
            o["hidden_act"] = "silu";
            o["torch_dtype"] = "float32"; // Memo writes float32 tensors
        }
        else
        {
            o["architectures"] = new JsonArray("GPT2LMHeadModel");
            o["model_type"] = "gpt2";
            o["n_embd"] = HiddenSize;
            o["n_layer"] = NumLayers;
            o["n_head"] = NumHeads;
            o["n_inner"] = IntermediateSize;
            o["vocab_size"] = VocabSize;
            o["n_positions"] = MaxPositions;
            o["layer_norm_epsilon"] = NormEps;
            o["activation_function"] = "gelu_new";
            o["tie_word_embeddings"] = true;
            o["torch_dtype"] = "float32"; // Memo writes float32 tensors
        }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{ModelType} {Name}: layers={NumLayers} hidden={HiddenSize} heads={NumHeads}/{NumKvHeads} ffn={IntermediateSize} vocab={VocabSize} params={ParameterCount / 1e6:0.##}M{(RopeScaling != null ? $" rope_scaling={RopeScaling.Type}x{RopeScaling.Factor}" : "")}");
}
