namespace Memo.Cpu.Device;

/// <summary>
/// Where swapped activations are kept between forward and backward (<c>--host-store</c>): <c>memory</c>
/// (host RAM, the default) or <c>disk[:DIR]</c> (RAM up to <c>--host-memory</c>, the rest in a
/// <see cref="DiskHostStore"/> in DIR; without DIR, the system temp directory).
/// </summary>
public sealed record HostStoreSpec
{
    /// <summary>Host RAM only.</summary>
    public static HostStoreSpec Memory { get; } = new();

    /// <summary>The directory of the disk tier; null for <c>memory</c>.</summary>
    public string? DiskDirectory { get; init; }

    /// <summary>Settings of the disk tier's file (threads, request size, direct I/O, preallocation).</summary>
    public DiskStoreOptions Disk { get; init; } = new();

    /// <summary>Bytes of the start-up bandwidth probe of the disk tier.</summary>
    public long ProbeBytes { get; init; } = DiskProbe.DefaultBytes;

    public bool OnDisk => DiskDirectory != null;

    /// <summary>Parses <c>memory</c>, <c>disk</c> or <c>disk:DIR</c>.</summary>
    public static HostStoreSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim();
        if (t.Equals("memory", StringComparison.OrdinalIgnoreCase)) return Memory;
        if (t.Equals("disk", StringComparison.OrdinalIgnoreCase)) return new HostStoreSpec { DiskDirectory = Path.GetTempPath() };
        if (t.StartsWith("disk:", StringComparison.OrdinalIgnoreCase) && t.Length > 5) return new HostStoreSpec { DiskDirectory = t[5..] };
        throw new MemoException($"--host-store: '{text}' is not a store; use memory, disk, or disk:DIR (a directory on the disk to swap to)");
    }

    /// <summary>One-line error unless the disk tier's directory <paramref name="dir"/> exists and is a directory (null, for <c>memory</c>: nothing to check).</summary>
    public static void CheckDirectory(string? dir)
    {
        if (dir is null || System.IO.Directory.Exists(dir)) return;
        if (File.Exists(dir))
            throw new MemoException($"--host-store disk:{dir}: {dir} is a file, not a directory; pass --host-store disk:DIR with a directory on the disk to swap to");
        throw new MemoException($"disk store directory {dir} does not exist; create it or pass --host-store disk:DIR with an existing directory");
    }

    public override string ToString() => OnDisk ? $"disk:{DiskDirectory}" : "memory";
}
