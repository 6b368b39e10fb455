using System.Diagnostics;

namespace Memo.Backends;

/// <summary>
/// A backend decorator that times every kernel call (two timestamps per call, nothing per element) and adds
/// the time to an <see cref="OpProfile"/>, by kernel and the model's current scope (table in OpProfile).
/// Copies, copy streams and host stores pass through untimed: the swap runtime reports the time compute
/// waited for them. Used by <c>memo train --profile</c>; results are bit-identical to the inner backend's.
/// </summary>
public sealed unsafe class ProfilingBackend : IBackend
{
    private readonly IBackend _inner;
    private readonly OpProfile _profile;

    public ProfilingBackend(IBackend inner, OpProfile profile)
    {
        _inner = inner;
        _profile = profile;
    }

    public IBackend Inner => _inner;

    public OpProfile Profile => _profile;

    public string Name => _inner.Name;

    public int Threads => _inner.Threads;

    public long AttentionWorkspaceBytes(int headDim) => _inner.AttentionWorkspaceBytes(headDim);

    public void CopyToDevice(void* hostSrc, void* deviceDst, long bytes) => _inner.CopyToDevice(hostSrc, deviceDst, bytes);

    public void CopyToHost(void* deviceSrc, void* hostDst, long bytes) => _inner.CopyToHost(deviceSrc, hostDst, bytes);

    public ICopyStream CreateCopyStream(string name) => _inner.CreateCopyStream(name);

    public IHostStore CreateHostStore(long bytes) => _inner.CreateHostStore(bytes);

    public IDeviceArena CreateArena(long capacity, bool poison) => _inner.CreateArena(capacity, poison);

    /// <summary>Recompute claims every kernel; otherwise a kernel with a fixed op keeps it.</summary>
    private ProfileOp Fixed(ProfileOp op) => _profile.Scope == ProfileOp.Recompute ? ProfileOp.Recompute : op;

    public void Gemm(bool transA, bool transB, long m, long n, long k, float* a, long lda, float* b, long ldb, float* c, long ldc, bool accumulate)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.Gemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void Fill(long n, float* dst, float value)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.Fill(n, dst, value);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void Add(long n, float* a, float* b, float* dst)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.Add(n, a, b, dst);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void Copy(long n, float* src, float* dst)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.Copy(n, src, dst);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void BiasForward(long rows, int cols, float* y, float* b)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.BiasForward(rows, cols, y, b);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void BiasBackward(long rows, int cols, float* dy, float* db)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.BiasBackward(rows, cols, dy, db);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void RmsNormForward(long rows, int c, float* x, float* w, float* y, float* rstd, float eps)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.RmsNormForward(rows, c, x, w, y, rstd, eps);
        _profile.AddTicks(Fixed(ProfileOp.Norms), Stopwatch.GetTimestamp() - t0);
    }

    public void RmsNormBackward(long rows, int c, float* dy, float* x, float* w, float* rstd, float* dx, float* dw)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.RmsNormBackward(rows, c, dy, x, w, rstd, dx, dw);
        _profile.AddTicks(Fixed(ProfileOp.Norms), Stopwatch.GetTimestamp() - t0);
    }

    public void LayerNormForward(long rows, int c, float* x, float* w, float* b, float* y, float* mean, float* rstd, float eps)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.LayerNormForward(rows, c, x, w, b, y, mean, rstd, eps);
        _profile.AddTicks(Fixed(ProfileOp.Norms), Stopwatch.GetTimestamp() - t0);
    }

    public void LayerNormBackward(long rows, int c, float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.LayerNormBackward(rows, c, dy, x, w, mean, rstd, dx, dw, db);
        _profile.AddTicks(Fixed(ProfileOp.Norms), Stopwatch.GetTimestamp() - t0);
    }

    public void RopeTable(long maxPos, ReadOnlySpan<double> invFreq, double scale, float* cos, float* sin)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.RopeTable(maxPos, invFreq, scale, cos, sin);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void RopeForward(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.RopeForward(x, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void RopeBackward(float* dx, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.RopeBackward(dx, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void SwiGluForward(long rows, int f, float* gu, float* m)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.SwiGluForward(rows, f, gu, m);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void SwiGluBackward(long rows, int f, float* dm, float* gu, float* dgu)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.SwiGluBackward(rows, f, dm, gu, dgu);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void GeluForward(long n, float* x, float* y)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.GeluForward(n, x, y);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void GeluBackward(long n, float* dy, float* x, float* dx)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.GeluBackward(n, dy, x, dx);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    public void AttentionForward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* workspace)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.AttentionForward(in shape, q, k, v, o, lse, workspace);
        _profile.AddTicks(Fixed(ProfileOp.AttentionForward), Stopwatch.GetTimestamp() - t0);
    }

    public void AttentionBackward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* dO, float* dq, float* dk, float* dv, float* workspace)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.AttentionBackward(in shape, q, k, v, o, lse, dO, dq, dk, dv, workspace);
        _profile.AddTicks(Fixed(ProfileOp.AttentionBackward), Stopwatch.GetTimestamp() - t0);
    }

    public void CrossEntropy(long rows, int vocab, float* logits, long ld, int* targets, float* losses, float gradScale)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.CrossEntropy(rows, vocab, logits, ld, targets, losses, gradScale);
        _profile.AddTicks(Fixed(ProfileOp.HeadAndLoss), Stopwatch.GetTimestamp() - t0);
    }

    public void ArgMaxRows(long rows, int vocab, float* logits, long ld, int* result)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.ArgMaxRows(rows, vocab, logits, ld, result);
        _profile.AddTicks(Fixed(ProfileOp.HeadAndLoss), Stopwatch.GetTimestamp() - t0);
    }

    public double Sum(long n, float* x)
    {
        long t0 = Stopwatch.GetTimestamp();
        double r = _inner.Sum(n, x);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
        return r;
    }

    public void EmbeddingForward(long rows, int c, int* tokens, float* wte, float* wpe, long rowOffset, long seqLen, float* x)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.EmbeddingForward(rows, c, tokens, wte, wpe, rowOffset, seqLen, x);
        _profile.AddTicks(Fixed(ProfileOp.Embedding), Stopwatch.GetTimestamp() - t0);
    }

    public void EmbeddingBackward(long rows, int c, int* tokens, float* dx, float* dwte, float* dwpe, long rowOffset, long seqLen)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.EmbeddingBackward(rows, c, tokens, dx, dwte, dwpe, rowOffset, seqLen);
        _profile.AddTicks(Fixed(ProfileOp.Embedding), Stopwatch.GetTimestamp() - t0);
    }

    public void AdamWStep(long n, float* param, float* grad, float* m, float* v, float lr, float beta1, float beta2, float eps, float weightDecay, long step)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.AdamWStep(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step);
        _profile.AddTicks(Fixed(ProfileOp.Optimizer), Stopwatch.GetTimestamp() - t0);
    }

    public double SumOfSquares(long n, float* x)
    {
        long t0 = Stopwatch.GetTimestamp();
        double r = _inner.SumOfSquares(n, x);
        _profile.AddTicks(Fixed(ProfileOp.Optimizer), Stopwatch.GetTimestamp() - t0);
        return r;
    }

    public void Scale(long n, float* x, float s)
    {
        long t0 = Stopwatch.GetTimestamp();
        _inner.Scale(n, x, s);
        _profile.AddTicks(_profile.Scope, Stopwatch.GetTimestamp() - t0);
    }

    /// <summary>Nothing to release: the inner backend belongs to whoever made it.</summary>
    public void Dispose()
    {
    }
}
