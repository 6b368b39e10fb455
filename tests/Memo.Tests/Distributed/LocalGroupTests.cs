using Memo.Distributed;
using Memo.Distributed.Host;

namespace Memo.Tests.Distributed;

/// <summary>
/// The in-process communicator (one thread per rank; size 1 is the single-process communicator):
/// the same collective checks the MPI test runs, ring attention against the single-process kernels for
/// C = 1 to 4 ranks, zig-zag positions and the one-line errors.
/// </summary>
public sealed class LocalGroupTests
{
    private static T[] OnThreads<T>(int ranks, Func<ICommunicator, T> body)
    {
        var comms = LocalGroup.Create(ranks, TimeSpan.FromSeconds(60));
        var results = new T[ranks];
        var errors = new Exception?[ranks];
        var threads = Enumerable.Range(0, ranks).Select(r => new Thread(() =>
        {
            try { results[r] = body(comms[r]); }
            catch (Exception e) { errors[r] = e; }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        foreach (var e in errors) if (e is not null) throw new InvalidOperationException($"a rank failed: {e.Message}", e);
        return results;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Collectives_give_the_predicted_values(int ranks)
    {
        var done = OnThreads(ranks, c =>
        {
            CollectiveChecks.Run(c);
            return c.Rank;
        });
        Assert.Equal(Enumerable.Range(0, ranks), done);
    }

    [Theory]
    [InlineData(1, 1, 128, 4, 2, 16)]
    [InlineData(2, 2, 256, 4, 2, 32)]   // GQA
    [InlineData(3, 1, 390, 2, 1, 40)]   // chunks of 65: tile tails; head dim tail
    [InlineData(4, 1, 200, 2, 2, 8)]    // chunks of 25, shorter than a tile
    public void Ring_attention_matches_the_single_process_kernels(int ranks, int batch, int seqLen, int heads, int kvHeads, int headDim)
    {
        var results = OnThreads(ranks, c => RingCheck.Run(c, batch, seqLen, heads, kvHeads, headDim, threads: 1));
        for (int r = 0; r < ranks; r++)
        {
            Assert.True(results[r].MaxErr < 1e-5, $"rank {r}: {results[r]}");
            Assert.True(results[r].SameBits, $"rank {r}: two runs differ");
        }
        // Bytes sent per layer: (C-1) key/value blocks forward and backward, C dK/dV blocks.
        long kvBytes = (long)batch * seqLen / ranks * 2 * kvHeads * headDim * sizeof(float);
        Assert.All(results, x => Assert.Equal(ranks == 1 ? 0 : (3L * ranks - 2) * kvBytes, x.Stats.BytesSent));
    }

    [Fact]
    public void Zig_zag_rows_cover_the_sequence_once_with_balanced_causal_work()
    {
        var zz = ZigZag.Create(24, 3);
        var seen = new bool[24];
        var work = new long[3];
        for (int r = 0; r < 3; r++)
            for (long t = 0; t < zz.LocalLen; t++)
            {
                long g = zz.GlobalPosition(r, t);
                Assert.False(seen[g], $"position {g} twice");
                seen[g] = true;
                work[r] += g + 1; // keys a causal query at g attends to
            }
        Assert.All(seen, Assert.True);
        Assert.Equal(new[] { 0L, 1L, 6L, 7L }, Enumerable.Range(0, 4).Select(t => ZigZag.Create(8, 2).GlobalPosition(0, t)));
        Assert.All(work, w => Assert.Equal(work[0], w));
    }

    [Theory]
    [InlineData(10, 2, "does not split into 4 equal chunks")]
    [InlineData(2, 2, "does not split into 4 equal chunks")]
    [InlineData(8, 0, "context-parallel size must be at least 1")]
    public void A_sequence_that_does_not_split_into_2C_chunks_is_a_one_line_error(long seqLen, int ranks, string expected)
    {
        var e = Assert.Throws<MemoException>(() => ZigZag.Create(seqLen, ranks));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_rank_that_never_joins_makes_the_others_time_out_with_one_line()
    {
        var comms = LocalGroup.Create(2, TimeSpan.FromMilliseconds(300));
        var e = Assert.Throws<CommunicatorException>(() => comms[0].Barrier());
        Assert.Contains("did not complete within 0.3 s", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
