using System.Text.Json;

namespace Memo.Model.IO;

/// <summary>
/// The weights of a Hugging Face checkpoint directory as published: one <c>model.safetensors</c>, or
/// <c>model.safetensors.index.json</c> whose <c>weight_map</c> names the shard file of every tensor.
/// Tensors may be F32, F16 or BF16 (read into fp32). GPT-2 checkpoints saved from the bare
/// <c>GPT2Model</c> carry names without the <c>transformer.</c> prefix; both spellings are found.
/// Tensors the model does not use (e.g. GPT-2's <c>attn.bias</c> mask buffers, a tied <c>lm_head</c>) are ignored.
/// </summary>
public sealed unsafe class HfWeights : IDisposable
{
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    private readonly Dictionary<string, SafeTensorsReader> _byName = new(StringComparer.Ordinal);
    private readonly List<SafeTensorsReader> _readers = [];

    private HfWeights(string dir) => Directory = dir;

    /// <summary>The checkpoint directory.</summary>
    public string Directory { get; }

    /// <summary>Number of safetensors files read.</summary>
    public int FileCount => _readers.Count;

    /// <summary>True when <paramref name="dir"/> holds model.safetensors or an index of shards.</summary>
    public static bool Exists(string dir) =>
        File.Exists(Path.Combine(dir, SingleFile)) || File.Exists(Path.Combine(dir, IndexFile));

    /// <summary>Opens every file of the checkpoint and validates their headers and the index.</summary>
    public static HfWeights Open(string dir)
    {
        var w = new HfWeights(dir);
        try
        {
            string single = Path.Combine(dir, SingleFile), index = Path.Combine(dir, IndexFile);
            if (File.Exists(single))
            {
                w.Add(SafeTensorsReader.Open(single), null);
            }
            else if (File.Exists(index))
            {
                foreach (var (file, names) in ReadIndex(index))
                {
                    string path = Path.Combine(dir, file);
                    if (!File.Exists(path))
                        throw new MemoException($"{index}: names shard '{file}', which is missing from {dir}; copy the whole checkpoint");
                    w.Add(SafeTensorsReader.Open(path), names);
                }
            }
            else
            {
                throw new MemoException($"{dir}: neither {SingleFile} nor {IndexFile}; the checkpoint is incomplete — copy or re-save it");
            }
            return w;
        }
        catch
        {
            w.Dispose();
            throw;
        }
    }

    private void Add(SafeTensorsReader reader, HashSet<string>? indexed)
    {
        _readers.Add(reader);
        foreach (var t in reader.Tensors)
        {
            if (indexed != null && !indexed.Contains(t.Name)) continue;
            _byName.TryAdd(t.Name, reader);
        }
        if (indexed != null)
        {
            foreach (var name in indexed)
            {
                if (!reader.Contains(name))
                    throw new MemoException($"{reader.Path}: the index says it holds tensor '{name}', but it does not; the checkpoint is damaged — re-download or re-save it");
            }
        }
    }

    /// <summary>Shard file name -> tensor names, from an index's weight_map.</summary>
    private static List<(string File, HashSet<string> Names)> ReadIndex(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new MemoException($"{path}: not valid JSON ({e.Message.Split('\n')[0]}); re-download or re-save the checkpoint");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new MemoException($"{path}: no \"weight_map\" object; it is not a safetensors index — re-download or re-save the checkpoint");
            var files = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
            var order = new List<string>();
            foreach (var kv in map.EnumerateObject())
            {
                if (kv.Value.ValueKind != JsonValueKind.String)
                    throw new MemoException($"{path}: weight_map entry '{kv.Name}' is not a file name; re-download or re-save the checkpoint");
                string file = kv.Value.GetString()!;
                if (file.Length == 0 || Path.GetFileName(file) != file)
                    throw new MemoException($"{path}: weight_map entry '{kv.Name}' names '{file}', which is not a plain file name in the checkpoint directory");
                if (!files.TryGetValue(file, out var set))
                {
                    files[file] = set = new HashSet<string>(StringComparer.Ordinal);
                    order.Add(file);
                }
                set.Add(kv.Name);
            }
            if (order.Count == 0) throw new MemoException($"{path}: weight_map is empty; re-download or re-save the checkpoint");
            return [.. order.Select(f => (f, files[f]))];
        }
    }

    /// <summary>The reader and stored name of tensor <paramref name="name"/> (also found without a leading <c>transformer.</c>), or null.</summary>
    public (SafeTensorsReader Reader, string Name)? Find(string name)
    {
        if (_byName.TryGetValue(name, out var r)) return (r, name);
        const string Prefix = "transformer.";
        if (name.StartsWith(Prefix, StringComparison.Ordinal) && _byName.TryGetValue(name[Prefix.Length..], out r)) return (r, name[Prefix.Length..]);
        return null;
    }

    /// <summary>
    /// Checks every tensor the model needs (name and shape, before anything is read), then reads them all
    /// into the parameter block <paramref name="weights"/> (fp32; F16/BF16 widened exactly).
    /// </summary>
    public void LoadInto(ParameterLayout layout, float* weights)
    {
        var tensors = HfNames.For(layout);
        var where = new (SafeTensorsReader Reader, string Name)[tensors.Count];
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            where[i] = Find(t.Name) ?? throw new MemoException(
                $"{Directory}: tensor '{t.Name}' is missing; the weights were written for another model than config.json describes");
            var info = where[i].Reader.Get(where[i].Name);
            if (!info.Shape.SequenceEqual(t.Shape))
                throw new MemoException($"{where[i].Reader.Path}: tensor '{where[i].Name}' has shape {info.ShapeText} but config.json implies [{string.Join(", ", t.Shape)}]; the weights do not match config.json");
            if (info.DType is not (SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16))
                throw new MemoException($"{where[i].Reader.Path}: tensor '{where[i].Name}' has dtype {info.DType.Name()}; only F32, F16 and BF16 weights can be loaded");
        }
        for (int i = 0; i < tensors.Count; i++) HfNames.Import(layout, tensors[i], where[i].Reader.ReadF32(where[i].Name), weights);
    }

    public void Dispose()
    {
        foreach (var r in _readers) r.Dispose();
        _readers.Clear();
    }
}
