namespace Memo.Backends;

/// <summary>
/// A backend, shaped after CUDA's model: kernels that run on device memory (<see cref="IKernels"/>),
/// synchronous copies between host and device memory (the only way host code sees device data),
/// copy streams that run asynchronously beside compute and are ordered by <see cref="StreamEvent"/>s,
/// host stores that hold swapped activations, and workspace sizes chosen by the backend.
/// The model, the optimizer, initialization, checkpointing and sampling go through it; a new backend
/// implements this interface and registers a name (see docs/architecture.md).
/// </summary>
public unsafe interface IBackend : IKernels, IDisposable
{
    /// <summary>The name it is registered under (<c>--backend</c>).</summary>
    string Name { get; }

    /// <summary>Compute threads (1 for a single-threaded backend).</summary>
    int Threads { get; }

    /// <summary>Bytes of the workspace <see cref="IKernels.AttentionForward"/> and backward need for this head dimension.</summary>
    long AttentionWorkspaceBytes(int headDim);

    /// <summary>Copies host memory to device memory; returns when the copy is done.</summary>
    void CopyToDevice(void* hostSrc, void* deviceDst, long bytes);

    /// <summary>Copies device memory to host memory; returns when the copy is done (all compute before it included).</summary>
    void CopyToHost(void* deviceSrc, void* hostDst, long bytes);

    /// <summary>A copy stream that runs beside compute (a CUDA stream used for copies).</summary>
    ICopyStream CreateCopyStream(string name);

    /// <summary>A host store of <paramref name="bytes"/> for swapped activations (pinned memory on a GPU).</summary>
    IHostStore CreateHostStore(long bytes);

    /// <summary>The device memory of one model, <paramref name="capacity"/> bytes taken once (cudaMalloc on a GPU).</summary>
    IDeviceArena CreateArena(long capacity, bool poison);
}

/// <summary>
/// An ordered queue of copies between device memory and a host store that runs concurrently with compute.
/// A command may wait for an event before it starts and fire one when it is done, as cudaMemcpyAsync with
/// cudaStreamWaitEvent and cudaEventRecord do.
/// </summary>
public unsafe interface ICopyStream : IDisposable
{
    /// <summary>Queues a copy of device memory into <paramref name="store"/> at <paramref name="storeOffset"/>.</summary>
    void ToHost(void* deviceSrc, IHostStore store, long storeOffset, long bytes, StreamEvent? waitFor, StreamEvent? fire);

    /// <summary>Queues a copy from <paramref name="store"/> at <paramref name="storeOffset"/> into device memory.</summary>
    void FromHost(IHostStore store, long storeOffset, void* deviceDst, long bytes, StreamEvent? waitFor, StreamEvent? fire);

    /// <summary>Queues a NaN fill of a released device region (debug poisoning), ordered after earlier commands.</summary>
    void PoisonFill(void* deviceRegion, long bytes);

    /// <summary>Queues firing <paramref name="fire"/> after everything queued so far.</summary>
    void Record(StreamEvent fire);

    /// <summary>Blocks until every queued command has run.</summary>
    void Drain();

    /// <summary>Milliseconds spent copying since <see cref="ResetCounters"/>.</summary>
    double BusyMs { get; }

    /// <summary>Bytes copied since <see cref="ResetCounters"/>.</summary>
    long BytesCopied { get; }

    void ResetCounters();
}

/// <summary>
/// Where swapped activations wait between a layer's forward and backward. <see cref="Write"/> and
/// <see cref="Read"/> run on a copy stream's thread, one command at a time, never concurrently for one
/// store. The in-RAM store is <see cref="MemoryHostStore"/>; another tier (disk) implements the same two calls.
/// </summary>
public unsafe interface IHostStore : IDisposable
{
    long Capacity { get; }

    /// <summary>Stores <paramref name="bytes"/> from device memory at <paramref name="offset"/>.</summary>
    void Write(long offset, void* deviceSrc, long bytes);

    /// <summary>Loads <paramref name="bytes"/> at <paramref name="offset"/> into device memory.</summary>
    void Read(long offset, void* deviceDst, long bytes);
}

/// <summary>A host store in RAM (2 MiB-aligned, huge-page advised; pinned memory on a GPU backend).</summary>
public sealed unsafe class MemoryHostStore : IHostStore
{
    private readonly NativeBuffer _memory;

    public MemoryHostStore(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Capacity = bytes;
        _memory = new NativeBuffer(Math.Max(bytes, 64), zero: false);
    }

    public long Capacity { get; }

    public void Write(long offset, void* deviceSrc, long bytes)
    {
        Check(offset, bytes);
        Buffer.MemoryCopy(deviceSrc, (byte*)_memory.Pointer + offset, bytes, bytes);
    }

    public void Read(long offset, void* deviceDst, long bytes)
    {
        Check(offset, bytes);
        Buffer.MemoryCopy((byte*)_memory.Pointer + offset, deviceDst, bytes, bytes);
    }

    private void Check(long offset, long bytes)
    {
        if (offset < 0 || bytes < 0 || offset > Capacity - bytes)
            throw new ArgumentOutOfRangeException(nameof(offset), $"host store range [{offset}, {offset}+{bytes}) is outside its {Capacity} bytes");
    }

    public void Dispose() => _memory.Dispose();
}
