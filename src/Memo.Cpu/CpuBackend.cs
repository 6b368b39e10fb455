using System.Numerics.Tensors;
using Memo.Backends;
using Memo.Cpu.Device;
using Memo.Cpu.Kernels;

namespace Memo.Cpu;

/// <summary>
/// The CPU backend: Memo's vectorized, deterministic kernels on a <see cref="WorkerPool"/>, the
/// <see cref="CopyEngine"/> as copy stream and RAM host stores. Device memory is host RAM here, so
/// the host-device copies are memory copies; they still go through this type so that the model
/// reads device memory the way a GPU backend requires. Each method forwards to one kernel with
/// the backend's pool: one interface call per op, nothing per element.
/// </summary>
public sealed unsafe class CpuBackend : IBackend
{
    public const string BackendName = "cpu";

    public CpuBackend(WorkerPool? pool = null) => Pool = pool ?? WorkerPool.Default;

    public string Name => BackendName;

    public WorkerPool Pool { get; }

    public int Threads => Pool.Threads;

    /// <summary>Workspace of the tiled attention for <paramref name="threads"/> workers (one slot each).</summary>
    public static long AttentionWorkspaceBytesFor(int threads, int headDim) => checked(Attention.WorkspaceFloats(threads, headDim) * sizeof(float));

    public long AttentionWorkspaceBytes(int headDim) => AttentionWorkspaceBytesFor(Pool.Threads, headDim);

    public void CopyToDevice(void* hostSrc, void* deviceDst, long bytes) => Buffer.MemoryCopy(hostSrc, deviceDst, bytes, bytes);

    public void CopyToHost(void* deviceSrc, void* hostDst, long bytes) => Buffer.MemoryCopy(deviceSrc, hostDst, bytes, bytes);

    public ICopyStream CreateCopyStream(string name) => new CopyEngine(name);

    public IHostStore CreateHostStore(long bytes) => new MemoryHostStore(bytes);

    public IDeviceArena CreateArena(long capacity, bool poison) => new DeviceArena(capacity, poison);

    public void Gemm(bool transA, bool transB, long m, long n, long k, float* a, long lda, float* b, long ldb, float* c, long ldc, bool accumulate)
        => Kernels.Gemm.Multiply(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, Pool);

    public void Fill(long n, float* dst, float value) => Elementwise.Fill(n, dst, value, Pool);

    public void Add(long n, float* a, float* b, float* dst) => Elementwise.Add(n, a, b, dst, Pool);

    public void Copy(long n, float* src, float* dst) => Elementwise.Copy(n, src, dst, Pool);

    public void BiasForward(long rows, int cols, float* y, float* b) => Bias.Forward(rows, cols, y, b, Pool);

    public void BiasBackward(long rows, int cols, float* dy, float* db) => Bias.Backward(rows, cols, dy, db, Pool);

    public void RmsNormForward(long rows, int c, float* x, float* w, float* y, float* rstd, float eps) => RmsNorm.Forward(rows, c, x, w, y, rstd, eps, Pool);

    public void RmsNormBackward(long rows, int c, float* dy, float* x, float* w, float* rstd, float* dx, float* dw) => RmsNorm.Backward(rows, c, dy, x, w, rstd, dx, dw, Pool);

    public void LayerNormForward(long rows, int c, float* x, float* w, float* b, float* y, float* mean, float* rstd, float eps)
        => LayerNorm.Forward(rows, c, x, w, b, y, mean, rstd, eps, Pool);

    public void LayerNormBackward(long rows, int c, float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db)
        => LayerNorm.Backward(rows, c, dy, x, w, mean, rstd, dx, dw, db, Pool);

    public void RopeTable(long maxPos, ReadOnlySpan<double> invFreq, double scale, float* cos, float* sin)
    {
        var (c, s) = Rope.Table(maxPos, invFreq, scale);
        c.CopyTo(new Span<float>(cos, c.Length));
        s.CopyTo(new Span<float>(sin, s.Length));
    }

    public void RopeForward(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin)
        => Rope.Forward(x, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin, Pool);

    public void RopeBackward(float* dx, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin)
        => Rope.Backward(dx, rowStride, rows, heads, headDim, rowOffset, seqLen, cos, sin, Pool);

    public void SwiGluForward(long rows, int f, float* gu, float* m) => SwiGlu.Forward(rows, f, gu, m, Pool);

    public void SwiGluBackward(long rows, int f, float* dm, float* gu, float* dgu) => SwiGlu.Backward(rows, f, dm, gu, dgu, Pool);

    public void GeluForward(long n, float* x, float* y) => Gelu.Forward(n, x, y, Pool);

    public void GeluBackward(long n, float* dy, float* x, float* dx) => Gelu.Backward(n, dy, x, dx, Pool);

    public void AttentionForward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* workspace)
        => Attention.Forward(shape, q, k, v, o, lse, workspace, Pool);

    public void AttentionBackward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* dO,
        float* dq, float* dk, float* dv, float* workspace)
        => Attention.Backward(shape, q, k, v, o, lse, dO, dq, dk, dv, workspace, Pool);

    public void CrossEntropy(long rows, int vocab, float* logits, long ld, int* targets, float* losses, float gradScale)
        => Kernels.CrossEntropy.ForwardBackward(rows, vocab, logits, ld, targets, losses, gradScale, Pool);

    public void ArgMaxRows(long rows, int vocab, float* logits, long ld, int* result)
    {
        for (long r = 0; r < rows; r++) result[r] = TensorPrimitives.IndexOfMax(new ReadOnlySpan<float>(logits + r * ld, vocab));
    }

    public double Sum(long n, float* x)
    {
        double sum = 0;
        for (long i = 0; i < n; i++) sum += x[i];
        return sum;
    }

    public void EmbeddingForward(long rows, int c, int* tokens, float* wte, float* wpe, long rowOffset, long seqLen, float* x)
        => Embedding.Forward(rows, c, tokens, wte, wpe, rowOffset, seqLen, x, Pool);

    public void EmbeddingBackward(long rows, int c, int* tokens, float* dx, float* dwte, float* dwpe, long rowOffset, long seqLen)
        => Embedding.Backward(rows, c, tokens, dx, dwte, dwpe, rowOffset, seqLen, Pool);

    public void AdamWStep(long n, float* param, float* grad, float* m, float* v, float lr, float beta1, float beta2, float eps, float weightDecay, long step)
        => AdamW.Step(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, Pool);

    public double SumOfSquares(long n, float* x) => AdamW.SumOfSquares(n, x, Pool);

    public void Scale(long n, float* x, float s) => AdamW.Scale(n, x, s, Pool);

    /// <summary>The pool belongs to the caller (or is the process default); nothing to release.</summary>
    public void Dispose()
    {
    }
}
