using System.Globalization;
using System.Text.Json.Nodes;

namespace Memo;

/// <summary>
/// A llama <c>rope_scaling</c> block of a Hugging Face config.json: how the rotary frequencies are
/// changed to run a model past the context it was trained at. The four types follow the definitions
/// in transformers' <c>modeling_rope_utils.py</c> (see <see cref="RopeFrequencies"/> for the formulas):
/// <list type="bullet">
/// <item><c>linear</c> (position interpolation): every frequency divided by <c>factor</c>.</item>
/// <item><c>dynamic</c> (dynamic NTK): rope_theta grows with the sequence length once it passes
/// max_position_embeddings.</item>
/// <item><c>llama3</c> (Llama 3.1): low frequencies divided by <c>factor</c>, high ones kept, a smooth
/// blend between, set by <c>low_freq_factor</c>, <c>high_freq_factor</c> and <c>original_max_position_embeddings</c>.</item>
/// <item><c>yarn</c>: per-frequency blend of interpolation and extrapolation (<c>beta_fast</c>,
/// <c>beta_slow</c>) and an attention factor that scales cos and sin.</item>
/// </list>
/// </summary>
public sealed record RopeScaling
{
    /// <summary>The rope types Memo computes.</summary>
    public static readonly IReadOnlyList<string> Types = ["linear", "dynamic", "llama3", "yarn"];

    public required string Type { get; init; }

    public required double Factor { get; init; }

    /// <summary>The context the model was trained at (llama3: required; yarn, dynamic: optional).</summary>
    public int? OriginalMaxPositions { get; init; }

    public double? LowFreqFactor { get; init; }

    public double? HighFreqFactor { get; init; }

    public double? AttentionFactor { get; init; }

    public double? BetaFast { get; init; }

    public double? BetaSlow { get; init; }

    public double? Mscale { get; init; }

    public double? MscaleAllDim { get; init; }

    public bool? Truncate { get; init; }

    /// <summary>Reads a <c>rope_scaling</c> JSON object (<c>rope_type</c> or the older <c>type</c>); null or "default" gives null.</summary>
    public static RopeScaling? FromJson(JsonNode? node, string source)
    {
        if (node is null) return null;
        if (node is not JsonObject o)
            throw new MemoException($"{source}: rope_scaling must be a JSON object such as {{\"rope_type\": \"linear\", \"factor\": 4.0}}");
        string? type = Str(o, "rope_type") ?? Str(o, "type");
        if (type == null)
            throw new MemoException($"{source}: rope_scaling has no rope_type; give one of {string.Join(", ", Types)}");
        if (type == "default") return null;
        if (!Types.Contains(type))
            throw new MemoException($"{source}: rope_scaling type '{type}' is not supported; use one of {string.Join(", ", Types)}");
        double? Num(string name)
        {
            if (o[name] is null) return null;
            if (o[name] is JsonValue v && v.TryGetValue<double>(out var d) && double.IsFinite(d)) return d;
            throw new MemoException($"{source}: rope_scaling field '{name}' must be a number (got {o[name]!.ToJsonString()})");
        }
        double factor = Num("factor") ?? throw new MemoException($"{source}: rope_scaling type '{type}' needs a 'factor'");
        int? orig = null;
        if (Num("original_max_position_embeddings") is double om)
        {
            if (om != Math.Floor(om) || om < 1 || om > int.MaxValue)
                throw new MemoException($"{source}: rope_scaling original_max_position_embeddings must be a positive integer (got {om})");
            orig = (int)om;
        }
        bool? truncate = null;
        if (o["truncate"] is JsonValue tv)
            truncate = tv.TryGetValue<bool>(out var tb) ? tb : throw new MemoException($"{source}: rope_scaling field 'truncate' must be true or false");
        var r = new RopeScaling
        {
            Type = type,
            Factor = factor,
            OriginalMaxPositions = orig,
            LowFreqFactor = Num("low_freq_factor"),
            HighFreqFactor = Num("high_freq_factor"),
            AttentionFactor = Num("attention_factor"),
            BetaFast = Num("beta_fast"),
            BetaSlow = Num("beta_slow"),
            Mscale = Num("mscale"),
            MscaleAllDim = Num("mscale_all_dim"),
            Truncate = truncate,
        };
        return r.Validate(source);
    }

    /// <summary>
    /// Parses the command-line form <c>TYPE:key=value,key=value</c> (keys as in config.json, e.g.
    /// <c>yarn:factor=4</c>, <c>llama3:factor=8,low_freq_factor=1,high_freq_factor=4,original_max_position_embeddings=8192</c>),
    /// or a JSON object.
    /// </summary>
    public static RopeScaling? Parse(string text, string source = "--rope-scaling")
    {
        text = text.Trim();
        if (text.StartsWith('{'))
        {
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new MemoException($"{source}: not valid JSON ({e.Message.Split('\n')[0]})");
            }
            return FromJson(node, source);
        }
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        string type = colon < 0 ? text : text[..colon];
        var o = new JsonObject { ["rope_type"] = type };
        if (colon >= 0)
        {
            foreach (var part in text[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                int eq = part.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0) throw new MemoException($"{source}: '{part}' is not key=value; write e.g. yarn:factor=4");
                string key = part[..eq], value = part[(eq + 1)..];
                if (key == "truncate" && bool.TryParse(value, out var b)) o[key] = b;
                else if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) o[key] = d;
                else throw new MemoException($"{source}: value '{value}' of '{key}' is not a number");
            }
        }
        return FromJson(o, source);
    }

    private RopeScaling Validate(string source)
    {
        void Need(bool ok, string msg)
        {
            if (!ok) throw new MemoException($"{source}: rope_scaling {Type}: {msg}");
        }
        Need(Factor >= 1, $"factor must be at least 1 (got {Factor})");
        if (Type == "llama3")
        {
            Need(LowFreqFactor != null && HighFreqFactor != null, "needs low_freq_factor and high_freq_factor (Llama 3.1 uses 1 and 4)");
            Need(HighFreqFactor > LowFreqFactor && LowFreqFactor > 0, $"needs 0 < low_freq_factor < high_freq_factor (got {LowFreqFactor}, {HighFreqFactor})");
        }
        if (Type == "yarn")
        {
            Need(AttentionFactor is null or > 0, $"attention_factor must be positive (got {AttentionFactor})");
            Need((BetaFast ?? 32) > (BetaSlow ?? 1), $"beta_fast must exceed beta_slow (got {BetaFast ?? 32}, {BetaSlow ?? 1})");
        }
        return this;
    }

    /// <summary>The config.json form (only the fields that are set).</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject { ["rope_type"] = Type, ["factor"] = Factor };
        if (OriginalMaxPositions is int om) o["original_max_position_embeddings"] = om;
        if (LowFreqFactor is double lf) o["low_freq_factor"] = lf;
        if (HighFreqFactor is double hf) o["high_freq_factor"] = hf;
        if (AttentionFactor is double af) o["attention_factor"] = af;
        if (BetaFast is double bf) o["beta_fast"] = bf;
        if (BetaSlow is double bs) o["beta_slow"] = bs;
        if (Mscale is double ms) o["mscale"] = ms;
        if (MscaleAllDim is double ma) o["mscale_all_dim"] = ma;
        if (Truncate is bool t) o["truncate"] = t;
        return o;
    }

    public override string ToString() => ToJson().ToJsonString();

    private static string? Str(JsonObject o, string name) =>
        o[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
