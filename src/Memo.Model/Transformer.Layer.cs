using Memo.Backends;

namespace Memo.Model;

// One decoder layer, op by op (the table in DESIGN.md). Forward is split into the token-local part
// before attention, attention itself, and the token-local part after it, so that any range of token
// rows can be recomputed from the skeleton (layer input, attention output) without re-running attention.
public sealed unsafe partial class Transformer
{
    /// <summary>Rows [r0, r0+rows): norm 1, q/k/v projection, rotary embedding. Reads Input; writes Norm1*, Qkv.</summary>
    internal void PreAttention(LayerBuffers lb, long r0, long rows, int seq)
    {
        var c = Config;
        var s = lb.Saved;
        var p = Layout.Layers[lb.Layer];
        int C = c.HiddenSize, Q = c.QkvSize;
        float* x = s[_inv.Input] + r0 * C;
        float* h1 = s[_inv.Norm1] + r0 * C;
        Norm(x, p.Norm1, p.Norm1Bias, h1, Row(s, _inv.Norm1Mean, r0), Row(s, _inv.Norm1Rstd, r0), 0, rows);
        float* qkv = s[_inv.Qkv] + r0 * Q;
        _profile?.Enter(ProfileOp.Projections);
        Linear(rows, C, Q, h1, p.Qkv, p.QkvBias, qkv);
        if (c.Family == ModelFamily.Llama)
        {
            int d = c.HeadDim;
            _k.RopeForward(qkv, Q, rows, c.NumHeads, d, r0, seq, _ropeCos, _ropeSin);
            _k.RopeForward(qkv + (long)c.NumHeads * d, Q, rows, c.NumKvHeads, d, r0, seq, _ropeCos, _ropeSin);
        }
    }

    internal void AttentionForward(LayerBuffers lb, int batch, int seq)
    {
        var s = lb.Saved;
        var shape = AttnShape(batch, seq);
        float* q = s[_inv.Qkv];
        _k.AttentionForward(shape, q, q + (long)Config.NumHeads * Config.HeadDim, q + (long)(Config.NumHeads + Config.NumKvHeads) * Config.HeadDim,
            s[_inv.AttnOut], s[_inv.AttnLse], _attnWork);
    }

    /// <summary>
    /// Rows [r0, r0+rows): out projection, residual, norm 2, MLP, residual. Reads Input and AttnOut; writes the
    /// other saved rows and the layer output to <paramref name="output"/> (row 0 of the batch). The projections'
    /// outputs go through <paramref name="scratch"/> (N, C): _tmp in forward, _dH when backward recomputes (its
    /// content is dead between layers there), so no forward workspace has to live through backward.
    /// </summary>
    internal void PostAttention(LayerBuffers lb, long r0, long rows, float* output, float* scratch)
    {
        var c = Config;
        var s = lb.Saved;
        var p = Layout.Layers[lb.Layer];
        int C = c.HiddenSize, F = c.IntermediateSize;
        long up = UpWidth;
        float* x = s[_inv.Input] + r0 * C;
        float* a = scratch + r0 * C;
        _profile?.Enter(ProfileOp.Projections);
        Linear(rows, C, C, s[_inv.AttnOut] + r0 * C, p.Out, p.OutBias, a);
        float* x2 = s[_inv.Residual1] + r0 * C;
        _k.Add(rows * C, x, a, x2);
        float* h2 = s[_inv.Norm2] + r0 * C;
        Norm(x2, p.Norm2, p.Norm2Bias, h2, Row(s, _inv.Norm2Mean, r0), Row(s, _inv.Norm2Rstd, r0), 0, rows);
        float* u = s[_inv.MlpUp] + r0 * up;
        _profile?.Enter(ProfileOp.Mlp);
        Linear(rows, C, up, h2, p.Up, p.UpBias, u);
        float* m = s[_inv.MlpAct] + r0 * F;
        if (c.Family == ModelFamily.Llama) _k.SwiGluForward(rows, F, u, m);
        else _k.GeluForward(rows * F, u, m);
        float* d = scratch + r0 * C;
        Linear(rows, F, C, m, p.Down, p.DownBias, d);
        _k.Add(rows * C, x2, d, output + r0 * C);
    }

    /// <summary>Backward of one layer: reads dL/d(output) in <paramref name="dy"/>, writes dL/d(input) to <paramref name="dx"/>.</summary>
    internal void LayerBackward(LayerBuffers lb, int batch, int seq, float* dy, float* dx)
    {
        var c = Config;
        var s = lb.Saved;
        var p = Layout.Layers[lb.Layer];
        long n = (long)batch * seq;
        int C = c.HiddenSize, F = c.IntermediateSize, Q = c.QkvSize;
        long up = UpWidth;

        // MLP: y = x2 + act(h2 Wup^T) Wdown^T
        _profile?.Enter(ProfileOp.Mlp);
        LinearBackward(n, F, C, dy, s[_inv.MlpAct], p.Down, p.DownBias, _dAct);
        if (c.Family == ModelFamily.Llama) _k.SwiGluBackward(n, F, _dAct, s[_inv.MlpUp], _dUp);
        else _k.GeluBackward(n * F, _dAct, s[_inv.MlpUp], _dUp);
        LinearBackward(n, C, up, _dUp, s[_inv.Norm2], p.Up, p.UpBias, _dH);
        _k.Copy(n * C, dy, dx);
        NormBackward(_dH, s[_inv.Residual1], p.Norm2, p.Norm2Bias, Row(s, _inv.Norm2Mean, 0), Row(s, _inv.Norm2Rstd, 0), dx, n);

        // Attention: x2 = x + attn(norm1(x)) Wout^T; dx now holds dL/dx2.
        _profile?.Enter(ProfileOp.Projections);
        LinearBackward(n, C, C, dx, s[_inv.AttnOut], p.Out, p.OutBias, _dO);
        var shape = AttnShape(batch, seq);
        float* q = s[_inv.Qkv];
        long kOff = (long)c.NumHeads * c.HeadDim, vOff = kOff + (long)c.NumKvHeads * c.HeadDim;
        _k.AttentionBackward(shape, q, q + kOff, q + vOff, s[_inv.AttnOut], s[_inv.AttnLse], _dO, _dQkv, _dQkv + kOff, _dQkv + vOff, _attnWork);
        if (c.Family == ModelFamily.Llama)
        {
            _k.RopeBackward(_dQkv, Q, n, c.NumHeads, c.HeadDim, 0, seq, _ropeCos, _ropeSin);
            _k.RopeBackward(_dQkv + kOff, Q, n, c.NumKvHeads, c.HeadDim, 0, seq, _ropeCos, _ropeSin);
        }
        LinearBackward(n, C, Q, _dQkv, s[_inv.Norm1], p.Qkv, p.QkvBias, _dH);
        NormBackward(_dH, s[_inv.Input], p.Norm1, p.Norm1Bias, Row(s, _inv.Norm1Mean, 0), Row(s, _inv.Norm1Rstd, 0), dx, n);
    }

    private AttentionShape AttnShape(int batch, int seq) => new(batch, seq, Config.NumHeads, Config.NumKvHeads, Config.HeadDim,
        Config.QkvSize, Config.QkvSize, Config.HiddenSize, (float)(1.0 / Math.Sqrt(Config.HeadDim)));

    /// <summary>y[rows, outF] = x[rows, inF] W^T (+ b).</summary>
    private void Linear(long rows, long inF, long outF, float* x, int w, int b, float* y)
    {
        _k.Gemm(false, true, rows, outF, inF, x, inF, W(w), inF, y, outF, accumulate: false);
        if (b >= 0) _k.BiasForward(rows, (int)outF, y, W(b));
    }

    /// <summary>Given dy[rows, outF] of y = x W^T + b: dx = dy W (overwritten), dW += dy^T x, db += colsum(dy).</summary>
    private void LinearBackward(long rows, long inF, long outF, float* dy, float* x, int w, int b, float* dx)
    {
        _k.Gemm(false, false, rows, inF, outF, dy, outF, W(w), inF, dx, inF, accumulate: false);
        _k.Gemm(true, false, outF, inF, rows, dy, outF, x, inF, G(w), inF, accumulate: true);
        if (b >= 0) _k.BiasBackward(rows, (int)outF, dy, G(b));
    }

    /// <summary>RMSNorm (llama) or LayerNorm (gpt2) over rows; mean is unused for RMSNorm.</summary>
    private void Norm(float* x, int w, int b, float* y, float* mean, float* rstd, long r0, long rows)
    {
        int C = Config.HiddenSize;
        float eps = (float)Config.NormEps;
        if (Config.Family == ModelFamily.Llama) _k.RmsNormForward(rows, C, x + r0 * C, W(w), y + r0 * C, rstd + r0, eps);
        else _k.LayerNormForward(rows, C, x + r0 * C, W(w), W(b), y + r0 * C, mean + r0, rstd + r0, eps);
    }

    /// <summary>dx += norm backward of dy; weight (and bias) gradients accumulate.</summary>
    private void NormBackward(float* dy, float* x, int w, int b, float* mean, float* rstd, float* dx, long rows)
    {
        int C = Config.HiddenSize;
        if (Config.Family == ModelFamily.Llama) _k.RmsNormBackward(rows, C, dy, x, W(w), rstd, dx, G(w));
        else _k.LayerNormBackward(rows, C, dy, x, W(w), mean, rstd, dx, G(w), G(b));
    }

    private static float* Row(float*[] saved, int index, long r0) => index < 0 ? null : saved[index] + r0;

    /// <summary>
    /// LM head and cross-entropy over token chunks of <see cref="HeadChunkRows"/>: logits, loss, and (when
    /// <paramref name="backward"/>) dL/d(final norm output) into _dH and the head's weight gradient.
    /// </summary>
    private double Head(long n, bool backward, float gradScale, Span<int> predictions)
    {
        int C = Config.HiddenSize, V = Config.VocabSize;
        float* wh = W(Layout.Head);
        _schedule.Enter(_time.Head);
        _profile?.Enter(ProfileOp.HeadAndLoss);
        for (long r0 = 0; r0 < n; r0 += HeadChunkRows)
        {
            long rows = Math.Min(HeadChunkRows, n - r0);
            float* h = _finalNorm + r0 * C;
            _k.Gemm(false, true, rows, V, C, h, C, wh, C, _logits, V, accumulate: false);
            if (!predictions.IsEmpty)
            {
                _k.ArgMaxRows(rows, V, _logits, V, _predictions);
                fixed (int* host = _argmax) _k.CopyToHost(_predictions, host, rows * sizeof(int));
                _argmax.AsSpan(0, (int)rows).CopyTo(predictions.Slice((int)r0, (int)rows));
            }
            _k.CrossEntropy(rows, V, _logits, V, _targets + r0, _losses + r0, gradScale);
            if (backward)
            {
                _k.Gemm(false, false, rows, C, V, _logits, V, wh, C, _dH + r0 * C, C, accumulate: false);
                _k.Gemm(true, false, V, C, rows, _logits, V, h, C, G(Layout.Head), C, accumulate: true);
            }
        }
        return _k.Sum(n, _losses) / n;
    }
}
