namespace Memo.Distributed.Host;

/// <summary>Every call of <see cref="ICommunicator"/> on values each rank can predict; throws on the first mismatch.</summary>
public static unsafe class CollectiveChecks
{
    public static void Run(ICommunicator c)
    {
        ArgumentNullException.ThrowIfNull(c);
        int n = c.Size, r = c.Rank;

        // All-reduce: float sum (separate buffers), double max and int64 sum in place.
        var f = new float[5];
        var fr = new float[5];
        for (int i = 0; i < 5; i++) f[i] = r + i * 0.5f;
        fixed (float* s = f, d = fr) c.AllReduce(s, d, 5, CommType.Float32, CommOp.Sum);
        for (int i = 0; i < 5; i++) Expect(fr[i] == n * (n - 1) / 2f + n * i * 0.5f, $"float all-reduce [{i}] = {fr[i]}");
        double dm = r * 1.5;
        c.AllReduce(&dm, &dm, 1, CommType.Float64, CommOp.Max);
        Expect(dm == (n - 1) * 1.5, $"double max all-reduce = {dm}");
        long big = (1L << 40) + r;
        c.AllReduce(&big, &big, 1, CommType.Int64, CommOp.Sum);
        Expect(big == n * (1L << 40) + (long)n * (n - 1) / 2, $"int64 all-reduce = {big}");
        double mn = r + 3;
        c.AllReduce(&mn, &mn, 1, CommType.Float64, CommOp.Min);
        Expect(mn == 3, $"double min all-reduce = {mn}");

        // All-gather: rank r contributes [r, r + 100].
        var g = new long[2 * n];
        long* mine = stackalloc long[2];
        mine[0] = r;
        mine[1] = r + 100;
        fixed (long* d = g) c.AllGather(mine, d, 2, CommType.Int64);
        for (int k = 0; k < n; k++) Expect(g[2 * k] == k && g[2 * k + 1] == k + 100, $"all-gather block {k} = {g[2 * k]}, {g[2 * k + 1]}");

        // Reduce-scatter: element j of every rank is j + r; rank r keeps block r (3 elements).
        var rs = new double[3 * n];
        for (int j = 0; j < rs.Length; j++) rs[j] = j + r;
        var mineRs = new double[3];
        fixed (double* s = rs, d = mineRs) c.ReduceScatter(s, d, 3, CommType.Float64, CommOp.Sum);
        for (int j = 0; j < 3; j++)
        {
            int idx = 3 * r + j;
            Expect(mineRs[j] == (double)n * idx + n * (n - 1) / 2.0, $"reduce-scatter [{j}] = {mineRs[j]}");
        }

        // Point-to-point around the ring, 1M floats so the message is not sent eagerly.
        const int Count = 1 << 20;
        var send = new float[Count];
        var recv = new float[Count];
        for (int i = 0; i < Count; i++) send[i] = r * 1e6f + i;
        int next = (r + 1) % n, prev = (r - 1 + n) % n;
        fixed (float* s = send, d = recv)
        {
            var rq = c.Receive(d, Count, CommType.Float32, prev, 7);
            var sq = c.Send(s, Count, CommType.Float32, next, 7);
            c.Wait(rq);
            c.Wait(sq);
        }
        for (int i = 0; i < Count; i += 4099) Expect(recv[i] == prev * 1e6f + i, $"received [{i}] = {recv[i]} from rank {prev}");

        c.Barrier();

        // Sub-groups: even and odd ranks, reversed order within each.
        using var sub = c.Split(r % 2, -r);
        int members = (n + 1 - r % 2) / 2;
        Expect(sub.Size == members, $"sub-group size {sub.Size}, expected {members}");
        long one = r;
        sub.AllReduce(&one, &one, 1, CommType.Int64, CommOp.Sum);
        long want = 0;
        for (int k = r % 2; k < n; k += 2) want += k;
        Expect(one == want, $"sub-group sum {one}, expected {want}");
        int expectedRank = Enumerable.Range(0, n).Where(k => k % 2 == r % 2).OrderByDescending(k => k).ToList().IndexOf(r);
        Expect(sub.Rank == expectedRank, $"sub-group rank {sub.Rank}, expected {expectedRank}");
    }

    private static void Expect(bool ok, string what)
    {
        if (!ok) throw new InvalidOperationException($"collective check failed: {what}");
    }
}
