using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Memo.Backends;
using Memo.Cpu;
using Memo.Planner;

namespace Memo.Model.Memory;

/// <summary>Categories of the device-memory report.</summary>
public enum MemoryCategory
{
    Parameters,
    Gradients,
    OptimizerState,
    KeptActivations,
    SwapStaging,
    RecomputeBuffers,
    Workspaces,
}

/// <summary>
/// One device buffer of an iteration, live during [<see cref="Lower"/>, <see cref="Upper"/>) of the
/// <see cref="IterationTimeline"/>. Layer is the layer index for buffers of one layer (-1 otherwise); Row is
/// the inventory row of a saved activation or -1.
/// </summary>
public sealed record DeviceBuffer(string Name, MemoryCategory Category, long Bytes, long Lower, long Upper, int Layer = -1, int Row = -1)
{
    /// <summary>True for buffers that outlive the iteration (acquired once, when the model is built).</summary>
    public bool Persistent { get; init; }
}

/// <summary>
/// Every device buffer Memo needs for a model, batch shape and policy, derived from the activation
/// inventory and the kernels' workspace needs, with its lifespan in the <see cref="IterationTimeline"/> and
/// its offset in the device arena. Offsets come from planning the buffers as a dynamic storage allocation
/// problem (<see cref="Problem"/>): buffers whose lifespans do not intersect may share addresses, and the
/// arena is the planned peak. Pure arithmetic: it allocates no device memory, so a run can be checked
/// against a budget (and the planner can report it) before any memory is taken.
/// </summary>
public sealed class MemoryLayout
{
    /// <summary>Every offset is a multiple of this many bytes.</summary>
    public const int Align = 256;

    /// <summary>Planned peaks within this factor of the lower bound are taken from the first (flat) plan.</summary>
    public const double TargetRatio = 1.005;

    private static readonly ConcurrentDictionary<(ModelConfig, int, int, PolicyKind, Workspaces), MemoryLayout> Cache = new();
    private const int CacheLimit = 512;

    private readonly Dictionary<string, int> _index = [];
    private readonly List<DeviceBuffer> _buffers = [];
    private long[] _offsets = [];

    private MemoryLayout(ModelConfig cfg, int batch, int seq, PolicyKind policy)
    {
        Config = cfg;
        Batch = batch;
        Seq = seq;
        Policy = policy;
        Timeline = new IterationTimeline(cfg.NumLayers);
    }

    public ModelConfig Config { get; }
    public int Batch { get; }
    public int Seq { get; }
    public PolicyKind Policy { get; }

    public IterationTimeline Timeline { get; }

    public IReadOnlyList<DeviceBuffer> Buffers => _buffers;

    /// <summary>Bytes of the arena: the planned peak, max(offset + bytes) over all buffers.</summary>
    public long TotalBytes { get; private set; }

    /// <summary>Most bytes live at one time step: no plan of these buffers can need less than this.</summary>
    public long LowerBound { get; private set; }

    /// <summary>The first time step at which <see cref="LowerBound"/> bytes are live.</summary>
    public long PeakTime { get; private set; }

    /// <summary>The buffers as an offset-assignment problem (ids = buffer names, sizes = bytes, alignment <see cref="Align"/>).</summary>
    public Problem Problem { get; private set; } = new([]);

    /// <summary>How the offsets were found ("bestfit", "bilevel/bestfit"), for reports.</summary>
    public string Solver { get; private set; } = "";

    /// <summary>Wall-clock seconds the planning of this layout took (the first time: later calls reuse it from a cache).</summary>
    public double PlanSeconds { get; private set; }

    public long Offset(string name) => _offsets[_index[name]];

    public bool Contains(string name) => _index.ContainsKey(name);

    public long OffsetOf(int i) => _offsets[i];

    /// <summary>Index of the buffer called <paramref name="name"/>.</summary>
    public int IndexOf(string name) => _index[name];

    /// <summary>Bytes per category, for the memory report (their sum exceeds the peak where buffers share memory).</summary>
    public IReadOnlyDictionary<MemoryCategory, long> ByCategory =>
        Enum.GetValues<MemoryCategory>().ToDictionary(c => c, c => _buffers.Where(b => b.Category == c).Sum(b => b.Bytes));

    /// <summary>Bytes per category live at time step <paramref name="t"/> (at <see cref="PeakTime"/> they add up to <see cref="LowerBound"/>).</summary>
    public IReadOnlyDictionary<MemoryCategory, long> LiveByCategory(long t) =>
        Enum.GetValues<MemoryCategory>().ToDictionary(c => c, c => _buffers.Where(b => b.Category == c && b.Lower <= t && t < b.Upper).Sum(b => b.Bytes));

    /// <summary>Name of saved-activation buffer <paramref name="row"/> in the set <paramref name="set"/> (a layer index, or "slot0"/"slot1"/"recompute").</summary>
    public static string ActivationName(string set, string row) => $"act.{set}.{row}";

    /// <summary>
    /// The layout of <paramref name="cfg"/> for <paramref name="batch"/> x <paramref name="seq"/> tokens under
    /// <paramref name="policy"/>, planned. Layouts are cached by their arguments (they are immutable);
    /// <paramref name="cached"/> false plans afresh.
    /// </summary>
    public static MemoryLayout Build(ModelConfig cfg, int batch, int seq, PolicyKind policy, int threads, bool cached = true)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        return Build(cfg, batch, seq, policy, Workspaces.ForCpu(threads, cfg), cached);
    }

    /// <summary>The layout for a backend: its workspaces are sized by <paramref name="backend"/>.</summary>
    public static MemoryLayout Build(ModelConfig cfg, int batch, int seq, PolicyKind policy, IBackend backend, bool cached = true)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        ArgumentNullException.ThrowIfNull(backend);
        return Build(cfg, batch, seq, policy, Workspaces.Of(backend, cfg), cached);
    }

    /// <summary>The layout with explicit workspace sizes.</summary>
    public static MemoryLayout Build(ModelConfig cfg, int batch, int seq, PolicyKind policy, Workspaces workspaces, bool cached = true)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        var key = (cfg, batch, seq, policy, workspaces);
        if (cached && Cache.TryGetValue(key, out var hit)) return hit;
        var layout = Describe(cfg, batch, seq, policy, workspaces);
        layout.Plan();
        if (Cache.Count >= CacheLimit) Cache.Clear();
        Cache.TryAdd(key, layout);
        return layout;
    }

    /// <summary>The buffers and lifespans of one iteration, not yet planned (every offset 0).</summary>
    private static MemoryLayout Describe(ModelConfig cfg, int batch, int seq, PolicyKind policy, Workspaces workspaces)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(seq, 1);
        var m = new MemoryLayout(cfg, batch, seq, policy);
        var t = m.Timeline;
        int layers = cfg.NumLayers;
        long n = (long)batch * seq, c = cfg.HiddenSize, f = cfg.IntermediateSize;
        long paramBytes = checked(new ParameterLayout(cfg).TotalElements * 4);
        m.AddPersistent("weights", MemoryCategory.Parameters, paramBytes);
        m.AddPersistent("grads", MemoryCategory.Gradients, paramBytes);
        m.AddPersistent("adam_m", MemoryCategory.OptimizerState, paramBytes);
        m.AddPersistent("adam_v", MemoryCategory.OptimizerState, paramBytes);
        if (cfg.Family == ModelFamily.Llama)
        {
            long table = (long)seq * (cfg.HeadDim / 2) * 4;
            m.AddPersistent("rope_cos", MemoryCategory.Workspaces, table);
            m.AddPersistent("rope_sin", MemoryCategory.Workspaces, table);
        }
        m.Add("tokens", MemoryCategory.Workspaces, n * 4, IterationTimeline.Begin, t.EmbedBackward + 1);
        m.Add("targets", MemoryCategory.Workspaces, n * 4, IterationTimeline.Begin, t.Head + 1);

        // Saved activations. A layer's input is written by the previous layer's MLP phase (layer 0's by
        // the embedding); its other rows by its own forward. Kept sets live until their layer's backward.
        var rows = ActivationInventory.For(cfg);
        long InputLower(int l) => l == 0 ? IterationTimeline.Embed : t.Mlp(l - 1);
        for (int i = 0; i < rows.Count; i++)
        {
            var r = rows[i];
            if (!r.NeededByBackward) continue;
            long bytes = checked(r.Elements(cfg, n) * 4);
            bool isInput = r.Producer == LayerOp.LayerInput;
            switch (policy)
            {
                case PolicyKind.Keep:
                    for (int l = 0; l < layers; l++)
                        m.Add(ActivationName(Set(l), r.Name), MemoryCategory.KeptActivations, bytes, isInput ? InputLower(l) : t.Attention(l), t.Backward(l) + 1, l, i);
                    break;
                case PolicyKind.Recompute:
                    if (isInput)
                    {
                        for (int l = 0; l < layers; l++)
                            m.Add(ActivationName(Set(l), r.Name), MemoryCategory.KeptActivations, bytes, InputLower(l), t.Backward(l) + 1, l, i);
                    }
                    else
                    {
                        // One set, refilled by every layer's forward and by every recomputation in backward.
                        m.Add(ActivationName("recompute", r.Name), MemoryCategory.RecomputeBuffers, bytes, t.Attention(0), t.Backward(0) + 1, -1, i);
                    }
                    break;
                case PolicyKind.Swap:
                case PolicyKind.Memo:
                    // Staging slots: in use (by compute or by the copy engine) until the step's copies are drained.
                    m.Add(ActivationName("slot0", r.Name), MemoryCategory.SwapStaging, bytes, IterationTimeline.Embed, t.StepEnd, -1, i);
                    m.Add(ActivationName("slot1", r.Name), MemoryCategory.SwapStaging, bytes, IterationTimeline.Embed, t.StepEnd, -1, i);
                    break;
            }
        }
        m.Add("attn_work", MemoryCategory.Workspaces, workspaces.AttentionBytes, t.Attention(0), t.Backward(0) + 1);
        // Out/down-projection output of the forward (recomputation in backward uses d_h instead).
        m.Add("tmp", MemoryCategory.Workspaces, n * c * 4, t.Mlp(0), t.FinalNorm);
        m.Add("final_input", MemoryCategory.KeptActivations, n * c * 4, t.Mlp(layers - 1), t.FinalNormBackward + 1);
        m.Add("final_norm", MemoryCategory.KeptActivations, n * c * 4, t.FinalNorm, t.Head + 1);
        if (cfg.Family == ModelFamily.Gpt2) m.Add("final_mean", MemoryCategory.KeptActivations, n * 4, t.FinalNorm, t.FinalNormBackward + 1);
        m.Add("final_rstd", MemoryCategory.KeptActivations, n * 4, t.FinalNorm, t.FinalNormBackward + 1);
        m.Add("logits", MemoryCategory.Workspaces, (long)Transformer.HeadChunkRows * cfg.VocabSize * 4, t.Head, t.Head + 1);
        m.Add("losses", MemoryCategory.Workspaces, n * 4, t.Head, t.Head + 1);
        m.Add("predictions", MemoryCategory.Workspaces, (long)Transformer.HeadChunkRows * 4, t.Head, t.Head + 1); // argmax of one head chunk

        // Backward workspaces. The head writes dL/d(final norm output) into d_h.
        long up = cfg.Family == ModelFamily.Llama ? 2 * f : f;
        m.Add("d_h", MemoryCategory.Workspaces, n * c * 4, t.Head, t.Backward(0) + 1);
        m.Add("d_a", MemoryCategory.Workspaces, n * c * 4, t.FinalNormBackward, t.EmbedBackward + 1);
        m.Add("d_b", MemoryCategory.Workspaces, n * c * 4, t.FinalNormBackward, t.EmbedBackward + 1);
        long b0 = t.Backward(layers - 1), b1 = t.Backward(0) + 1;
        m.Add("d_o", MemoryCategory.Workspaces, n * c * 4, b0, b1);
        m.Add("d_qkv", MemoryCategory.Workspaces, n * cfg.QkvSize * 4, b0, b1);
        m.Add("d_up", MemoryCategory.Workspaces, n * up * 4, b0, b1);
        m.Add("d_act", MemoryCategory.Workspaces, n * f * 4, b0, b1);
        return m;
    }

    private static string Set(int layer) => layer.ToString(CultureInfo.InvariantCulture);

    /// <summary>Assigns offsets: best-fit on the whole iteration, then bi-level if that is not close to the bound; validated.</summary>
    private void Plan()
    {
        var clock = Stopwatch.StartNew();
        var problem = ToProblem();
        // A generous limit: every best-fit pass runs (the plan must not depend on timing), each takes milliseconds.
        var options = new PlannerOptions { Solver = SolverKind.BestFit, TimeLimit = TimeSpan.FromSeconds(600), Threads = 1 };
        PlanResult best = new BestFitPlanner().Solve(problem, options);
        if (best.Peak > TargetRatio * best.LowerBound)
        {
            PlanResult bi = BiLevelPlanner.Solve(problem, options).Plan;
            if (bi.Peak < best.Peak) best = bi;
        }
        var check = PlanValidator.Validate(problem, best.ToSolution(), Align);
        if (!check.IsOk) throw new InvalidOperationException($"the device memory plan is invalid: {check.Message}");
        Problem = problem;
        _offsets = best.Offsets;
        TotalBytes = best.Peak;
        LowerBound = problem.LowerBound();
        var live = new long[Timeline.End + 1];
        foreach (var b in _buffers)
        {
            live[b.Lower] += b.Bytes;
            live[b.Upper] -= b.Bytes;
        }
        long load = 0, most = -1;
        for (long t = 0; t < Timeline.End; t++)
        {
            load += live[t];
            if (load > most)
            {
                most = load;
                PeakTime = t;
            }
        }
        Solver = best.Solver;
        PlanSeconds = clock.Elapsed.TotalSeconds;
    }

    private Problem ToProblem()
    {
        var list = new Memo.Planner.Buffer[_buffers.Count];
        for (int i = 0; i < list.Length; i++)
        {
            var b = _buffers[i];
            list[i] = new Memo.Planner.Buffer(b.Name, new Lifespan(b.Lower, b.Upper), b.Bytes, Align)
            {
                Kind = MemoryReport.Label(b.Category),
                Group = b.Layer >= 0 ? "layer" : null,
                Layer = b.Layer,
            };
        }
        return new Problem(list);
    }

    private void AddPersistent(string name, MemoryCategory category, long bytes)
    {
        Add(name, category, bytes, 0, Timeline.End);
        _buffers[^1] = _buffers[^1] with { Persistent = true };
    }

    private void Add(string name, MemoryCategory category, long bytes, long lower, long upper, int layer = -1, int row = -1)
    {
        bytes = Math.Max(bytes, 4);
        _index.Add(name, _buffers.Count);
        _buffers.Add(new DeviceBuffer(name, category, bytes, lower, upper, layer, row));
    }
}

/// <summary>Workspace bytes a backend asks for; they are buffers of the planned arena like any other.</summary>
/// <param name="AttentionBytes">Scratch of attention forward and backward (<see cref="IBackend.AttentionWorkspaceBytes"/>).</param>
public readonly record struct Workspaces(long AttentionBytes)
{
    public static Workspaces Of(IBackend backend, ModelConfig cfg) => new(backend.AttentionWorkspaceBytes(cfg.HeadDim));

    /// <summary>The CPU backend's workspaces for a pool of <paramref name="threads"/>.</summary>
    public static Workspaces ForCpu(int threads, ModelConfig cfg) => new(CpuBackend.AttentionWorkspaceBytesFor(threads, cfg.HeadDim));
}
