using Memo.Backends;
using Memo.Cpu;
using Memo.Cpu.Device;
using Memo.Model;
using Memo.Model.Memory;
using Memo.Tests.Device;
using Memo.Tests.IO;
using Xunit.Abstractions;

namespace Memo.Tests.Memory;

/// <summary>
/// The disk tier of the swap store: swap and memo give the same bits with the store in RAM, on disk, or
/// split between the two (with every released device region poisoned); a full disk during offload is one
/// clean line; no file is left behind; and the profiling backend changes no bit and accounts for each op.
/// </summary>
public sealed unsafe class DiskTierTests(ITestOutputHelper output)
{
    private static HostStoreSpec Disk(string dir) => new() { DiskDirectory = dir, ProbeBytes = 1 << 20 };

    [Theory]
    [InlineData(ModelFamily.Llama)]
    [InlineData(ModelFamily.Gpt2)]
    public void Losses_and_gradients_are_bit_identical_in_memory_on_disk_and_split(ModelFamily family)
    {
        var cfg = PolicyEquivalenceTests.Config(family, layers: 5);
        const int batch = 2, seq = 48;
        using var dir = new TempDir();
        foreach (var (policy, alpha) in new (PolicyKind, double?)[] { (PolicyKind.Swap, null), (PolicyKind.Memo, 0.5) })
        {
            var memory = PolicyEquivalenceTests.Run(cfg, batch, seq, new MemoryOptions { Policy = policy, Alpha = alpha, Poison = true }, steps: 3);
            long hostBytes;
            using (var probe = new Transformer(cfg, batch, seq, memory: new MemoryOptions { Policy = policy, Alpha = alpha })) hostBytes = probe.HostStoreBytes;
            var variants = new (string Name, MemoryOptions Options)[]
            {
                ("disk", new() { Policy = policy, Alpha = alpha, Poison = true, HostStore = Disk(dir.Path) }),
                ("ram+disk", new() { Policy = policy, Alpha = alpha, Poison = true, HostStore = Disk(dir.Path), HostBudget = hostBytes / 2 }),
            };
            foreach (var (name, options) in variants)
            {
                var r = PolicyEquivalenceTests.Run(cfg, batch, seq, options, steps: 3);
                string what = $"{family} {policy} alpha {alpha} {name}";
                output.WriteLine($"{what}: losses {string.Join(", ", r.Losses)}; disk written {r.Metrics.DiskWrittenBytes} read {r.Metrics.DiskReadBytes}");
                for (int s = 0; s < memory.Losses.Length; s++)
                    Assert.True(BitConverter.DoubleToInt64Bits(memory.Losses[s]) == BitConverter.DoubleToInt64Bits(r.Losses[s]), $"{what}: loss of step {s} differs: {r.Losses[s]:R} vs {memory.Losses[s]:R}");
                Assert.True(memory.Grads.AsSpan().SequenceEqual(r.Grads), $"{what}: gradients differ from the RAM store");
                Assert.True(r.Metrics.DiskWrittenBytes > 0 && r.Metrics.DiskReadBytes > 0, $"{what}: nothing went through the disk");
                Assert.True(r.Metrics.DiskWrittenBytes <= r.Metrics.SwappedBytes, $"{what}: more written to disk than swapped");
                Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
            }
        }
    }

    [Fact]
    public void Host_memory_bounds_the_ram_tier_and_the_rest_goes_to_disk()
    {
        var cfg = PolicyEquivalenceTests.Config(ModelFamily.Llama, layers: 5);
        using var dir = new TempDir();
        using var model = new Transformer(cfg, 2, 48, memory: new MemoryOptions { Policy = PolicyKind.Swap, HostStore = Disk(dir.Path), HostBudget = 40_000 });
        Assert.Equal(36_864, model.HostRamBytes); // 40,000 rounded down to 4 KiB
        Assert.NotNull(model.DiskTier);
        Assert.Equal(DiskHostStore.AlignUp(model.HostStoreBytes - model.HostRamBytes), model.DiskTier!.Capacity);
        Assert.NotNull(model.DiskProbe);
        Assert.True(model.DiskProbe!.WriteBytesPerSecond > 0 && model.DiskProbe.ReadBytesPerSecond > 0);
        using var memOnly = new Transformer(cfg, 2, 48, memory: new MemoryOptions { Policy = PolicyKind.Swap });
        Assert.Null(memOnly.DiskTier);
        Assert.Equal(memOnly.HostStoreBytes, memOnly.HostRamBytes);
    }

    [Fact]
    public void Tiered_store_splits_a_region_across_ram_and_disk()
    {
        using var dir = new TempDir();
        var ram = new MemoryHostStore(8192);
        var disk = new DiskHostStore(dir.Path, 3 * 4096, new DiskStoreOptions { ChunkBytes = 4096 });
        using var store = new TieredHostStore(ram, disk);
        Assert.Equal(8192 + 3 * 4096, store.Capacity);
        var src = new byte[14_000];
        new Random(3).NextBytes(src);
        var back = new byte[src.Length];
        fixed (byte* s = src)
        fixed (byte* b = back)
        {
            store.Write(4096, s, src.Length);        // [4096, 8192) in RAM, the rest on disk
            store.Read(4096, b, back.Length);
        }
        Assert.Equal(src, back);
        Assert.True(store.OnDisk(4096, src.Length));
        Assert.False(store.OnDisk(0, 8192));
        Assert.Equal(src.Length - 4096, disk.BytesWritten);
        using var oddRam = new MemoryHostStore(1000);
        using var disk2 = new DiskHostStore(dir.Path, 4096);
        Assert.Throws<ArgumentException>(() => new TieredHostStore(oddRam, disk2)); // disk offsets would lose their 4 KiB alignment
    }

    [TmpfsFact]
    public void A_full_disk_during_offload_is_one_line_and_leaves_no_file()
    {
        using var tmpfs = new SmallTmpfs(2 << 20);
        var cfg = PolicyEquivalenceTests.Config(ModelFamily.Llama, layers: 5);
        // Without preallocation the file grows as the offload writes it, so the disk fills during the step.
        var spec = new HostStoreSpec { DiskDirectory = tmpfs.Path, ProbeBytes = 256 << 10, Disk = new DiskStoreOptions { Preallocate = false } };
        const int batch = 2, seq = 256;
        var (x, y) = PolicyEquivalenceTests.Data(batch * seq, cfg.VocabSize, 5);
        using (var model = new Transformer(cfg, batch, seq, memory: new MemoryOptions { Policy = PolicyKind.Swap, HostStore = spec }))
        {
            Assert.True(model.HostStoreBytes > 2 << 20, $"the store ({model.HostStoreBytes} bytes) must not fit the 2 MiB tmpfs");
            Initializer.Initialize(model, 7);
            var e = Assert.Throws<MemoException>(() => model.Step(batch, seq, x, y, backward: true, 1f / (batch * seq)));
            output.WriteLine(e.Message);
            Assert.Contains(tmpfs.Path, e.Message, StringComparison.Ordinal);
            Assert.Contains("is full", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', e.Message);
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmpfs.Path));
        // The store's file was unlinked at creation and its descriptor is closed (O_CLOEXEC); a process another test
        // forks at that instant holds a copy until it execs, so give the space a moment to come back.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (tmpfs.UsedBytes() >= 64 * 1024 && sw.Elapsed < TimeSpan.FromSeconds(5)) Thread.Sleep(20);
        Assert.True(tmpfs.UsedBytes() < 64 * 1024, $"tmpfs still holds {tmpfs.UsedBytes()} bytes {sw.ElapsedMilliseconds} ms after the store was disposed");
    }

    [TmpfsFact]
    public void A_disk_too_small_for_the_store_fails_before_training_with_one_line()
    {
        using var tmpfs = new SmallTmpfs(2 << 20);
        var cfg = PolicyEquivalenceTests.Config(ModelFamily.Llama, layers: 5);
        var spec = new HostStoreSpec { DiskDirectory = tmpfs.Path, ProbeBytes = 256 << 10 };
        var e = Assert.Throws<MemoException>(() => new Transformer(cfg, 2, 256, memory: new MemoryOptions { Policy = PolicyKind.Swap, HostStore = spec }));
        Assert.Contains(tmpfs.Path, e.Message, StringComparison.Ordinal);
        Assert.Contains("ENOSPC", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmpfs.Path));
    }

    [Fact]
    public void Profiling_changes_no_bit_and_accounts_for_every_op()
    {
        var cfg = PolicyEquivalenceTests.Config(ModelFamily.Llama, layers: 4);
        const int batch = 1, seq = 64;
        using var dir = new TempDir();
        var mem = new MemoryOptions { Policy = PolicyKind.Memo, Alpha = 0.5, HostStore = Disk(dir.Path) };
        var plain = PolicyEquivalenceTests.Run(cfg, batch, seq, mem, steps: 2);
        var profile = new OpProfile();
        using var cpu = new CpuBackend();
        using var backend = new ProfilingBackend(cpu, profile);
        using var model = new Transformer(backend, cfg, batch, seq, mem);
        Initializer.Initialize(model, 7);
        var losses = new double[2];
        double[] sums = new double[Enum.GetValues<ProfileOp>().Length];
        for (int s = 0; s < 2; s++)
        {
            var (x, y) = PolicyEquivalenceTests.Data(batch * seq, cfg.VocabSize, (ulong)(100 + s));
            profile.BeginStep();
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            model.ZeroGrads();
            losses[s] = model.Step(batch, seq, x, y, backward: true, 1f / (batch * seq));
            profile.EndStep(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            for (int i = 0; i < sums.Length; i++) sums[i] += profile.StepMs[i];
            double timed = profile.StepMs.Sum() - profile.StepMs[(int)ProfileOp.Other];
            Assert.True(timed <= profile.StepTotalMs + 0.01, $"ops add up to {timed} ms, more than the step's {profile.StepTotalMs} ms");
            output.WriteLine(OpProfile.Table(profile.StepMs, profile.StepTotalMs, $"step {s}"));
        }
        Assert.Equal(plain.Losses, losses);
        Assert.True(plain.Grads.AsSpan().SequenceEqual(new Span<float>(model.Grads, plain.Grads.Length)), "profiling changed the gradients");
        foreach (var op in new[] { ProfileOp.Norms, ProfileOp.Projections, ProfileOp.AttentionForward, ProfileOp.AttentionBackward, ProfileOp.Mlp, ProfileOp.HeadAndLoss, ProfileOp.Embedding, ProfileOp.Recompute })
            Assert.True(sums[(int)op] > 0, $"{op} got no time");
        Assert.Equal(0, sums[(int)ProfileOp.Optimizer]); // no optimizer step in this loop
    }
}
