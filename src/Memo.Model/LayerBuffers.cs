namespace Memo.Model;

/// <summary>
/// Pointers to one layer's saved activations, one per row of the layer type's
/// <see cref="ActivationInventory"/> (null for transient rows). Each points at the activation of
/// row 0 of the batch; row r of activation i starts at <c>Saved[i] + r * width_i</c>. Policies decide
/// where these live; the layer code only reads and writes through them.
/// </summary>
public sealed unsafe class LayerBuffers
{
    public LayerBuffers(int rows) => Saved = new float*[rows];

    /// <summary>The layer these buffers currently hold.</summary>
    public int Layer { get; set; }

    public float*[] Saved { get; }

    /// <summary>The layer's output (the next layer's input, or the final norm's input).</summary>
    public float* Output { get; set; }
}

/// <summary>Indices of the inventory rows for one family, resolved once by name.</summary>
public sealed class InventoryIndex
{
    public InventoryIndex(ModelConfig cfg)
    {
        Rows = ActivationInventory.For(cfg);
        int Find(string name) => Rows.Select((r, i) => (r, i)).Where(p => p.r.Name == name).Select(p => p.i).DefaultIfEmpty(-1).First();
        Input = Find("Input");
        Norm1Mean = Find("Norm1Mean");
        Norm1Rstd = Find("Norm1Rstd");
        Norm1 = Find("Norm1");
        Qkv = Find("Qkv");
        AttnOut = Find("AttnOut");
        AttnLse = Find("AttnLse");
        Residual1 = Find("Residual1");
        Norm2Mean = Find("Norm2Mean");
        Norm2Rstd = Find("Norm2Rstd");
        Norm2 = Find("Norm2");
        MlpUp = Find("MlpUp");
        MlpAct = Find("MlpAct");
        Width = Rows.Select(r => r.ElementsPerToken(cfg)).ToArray();
    }

    public IReadOnlyList<ActivationSpec> Rows { get; }

    /// <summary>Elements per token of each row.</summary>
    public long[] Width { get; }

    public int Input { get; }
    public int Norm1Mean { get; }
    public int Norm1Rstd { get; }
    public int Norm1 { get; }
    public int Qkv { get; }
    public int AttnOut { get; }
    public int AttnLse { get; }
    public int Residual1 { get; }
    public int Norm2Mean { get; }
    public int Norm2Rstd { get; }
    public int Norm2 { get; }
    public int MlpUp { get; }
    public int MlpAct { get; }
}
