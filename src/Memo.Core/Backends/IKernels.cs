namespace Memo.Backends;

/// <summary>
/// The ops of one transformer training step, as a backend runs them. Every pointer is a device pointer
/// (memory of the backend's arena): host code passes it along and never reads or writes through it.
/// Shapes follow the CPU kernels' conventions: row-major [rows, width], weights [out, in] (y = x W^T).
/// Each op's contract is the scalar loop of the reference backend (<c>Memo.Reference.ReferenceBackend</c>);
/// an optimized backend must match it within fp32 rounding and may reorder sums only in a fixed order.
/// </summary>
public unsafe interface IKernels
{
    /// <summary>c[M, N] (+)= op(a) op(b), op(a) = a or a^T (ld = leading dimension of the stored matrix).</summary>
    void Gemm(bool transA, bool transB, long m, long n, long k, float* a, long lda, float* b, long ldb, float* c, long ldc, bool accumulate);

    /// <summary>dst[i] = value over n elements.</summary>
    void Fill(long n, float* dst, float value);

    /// <summary>dst[i] = a[i] + b[i].</summary>
    void Add(long n, float* a, float* b, float* dst);

    /// <summary>dst[i] = src[i].</summary>
    void Copy(long n, float* src, float* dst);

    /// <summary>y[r, j] += b[j] over rows x cols.</summary>
    void BiasForward(long rows, int cols, float* y, float* b);

    /// <summary>db[j] += sum over rows of dy[r, j].</summary>
    void BiasBackward(long rows, int cols, float* dy, float* db);

    /// <summary>y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps) per row; rstd may be null.</summary>
    void RmsNormForward(long rows, int c, float* x, float* w, float* y, float* rstd, float eps);

    /// <summary>dx += dL/dx and dw += dL/dw, from the saved rstd.</summary>
    void RmsNormBackward(long rows, int c, float* dy, float* x, float* w, float* rstd, float* dx, float* dw);

    /// <summary>y = (x - mean) * rstd * w + b per row; mean and rstd may be null.</summary>
    void LayerNormForward(long rows, int c, float* x, float* w, float* b, float* y, float* mean, float* rstd, float eps);

    /// <summary>dx += dL/dx, dw += dL/dw, db += dL/db, from the saved mean and rstd.</summary>
    void LayerNormBackward(long rows, int c, float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db);

    /// <summary>
    /// Writes the RoPE cos and sin tables, each [maxPos, invFreq.Length], into device memory: angle pos x invFreq[i], both
    /// multiplied by <paramref name="scale"/> (the attention scaling of yarn-style RoPE; 1 otherwise). The frequencies
    /// come from the host (<see cref="RopeFrequencies"/>), as a kernel argument.
    /// </summary>
    void RopeTable(long maxPos, ReadOnlySpan<double> invFreq, double scale, float* cos, float* sin);

    /// <summary>Rotate-half RoPE in place on the first heads*headDim floats of each row; row r has position (rowOffset + r) % seqLen.</summary>
    void RopeForward(float* x, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin);

    /// <summary>The inverse rotation (the gradient of <see cref="RopeForward"/>), in place.</summary>
    void RopeBackward(float* dx, long rowStride, long rows, int heads, int headDim, long rowOffset, long seqLen, float* cos, float* sin);

    /// <summary>gu: rows of [g (F) | u (F)]; m = silu(g) * u.</summary>
    void SwiGluForward(long rows, int f, float* gu, float* m);

    /// <summary>Writes (overwrites) dgu, rows of [dg | du].</summary>
    void SwiGluBackward(long rows, int f, float* dm, float* gu, float* dgu);

    /// <summary>y = gelu_tanh(x).</summary>
    void GeluForward(long n, float* x, float* y);

    /// <summary>Writes (overwrites) dx = dy * gelu'(x).</summary>
    void GeluBackward(long n, float* dy, float* x, float* dx);

    /// <summary>Causal attention: o and the natural-log log-sum-exp per (row, head). workspace: <see cref="IBackend.AttentionWorkspaceBytes"/>.</summary>
    void AttentionForward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* workspace);

    /// <summary>Writes (overwrites) dq, dk, dv (strides of q, k, v) from the saved o and lse.</summary>
    void AttentionBackward(in AttentionShape shape, float* q, float* k, float* v, float* o, float* lse, float* dO,
        float* dq, float* dk, float* dv, float* workspace);

    /// <summary>
    /// Per row: losses[r] = logsumexp(row) - row[targets[r]], and the row becomes gradScale * (softmax(row) - onehot).
    /// </summary>
    void CrossEntropy(long rows, int vocab, float* logits, long ld, int* targets, float* losses, float gradScale);

    /// <summary>result[r] = index of the first largest value of row r.</summary>
    void ArgMaxRows(long rows, int vocab, float* logits, long ld, int* result);

    /// <summary>Sum of n floats in double, in index order (the loss reduction).</summary>
    double Sum(long n, float* x);

    /// <summary>x[r] = wte[tokens[r]] (+ wpe[(rowOffset + r) % seqLen] when wpe is not null).</summary>
    void EmbeddingForward(long rows, int c, int* tokens, float* wte, float* wpe, long rowOffset, long seqLen, float* x);

    /// <summary>dwte[tokens[r]] += dx[r] (and dwpe[pos(r)] += dx[r]), each element in row order.</summary>
    void EmbeddingBackward(long rows, int c, int* tokens, float* dx, float* dwte, float* dwpe, long rowOffset, long seqLen);

    /// <summary>One AdamW step (PyTorch semantics, decoupled decay); step is 1-based.</summary>
    void AdamWStep(long n, float* param, float* grad, float* m, float* v, float lr, float beta1, float beta2, float eps, float weightDecay, long step);

    /// <summary>Sum of squares of n floats, in double.</summary>
    double SumOfSquares(long n, float* x);

    /// <summary>x[i] *= s.</summary>
    void Scale(long n, float* x, float s);
}
