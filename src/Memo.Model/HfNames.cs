namespace Memo.Model;

/// <summary>
/// One tensor of a Hugging Face checkpoint and where it lives in Memo's parameter layout: rows
/// [RowStart, RowStart + Rows) of internal parameter <see cref="Param"/>, transposed when the Hugging Face
/// layout is GPT-2's Conv1D [in, out] (Memo keeps every linear weight as [out, in]).
/// </summary>
public sealed record HfTensor(string Name, long[] Shape, int Param, long RowStart, long Rows, bool Transposed)
{
    public long Elements => Shape.Aggregate(1L, (a, b) => checked(a * b));
}

/// <summary>The Hugging Face tensor names of a model (LlamaForCausalLM or GPT2LMHeadModel) and their mapping.</summary>
public static class HfNames
{
    public static IReadOnlyList<HfTensor> For(ParameterLayout layout)
    {
        var cfg = layout.Config;
        var list = new List<HfTensor>();
        long c = cfg.HiddenSize, f = cfg.IntermediateSize, d = cfg.HeadDim;
        long qRows = cfg.NumHeads * d, kvRows = cfg.NumKvHeads * d;
        void Whole(string name, int param)
        {
            var shape = layout.Specs[param].Shape;
            list.Add(new HfTensor(name, shape, param, 0, shape[0], false));
        }
        void Rows(string name, int param, long start, long rows) =>
            list.Add(new HfTensor(name, [rows, layout.Specs[param].Shape[1]], param, start, rows, false));
        void Conv1D(string name, int param)
        {
            var shape = layout.Specs[param].Shape;
            list.Add(new HfTensor(name, [shape[1], shape[0]], param, 0, shape[0], true));
        }

        if (cfg.Family == ModelFamily.Llama)
        {
            Whole("model.embed_tokens.weight", layout.Embed);
            for (int l = 0; l < cfg.NumLayers; l++)
            {
                var p = layout.Layers[l];
                string pre = $"model.layers.{l}.";
                Whole(pre + "input_layernorm.weight", p.Norm1);
                Rows(pre + "self_attn.q_proj.weight", p.Qkv, 0, qRows);
                Rows(pre + "self_attn.k_proj.weight", p.Qkv, qRows, kvRows);
                Rows(pre + "self_attn.v_proj.weight", p.Qkv, qRows + kvRows, kvRows);
                Whole(pre + "self_attn.o_proj.weight", p.Out);
                Whole(pre + "post_attention_layernorm.weight", p.Norm2);
                Rows(pre + "mlp.gate_proj.weight", p.Up, 0, f);
                Rows(pre + "mlp.up_proj.weight", p.Up, f, f);
                Whole(pre + "mlp.down_proj.weight", p.Down);
            }
            Whole("model.norm.weight", layout.NormF);
            if (!cfg.TiedHead) Whole("lm_head.weight", layout.Head);
        }
        else
        {
            Whole("transformer.wte.weight", layout.Embed);
            Whole("transformer.wpe.weight", layout.Positions);
            for (int l = 0; l < cfg.NumLayers; l++)
            {
                var p = layout.Layers[l];
                string pre = $"transformer.h.{l}.";
                Whole(pre + "ln_1.weight", p.Norm1);
                Whole(pre + "ln_1.bias", p.Norm1Bias);
                Conv1D(pre + "attn.c_attn.weight", p.Qkv);
                Whole(pre + "attn.c_attn.bias", p.QkvBias);
                Conv1D(pre + "attn.c_proj.weight", p.Out);
                Whole(pre + "attn.c_proj.bias", p.OutBias);
                Whole(pre + "ln_2.weight", p.Norm2);
                Whole(pre + "ln_2.bias", p.Norm2Bias);
                Conv1D(pre + "mlp.c_fc.weight", p.Up);
                Whole(pre + "mlp.c_fc.bias", p.UpBias);
                Conv1D(pre + "mlp.c_proj.weight", p.Down);
                Whole(pre + "mlp.c_proj.bias", p.DownBias);
            }
            Whole("transformer.ln_f.weight", layout.NormF);
            Whole("transformer.ln_f.bias", layout.NormFBias);
        }
        return list;
    }

    /// <summary>Copies tensor <paramref name="t"/> out of a parameter-layout block into <paramref name="dst"/> in Hugging Face layout.</summary>
    public static unsafe void Export(ParameterLayout layout, HfTensor t, float* block, Span<float> dst)
    {
        float* src = block + layout.Offset(t.Param);
        long cols = layout.Specs[t.Param].Shape.Length > 1 ? layout.Specs[t.Param].Shape[1] : 1;
        if (!t.Transposed)
        {
            new ReadOnlySpan<float>(src + t.RowStart * cols, checked((int)t.Elements)).CopyTo(dst);
            return;
        }
        // Internal [rows, cols] -> Hugging Face Conv1D [cols, rows].
        for (long r = 0; r < t.Rows; r++)
        {
            for (long k = 0; k < cols; k++) dst[(int)(k * t.Rows + r)] = src[(t.RowStart + r) * cols + k];
        }
    }

    /// <summary>Copies <paramref name="src"/> (Hugging Face layout) into its place in a parameter-layout block.</summary>
    public static unsafe void Import(ParameterLayout layout, HfTensor t, ReadOnlySpan<float> src, float* block)
    {
        float* dst = block + layout.Offset(t.Param);
        long cols = layout.Specs[t.Param].Shape.Length > 1 ? layout.Specs[t.Param].Shape[1] : 1;
        if (!t.Transposed)
        {
            src.CopyTo(new Span<float>(dst + t.RowStart * cols, checked((int)t.Elements)));
            return;
        }
        for (long r = 0; r < t.Rows; r++)
        {
            for (long k = 0; k < cols; k++) dst[(t.RowStart + r) * cols + k] = src[(int)(k * t.Rows + r)];
        }
    }
}
