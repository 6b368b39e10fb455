// Reading and writing google/minimalloc's CSV format.
//
//   id,lower,upper,size[,alignment][,offset]     header required, columns in any order
//   b1,0,3,4
//
// Also understood: minimalloc's synonyms (buffer / buffer_id for id, start / begin for lower,
// end for an inclusive upper: upper = end + 1), its unused "hint" column, and Memo's optional tags
// kind, group, layer. Bad input raises a MemoException whose one-line message names the file,
// the line and the problem. Writes go to a temporary file that is then renamed over the target.
using System.Globalization;
using System.Text;

namespace Memo.Planner;

/// <summary>CSV input/output in minimalloc's format.</summary>
public static class PlanCsv
{
    private static readonly string[] Known = ["id", "lower", "upper", "size", "alignment", "offset", "kind", "group", "layer", "hint", "gaps"];

    /// <summary>Reads a problem (any offset column is ignored).</summary>
    public static Problem Read(string path, long? capacity = null) => ReadWithOffsets(path, capacity).Problem;

    /// <summary>Reads a problem and, when the file has an offset column, the offsets (a solution file).</summary>
    public static (Problem Problem, long[]? Offsets) ReadWithOffsets(string path, long? capacity = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new MemoException($"{path}: file not found; give the path of a CSV with header id,lower,upper,size");
        using var reader = new StreamReader(path, Encoding.UTF8);
        return Parse(reader, path, capacity);
    }

    /// <summary>Parses CSV text; <paramref name="source"/> names the input in error messages.</summary>
    public static (Problem Problem, long[]? Offsets) Parse(TextReader reader, string source, long? capacity = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string? header = reader.ReadLine();
        int line = 1;
        while (header is not null && header.Trim().Length == 0)
        {
            header = reader.ReadLine();
            line++;
        }
        if (header is null)
            throw new MemoException($"{source}: empty file; the first line must be a header such as id,lower,upper,size");
        header = header.TrimStart('\uFEFF');
        var names = header.Split(',');
        var column = new Dictionary<string, int>(StringComparer.Ordinal);
        bool inclusiveEnd = false;
        for (int c = 0; c < names.Length; c++)
        {
            string raw = names[c].Trim().ToLowerInvariant();
            string name = raw switch
            {
                "buffer" or "buffer_id" => "id",
                "start" or "begin" => "lower",
                "end" => "upper",
                _ => raw,
            };
            if (raw == "end") inclusiveEnd = true;
            if (Array.IndexOf(Known, name) < 0)
                throw new MemoException($"{source}:{line}: unknown column '{Sizes.Printable(names[c].Trim())}'; known columns are id,lower,upper,size,alignment,offset,kind,group,layer");
            if (!column.TryAdd(name, c))
                throw new MemoException($"{source}:{line}: column '{name}' appears twice; keep one");
        }
        foreach (string required in (ReadOnlySpan<string>)["id", "lower", "upper", "size"])
        {
            if (!column.ContainsKey(required))
                throw new MemoException($"{source}:{line}: missing column '{required}'; the header needs id,lower,upper,size (in any order)");
        }
        int iId = column["id"], iLower = column["lower"], iUpper = column["upper"], iSize = column["size"];
        int iAlign = column.GetValueOrDefault("alignment", -1);
        int iOffset = column.GetValueOrDefault("offset", -1);
        int iKind = column.GetValueOrDefault("kind", -1);
        int iGroup = column.GetValueOrDefault("group", -1);
        int iLayer = column.GetValueOrDefault("layer", -1);
        int iGaps = column.GetValueOrDefault("gaps", -1);

        var buffers = new List<Buffer>();
        var offsets = iOffset >= 0 ? new List<long>() : null;
        var firstLine = new Dictionary<string, int>(StringComparer.Ordinal);
        long total = 0;
        string? text;
        while ((text = reader.ReadLine()) is not null)
        {
            line++;
            if (text.Trim().Length == 0) continue;
            var fields = text.Split(',');
            if (fields.Length > names.Length)
                throw new MemoException($"{source}:{line}: {fields.Length} fields but the header has {names.Length}; ids must not contain commas");
            if (fields.Length < names.Length)
                throw new MemoException($"{source}:{line}: {fields.Length} field(s) but the header has {names.Length}; the row is short (no '{names[fields.Length].Trim()}')");
            string id = fields[iId].Trim();
            if (id.Length == 0)
                throw new MemoException($"{source}:{line}: empty id; give every buffer a name");
            if (!firstLine.TryAdd(id, line))
                throw new MemoException($"{source}:{line}: duplicate id '{Sizes.Printable(id)}' (first on line {firstLine[id]}); ids must be unique");
            long lower = Number(fields, iLower, "lower");
            long upper = Number(fields, iUpper, "upper");
            if (inclusiveEnd)
            {
                if (upper == long.MaxValue)
                    throw new MemoException($"{source}:{line}: column 'end': {upper} is too large; use a smaller time");
                upper++;
            }
            long size = Number(fields, iSize, "size");
            long alignment = iAlign >= 0 && fields[iAlign].Trim().Length > 0 ? Number(fields, iAlign, "alignment") : 1;
            if (upper <= lower)
                throw new MemoException($"{source}:{line}: buffer '{Sizes.Printable(id)}' has upper {upper} <= lower {lower}; lifespans are half-open [lower, upper) and must not be empty");
            if (alignment < 1)
                throw new MemoException($"{source}:{line}: buffer '{Sizes.Printable(id)}' has alignment 0; use 1 for no alignment");
            if (!Checked.TryAdd(total, size, out total))
                throw new MemoException($"{source}:{line}: the sizes up to buffer '{Sizes.Printable(id)}' add up to more than {long.MaxValue} bytes; use a coarser unit");
            if (iGaps >= 0 && fields[iGaps].Trim().Length > 0)
                throw new MemoException($"{source}:{line}: buffer '{Sizes.Printable(id)}' has gaps, which Memo does not support; split the buffer into one per live period");
            int layer = -1;
            if (iLayer >= 0 && fields[iLayer].Trim().Length > 0)
            {
                if (!int.TryParse(fields[iLayer].Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out layer) || layer < -1)
                    throw new MemoException($"{source}:{line}: column 'layer': '{Sizes.Printable(fields[iLayer].Trim())}' is not a layer index (an integer >= -1)");
            }
            buffers.Add(new Buffer(id, new Lifespan(lower, upper), size, alignment)
            {
                Kind = Tag(fields, iKind),
                Group = Tag(fields, iGroup),
                Layer = layer,
            });
            if (offsets is not null)
                offsets.Add(fields[iOffset].Trim().Length > 0 ? Number(fields, iOffset, "offset") : -1);
        }
        return (new Problem(buffers, capacity), offsets?.ToArray());

        long Number(string[] fields, int index, string name)
        {
            string s = fields[index].Trim();
            if (!long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v))
            {
                bool digits = s.Length > 0 && s.TrimStart('-', '+').All(char.IsAsciiDigit);
                throw new MemoException(digits
                    ? $"{source}:{line}: column '{name}': {Sizes.Printable(s)} is out of range (at most {long.MaxValue})"
                    : $"{source}:{line}: column '{name}': '{Sizes.Printable(s)}' is not an integer (no units or decimals)");
            }
            if (v < 0)
                throw new MemoException($"{source}:{line}: column '{name}': {v} is negative; times, sizes and offsets must be >= 0");
            return v;
        }
    }

    private static string? Tag(string[] fields, int index)
    {
        if (index < 0) return null;
        string s = fields[index].Trim();
        return s.Length == 0 ? null : s;
    }

    /// <summary>Formats the problem's buffers plus an offset column (when offsets are given).</summary>
    public static string Format(Problem problem, long[]? offsets)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var buffers = problem.Buffers;
        if (offsets is not null && offsets.Length != buffers.Count)
            throw new ArgumentException($"{offsets.Length} offsets for {buffers.Count} buffers", nameof(offsets));
        bool align = buffers.Any(b => b.Alignment != 1);
        bool kind = buffers.Any(b => b.Kind is not null);
        bool group = buffers.Any(b => b.Group is not null);
        bool layer = buffers.Any(b => b.Layer != -1);
        var sb = new StringBuilder();
        sb.Append("id,lower,upper,size");
        if (align) sb.Append(",alignment");
        if (kind) sb.Append(",kind");
        if (group) sb.Append(",group");
        if (layer) sb.Append(",layer");
        if (offsets is not null) sb.Append(",offset");
        sb.Append('\n');
        for (int i = 0; i < buffers.Count; i++)
        {
            Buffer b = buffers[i];
            CheckText(b.Id, "id");
            sb.Append(b.Id).Append(',').Append(b.Lifespan.Lower.ToString(CultureInfo.InvariantCulture))
              .Append(',').Append(b.Lifespan.Upper.ToString(CultureInfo.InvariantCulture))
              .Append(',').Append(b.Size.ToString(CultureInfo.InvariantCulture));
            if (align) sb.Append(',').Append(b.Alignment.ToString(CultureInfo.InvariantCulture));
            if (kind) sb.Append(',').Append(CheckText(b.Kind, "kind"));
            if (group) sb.Append(',').Append(CheckText(b.Group, "group"));
            if (layer) sb.Append(',').Append(b.Layer.ToString(CultureInfo.InvariantCulture));
            if (offsets is not null) sb.Append(',').Append(offsets[i].ToString(CultureInfo.InvariantCulture));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private static string? CheckText(string? s, string what)
    {
        if (s is not null && s.AsSpan().IndexOfAny(",\r\n") >= 0)
            throw new MemoException($"{what} '{s}' contains a comma or line break, which the CSV format cannot hold; rename it");
        return s;
    }

    /// <summary>Writes the problem plus offsets to <paramref name="path"/> atomically (temporary file + rename).</summary>
    public static void Write(string path, Problem problem, long[]? offsets)
    {
        ArgumentNullException.ThrowIfNull(path);
        WriteAtomic(path, Format(problem, offsets));
    }

    /// <summary>Writes text to a temporary file beside <paramref name="path"/> and renames it over the target.</summary>
    public static void WriteAtomic(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir))
            throw new MemoException($"{path}: directory {dir} does not exist; create it first");
        string tmp = full + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            File.WriteAllText(tmp, text, new UTF8Encoding(false));
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new MemoException($"{path}: cannot write ({e.Message}); check the path and permissions", e);
        }
    }
}
