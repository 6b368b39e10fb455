namespace Memo.Reference;

/// <summary>
/// Naive scalar references, in double, for the element-wise and row-wise kernels. They are the
/// definitions the fp32 kernels are checked against; their own backward passes are checked against
/// finite differences of their forward passes (tests/Memo.Tests/Kernels/OpsGradientTests.cs).
/// </summary>
public static class OpsReference
{
    public static (double[] Y, double[] Rstd) RmsNormForward(int rows, int C, double[] x, double[] w, double eps)
    {
        var y = new double[rows * C];
        var rstd = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < C; i++) ss += x[r * C + i] * x[r * C + i];
            double s = 1 / Math.Sqrt(ss / C + eps);
            rstd[r] = s;
            for (int i = 0; i < C; i++) y[r * C + i] = x[r * C + i] * s * w[i];
        }
        return (y, rstd);
    }

    public static (double[] Dx, double[] Dw) RmsNormBackward(int rows, int C, double[] dy, double[] x, double[] w, double eps)
    {
        var (_, rstd) = RmsNormForward(rows, C, x, w, eps);
        var dx = new double[rows * C];
        var dw = new double[C];
        for (int r = 0; r < rows; r++)
        {
            double s = rstd[r];
            double dot = 0;
            for (int i = 0; i < C; i++) dot += dy[r * C + i] * w[i] * x[r * C + i] * s;
            for (int i = 0; i < C; i++)
            {
                double xhat = x[r * C + i] * s;
                dx[r * C + i] = s * (dy[r * C + i] * w[i] - xhat * dot / C);
                dw[i] += dy[r * C + i] * xhat;
            }
        }
        return (dx, dw);
    }

    public static (double[] Y, double[] Mean, double[] Rstd) LayerNormForward(int rows, int C, double[] x, double[] w, double[] b, double eps)
    {
        var y = new double[rows * C];
        var mean = new double[rows];
        var rstd = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double m = 0;
            for (int i = 0; i < C; i++) m += x[r * C + i];
            m /= C;
            double v = 0;
            for (int i = 0; i < C; i++) v += (x[r * C + i] - m) * (x[r * C + i] - m);
            double s = 1 / Math.Sqrt(v / C + eps);
            mean[r] = m;
            rstd[r] = s;
            for (int i = 0; i < C; i++) y[r * C + i] = (x[r * C + i] - m) * s * w[i] + b[i];
        }
        return (y, mean, rstd);
    }

    public static (double[] Dx, double[] Dw, double[] Db) LayerNormBackward(int rows, int C, double[] dy, double[] x, double[] w, double[] b, double eps)
    {
        var (_, mean, rstd) = LayerNormForward(rows, C, x, w, b, eps);
        var dx = new double[rows * C];
        var dw = new double[C];
        var db = new double[C];
        for (int r = 0; r < rows; r++)
        {
            double m = mean[r], s = rstd[r];
            double sg = 0, sgx = 0;
            for (int i = 0; i < C; i++)
            {
                double g = dy[r * C + i] * w[i];
                sg += g;
                sgx += g * (x[r * C + i] - m) * s;
            }
            for (int i = 0; i < C; i++)
            {
                double xhat = (x[r * C + i] - m) * s;
                dx[r * C + i] = s * (dy[r * C + i] * w[i] - sg / C - xhat * sgx / C);
                dw[i] += dy[r * C + i] * xhat;
                db[i] += dy[r * C + i];
            }
        }
        return (dx, dw, db);
    }

    /// <summary>HF rotate-half RoPE on rows of stride rowStride (or its inverse when inverse is set), cos/sin in double.</summary>
    public static double[] Rope(double[] x, int rowStride, int rows, int heads, int D, long rowOffset, long seqLen, double theta, bool inverse)
    {
        var y = (double[])x.Clone();
        int half = D / 2;
        for (int r = 0; r < rows; r++)
        {
            long pos = (rowOffset + r) % seqLen;
            for (int h = 0; h < heads; h++)
            {
                int o = r * rowStride + h * D;
                for (int i = 0; i < half; i++)
                {
                    double angle = pos / Math.Pow(theta, 2.0 * i / D);
                    double c = Math.Cos(angle), s = inverse ? -Math.Sin(angle) : Math.Sin(angle);
                    double lo = x[o + i], hi = x[o + half + i];
                    y[o + i] = lo * c - hi * s;
                    y[o + half + i] = hi * c + lo * s;
                }
            }
        }
        return y;
    }

    public static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    public static double[] SwiGluForward(int rows, int F, double[] gu)
    {
        var m = new double[rows * F];
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < F; i++)
            {
                double g = gu[r * 2 * F + i], u = gu[r * 2 * F + F + i];
                m[r * F + i] = g * Sigmoid(g) * u;
            }
        }
        return m;
    }

    public static double[] SwiGluBackward(int rows, int F, double[] dm, double[] gu)
    {
        var dgu = new double[rows * 2 * F];
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < F; i++)
            {
                double g = gu[r * 2 * F + i], u = gu[r * 2 * F + F + i], s = Sigmoid(g);
                dgu[r * 2 * F + i] = dm[r * F + i] * u * s * (1 + g * (1 - s));
                dgu[r * 2 * F + F + i] = dm[r * F + i] * g * s;
            }
        }
        return dgu;
    }

    private const double GeluK0 = 0.79788456080286535588; // sqrt(2/pi)
    private const double GeluK1 = 0.044715;

    /// <summary>GPT-2 "gelu_new", written as in the paper: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
    public static double Gelu(double x) => 0.5 * x * (1 + Math.Tanh(GeluK0 * (x + GeluK1 * x * x * x)));

    public static double GeluGrad(double x)
    {
        double t = Math.Tanh(GeluK0 * (x + GeluK1 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GeluK0 * (1 + 3 * GeluK1 * x * x);
    }

    public static double[] EmbeddingForward(int rows, int C, int[] tokens, double[] wte, double[]? wpe, long rowOffset, long seqLen)
    {
        var x = new double[rows * C];
        for (int r = 0; r < rows; r++)
        {
            long pos = wpe == null ? 0 : (rowOffset + r) % seqLen;
            for (int i = 0; i < C; i++) x[r * C + i] = wte[tokens[r] * C + i] + (wpe == null ? 0 : wpe[pos * C + i]);
        }
        return x;
    }

    public static void EmbeddingBackward(int rows, int C, int[] tokens, double[] dx, double[] dwte, double[]? dwpe, long rowOffset, long seqLen)
    {
        for (int r = 0; r < rows; r++)
        {
            long pos = (rowOffset + r) % seqLen;
            for (int i = 0; i < C; i++)
            {
                dwte[tokens[r] * C + i] += dx[r * C + i];
                if (dwpe != null) dwpe[pos * C + i] += dx[r * C + i];
            }
        }
    }

    /// <summary>Per-row loss and d(sum of losses)/d(logits) for rows of width V (contiguous).</summary>
    public static (double[] Loss, double[] Grad) CrossEntropy(int rows, int V, double[] logits, int[] targets)
    {
        var loss = new double[rows];
        var grad = new double[rows * V];
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            for (int i = 0; i < V; i++) max = Math.Max(max, logits[r * V + i]);
            double sum = 0;
            for (int i = 0; i < V; i++) sum += Math.Exp(logits[r * V + i] - max);
            double lse = max + Math.Log(sum);
            loss[r] = lse - logits[r * V + targets[r]];
            for (int i = 0; i < V; i++) grad[r * V + i] = Math.Exp(logits[r * V + i] - lse) - (i == targets[r] ? 1 : 0);
        }
        return (loss, grad);
    }
}
