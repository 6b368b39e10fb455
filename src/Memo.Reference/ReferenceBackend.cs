using Memo.Backends;

namespace Memo.Reference;

/// <summary>
/// The reference backend: every op as a plain scalar loop on one thread, reductions in double, written
/// for reading rather than speed (the definitions in <see cref="OpsReference"/>, on device pointers).
/// It runs the whole model under every memory policy, so any optimized backend can be checked against
/// it over whole training steps (<c>memo train --backend reference</c>). Its copy stream is synchronous
/// (<see cref="ReferenceCopyStream"/>). Attention materializes one row of scores at a time.
/// </summary>
public sealed unsafe class ReferenceBackend : IBackend
{
    public const string BackendName = "reference";

    public string Name => BackendName;

    public int Threads => 1;

    /// <summary>The scalar attention needs no workspace (it keeps its score row in managed memory).</summary>
    public long AttentionWorkspaceBytes(int headDim) => 0;

    public void CopyToDevice(void* hostSrc, void* deviceDst, long bytes) => Buffer.MemoryCopy(hostSrc, deviceDst, bytes, bytes);

    public void CopyToHost(void* deviceSrc, void* hostDst, long bytes) => Buffer.MemoryCopy(deviceSrc, hostDst, bytes, bytes);

    public ICopyStream CreateCopyStream(string name) => new ReferenceCopyStream();

    public IHostStore CreateHostStore(long bytes) => new MemoryHostStore(bytes);

    public IDeviceArena CreateArena(long capacity, bool poison) => new DeviceArena(capacity, poison);

    public void Gemm(bool transA, bool transB, long m, long n, long k, float* a, long lda, float* b, long ldb, float* c, long ldc, bool accumulate)
    {
        for (long i = 0; i < m; i++)
        {
            for (long j = 0; j < n; j++)
            {
                double sum = 0;
                for (long p = 0; p < k; p++)
                {
                    double x = transA ? a[p * lda + i] : a[i * lda + p];
                    double y = transB ? b[j * ldb + p] : b[p * ldb + j];
                    sum += x * y;
                }
                c[i * ldc + j] = accumulate ? (float)(c[i * ldc + j] + sum) : (float)sum;
            }
        }
    }

    public void Fill(long n, float* dst, float value)
    {
        for (long i = 0; i < n; i++) dst[i] = value;
    }

    public void Add(long n, float* a, float* b, float* dst)
    {
        for (long i = 0; i < n; i++) dst[i] = a[i] + b[i];
    }

    public void Copy(long n, float* src, float* dst)
    {
        for (long i = 0; i < n; i++) dst[i] = src[i];
    }

    public void BiasForward(long rows, int cols, float* y, float* b)
    {
        for (long r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) y[r * cols + j] += b[j];
    }

    public void BiasBackward(long rows, int cols, float* dy, float* db)
    {
        for (int j = 0; j < cols; j++)
        {
            double sum = 0;
            for (long r = 0; r < rows; r++) sum += dy[r * cols + j];
            db[j] = (float)(db[j] + sum);
        }
    }

    public void RmsNormForward(long rows, int c, float* x, float* w, float* y, float* rstd, float eps)
    {
        for (long r = 0; r < rows; r++)
        {
            float* xr = x + r * c;
            double ss = 0;
            for (int i = 0; i < c; i++) ss += (double)xr[i] * xr[i];
            double s = 1 / Math.Sqrt(ss / c + eps);
            if (rstd != null) rstd[r] = (float)s;
            for (int i = 0; i < c; i++) y[r * c + i] = (float)(xr[i] * s * w[i]);
        }
    }

    public void RmsNormBackward(long rows, int c, float* dy, float* x, float* w, float* rstd, float* dx, float* dw)
    {
        var dwSum = new double[c];
        for (long r = 0; r < rows; r++)
        {
            double s = rstd[r];
            float* xr = x + r * c, dyr = dy + r * c;
            double dot = 0;
            for (int i = 0; i < c; i++) dot += (double)dyr[i] * w[i] * xr[i] * s;
            for (int i = 0; i < c; i++)
            {
                double xhat = xr[i] * s;
                dx[r * c + i] = (float)(dx[r * c + i] + s * (dyr[i] * (double)w[i] - xhat * dot / c));
                dwSum[i] += dyr[i] * xhat;
            }
        }
        for (int i = 0; i < c; i++) dw[i] = (float)(dw[i] + dwSum[i]);
    }

    public void LayerNormForward(long rows, int c, float* x, float* w, float* b, float* y, float* mean, float* rstd, float eps)
    {
        for (long r = 0; r < rows; r++)
        {
            float* xr = x + r * c;
            double m = 0;
            for (int i = 0; i < c; i++) m += xr[i];
            m /= c;
            double v = 0;
            for (int i = 0; i < c; i++) v += (xr[i] - m) * (xr[i] - m);
            double s = 1 / Math.Sqrt(v / c + eps);
            if (mean != null) mean[r] = (float)m;
            if (rstd != null) rstd[r] = (float)s;
            for (int i = 0; i < c; i++) y[r * c + i] = (float)((xr[i] - m) * s * w[i] + b[i]);
        }
    }

    public void LayerNormBackward(long rows, int c, float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db)
    {
        var dwSum = new double[c];
        var dbSum = new double[c];
        for (long r = 0; r < rows; r++)
        {
            double m = mean[r], s = rstd[r];
            float* xr = x + r * c, dyr = dy + r * c;
            double sg = 0, sgx = 0;
            for (int i = 0; i < c; i++)
            {
                double g = (double)dyr[i] * w[i];
                sg += g;
                sgx += g * (xr[i] - m) * s;
            }
            for (int i = 0; i < c; i++)
            {
                double xhat = (xr[i] - m) * s;
                dx[r * c + i] = (float)(dx[r * c + i] + s * (dyr[i] * (double)w[i] - sg / c - xhat * sgx / c));
                dwSum[i] += dyr[i] * xhat;
                dbSum[i] += dyr[i];
            }
        }
        for (int i = 0; i < c; i++)
        {
            dw[i] = (float)(dw[i] + dwSum[i]);
            db[i] = (float)(db[i] + dbSum[i]);
        }
    }

    public void RopeTable(long maxPos, ReadOnlySpan<double> invFreq, double scale, float* cos, float* sin)
    {
        int half = invFreq.Length;
        for (long pos = 0; pos < maxPos; pos++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = pos * invFreq[i];
                cos[pos * half + i] = (float)(Math.Cos(angle) * scale);
                sin[pos * half + i] = (float)(Math.Sin(angle) * scale);
            }
        }
    }

    public void RopeForward(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin)
        => Rotate(x, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin, 1);

    public void RopeBackward(float* dx, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin)
        => Rotate(dx, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin, -1);

    private static void Rotate(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin, double sign)
    {
        int half = headDim / 2;
        for (long r = 0; r < rows; r++)
        {
            long pos = (rowOffset + r) % seqLen;
            for (int h = 0; h < heads; h++)
            {
                float* v = x + r * rowStride + (long)h * headDim;
                for (int i = 0; i < half; i++)
                {
                    double c = cos[pos * half + i], s = sign * sin[pos * half + i];
                    double lo = v[i], hi = v[half + i];
                    v[i] = (float)(lo * c - hi * s);
                    v[half + i] = (float)(hi * c + lo * s);
                }
            }
        }
    }

    public void SwiGluForward(long rows, int f, float* gu, float* m)
    {
        for (long r = 0; r < rows; r++)
        {
            for (int i = 0; i < f; i++)
            {
                double g = gu[r * 2 * f + i], u = gu[r * 2 * f + f + i];
                m[r * f + i] = (float)(g * OpsReference.Sigmoid(g) * u);
            }
        }
    }

    public void SwiGluBackward(long rows, int f, float* dm, float* gu, float* dgu)
    {
        for (long r = 0; r < rows; r++)
        {
            for (int i = 0; i < f; i++)
            {
                double g = gu[r * 2 * f + i], u = gu[r * 2 * f + f + i], s = OpsReference.Sigmoid(g), d = dm[r * f + i];
                dgu[r * 2 * f + i] = (float)(d * u * s * (1 + g * (1 - s)));
                dgu[r * 2 * f + f + i] = (float)(d * g * s);
            }
        }
    }

    public void GeluForward(long n, float* x, float* y)
    {
        for (long i = 0; i < n; i++) y[i] = (float)OpsReference.Gelu(x[i]);
    }

    public void GeluBackward(long n, float* dy, float* x, float* dx)
    {
        for (long i = 0; i < n; i++) dx[i] = (float)(dy[i] * OpsReference.GeluGrad(x[i]));
    }

    public void AttentionForward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* workspace)
    {
        var sh = shape;
        long T = sh.SeqLen;
        int D = sh.HeadDim, rep = sh.Heads / sh.KvHeads;
        var s = new double[T];
        var acc = new double[D];
        for (int b = 0; b < sh.Batch; b++)
            for (int h = 0; h < sh.Heads; h++)
                for (long t = 0; t < T; t++)
                {
                    int g = h / rep;
                    float* qt = q + (b * T + t) * sh.QStride + (long)h * D;
                    double max = double.NegativeInfinity;
                    for (long j = 0; j <= t; j++)
                    {
                        float* kj = k + (b * T + j) * sh.KvStride + (long)g * D;
                        double dot = 0;
                        for (int d = 0; d < D; d++) dot += (double)qt[d] * kj[d];
                        s[j] = sh.Scale * dot;
                        max = Math.Max(max, s[j]);
                    }
                    double sum = 0;
                    for (long j = 0; j <= t; j++) sum += Math.Exp(s[j] - max);
                    Array.Clear(acc);
                    for (long j = 0; j <= t; j++)
                    {
                        double p = Math.Exp(s[j] - max) / sum;
                        float* vj = v + (b * T + j) * sh.KvStride + (long)g * D;
                        for (int d = 0; d < D; d++) acc[d] += p * vj[d];
                    }
                    float* ot = o + (b * T + t) * sh.OStride + (long)h * D;
                    for (int d = 0; d < D; d++) ot[d] = (float)acc[d];
                    lse[(b * T + t) * sh.Heads + h] = (float)(max + Math.Log(sum));
                }
    }

    public void AttentionBackward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* dO,
        float* dq, float* dk, float* dv, float* workspace)
    {
        var sh = shape;
        long T = sh.SeqLen, rows = sh.Batch * T;
        int D = sh.HeadDim, rep = sh.Heads / sh.KvHeads;
        var gq = new double[rows * sh.Heads * D];
        var gk = new double[rows * sh.KvHeads * D];
        var gv = new double[rows * sh.KvHeads * D];
        var p = new double[T];
        for (int b = 0; b < sh.Batch; b++)
            for (int h = 0; h < sh.Heads; h++)
                for (long t = 0; t < T; t++)
                {
                    int g = h / rep;
                    long row = b * T + t;
                    float* qt = q + row * sh.QStride + (long)h * D;
                    float* ot = o + row * sh.OStride + (long)h * D;
                    float* dot = dO + row * sh.OStride + (long)h * D;
                    double l = lse[row * sh.Heads + h];
                    double delta = 0;
                    for (int d = 0; d < D; d++) delta += (double)dot[d] * ot[d];
                    for (long j = 0; j <= t; j++)
                    {
                        float* kj = k + (b * T + j) * sh.KvStride + (long)g * D;
                        double sdot = 0;
                        for (int d = 0; d < D; d++) sdot += (double)qt[d] * kj[d];
                        p[j] = Math.Exp(sh.Scale * sdot - l);
                    }
                    for (long j = 0; j <= t; j++)
                    {
                        long kvRow = b * T + j;
                        float* kj = k + kvRow * sh.KvStride + (long)g * D;
                        float* vj = v + kvRow * sh.KvStride + (long)g * D;
                        double dp = 0;
                        for (int d = 0; d < D; d++) dp += (double)dot[d] * vj[d];
                        double ds = p[j] * (dp - delta) * sh.Scale;
                        for (int d = 0; d < D; d++)
                        {
                            gq[(row * sh.Heads + h) * D + d] += ds * kj[d];
                            gk[(kvRow * sh.KvHeads + g) * D + d] += ds * qt[d];
                            gv[(kvRow * sh.KvHeads + g) * D + d] += p[j] * dot[d];
                        }
                    }
                }
        for (long row = 0; row < rows; row++)
        {
            for (long i = 0; i < (long)sh.Heads * D; i++) dq[row * sh.QStride + i] = (float)gq[row * sh.Heads * D + i];
            for (long i = 0; i < (long)sh.KvHeads * D; i++)
            {
                dk[row * sh.KvStride + i] = (float)gk[row * sh.KvHeads * D + i];
                dv[row * sh.KvStride + i] = (float)gv[row * sh.KvHeads * D + i];
            }
        }
    }

    public void CrossEntropy(long rows, int vocab, float* logits, long ld, int* targets, float* losses, float gradScale)
    {
        for (long r = 0; r < rows; r++)
        {
            float* x = logits + r * ld;
            double max = double.NegativeInfinity;
            for (int i = 0; i < vocab; i++) max = Math.Max(max, x[i]);
            double sum = 0;
            for (int i = 0; i < vocab; i++) sum += Math.Exp(x[i] - max);
            double lse = max + Math.Log(sum);
            int target = targets[r];
            losses[r] = (float)(lse - x[target]);
            for (int i = 0; i < vocab; i++) x[i] = (float)(gradScale * (Math.Exp(x[i] - lse) - (i == target ? 1 : 0)));
        }
    }

    public void ArgMaxRows(long rows, int vocab, float* logits, long ld, int* result)
    {
        for (long r = 0; r < rows; r++)
        {
            float* x = logits + r * ld;
            int best = 0;
            for (int i = 1; i < vocab; i++)
            {
                if (x[i] > x[best]) best = i;
            }
            result[r] = best;
        }
    }

    public double Sum(long n, float* x)
    {
        double sum = 0;
        for (long i = 0; i < n; i++) sum += x[i];
        return sum;
    }

    public void EmbeddingForward(long rows, int c, int* tokens, float* wte, float* wpe, long rowOffset, long seqLen, float* x)
    {
        for (long r = 0; r < rows; r++)
        {
            long pos = (rowOffset + r) % seqLen;
            for (int i = 0; i < c; i++)
                x[r * c + i] = wpe == null ? wte[(long)tokens[r] * c + i] : wte[(long)tokens[r] * c + i] + wpe[pos * c + i];
        }
    }

    public void EmbeddingBackward(long rows, int c, int* tokens, float* dx, float* dwte, float* dwpe, long rowOffset, long seqLen)
    {
        for (long r = 0; r < rows; r++)
        {
            long pos = (rowOffset + r) % seqLen;
            for (int i = 0; i < c; i++)
            {
                dwte[(long)tokens[r] * c + i] += dx[r * c + i];
                if (dwpe != null) dwpe[pos * c + i] += dx[r * c + i];
            }
        }
    }

    public void AdamWStep(long n, float* param, float* grad, float* m, float* v, float lr, float beta1, float beta2, float eps, float weightDecay, long step)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
        double bc1 = 1 - Math.Pow(beta1, step), bc2 = 1 - Math.Pow(beta2, step);
        for (long i = 0; i < n; i++)
        {
            double g = grad[i];
            double p = param[i] * (1 - (double)lr * weightDecay);
            double mi = m[i] * (double)beta1 + (1 - (double)beta1) * g;
            double vi = v[i] * (double)beta2 + (1 - (double)beta2) * g * g;
            p -= lr / bc1 * (mi / (Math.Sqrt(vi) / Math.Sqrt(bc2) + eps));
            param[i] = (float)p;
            m[i] = (float)mi;
            v[i] = (float)vi;
        }
    }

    public double SumOfSquares(long n, float* x)
    {
        double sum = 0;
        for (long i = 0; i < n; i++) sum += (double)x[i] * x[i];
        return sum;
    }

    public void Scale(long n, float* x, float s)
    {
        for (long i = 0; i < n; i++) x[i] *= s;
    }

    public void Dispose()
    {
    }
}
