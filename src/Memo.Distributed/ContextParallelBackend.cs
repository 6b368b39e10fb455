using Memo.Backends;
using Memo.Cpu;

namespace Memo.Distributed;

/// <summary>
/// A backend for one rank of a context-parallel group: the CPU backend's kernels, except that the
/// model's rows are the rank's zig-zag rows (<see cref="ZigZag"/>) of sequences C times longer.
/// Causal attention becomes <see cref="RingAttention"/> over the ring; RoPE and learned positions use
/// the rows' global positions; everything else is token-local and runs unchanged on the rank's rows.
/// The model needs no change: it plans and runs T/C rows per sequence, and the attention workspace it
/// plans (<see cref="AttentionWorkspaceBytes"/>) holds the ring's key/value and dK/dV blocks, so the
/// ring's receive buffers are planned arena buffers with the attention workspace's lifespan.
/// </summary>
/// <remarks>
/// The model's seqLen arguments are local (T/C); the global length is seqLen * C. The RoPE table the
/// model plans has T/C rows, so this backend keeps its own table of T rows (host-side on the CPU, T*D
/// floats, counted in <see cref="ExtraBytes"/>). Its frequencies are computed again for the global
/// length: dynamic RoPE scaling (<see cref="RopeFrequencies"/>) depends on the sequence length, and a
/// rank's T/C rows would give another theta than the single process's T.
/// </remarks>
public sealed unsafe class ContextParallelBackend : IBackend
{
    private readonly CpuBackend _inner;
    private readonly ICommunicator _ring;
    private readonly ModelConfig _config;
    private readonly int _maxBatch, _heads, _kvHeads, _headDim;
    private readonly long _maxLocal;
    private readonly NativeBuffer? _rope;
    private long _ropeRows;
    private RingAttention? _attention;

    /// <param name="inner">The rank's CPU backend.</param>
    /// <param name="ring">The C ranks that split each sequence, ordered by zig-zag rank.</param>
    /// <param name="config">The model (heads, head dimension, RoPE and its scaling).</param>
    /// <param name="maxBatch">Batch rows the model is built for.</param>
    /// <param name="maxLocalSeq">Rows per sequence the model is built for, T/C.</param>
    public ContextParallelBackend(CpuBackend inner, ICommunicator ring, ModelConfig config, int maxBatch, long maxLocalSeq)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(config);
        if (maxLocalSeq % 2 != 0)
            throw new MemoException($"a rank's {maxLocalSeq} rows per sequence do not split into two zig-zag chunks; use a sequence length that is a multiple of {2 * ring.Size}");
        _inner = inner;
        _ring = ring;
        _config = config;
        _maxBatch = maxBatch;
        _maxLocal = maxLocalSeq;
        _heads = config.NumHeads;
        _kvHeads = config.NumKvHeads;
        _headDim = config.HeadDim;
        if (config.Family == ModelFamily.Llama) _rope = new NativeBuffer(checked(2 * maxLocalSeq * ring.Size * (_headDim / 2) * sizeof(float)), zero: true);
    }

    public string Name => _inner.Name;

    public int Threads => _inner.Threads;

    /// <summary>C, the ranks that split a sequence.</summary>
    public int Ranks => _ring.Size;

    /// <summary>Bytes this backend holds outside the model's arena (the global RoPE table).</summary>
    public long ExtraBytes => _rope?.Bytes ?? 0;

    /// <summary>Communication time and bytes of the ring since the last <see cref="ResetStats"/>.</summary>
    public RingStats Stats => _attention?.Stats ?? default;

    public void ResetStats() => _attention?.ResetStats();

    /// <summary>Ring scratch for the largest shape: two key/value blocks, two dK/dV blocks, the kernels' workspace.</summary>
    public long AttentionWorkspaceBytes(int headDim) => WorkspaceBytes(_maxBatch, _maxLocal, _heads, _kvHeads, _headDim, Threads);

    /// <summary>
    /// Bytes of the ring scratch a rank of <paramref name="threads"/> kernel threads plans for <paramref name="batch"/> x
    /// <paramref name="localSeq"/> rows (T/C per sequence): what <see cref="AttentionWorkspaceBytes"/> asks of the arena,
    /// without building the backend (the planner lays out a rank's arena with it).
    /// </summary>
    public static long WorkspaceBytes(int batch, long localSeq, int heads, int kvHeads, int headDim, int threads) =>
        checked(RingAttention.WorkspaceFloats(Shape(batch, localSeq, heads, kvHeads, headDim), threads) * sizeof(float));

    /// <summary>The ring's shape for <paramref name="batch"/> x <paramref name="local"/> rows: two zig-zag chunks of local/2 per sequence.</summary>
    public static RingShape Shape(int batch, long local, int heads, int kvHeads, int headDim) =>
        new(batch, local / 2, heads, kvHeads, headDim, 1 / MathF.Sqrt(headDim));

    private RingAttention Ring(in AttentionShape s)
    {
        if (s.SeqLen % 2 != 0)
            throw new MemoException($"a rank's {s.SeqLen} rows per sequence do not split into two zig-zag chunks; use a sequence length that is a multiple of {2 * _ring.Size}");
        var shape = new RingShape(s.Batch, s.SeqLen / 2, s.Heads, s.KvHeads, s.HeadDim, s.Scale);
        if (_attention is null || _attention.Shape != shape)
        {
            var stats = _attention?.Stats ?? default;
            _attention = new RingAttention(_ring, shape, _inner.Pool, stats);
        }
        return _attention;
    }

    public void AttentionForward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* workspace)
    {
        if (shape.Batch == 0 || shape.SeqLen == 0) return;
        Ring(shape).Forward(q, shape.QStride, k, v, shape.KvStride, o, shape.OStride, lse, workspace);
    }

    public void AttentionBackward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* dO,
        float* dq, float* dk, float* dv, float* workspace)
    {
        if (shape.Batch == 0 || shape.SeqLen == 0) return;
        Ring(shape).Backward(q, shape.QStride, k, v, shape.KvStride, o, shape.OStride, lse, dO, dq, dk, dv, workspace);
    }

    /// <summary>
    /// Fills the model's table (its T/C rows, as given) and this backend's table of all T positions, with
    /// the frequencies of the global length T (they differ from the model's under dynamic scaling).
    /// </summary>
    public void RopeTable(long maxPos, ReadOnlySpan<double> invFreq, double scale, float* cos, float* sin)
    {
        int headDim = 2 * invFreq.Length;
        _inner.RopeTable(maxPos, invFreq, scale, cos, sin);
        if (_rope is null) throw new InvalidOperationException("this context-parallel backend was built without RoPE");
        long rows = maxPos * _ring.Size;
        if (rows * (headDim / 2) * 2 * sizeof(float) > _rope.Bytes)
            throw new InvalidOperationException($"RoPE table of {rows} positions exceeds the {_rope.Bytes} bytes reserved");
        _ropeRows = rows;
        var (globalFreq, globalScale) = RopeFrequencies.Compute(_config, rows);
        float* c = (float*)_rope.Pointer;
        _inner.RopeTable(rows, globalFreq, globalScale, c, c + rows * (headDim / 2));
    }

    public void RopeForward(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin) =>
        Rope(x, rowStride, rows, heads, headDim, rowOffset, seqLen, backward: false);

    public void RopeBackward(float* dx, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin) =>
        Rope(dx, rowStride, rows, heads, headDim, rowOffset, seqLen, backward: true);

    private void Rope(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, bool backward)
    {
        var zz = new ZigZag(seqLen * _ring.Size, _ring.Size);
        float* cos = (float*)_rope!.Pointer, sin = cos + _ropeRows * (headDim / 2);
        for (long r = rowOffset, end = rowOffset + rows; r < end;)
        {
            var (run, pos) = Run(zz, r, end);
            float* xr = x + (r - rowOffset) * rowStride;
            if (backward) _inner.RopeBackward(xr, rowStride, run, heads, headDim, pos, zz.SeqLen, cos, sin);
            else _inner.RopeForward(xr, rowStride, run, heads, headDim, pos, zz.SeqLen, cos, sin);
            r += run;
        }
    }

    public void EmbeddingForward(long rows, int c, int* tokens, float* wte, float* wpe, long rowOffset, long seqLen, float* x)
    {
        if (wpe == null)
        {
            _inner.EmbeddingForward(rows, c, tokens, wte, wpe, rowOffset, seqLen, x);
            return;
        }
        var zz = new ZigZag(seqLen * _ring.Size, _ring.Size);
        for (long r = rowOffset, end = rowOffset + rows; r < end;)
        {
            var (run, pos) = Run(zz, r, end);
            long i = r - rowOffset;
            _inner.EmbeddingForward(run, c, tokens + i, wte, wpe, pos, zz.SeqLen, x + i * c);
            r += run;
        }
    }

    public void EmbeddingBackward(long rows, int c, int* tokens, float* dx, float* dwte, float* dwpe, long rowOffset, long seqLen)
    {
        if (dwpe == null)
        {
            _inner.EmbeddingBackward(rows, c, tokens, dx, dwte, dwpe, rowOffset, seqLen);
            return;
        }
        var zz = new ZigZag(seqLen * _ring.Size, _ring.Size);
        for (long r = rowOffset, end = rowOffset + rows; r < end;)
        {
            var (run, pos) = Run(zz, r, end);
            long i = r - rowOffset;
            _inner.EmbeddingBackward(run, c, tokens + i, dx + i * c, dwte, dwpe, pos, zz.SeqLen);
            r += run;
        }
    }

    /// <summary>The run of consecutive global positions that starts at local row <paramref name="r"/> (see <see cref="ZigZag.Segments"/>), without allocating.</summary>
    private (long Rows, long Position) Run(in ZigZag zz, long r, long end)
    {
        long local = zz.LocalLen, t = r % local;
        long runEnd = Math.Min(end, r - t + (t < zz.Chunk ? zz.Chunk : local));
        return (runEnd - r, zz.GlobalPosition(_ring.Rank, t));
    }

    public void Gemm(bool transA, bool transB, long m, long n, long k, float* a, long lda, float* b, long ldb, float* c, long ldc, bool accumulate) => _inner.Gemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    public void Fill(long n, float* dst, float value) => _inner.Fill(n, dst, value);
    public void Add(long n, float* a, float* b, float* dst) => _inner.Add(n, a, b, dst);
    public void Copy(long n, float* src, float* dst) => _inner.Copy(n, src, dst);
    public void BiasForward(long rows, int cols, float* y, float* b) => _inner.BiasForward(rows, cols, y, b);
    public void BiasBackward(long rows, int cols, float* dy, float* db) => _inner.BiasBackward(rows, cols, dy, db);
    public void RmsNormForward(long rows, int c, float* x, float* w, float* y, float* rstd, float eps) => _inner.RmsNormForward(rows, c, x, w, y, rstd, eps);
    public void RmsNormBackward(long rows, int c, float* dy, float* x, float* w, float* rstd, float* dx, float* dw) => _inner.RmsNormBackward(rows, c, dy, x, w, rstd, dx, dw);
    public void LayerNormForward(long rows, int c, float* x, float* w, float* b, float* y, float* mean, float* rstd, float eps) => _inner.LayerNormForward(rows, c, x, w, b, y, mean, rstd, eps);
    public void LayerNormBackward(long rows, int c, float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db) => _inner.LayerNormBackward(rows, c, dy, x, w, mean, rstd, dx, dw, db);
    public void SwiGluForward(long rows, int f, float* gu, float* m) => _inner.SwiGluForward(rows, f, gu, m);
    public void SwiGluBackward(long rows, int f, float* dm, float* gu, float* dgu) => _inner.SwiGluBackward(rows, f, dm, gu, dgu);
    public void GeluForward(long n, float* x, float* y) => _inner.GeluForward(n, x, y);
    public void GeluBackward(long n, float* dy, float* x, float* dx) => _inner.GeluBackward(n, dy, x, dx);
    public void CrossEntropy(long rows, int vocab, float* logits, long ld, int* targets, float* losses, float gradScale) => _inner.CrossEntropy(rows, vocab, logits, ld, targets, losses, gradScale);
    public void ArgMaxRows(long rows, int vocab, float* logits, long ld, int* result) => _inner.ArgMaxRows(rows, vocab, logits, ld, result);
    public double Sum(long n, float* x) => _inner.Sum(n, x);
    public void AdamWStep(long n, float* param, float* grad, float* m, float* v, float lr, float beta1, float beta2, float eps, float weightDecay, long step) => _inner.AdamWStep(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step);
    public double SumOfSquares(long n, float* x) => _inner.SumOfSquares(n, x);
    public void Scale(long n, float* x, float s) => _inner.Scale(n, x, s);
    public void CopyToDevice(void* hostSrc, void* deviceDst, long bytes) => _inner.CopyToDevice(hostSrc, deviceDst, bytes);
    public void CopyToHost(void* deviceSrc, void* hostDst, long bytes) => _inner.CopyToHost(deviceSrc, hostDst, bytes);
    public ICopyStream CreateCopyStream(string name) => _inner.CreateCopyStream(name);
    public IHostStore CreateHostStore(long bytes) => _inner.CreateHostStore(bytes);

    public IDeviceArena CreateArena(long capacity, bool poison) => _inner.CreateArena(capacity, poison);
    public void Dispose() => _rope?.Dispose();
}
