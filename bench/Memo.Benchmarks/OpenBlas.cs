using System.Runtime.InteropServices;

namespace Memo.Benchmarks;

/// <summary>
/// OpenBLAS's <c>cblas_sgemm</c>, the reference the CPU matmul is measured against. Loaded lazily
/// from the system's libopenblas; <see cref="TryLoad"/> says why when it cannot be.
/// </summary>
internal static unsafe partial class OpenBlas
{
    private const string Lib = "libopenblas.so.0";
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    /// <summary>
    /// Clears <c>OPENBLAS_CORETYPE</c> (forcing a core type, e.g. Haswell, halves OpenBLAS's speed on
    /// AVX-512 machines) before the library reads it, then loads OpenBLAS and sets its thread count.
    /// Returns null on success, else the reason it is unavailable.
    /// </summary>
    public static string? TryLoad(int threads)
    {
        string? forced = Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE");
        if (forced != null && OperatingSystem.IsLinux())
        {
            _ = Unsetenv("OPENBLAS_CORETYPE");
            Environment.SetEnvironmentVariable("OPENBLAS_CORETYPE", null);
            Console.WriteLine($"note: OPENBLAS_CORETYPE={forced} was set; cleared it so OpenBLAS detects the CPU itself");
        }
        try
        {
            SetNumThreads(threads);
            return null;
        }
        catch (DllNotFoundException e)
        {
            return $"{Lib} not found ({e.Message.Split('\n')[0]})";
        }
        catch (EntryPointNotFoundException e)
        {
            return $"{Lib} has no openblas_set_num_threads ({e.Message})";
        }
    }

    public static string Describe()
    {
        string core = Marshal.PtrToStringUTF8((nint)GetCoreName()) ?? "?";
        string config = Marshal.PtrToStringUTF8((nint)GetConfig()) ?? "?";
        return $"{config}, core {core}";
    }

    public static void Sgemm(bool transA, bool transB, int M, int N, int K,
        float* A, int lda, float* B, int ldb, float* C, int ldc, bool accumulate)
        => CblasSgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, M, N, K,
            1f, A, lda, B, ldb, accumulate ? 1f : 0f, C, ldc);

    [LibraryImport(Lib, EntryPoint = "cblas_sgemm")]
    private static partial void CblasSgemm(int order, int transA, int transB, int m, int n, int k,
        float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    [LibraryImport(Lib, EntryPoint = "openblas_set_num_threads")]
    private static partial void SetNumThreads(int threads);

    [LibraryImport(Lib, EntryPoint = "openblas_get_corename")]
    private static partial byte* GetCoreName();

    [LibraryImport(Lib, EntryPoint = "openblas_get_config")]
    private static partial byte* GetConfig();

    [LibraryImport("libc", EntryPoint = "unsetenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Unsetenv(string name);
}
