using System.Security.Cryptography;
using Memo.Tests.Device;
using Memo.Tests.IO;

namespace Memo.Tests.Cli;

/// <summary>
/// <c>memo train --host-store disk</c> end to end: a disk too small for the swap store stops the run with one line
/// and leaves the last checkpoint as it was and no file in the directory; the store applies to swapping
/// policies only; <c>--dry-run</c> shows the bytes of each tier and writes nothing.
/// </summary>
public sealed class DiskStoreCliTests
{
    /// <summary>llama-tiny with 5 layers, so that 3 layers are swapped (the last two never are).</summary>
    private const string FiveLayers = """
        {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 5, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 176, "vocab_size": 256, "max_position_embeddings": 65536}
        """;

    private static string[] Small(TempDir work)
    {
        string cfg = work.File("five-layers.json");
        if (!File.Exists(cfg)) File.WriteAllText(cfg, FiveLayers);
        return ["train", "--model", cfg, "--seq", "256", "--curriculum", "0", "--eval-samples", "0", "--policy", "swap"];
    }

    private static Dictionary<string, string> Hashes(string dir) =>
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [TmpfsFact]
    public void A_full_disk_ends_the_run_in_one_line_with_the_last_checkpoint_intact()
    {
        using var work = new TempDir();
        using var tmpfs = new SmallTmpfs(1 << 20);
        string ck = work.File("ck");
        var first = MemoProcess.Run(work.Path, [.. Small(work), "--steps", "2", "--checkpoint", ck, "--checkpoint-every", "1"]);
        Assert.True(first.Exit == 0, first.Stderr);
        var before = Hashes(ck);
        Assert.NotEmpty(before);

        var (exit, _, stderr) = MemoProcess.Run(work.Path, ["train", "--resume", ck, "--steps", "4", "--policy", "swap", "--checkpoint", ck, "--checkpoint-every", "1", "--host-store", "disk:" + tmpfs.Path]);
        Assert.Equal(1, exit);
        string last = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        Assert.Contains(tmpfs.Path, last, StringComparison.Ordinal);
        Assert.Contains("ENOSPC", last, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        Assert.Equal(before, Hashes(ck));
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmpfs.Path));
    }

    [Fact]
    public void Disk_store_needs_a_swapping_policy()
    {
        using var work = new TempDir();
        var (exit, _, stderr) = MemoProcess.Run(work.Path, ["train", "--model", "llama-tiny", "--seq", "64", "--steps", "1", "--policy", "keep", "--host-store", "disk:" + work.Path]);
        Assert.Equal(2, exit);
        Assert.Contains("--host-store disk applies to --policy swap or memo", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData("missing", "does not exist; create it")]
    [InlineData("file", "is a file, not a directory")]
    public void A_disk_store_directory_that_is_missing_or_a_file_is_one_line_before_any_work(string kind, string expected)
    {
        // llama-tiny swaps no layer (the last two are never swapped), so only the check up front can catch it.
        using var work = new TempDir();
        string dir = work.File("swap");
        if (kind == "file") File.WriteAllText(dir, "not a directory");
        var (exit, stdout, stderr) = MemoProcess.Run(work.Path, ["train", "--model", "llama-tiny", "--seq", "64", "--steps", "1", "--policy", "swap", "--host-store", "disk:" + dir]);
        Assert.Equal(2, exit);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("step", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Dry_run_shows_bytes_per_tier_and_writes_nothing()
    {
        using var work = new TempDir();
        string store = work.File("store");
        Directory.CreateDirectory(store);
        var (exit, stdout, stderr) = MemoProcess.Run(work.Path, [.. Small(work), "--host-store", "disk:" + store, "--host-memory", "64KiB", "--dry-run"]);
        Assert.True(exit == 0, stderr);
        Assert.Contains("RAM tier", stdout, StringComparison.Ordinal);
        Assert.Contains("64.00 KiB", stdout, StringComparison.Ordinal);
        Assert.Contains("disk tier", stdout, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(store));
    }
}
