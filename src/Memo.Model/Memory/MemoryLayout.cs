using Memo.Cpu.Kernels;

namespace Memo.Model.Memory;

/// <summary>What happens to a layer's saved activations between its forward and its backward.</summary>
public enum Policy
{
    /// <summary>Every activation the backward needs stays on the device.</summary>
    Keep,

    /// <summary>Only the layer input is kept; backward re-runs the layer's forward first.</summary>
    Recompute,

    /// <summary>Saved activations go to the host after forward and come back (prefetched) for backward.</summary>
    Swap,

    /// <summary>Skeleton swapped for all tokens, the rest for a fraction alpha of tokens; the others are recomputed token-wise.</summary>
    Memo,
}

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

/// <summary>One device buffer of an iteration. Layer is -1 for buffers not tied to a layer; Row is the inventory row or -1.</summary>
public sealed record DeviceBuffer(string Name, MemoryCategory Category, long Bytes, int Layer = -1, int Row = -1);

/// <summary>
/// Every device buffer Memo needs for a model, batch shape and policy, derived from the activation
/// inventory and the kernels' workspace needs, and its offset in the device arena. Pure arithmetic: it
/// allocates nothing, so a run can be checked against a budget (and the planner can report it) before
/// any memory is taken.
/// </summary>
public sealed class MemoryLayout
{
    public const int Align = 256;
    private readonly Dictionary<string, int> _index = [];
    private readonly List<DeviceBuffer> _buffers = [];
    private readonly List<long> _offsets = [];

    private MemoryLayout(ModelConfig cfg, int batch, int seq, Policy policy)
    {
        Config = cfg;
        Batch = batch;
        Seq = seq;
        Policy = policy;
    }

    public ModelConfig Config { get; }
    public int Batch { get; }
    public int Seq { get; }
    public Policy Policy { get; }

    public IReadOnlyList<DeviceBuffer> Buffers => _buffers;

    /// <summary>Bytes of the arena: the end of the last buffer.</summary>
    public long TotalBytes { get; private set; }

    public long Offset(string name) => _offsets[_index[name]];

    public bool Contains(string name) => _index.ContainsKey(name);

    public long OffsetOf(int i) => _offsets[i];

    /// <summary>Bytes per category, for the memory report.</summary>
    public IReadOnlyDictionary<MemoryCategory, long> ByCategory =>
        Enum.GetValues<MemoryCategory>().ToDictionary(c => c, c => _buffers.Where(b => b.Category == c).Sum(b => b.Bytes));

    /// <summary>Name of saved-activation buffer <paramref name="row"/> in the set <paramref name="set"/> (a layer index, or "slot0"/"slot1"/"recompute").</summary>
    public static string ActivationName(string set, string row) => $"act.{set}.{row}";

    public static MemoryLayout Build(ModelConfig cfg, int batch, int seq, Policy policy, int threads)
    {
        var m = new MemoryLayout(cfg, batch, seq, policy);
        long n = (long)batch * seq, c = cfg.HiddenSize, f = cfg.IntermediateSize;
        long paramBytes = checked(new ParameterLayout(cfg).TotalElements * 4);
        m.Add("weights", MemoryCategory.Parameters, paramBytes);
        m.Add("grads", MemoryCategory.Gradients, paramBytes);
        m.Add("adam_m", MemoryCategory.OptimizerState, paramBytes);
        m.Add("adam_v", MemoryCategory.OptimizerState, paramBytes);

        var rows = ActivationInventory.For(cfg);
        void ActivationSet(string set, MemoryCategory cat, int layer, Func<ActivationSpec, bool> include)
        {
            for (int i = 0; i < rows.Count; i++)
            {
                var r = rows[i];
                if (r.NeededByBackward && include(r)) m.Add(ActivationName(set, r.Name), cat, checked(r.Elements(cfg, n) * 4), layer, i);
            }
        }
        switch (policy)
        {
            case Policy.Keep:
                for (int l = 0; l < cfg.NumLayers; l++) ActivationSet(l.ToString(System.Globalization.CultureInfo.InvariantCulture), MemoryCategory.KeptActivations, l, _ => true);
                break;
            case Policy.Recompute:
                for (int l = 0; l < cfg.NumLayers; l++)
                    ActivationSet(l.ToString(System.Globalization.CultureInfo.InvariantCulture), MemoryCategory.KeptActivations, l, r => r.Producer == LayerOp.LayerInput);
                ActivationSet("recompute", MemoryCategory.RecomputeBuffers, -1, r => r.Producer != LayerOp.LayerInput);
                break;
            case Policy.Swap:
            case Policy.Memo:
                ActivationSet("slot0", MemoryCategory.SwapStaging, -1, _ => true);
                ActivationSet("slot1", MemoryCategory.SwapStaging, -1, _ => true);
                break;
        }
        m.Add("final_input", MemoryCategory.KeptActivations, n * c * 4);
        m.Add("final_norm", MemoryCategory.KeptActivations, n * c * 4);
        if (cfg.Family == ModelFamily.Gpt2) m.Add("final_mean", MemoryCategory.KeptActivations, n * 4);
        m.Add("final_rstd", MemoryCategory.KeptActivations, n * 4);

        long up = cfg.Family == ModelFamily.Llama ? 2 * f : f;
        m.Add("tmp", MemoryCategory.Workspaces, n * c * 4);
        m.Add("d_a", MemoryCategory.Workspaces, n * c * 4);
        m.Add("d_b", MemoryCategory.Workspaces, n * c * 4);
        m.Add("d_h", MemoryCategory.Workspaces, n * c * 4);
        m.Add("d_o", MemoryCategory.Workspaces, n * c * 4);
        m.Add("d_qkv", MemoryCategory.Workspaces, n * cfg.QkvSize * 4);
        m.Add("d_up", MemoryCategory.Workspaces, n * up * 4);
        m.Add("d_act", MemoryCategory.Workspaces, n * f * 4);
        m.Add("logits", MemoryCategory.Workspaces, (long)Transformer.HeadChunkRows * cfg.VocabSize * 4);
        m.Add("losses", MemoryCategory.Workspaces, n * 4);
        m.Add("tokens", MemoryCategory.Workspaces, n * 4);
        m.Add("targets", MemoryCategory.Workspaces, n * 4);
        m.Add("attn_work", MemoryCategory.Workspaces, Attention.WorkspaceFloats(threads, cfg.HeadDim) * 4);
        if (cfg.Family == ModelFamily.Llama)
        {
            long table = (long)seq * (cfg.HeadDim / 2) * 4;
            m.Add("rope_cos", MemoryCategory.Workspaces, table);
            m.Add("rope_sin", MemoryCategory.Workspaces, table);
        }
        return m;
    }

    private void Add(string name, MemoryCategory category, long bytes, int layer = -1, int row = -1)
    {
        bytes = Math.Max(bytes, 4);
        _index.Add(name, _buffers.Count);
        _buffers.Add(new DeviceBuffer(name, category, bytes, layer, row));
        _offsets.Add(TotalBytes);
        TotalBytes = checked(TotalBytes + (bytes + Align - 1) / Align * Align);
    }
}
