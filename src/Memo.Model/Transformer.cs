using Memo.Backends;
using Memo.Cpu;
using Memo.Cpu.Device;
using Memo.Model.Memory;

namespace Memo.Model;

/// <summary>
/// A decoder-only transformer (llama or gpt2 family) with explicit forward and backward passes and no
/// autograd tape. Every device buffer (parameters, gradients, optimizer moments, saved activations,
/// workspaces) sits at a fixed offset of one <see cref="IDeviceArena"/> taken from the backend, from a planned <see cref="MemoryLayout"/>
/// derived from the activation inventory; nothing is allocated inside a step. Each buffer is acquired and
/// released at the ends of its lifespan in the iteration (<see cref="ArenaSchedule"/>), so buffers whose
/// lifespans do not intersect share memory. The memory policy decides
/// where a layer's saved activations live between its forward and backward (see <see cref="Policy"/>).
/// The LM head and loss run in token chunks, fused with their backward.
/// </summary>
/// <remarks>
/// Shape letters: B batch rows, T sequence length, N = B*T token rows, C hidden size, F MLP width,
/// V vocab, Hq/Hkv heads, D head dim. All activations are row-major [N, width].
/// </remarks>
public sealed unsafe partial class Transformer : IDisposable
{
    /// <summary>Token rows per LM-head chunk: a fixed constant, so the head's gradient sums are in a fixed order.</summary>
    public const int HeadChunkRows = 256;

    private readonly IBackend _k;          // the backend's kernels and copies
    private readonly OpProfile? _profile;  // set when the backend is a ProfilingBackend: op boundaries are marked
    private readonly InventoryIndex _inv;
    private readonly IDeviceArena _arena;
    private readonly PolicyRuntime _policy;
    private readonly ArenaSchedule _schedule;
    private readonly IterationTimeline _time;
    private readonly float* _finalInput;   // (N, C) output of the last layer
    private readonly float* _finalNorm;    // (N, C) final norm output
    private readonly float* _finalMean;    // (N) gpt2 only
    private readonly float* _finalRstd;    // (N)
    private readonly float* _tmp;          // (N, C) out-projection / down-projection output
    private readonly float* _dA;           // (N, C) residual-stream gradient (ping)
    private readonly float* _dB;           // (N, C) residual-stream gradient (pong)
    private readonly float* _dH;           // (N, C) gradient of a norm output
    private readonly float* _dO;           // (N, C) gradient of the attention output
    private readonly float* _dQkv;         // (N, Qkv)
    private readonly float* _dUp;          // (N, upWidth)
    private readonly float* _dAct;         // (N, F)
    private readonly float* _logits;       // (HeadChunkRows, V)
    private readonly float* _losses;       // (N)
    private readonly int* _tokens;         // (N) inputs
    private readonly int* _targets;        // (N)
    private readonly float* _attnWork;
    private readonly float* _ropeCos;      // (T, D/2)
    private readonly float* _ropeSin;
    private readonly int[] _argmax = new int[HeadChunkRows]; // host copy of one chunk's predictions
    private readonly int* _predictions;    // (HeadChunkRows) device argmax of one head chunk

    /// <summary>A model on the CPU backend with <paramref name="pool"/> (the default pool when null).</summary>
    public Transformer(ModelConfig config, int maxBatch, int maxSeq, WorkerPool? pool = null, MemoryOptions? memory = null)
        : this(new CpuBackend(pool), config, maxBatch, maxSeq, memory)
    {
    }

    /// <summary>A model whose kernels and copies run on <paramref name="backend"/> (not disposed with the model).</summary>
    public Transformer(IBackend backend, ModelConfig config, int maxBatch, int maxSeq, MemoryOptions? memory = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (config.HasLearnedPositions && maxSeq > config.MaxPositions)
            throw new MemoException($"sequence length {maxSeq} exceeds max_position_embeddings {config.MaxPositions} of this gpt2 model; use --seq {config.MaxPositions} or less");
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSeq, 1);
        Config = config;
        MaxBatch = maxBatch;
        MaxSeq = maxSeq;
        Memory = memory ?? new MemoryOptions();
        _k = backend;
        _profile = (backend as ProfilingBackend)?.Profile;
        _inv = new InventoryIndex(config);
        Layout = new ParameterLayout(config);
        DeviceLayout = MemoryLayout.Build(config, maxBatch, maxSeq, Memory.Policy, backend);
        long capacity = Memory.DeviceBudget ?? DeviceLayout.TotalBytes;
        if (DeviceLayout.TotalBytes > capacity) throw MemoryReport.DoesNotFit(config, maxBatch, maxSeq, Memory, Workspaces.Of(backend, config), capacity);
        _arena = _k.CreateArena(capacity, Memory.Poison);

        float* Buf(BufferKind kind) => _arena.At(DeviceLayout.Offset(new BufferId(kind)), 0);
        Weights = Buf(BufferKind.Weights);
        Grads = Buf(BufferKind.Grads);
        AdamM = Buf(BufferKind.AdamM);
        AdamV = Buf(BufferKind.AdamV);
        _finalInput = Buf(BufferKind.FinalInput);
        _finalNorm = Buf(BufferKind.FinalNorm);
        _finalMean = config.Family == ModelFamily.Gpt2 ? Buf(BufferKind.FinalMean) : null;
        _finalRstd = Buf(BufferKind.FinalRstd);
        _tmp = Buf(BufferKind.Tmp);
        _dA = Buf(BufferKind.DA);
        _dB = Buf(BufferKind.DB);
        _dH = Buf(BufferKind.DH);
        _dO = Buf(BufferKind.DO);
        _dQkv = Buf(BufferKind.DQkv);
        _dUp = Buf(BufferKind.DUp);
        _dAct = Buf(BufferKind.DAct);
        _logits = Buf(BufferKind.Logits);
        _losses = Buf(BufferKind.Losses);
        _tokens = (int*)Buf(BufferKind.Tokens);
        _targets = (int*)Buf(BufferKind.Targets);
        _attnWork = Buf(BufferKind.AttentionWorkspace);
        _predictions = (int*)Buf(BufferKind.Predictions);
        if (config.Family == ModelFamily.Llama)
        {
            _ropeCos = Buf(BufferKind.RopeCos);
            _ropeSin = Buf(BufferKind.RopeSin);
            var (invFreq, scale) = RopeFrequencies.Compute(config, maxSeq);
            _k.RopeTable(maxSeq, invFreq, scale, _ropeCos, _ropeSin);
        }
        _time = DeviceLayout.Timeline;
        _schedule = new ArenaSchedule(DeviceLayout, _arena); // acquires the persistent buffers
        _policy = new PolicyRuntime(this);
    }

    public ModelConfig Config { get; }

    public ParameterLayout Layout { get; }

    /// <summary>Every device buffer and its offset.</summary>
    public MemoryLayout DeviceLayout { get; }

    public MemoryOptions Memory { get; }

    public int MaxBatch { get; }

    public int MaxSeq { get; }

    /// <summary>Parameters, fp32, in <see cref="Layout"/> order.</summary>
    public float* Weights { get; }

    /// <summary>Gradients, same layout as <see cref="Weights"/>; accumulated by <see cref="Step"/>.</summary>
    public float* Grads { get; }

    /// <summary>AdamW first moments, same layout.</summary>
    public float* AdamM { get; }

    /// <summary>AdamW second moments, same layout.</summary>
    public float* AdamV { get; }

    public IDeviceArena Arena => _arena;

    /// <summary>The backend the model runs on.</summary>
    public IBackend Backend => _k;

    private long UpWidth => ActivationInventory.UpWidth(Config);

    public float* W(int index) => index < 0 ? null : Weights + Layout.Offset(index);

    public float* G(int index) => index < 0 ? null : Grads + Layout.Offset(index);

    /// <summary>
    /// A host copy of a parameter-layout block of device memory (<see cref="Weights"/>, <see cref="Grads"/>,
    /// <see cref="AdamM"/>, <see cref="AdamV"/>), for checkpoints and reports; the caller disposes it.
    /// </summary>
    public NativeBuffer CopyBlockToHost(float* deviceBlock)
    {
        long bytes = checked(Layout.TotalElements * sizeof(float));
        var host = new NativeBuffer(bytes, zero: false);
        _k.CopyToHost(deviceBlock, host.Pointer, bytes);
        return host;
    }

    /// <summary>Copies a host block in parameter layout into a device block (see <see cref="CopyBlockToHost"/>).</summary>
    public void CopyBlockToDevice(NativeBuffer host, float* deviceBlock)
    {
        ArgumentNullException.ThrowIfNull(host);
        long bytes = checked(Layout.TotalElements * sizeof(float));
        if (host.Bytes < bytes) throw new ArgumentException($"host block holds {host.Bytes} bytes; the parameter layout needs {bytes}", nameof(host));
        _k.CopyToDevice(host.Pointer, deviceBlock, bytes);
    }

    public void ZeroGrads() => _k.Fill(Layout.TotalElements, Grads, 0f);

    /// <summary>
    /// Runs the forward pass over B rows of T tokens and, when <paramref name="backward"/>, the backward pass,
    /// adding gradients of (<paramref name="gradScale"/> x the summed cross-entropy) into <see cref="Grads"/>.
    /// Returns the mean cross-entropy over the B*T positions. When <paramref name="predictions"/> is not
    /// empty it receives the argmax token of every position.
    /// </summary>
    public double Step(int batch, int seq, ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, bool backward, float gradScale, Span<int> predictions = default)
    {
        if (batch < 1 || seq < 1 || seq > MaxSeq || (long)batch * seq > (long)MaxBatch * MaxSeq)
            throw new ArgumentException($"batch {batch} x seq {seq} exceeds the model's allocation of {MaxBatch} x {MaxSeq} tokens");
        long n = (long)batch * seq;
        if (inputs.Length != n || targets.Length != n) throw new ArgumentException("inputs and targets must hold batch*seq tokens");
        if (!predictions.IsEmpty && predictions.Length != n) throw new ArgumentException("predictions must hold batch*seq entries");
        int v = Config.VocabSize;
        for (int i = 0; i < n; i++)
        {
            if ((uint)inputs[i] >= (uint)v || (uint)targets[i] >= (uint)v)
                throw new MemoException($"token id {Math.Max(inputs[i], targets[i])} at position {i} is outside the vocabulary (vocab_size {v})");
        }

        _schedule.ReleaseAll(); // anything an interrupted step left in use
        _policy.BeginStep(batch, seq, backward);
        _schedule.Enter(IterationTimeline.Begin);
        fixed (int* i = inputs) _k.CopyToDevice(i, _tokens, n * sizeof(int));
        fixed (int* t = targets) _k.CopyToDevice(t, _targets, n * sizeof(int));
        Forward(batch, seq);
        double loss = Head(n, backward, gradScale, predictions);
        if (backward) Backward(batch, seq);
        _policy.EndStep();
        return loss;
    }

    /// <summary>Runs the forward pass over one sequence and writes the logits of its last position.</summary>
    public void LastLogits(ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int seq = tokens.Length, v = Config.VocabSize, c = Config.HiddenSize;
        if (seq < 1 || seq > MaxSeq) throw new ArgumentException($"sequence of {seq} tokens exceeds the model's allocation of {MaxSeq}");
        if (logits.Length != v) throw new ArgumentException("logits must hold vocab_size entries");
        foreach (int t in tokens)
        {
            if ((uint)t >= (uint)v) throw new MemoException($"token id {t} is outside the vocabulary (vocab_size {v})");
        }
        _schedule.ReleaseAll();
        _policy.BeginStep(1, seq, backward: false);
        _schedule.Enter(IterationTimeline.Begin);
        fixed (int* t = tokens) _k.CopyToDevice(t, _tokens, (long)seq * sizeof(int));
        Forward(1, seq);
        _schedule.Enter(_time.Head);
        _k.Gemm(false, true, 1, v, c, _finalNorm + (long)(seq - 1) * c, c, W(Layout.Head), c, _logits, v, accumulate: false);
        fixed (float* l = logits) _k.CopyToHost(_logits, l, (long)v * sizeof(float));
        _policy.EndStep();
    }

    /// <summary>Bytes of the host store for swapped activations (0 for keep and recompute).</summary>
    public long HostStoreBytes => _policy.HostCapacity;

    /// <summary>Bytes of the host store kept in RAM; with a disk tier the rest of <see cref="HostStoreBytes"/> is on disk.</summary>
    public long HostRamBytes => _policy.RamTierBytes;

    /// <summary>The disk tier (null without one): its directory and access mode.</summary>
    public Memo.Cpu.Device.DiskHostStore? DiskTier => _policy.Disk;

    /// <summary>The disk tier's bandwidth, probed when the model was built (null without a disk tier).</summary>
    public Memo.Cpu.Device.DiskBandwidth? DiskProbe => _policy.DiskProbe;

    /// <summary>The current memo alpha (1 for swap, 0 for keep and recompute).</summary>
    public double Alpha => Memory.Policy switch { PolicyKind.Memo => _policy.Alpha, PolicyKind.Swap => 1, _ => 0 };

    /// <summary>Measured memory and copy figures of the last step.</summary>
    public StepMemoryMetrics LastMetrics => _policy.Metrics;

    private void Forward(int batch, int seq)
    {
        long n = (long)batch * seq;
        var c = Config;
        _schedule.Enter(IterationTimeline.Embed);
        _k.EmbeddingForward(n, c.HiddenSize, _tokens, W(Layout.Embed), W(Layout.Positions), 0, seq, _policy.InputOf(0));
        for (int l = 0; l < c.NumLayers; l++)
        {
            var lb = _policy.BeginForward(l);
            PreAttention(lb, 0, n, seq);
            AttentionForward(lb, batch, seq);
            _policy.BeforeOutput(l);
            PostAttention(lb, 0, n, lb.Output, _tmp);
            _policy.EndForward(l);
        }
        _schedule.Enter(_time.FinalNorm);
        Norm(_finalInput, Layout.NormF, Layout.NormFBias, _finalNorm, _finalMean, _finalRstd, 0, n);
    }

    private void Backward(int batch, int seq)
    {
        long n = (long)batch * seq;
        var c = Config;
        // The head left dL/d(final norm output) in _dH.
        _schedule.Enter(_time.FinalNormBackward);
        _k.Fill(n * c.HiddenSize, _dA, 0f);
        NormBackward(_dH, _finalInput, Layout.NormF, Layout.NormFBias, _finalMean, _finalRstd, _dA, n);
        float* dy = _dA, dx = _dB;
        for (int l = c.NumLayers - 1; l >= 0; l--)
        {
            var lb = _policy.BeginBackward(l, batch, seq);
            LayerBackward(lb, batch, seq, dy, dx);
            _policy.EndBackward(l);
            float* t = dy;
            dy = dx;
            dx = t;
        }
        _schedule.Enter(_time.EmbedBackward);
        _k.EmbeddingBackward(n, c.HiddenSize, _tokens, dy, G(Layout.Embed), G(Layout.Positions), 0, seq);
    }

    public void Dispose()
    {
        _policy.Dispose();
        _arena.Dispose();
    }
}
