namespace Memo;

/// <summary>
/// The rotary frequencies of a llama model and the factor that scales its cos/sin tables, computed on
/// the host in double (the table code rounds the products to float). For the head dimension D and
/// i in [0, D/2): the default inverse frequency is f_i = rope_theta^(-2i/D); <see cref="RopeScaling"/>
/// changes them as transformers' <c>modeling_rope_utils.py</c> defines each type:
/// <list type="bullet">
/// <item>linear: f_i / factor.</item>
/// <item>dynamic: with L = max_position_embeddings (or rope_scaling's original_max_position_embeddings)
/// and s = max(seq, L): theta' = theta * (factor*s/L - (factor-1))^(D/(D-2)), f_i = theta'^(-2i/D).
/// The table depends on the sequence length: pass the length the model runs at.</item>
/// <item>llama3: wavelength w_i = 2*pi/f_i, L = original_max_position_embeddings (else max_position_embeddings); w_i &lt; L/high_freq_factor
/// keeps f_i; w_i &gt; L/low_freq_factor gives f_i/factor; between, (1-s)*f_i/factor + s*f_i with
/// s = (L/w_i - low_freq_factor)/(high_freq_factor - low_freq_factor).</item>
/// <item>yarn: L = original_max_position_embeddings (else max_position_embeddings); correction range
/// low = floor(d(beta_fast)), high = ceil(d(beta_slow)) (no rounding when truncate is false), clamped to
/// [0, D-1], with d(r) = D*ln(L/(2*pi*r))/(2*ln theta); ramp_i = clamp((i-low)/(high-low), 0, 1)
/// (high += 0.001 when equal); f_i = (f_i/factor)*ramp_i + f_i*(1-ramp_i). Attention factor: given, or
/// mscale(factor, mscale)/mscale(factor, mscale_all_dim) when both are set, else mscale(factor),
/// with mscale(s, m) = 1 if s &lt;= 1 else 0.1*m*ln(s) + 1; cos and sin are multiplied by it.</item>
/// </list>
/// </summary>
public static class RopeFrequencies
{
    /// <summary>Inverse frequencies (D/2 of them) and the cos/sin scale for <paramref name="config"/> at <paramref name="seq"/> positions.</summary>
    public static (double[] InvFreq, double AttentionScale) Compute(ModelConfig config, long seq)
    {
        ArgumentNullException.ThrowIfNull(config);
        int dim = config.HeadDim;
        int half = dim / 2;
        double theta = config.RopeTheta;
        var r = config.RopeScaling;
        double[] Default(double baseTheta)
        {
            var f = new double[half];
            for (int i = 0; i < half; i++) f[i] = 1.0 / Math.Pow(baseTheta, 2.0 * i / dim);
            return f;
        }
        if (r == null) return (Default(theta), 1.0);
        switch (r.Type)
        {
            case "linear":
            {
                var f = Default(theta);
                for (int i = 0; i < half; i++) f[i] /= r.Factor;
                return (f, 1.0);
            }
            case "dynamic":
            {
                double l = r.OriginalMaxPositions ?? config.MaxPositions;
                double s = Math.Max(seq, l);
                double b = theta * Math.Pow(r.Factor * s / l - (r.Factor - 1), dim / (dim - 2.0));
                return (Default(b), 1.0);
            }
            case "llama3":
            {
                var f = Default(theta);
                double l = r.OriginalMaxPositions ?? config.MaxPositions, lo = r.LowFreqFactor!.Value, hi = r.HighFreqFactor!.Value;
                double lowWave = l / lo, highWave = l / hi;
                for (int i = 0; i < half; i++)
                {
                    double w = 2 * Math.PI / f[i];
                    if (w > lowWave) f[i] /= r.Factor;
                    else if (w >= highWave)
                    {
                        double s = (l / w - lo) / (hi - lo);
                        f[i] = (1 - s) * f[i] / r.Factor + s * f[i];
                    }
                }
                return (f, 1.0);
            }
            case "yarn":
            {
                double l = r.OriginalMaxPositions ?? config.MaxPositions;
                static double MScale(double s, double m) => s <= 1 ? 1.0 : 0.1 * m * Math.Log(s) + 1.0;
                double attention = r.AttentionFactor
                    ?? (r.Mscale is double m && m != 0 && r.MscaleAllDim is double ma && ma != 0
                        ? MScale(r.Factor, m) / MScale(r.Factor, ma)
                        : MScale(r.Factor, 1));
                double fast = r.BetaFast ?? 32, slow = r.BetaSlow ?? 1;
                double CorrectionDim(double rotations) => dim * Math.Log(l / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
                double low = CorrectionDim(fast), high = CorrectionDim(slow);
                if (r.Truncate ?? true)
                {
                    low = Math.Floor(low);
                    high = Math.Ceiling(high);
                }
                low = Math.Max(low, 0);
                high = Math.Min(high, dim - 1);
                if (low == high) high += 0.001;
                var f = Default(theta);
                for (int i = 0; i < half; i++)
                {
                    double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
                    double extrapolation = 1 - ramp;
                    f[i] = f[i] / r.Factor * (1 - extrapolation) + f[i] * extrapolation;
                }
                return (f, attention);
            }
            default:
                throw new MemoException($"rope_scaling type '{r.Type}' is not supported; use one of {string.Join(", ", RopeScaling.Types)}");
        }
    }
}
