using System.Runtime.InteropServices;

namespace Memo.Distributed;

/// <summary>
/// The MPI C functions the communicator uses, bound to MPICH's libmpich.so.12 (Debian package mpich).
/// MPICH handles are 32-bit integers; the constants below are those of its mpi.h
/// (/usr/include/x86_64-linux-gnu/mpich/mpi.h, MPICH 4.0).
/// </summary>
internal static unsafe partial class MpiNative
{
    public const string Library = "libmpich.so.12";

    public const int Success = 0;
    public const int CommWorld = 0x44000000;
    public const int CommNull = 0x04000000;
    public const int RequestNull = 0x2c000000;
    public const int Float = 0x4c00040a;
    public const int Double = 0x4c00080b;
    public const int Int64 = 0x4c00083a;
    public const int OpMax = 0x58000001;
    public const int OpMin = 0x58000002;
    public const int OpSum = 0x58000003;
    public const int ErrorsReturn = 0x54000001;
    public const int ThreadSerialized = 2;
    public const int ThreadMultiple = 3;
    public const int MaxErrorString = 512;
    public static readonly void* StatusesIgnore = (void*)1;
    public static readonly void* InPlace = (void*)-1;

    [LibraryImport(Library)] public static partial int MPI_Initialized(int* flag);
    [LibraryImport(Library)] public static partial int MPI_Finalized(int* flag);
    [LibraryImport(Library)] public static partial int MPI_Init_thread(int* argc, byte*** argv, int required, int* provided);
    [LibraryImport(Library)] public static partial int MPI_Query_thread(int* provided);
    [LibraryImport(Library)] public static partial int MPI_Finalize();
    [LibraryImport(Library)] public static partial int MPI_Comm_rank(int comm, int* rank);
    [LibraryImport(Library)] public static partial int MPI_Comm_size(int comm, int* size);
    [LibraryImport(Library)] public static partial int MPI_Comm_split(int comm, int color, int key, int* newComm);
    [LibraryImport(Library)] public static partial int MPI_Comm_free(int* comm);
    [LibraryImport(Library)] public static partial int MPI_Comm_dup(int comm, int* newComm);
    [LibraryImport(Library)] public static partial int MPI_Comm_set_errhandler(int comm, int errhandler);
    [LibraryImport(Library)] public static partial int MPI_Isend(void* buf, int count, int datatype, int dest, int tag, int comm, int* request);
    [LibraryImport(Library)] public static partial int MPI_Irecv(void* buf, int count, int datatype, int source, int tag, int comm, int* request);
    [LibraryImport(Library)] public static partial int MPI_Testall(int count, int* requests, int* flag, void* statuses);
    [LibraryImport(Library)] public static partial int MPI_Iallreduce(void* send, void* recv, int count, int datatype, int op, int comm, int* request);
    [LibraryImport(Library)] public static partial int MPI_Iallgather(void* send, int sendCount, int sendType, void* recv, int recvCount, int recvType, int comm, int* request);
    [LibraryImport(Library)] public static partial int MPI_Ireduce_scatter_block(void* send, void* recv, int recvCount, int datatype, int op, int comm, int* request);
    [LibraryImport(Library)] public static partial int MPI_Ibarrier(int comm, int* request);
    [LibraryImport(Library)] public static partial int MPI_Error_string(int errorCode, byte* text, int* length);

    public static string ErrorString(int code)
    {
        byte* text = stackalloc byte[MaxErrorString];
        int length = 0;
        if (MPI_Error_string(code, text, &length) != Success || length <= 0) return $"MPI error {code}";
        return System.Text.Encoding.ASCII.GetString(text, Math.Min(length, MaxErrorString)).Split('\n')[0].Trim();
    }
}

/// <summary>The C library's sleep (waits shorter than the millisecond <see cref="Thread.Sleep(int)"/> offers) and environment (which native libraries read; .NET's own copy is not theirs).</summary>
internal static partial class Posix
{
    [LibraryImport("libc.so.6", EntryPoint = "usleep")] private static partial int USleep(uint microseconds);

    [LibraryImport("libc.so.6", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    /// <summary>Sets <paramref name="name"/> in the process environment unless it is set already.</summary>
    public static void SetDefaultEnvironment(string name, string value) => SetEnv(name, value, 0);

    /// <summary>Ends the process at once with <paramref name="status"/>: no managed shutdown, no atexit handlers (they could wait on the thread that is stuck).</summary>
    [LibraryImport("libc.so.6", EntryPoint = "_exit")] public static partial void Exit(int status);

    /// <summary>Sleeps at least <paramref name="microseconds"/> (plus the kernel's timer slack, 50 us by default).</summary>
    public static void SleepMicroseconds(int microseconds) => USleep((uint)microseconds);
}
