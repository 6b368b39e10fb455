using System.Diagnostics;
using Memo.Backends;
using Memo.Cpu.Device;
using Memo.Model.Memory;
using static Memo.Quantities;

namespace Memo.Model;

/// <summary>Measured memory and copy figures of one step (the policy fields of the training log).</summary>
public sealed record StepMemoryMetrics(long DevicePeakBytes, long HostPeakBytes, long SwappedBytes, long RecomputedTokens,
    double CopyMs, double ExposedCopyMs, double Alpha, double LayerForwardMs, double RecomputeMs = 0)
{
    /// <summary>Bytes the step wrote to the disk tier.</summary>
    public long DiskWrittenBytes { get; init; }

    /// <summary>Bytes the step read back from the disk tier.</summary>
    public long DiskReadBytes { get; init; }

    /// <summary>Milliseconds the copy stream spent in disk reads and writes (overlapped with compute where hidden).</summary>
    public double DiskIoMs { get; init; }

    /// <summary>The part of <see cref="ExposedCopyMs"/> spent waiting for layers that live (partly) on disk.</summary>
    public double DiskWaitMs { get; init; }
}

public sealed unsafe partial class Transformer
{
    /// <summary>
    /// Where each layer's saved activations live between its forward and backward, and the copies and
    /// recomputation that move them.
    /// <code>
    /// keep       every layer's set stays in the arena
    /// recompute  layer inputs stay; one shared set is refilled by re-running the layer in backward
    /// swap/memo  two staging slots (layer l uses slot l%2) and a host store:
    ///   forward   layer l computes into slot l%2; then copy-out l -> host (copy engine) while l+1 computes;
    ///             layer l waits for copy-out of l-1 before writing its output into slot (l+1)%2
    ///   backward  layers L-1, L-2 are still in their slots; when layer l's backward is done, slot l%2 is
    ///             refilled with layer l-2 (prefetch) while l-1 computes
    ///   memo      skeleton rows (input, attention out, lse) go out whole; the other rows only for tokens
    ///             [0, alpha*N); tokens [alpha*N, N) are recomputed token-wise from the skeleton, attention excluded
    /// </code>
    /// </summary>
    private sealed class PolicyRuntime : IDisposable
    {
        private readonly Transformer _m;
        private readonly PolicyKind _policy;
        private readonly int _layers;
        private readonly LayerBuffers[] _sets;      // keep/recompute: one per layer; swap/memo: the two slots
        private readonly long[][] _setOffsets;      // arena offset of each row of each set (-1 when absent)
        private readonly ICopyStream? _copy;
        private readonly IHostStore? _host;
        private readonly DiskHostStore? _disk;
        private readonly bool[]? _layerOnDisk;      // [layer]: some of its swapped bytes live on disk
        private readonly OpProfile? _profile;
        private double _diskWaitMs;
        private readonly long[][]? _hostOffsets;    // [layer][row]
        private readonly StreamEvent[] _outDone;
        private readonly StreamEvent[] _inDone;
        private readonly bool[] _outQueued;
        private readonly long[] _rowBytesPerToken;
        private readonly bool[] _swapAllTokens;      // per row: skeleton (all tokens) vs token-local (alpha share)
        private readonly long _hostCapacity;
        private readonly double _alphaHost;
        private double _alpha;
        private bool _alphaMeasured;
        private int _batch;
        private int _seq;
        private long _n;
        private bool _backward;
        private long[] _swapRows = [];         // per layer: tokens whose token-local rows are swapped this step
        private double[] _alphas = [];         // per layer: the memo alpha (fixed, or chosen by the one rule)
        private long _swappedBytes;
        private long _recomputedTokens;
        private double _exposedMs;
        private double _forwardMs;
        private long _forwardStart;
        private long _hostPeak;
        private double _recomputeMs;

        public PolicyRuntime(Transformer m)
        {
            _m = m;
            _profile = m._profile;
            var cfg = m.Config;
            var layout = m.DeviceLayout;
            _policy = m.Memory.Policy;
            _layers = cfg.NumLayers;
            var rows = m._inv.Rows;
            _rowBytesPerToken = rows.Select((r, i) => m._inv.Width[i] * 4).ToArray();
            _swapAllTokens = rows.Select(r => r.Kind == ActivationKind.Skeleton || _policy == PolicyKind.Swap).ToArray();
            _outDone = Enumerable.Range(0, _layers).Select(l => new StreamEvent($"out{l}")).ToArray();
            _inDone = Enumerable.Range(0, _layers).Select(l => new StreamEvent($"in{l}")).ToArray();
            _outQueued = new bool[_layers];

            int sets = _policy is PolicyKind.Keep or PolicyKind.Recompute ? _layers : 2;
            _sets = new LayerBuffers[sets];
            _setOffsets = new long[sets][];
            for (int s = 0; s < sets; s++)
            {
                var lb = new LayerBuffers(rows.Count) { Layer = s };
                _setOffsets[s] = new long[rows.Count];
                for (int i = 0; i < rows.Count; i++)
                {
                    _setOffsets[s][i] = -1;
                    if (!rows[i].NeededByBackward) continue;
                    var id = _policy switch
                    {
                        PolicyKind.Keep => BufferId.LayerActivation(s, i),
                        PolicyKind.Recompute => rows[i].Producer == LayerOp.LayerInput ? BufferId.LayerActivation(s, i) : BufferId.RecomputeActivation(i),
                        _ => BufferId.StagingActivation(s, i),
                    };
                    _setOffsets[s][i] = layout.Offset(id);
                    lb.Saved[i] = m._arena.At(_setOffsets[s][i], 0);
                }
                _sets[s] = lb;
            }

            if (_policy is PolicyKind.Swap or PolicyKind.Memo)
            {
                long n = (long)m.MaxBatch * m.MaxSeq;
                var (skel, rest) = SwapBytesPerToken();
                int swapped = MemoryPolicy.SwappedLayers(_layers);
                // With a disk tier, the host budget bounds the RAM tier only: what does not fit goes to disk.
                bool onDisk = m.Memory.HostStore.OnDisk;
                // A fixed alpha (or the mean of a per-layer vector) is checked against the host budget by the one rule.
                double? fixedAlpha = HostBudget.FixedAlpha(m.Memory, _layers);
                _alphaHost = HostBudget.MaxAlpha(_policy, _layers, skel, rest, n, onDisk ? null : m.Memory.HostBudget, fixedAlpha);
                _alphas = new double[_layers];
                if (m.Memory.Alphas is { } fixedAlphas)
                {
                    // One alpha per layer (the last two layers' values are unused: they are not swapped).
                    for (int l = 0; l < _layers; l++) _alphas[l] = fixedAlphas[l];
                    _alpha = fixedAlpha!.Value;
                    _alphaMeasured = true;
                }
                else if (m.Memory.Alpha is double a)
                {
                    _alpha = a;
                    _alphaMeasured = true;
                }
                else
                {
                    _alpha = _policy == PolicyKind.Swap ? 1.0 : _alphaHost;
                    _alphaMeasured = _policy == PolicyKind.Swap;
                }
                if (m.Memory.Alphas is null) Array.Fill(_alphas, _alpha);
                _swapRows = new long[_layers];
                _hostOffsets = new long[_layers][];
                var layerEnd = new long[_layers];
                long off = 0;
                for (int l = 0; l < _layers; l++)
                {
                    _hostOffsets[l] = new long[rows.Count];
                    // A fixed vector sizes each layer by its own alpha; a chosen alpha may grow up to the host bound.
                    double alphaMax = _policy == PolicyKind.Swap ? 1.0 : m.Memory.Alphas != null ? _alphas[l] : Math.Max(_alpha, _alphaHost);
                    long maxSwapRows = MemoryPolicy.SwappedTokens(alphaMax, n);
                    for (int i = 0; i < rows.Count; i++)
                    {
                        _hostOffsets[l][i] = -1;
                        if (l >= swapped || !rows[i].NeededByBackward) continue;
                        _hostOffsets[l][i] = off;
                        long bytes = (_swapAllTokens[i] ? n : maxSwapRows) * _rowBytesPerToken[i];
                        off += onDisk ? DiskHostStore.AlignUp(bytes) : bytes; // direct I/O wants 4 KiB-aligned regions
                    }
                    layerEnd[l] = off;
                }
                _hostCapacity = off;
                (_host, _disk, RamTierBytes) = CreateStore(m, off);
                _layerOnDisk = new bool[_layers];
                for (int l = 0; l < swapped; l++)
                    _layerOnDisk[l] = _disk != null && layerEnd[l] > RamTierBytes;
                _copy = m._k.CreateCopyStream("memo-copy");
            }
            else
            {
                _alpha = 1.0;
            }
        }

        public StepMemoryMetrics Metrics { get; private set; } = new(0, 0, 0, 0, 0, 0, 0, 0, 0);

        public double Alpha => _alpha;

        /// <summary>Each layer's memo alpha (one value per layer; the last two layers are not swapped).</summary>
        public IReadOnlyList<double> Alphas => _alphas;

        /// <summary>Swapped tokens over all tokens, averaged over the swapped layers (the alpha a step ran at).</summary>
        private double SwappedShare()
        {
            int swapped = MemoryPolicy.SwappedLayers(_layers);
            if (swapped == 0 || _n == 0) return (double)(_swapRows.Length > 0 ? _swapRows[0] : 0) / Math.Max(1, _n);
            double sum = 0;
            for (int l = 0; l < swapped; l++) sum += _swapRows[l];
            return sum / swapped / _n;
        }

        public long HostCapacity => _hostCapacity;

        /// <summary>Bytes of the host store kept in RAM; the rest (<see cref="HostCapacity"/> minus this) is on disk.</summary>
        public long RamTierBytes { get; }

        /// <summary>The disk tier's probed bandwidth (null without a disk tier).</summary>
        public DiskBandwidth? DiskProbe { get; private set; }

        /// <summary>The disk tier's directory and access mode (null without a disk tier).</summary>
        public DiskHostStore? Disk => _disk;

        /// <summary>
        /// The store for <paramref name="capacity"/> bytes: the backend's RAM store, or with <c>--host-store disk</c>
        /// RAM up to --host-memory (a multiple of 4 KiB) and a disk file for the rest, whose bandwidth is probed before its first use.
        /// </summary>
        private (IHostStore Store, DiskHostStore? Disk, long RamBytes) CreateStore(Transformer m, long capacity)
        {
            var spec = m.Memory.HostStore;
            if (!spec.OnDisk) return (m._k.CreateHostStore(capacity), null, capacity);
            long ram = Math.Min(capacity, (m.Memory.HostBudget ?? 0) / DiskHostStore.Alignment * DiskHostStore.Alignment);
            if (ram == capacity) return (m._k.CreateHostStore(capacity), null, capacity);
            var disk = new DiskHostStore(spec.DiskDirectory!, capacity - ram, spec.Disk);
            IHostStore? ramStore = null;
            try
            {
                DiskProbe = Memo.Cpu.Device.DiskProbe.Measure(disk, spec.ProbeBytes); // through the store itself: no extra space
                if (ram > 0) ramStore = m._k.CreateHostStore(ram);
                return (new TieredHostStore(ramStore, disk), disk, ram);
            }
            catch
            {
                ramStore?.Dispose();
                disk.Dispose();
                throw;
            }
        }

        /// <summary>Skeleton and token-local bytes per token of one layer's saved set (fp32 rows of the inventory).</summary>
        public (long Skeleton, long TokenLocal) SwapBytesPerToken()
        {
            return ActivationInventory.SavedBytesPerToken(_m.Config, sizeof(float));
        }

        private bool Swapping => _policy is PolicyKind.Swap or PolicyKind.Memo;

        private bool IsSwapped(int layer) => Swapping && _backward && MemoryPolicy.IsSwapped(layer, _layers);

        private int SetOf(int layer) => Swapping ? layer % 2 : layer;

        private LayerBuffers SetFor(int layer)
        {
            var lb = _sets[SetOf(layer)];
            lb.Layer = layer;
            lb.Output = layer + 1 < _layers ? InputOf(layer + 1) : _m._finalInput;
            return lb;
        }

        public float* InputOf(int layer) => _sets[SetOf(layer)].Saved[_m._inv.Input];

        public void BeginStep(int batch, int seq, bool backward)
        {
            _batch = batch;
            _seq = seq;
            _n = (long)batch * seq;
            _backward = backward;
            for (int l = 0; l < _swapRows.Length; l++) _swapRows[l] = _policy == PolicyKind.Memo ? MemoryPolicy.SwappedTokens(_alphas[l], _n) : _n;
            _swappedBytes = 0;
            _recomputedTokens = 0;
            _exposedMs = 0;
            _forwardMs = 0;
            _hostPeak = 0;
            _recomputeMs = 0;
            _diskWaitMs = 0;
            _disk?.ResetCounters();
            Array.Clear(_outQueued);
            foreach (var e in _outDone) e.Reset();
            foreach (var e in _inDone) e.Reset();
            _copy?.ResetCounters();
            _m._arena.ResetPeak();
        }

        public LayerBuffers BeginForward(int layer)
        {
            _forwardStart = Stopwatch.GetTimestamp();
            _m._schedule.Enter(_m._time.Attention(layer));
            return SetFor(layer);
        }

        /// <summary>Before layer <paramref name="layer"/> writes its output (the next layer's input).</summary>
        public void BeforeOutput(int layer)
        {
            if (Swapping && layer >= 1 && layer + 1 < _layers && _outQueued[layer - 1]) Wait(_outDone[layer - 1], layer - 1);
            _m._schedule.Enter(_m._time.Mlp(layer));
        }

        public void EndForward(int layer)
        {
            _forwardMs += Stopwatch.GetElapsedTime(_forwardStart).TotalMilliseconds;
            if (!IsSwapped(layer)) return;
            // Copy-out on the copy engine; compute goes on with the next layer.
            var lb = _sets[SetOf(layer)];
            var rows = _m._inv.Rows;
            long hostEnd = 0;
            for (int i = 0; i < rows.Count; i++)
            {
                if (lb.Saved[i] == null) continue;
                long bytes = (_swapAllTokens[i] ? _n : _swapRows[layer]) * _rowBytesPerToken[i];
                _copy!.ToHost(lb.Saved[i], _host!, _hostOffsets![layer][i], bytes, null, null);
                _swappedBytes += bytes;
                hostEnd = Math.Max(hostEnd, _hostOffsets[layer][i] + bytes);
            }
            _hostPeak = Math.Max(_hostPeak, hostEnd);
            if (_m._arena.Poison) PoisonSet(SetOf(layer));
            _copy!.Record(_outDone[layer]);
            _outQueued[layer] = true;
        }

        public LayerBuffers BeginBackward(int layer, int batch, int seq)
        {
            _m._schedule.Enter(_m._time.Backward(layer));
            var lb = SetFor(layer);
            lb.Output = _m._dO; // recomputation never touches the next layer's input
            if (Swapping && IsSwapped(layer)) Wait(_inDone[layer], layer);
            long t0 = Stopwatch.GetTimestamp();
            _profile?.BeginRecompute();
            switch (_policy)
            {
                case PolicyKind.Recompute:
                    _m.PreAttention(lb, 0, _n, seq);
                    _m.AttentionForward(lb, batch, seq);
                    _m.PostAttention(lb, 0, _n, _m._dO, _m._dH);
                    _recomputedTokens += _n;
                    break;
                case PolicyKind.Memo:
                    if (IsSwapped(layer) && _swapRows[layer] < _n)
                    {
                        long r0 = _swapRows[layer], rows = _n - _swapRows[layer];
                        _m.PreAttention(lb, r0, rows, seq);
                        _m.PostAttention(lb, r0, rows, _m._dO, _m._dH);
                        _recomputedTokens += rows;
                    }
                    break;
            }
            _profile?.EndRecompute();
            _recomputeMs += Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            return lb;
        }

        public void EndBackward(int layer)
        {
            switch (_policy)
            {
                case PolicyKind.Keep:
                    break; // the set is released on entering the next phase
                case PolicyKind.Recompute:
                    if (_m._arena.Poison) PoisonSet(0, skipInput: true);
                    break;
                case PolicyKind.Swap:
                case PolicyKind.Memo:
                    int next = layer - 2;
                    if (next >= 0 && IsSwapped(next))
                    {
                        int s = SetOf(next);
                        if (_m._arena.Poison) PoisonSet(s);
                        var lb = _sets[s];
                        var rows = _m._inv.Rows;
                        for (int i = 0; i < rows.Count; i++)
                        {
                            if (lb.Saved[i] == null) continue;
                            long bytes = (_swapAllTokens[i] ? _n : _swapRows[next]) * _rowBytesPerToken[i];
                            _copy!.FromHost(_host!, _hostOffsets![next][i], lb.Saved[i], bytes, null, null);
                        }
                        _copy!.Record(_inDone[next]);
                    }
                    break;
            }
        }

        public void EndStep()
        {
            _copy?.Drain();
            if (_backward) _m._schedule.Enter(_m._time.StepEnd);
            _m._schedule.ReleaseAll();
            double copyMs = _copy?.BusyMs ?? 0;
            long bytesCopied = _copy?.BytesCopied ?? 0;
            double layerMs = _layers > 0 ? _forwardMs / _layers : 0;
            if (_policy == PolicyKind.Memo && !_alphaMeasured && _backward && bytesCopied > 0 && copyMs > 0)
            {
                // alpha from measured compute time per layer and measured copy bandwidth (bytes per ms).
                double bandwidth = bytesCopied / copyMs;
                // A layer on disk moves at most at the disk's speed: the slower tier bounds alpha (probe, bytes per ms).
                if (DiskProbe != null && _layerOnDisk!.Any(x => x)) bandwidth = Math.Min(bandwidth, DiskProbe.SlowerBytesPerSecond / 1000);
                var (skel, rest) = SwapBytesPerToken();
                double bytesHidden = bandwidth * layerMs;
                double alphaBw = MemoryPolicy.AlphaForLink(bytesHidden, (double)skel * _n, (double)rest * _n);
                _alpha = Math.Min(_alphaHost, alphaBw);
                Array.Fill(_alphas, _alpha);
                _alphaMeasured = true;
            }
            Metrics = new StepMemoryMetrics(_m._arena.PeakBytes, _hostPeak, _swappedBytes, _recomputedTokens, copyMs, _exposedMs,
                _policy == PolicyKind.Memo ? SwappedShare() : (Swapping ? 1 : 0), layerMs, _recomputeMs)
            {
                DiskWrittenBytes = _disk?.BytesWritten ?? 0,
                DiskReadBytes = _disk?.BytesRead ?? 0,
                DiskIoMs = _disk?.IoMs ?? 0,
                DiskWaitMs = _diskWaitMs,
            };
        }

        /// <summary>Waits for a copy of <paramref name="layer"/>'s set; the wait is exposed copy time, disk wait when the layer lives on disk.</summary>
        private void Wait(StreamEvent e, int layer)
        {
            double ms = e.Synchronize();
            _exposedMs += ms;
            bool disk = _layerOnDisk != null && _layerOnDisk[layer];
            if (disk) _diskWaitMs += ms;
            _profile?.AddMs(disk ? ProfileOp.DiskWait : ProfileOp.CopyWait, ms);
        }

        /// <summary>Queues NaN fills of a slot on the copy engine (ordered after its copies), or fills at once without one.</summary>
        private void PoisonSet(int s, bool skipInput = false)
        {
            var rows = _m._inv.Rows;
            for (int i = 0; i < rows.Count; i++)
            {
                if (_setOffsets[s][i] < 0 || (skipInput && i == _m._inv.Input)) continue;
                long bytes = _n * _rowBytesPerToken[i];
                if (_copy != null) _copy.PoisonFill(_m._arena.Base + _setOffsets[s][i], bytes);
                else _m._k.Fill(bytes / sizeof(float), (float*)(_m._arena.Base + _setOffsets[s][i]), float.NaN);
            }
        }

        public void Dispose()
        {
            _copy?.Dispose();
            _host?.Dispose();
        }
    }
}
