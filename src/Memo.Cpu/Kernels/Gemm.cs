namespace Memo.Cpu.Kernels;

/// <summary>
/// Single-precision matrix multiply, row-major.
/// C[M,N] = (accumulate ? C : 0) + op(A)[M,K] * op(B)[K,N], where op(A) is A stored (M x K, leading
/// dimension lda) or, with transA, the transpose of A stored (K x M, lda); likewise op(B) is B
/// stored (K x N, ldb) or, with transB, the transpose of B stored (N x K, ldb).
///
/// Determinism contract (the memory policies rely on it): each C[i,j] is computed with the same
/// sequence of floating-point operations whatever M, N, the tiling, the thread count, or which
/// other rows are in the call; so a row computed alone equals the same row computed in a batch.
/// </summary>
public static unsafe class Gemm
{
    public static void Multiply(bool transA, bool transB, long M, long N, long K,
        float* A, long lda, float* B, long ldb, float* C, long ldc, bool accumulate, WorkerPool? pool = null)
        => throw new NotImplementedException();
}
