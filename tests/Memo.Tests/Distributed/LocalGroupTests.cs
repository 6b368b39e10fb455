using Memo.Distributed;
using Memo.Distributed.Host;

#pragma warning disable CA1861 // constant arrays in assertions

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
        // Bytes the communicator counted: (C-1) key/value blocks forward and backward, C dK/dV blocks,
        // each a rank's (B * T/C) rows of [k | v]; the same figure the planner's prediction uses.
        long kvBytes = (long)batch * seqLen / ranks * 2 * kvHeads * headDim * sizeof(float);
        var shape = new RingShape(batch, seqLen / (2 * ranks), heads, kvHeads, headDim, 1);
        Assert.All(results, x => Assert.Equal(ranks == 1 ? 0 : (3L * ranks - 2) * kvBytes, x.CommSendBytes));
        Assert.All(results, x => Assert.Equal(RingAttention.BytesPerLayer(shape, ranks), x.CommSendBytes));
        Assert.All(results, x => Assert.Equal(x.CommSendBytes, x.Stats.BytesSent));
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
    public void Segments_cut_local_rows_into_runs_of_consecutive_positions()
    {
        var zz = ZigZag.Create(16, 2); // chunks of 4; rank 1 holds positions 4-7 and 8-11
        var all = zz.Segments(1, 0, 16).ToList(); // two sequences
        Assert.Equal([(0L, 4L, 4L), (4L, 4L, 8L), (8L, 4L, 4L), (12L, 4L, 8L)], all);
        var part = zz.Segments(1, 2, 9).ToList(); // rows 2..10
        Assert.Equal([(2L, 2L, 6L), (4L, 4L, 8L), (8L, 3L, 4L)], part);
        foreach (var (row, rows, pos) in part)
            for (long i = 0; i < rows; i++) Assert.Equal(zz.GlobalPosition(1, (row + i) % zz.LocalLen), pos + i);
    }

    [Fact]
    public void Slice_takes_each_sequences_two_chunks_in_local_order()
    {
        var zz = ZigZag.Create(8, 2);
        int[] global = [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17];
        var local = new int[8];
        Replicas.Slice<int>(global, zz, 0, local);
        Assert.Equal([0, 1, 6, 7, 10, 11, 16, 17], local);
        Replicas.Slice<int>(global, zz, 1, local);
        Assert.Equal([2, 3, 4, 5, 12, 13, 14, 15], local);
    }

    [Theory]
    [InlineData(3, 2, "3 ranks do not split into context-parallel groups of 2")]
    [InlineData(2, 0, "--cp must be at least 1")]
    public void Ranks_that_are_not_a_multiple_of_cp_are_a_one_line_error(int ranks, int cp, string expected)
    {
        var e = Assert.Throws<MemoException>(() => ParallelGroups.Check(ranks, cp));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Groups_of_four_ranks_with_cp_2_form_two_rings_and_sum_gradients_over_all()
    {
        var results = OnThreads(4, c =>
        {
            using var g = ParallelGroups.Create(c, 2);
            float ringSum = g.ContextRank + 10 * g.DataRank;
            unsafe
            {
                g.Ring.AllReduce(&ringSum, &ringSum, 1, CommType.Float32, CommOp.Sum);
                var grads = new float[] { c.Rank, 1 };
                fixed (float* p = grads) Replicas.SumGradients(c, p, 2);
                return (g.ContextRank, g.DataRank, g.Ring.Rank, ringSum, grads[0], grads[1]);
            }
        });
        for (int w = 0; w < 4; w++)
        {
            var (cr, dr, ringRank, ringSum, g0, g1) = results[w];
            Assert.Equal(w % 2, cr);
            Assert.Equal(w / 2, dr);
            Assert.Equal(cr, ringRank);
            Assert.Equal(1 + 20 * dr, ringSum); // the two ranks of group d: c = 0, 1
            Assert.Equal(6, g0);
            Assert.Equal(4, g1);
        }
    }

    [Fact]
    public void Replica_check_names_the_rank_whose_parameters_differ()
    {
        var errors = OnThreads(3, c =>
        {
            var p = new float[] { 1, 2, 3 };
            unsafe
            {
                fixed (float* x = p) Replicas.Check(c, x, 3, 5); // identical: passes
                if (c.Rank == 2) p[1] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(2f) + 1); // one ulp
                try
                {
                    fixed (float* x = p) Replicas.Check(c, x, 3, 6);
                    return "";
                }
                catch (MemoException e)
                {
                    return e.Message;
                }
            }
        });
        Assert.All(errors, m => Assert.StartsWith("parameters differ between ranks at step 6: rank 2 checksum", m));
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
