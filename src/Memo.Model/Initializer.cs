namespace Memo.Model;

/// <summary>
/// Seeded parameter initialization: matrices and embeddings normal(0, 0.02), residual output projections
/// (attention out, MLP down) scaled by 1/sqrt(2 x layers) as in GPT-2, norm weights 1, biases 0.
/// Each tensor draws from its own stream (seed, tensor index), so the result does not depend on threads.
/// Values are drawn on the host and copied to the device through the model's backend.
/// </summary>
public static unsafe class Initializer
{
    public static void Initialize(Transformer model, ulong seed)
    {
        var layout = model.Layout;
        double residualScale = 1.0 / Math.Sqrt(2.0 * model.Config.NumLayers);
        for (int i = 0; i < layout.Specs.Count; i++)
        {
            var spec = layout.Specs[i];
            var host = new float[checked((int)spec.Elements)];
            if (spec.Shape.Length == 1)
            {
                host.AsSpan().Fill(spec.Name.EndsWith("bias", StringComparison.Ordinal) ? 0f : 1f);
            }
            else
            {
                double std = 0.02;
                if (spec.Name.EndsWith(".out", StringComparison.Ordinal) || spec.Name.EndsWith(".down", StringComparison.Ordinal)) std *= residualScale;
                var rng = new SplitMix64(seed ^ (0x9E3779B97F4A7C15UL * (ulong)(i + 1)));
                for (int j = 0; j < host.Length; j++) host[j] = (float)(std * rng.NextGaussian());
            }
            fixed (float* h = host) model.Backend.CopyToDevice(h, model.W(i), (long)host.Length * sizeof(float));
        }
    }
}

/// <summary>A small, fast, seedable generator (SplitMix64) with a Box-Muller normal; its state is one ulong.</summary>
public struct SplitMix64
{
    private double _spare;
    private bool _hasSpare;

    public SplitMix64(ulong seed)
    {
        State = seed;
        _spare = 0;
        _hasSpare = false;
    }

    public ulong State { get; private set; }

    public ulong Next()
    {
        ulong z = State += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    public double NextGaussian()
    {
        if (_hasSpare)
        {
            _hasSpare = false;
            return _spare;
        }
        double u1 = 1.0 - NextDouble(), u2 = NextDouble();
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        _spare = r * Math.Sin(2 * Math.PI * u2);
        _hasSpare = true;
        return r * Math.Cos(2 * Math.PI * u2);
    }
}
