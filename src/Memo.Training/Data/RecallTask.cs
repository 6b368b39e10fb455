namespace Memo.Training.Data;

/// <summary>
/// The built-in synthetic long-context recall task (the default data of <c>memo train</c>).
/// Every batch row is one independent sample of T+1 tokens (inputs = first T, targets = last T)
/// generated from (seed, sample index) alone, so <see cref="Position"/> is the index of the next
/// sample and any sample can be regenerated bit for bit.
/// <para>Token ids (all below min(vocab_size, 256), so byte-level presets work):</para>
/// <code>
///   0                      reserved (padding; never generated)
///   1                      QUERY marker
///   [KeyFirst,   +KeyCount)    keys      KeyCount = ValueCount = min(32, alphabet / 4)
///   [ValueFirst, +ValueCount)  values
///   [FillerFirst, alphabet)    filler    alphabet = min(vocab_size, 256)
/// </code>
/// <para>Filler is either a pattern (<see cref="RecallFiller.Pattern"/>, the default: the same
/// <see cref="PatternLength"/> filler ids repeated in order from a random phase, like the repeated sentences of the
/// passkey-retrieval test, so the haystack itself is predictable and the loss concentrates on the needles) or
/// independent random filler ids (<see cref="RecallFiller.Random"/>: a noisy haystack, much slower to learn).</para>
/// <para>A sample of T+1 tokens:</para>
/// <code>
///   |&lt;-- context: first T/4 tokens --&gt;|&lt;------------ filler ------------&gt;|&lt;- 3Q tokens -&gt;|
///    f f k1 v1 f f f k2 v2 f ... f f   f f f f f f f f f f f f f f f f f f f Q k v Q k v ...
/// </code>
/// K pairs "k v" with distinct keys sit at random non-overlapping places in the context, every
/// other context token is random filler; the sample ends with Q queries "QUERY k v", each asking
/// one of the context's keys (a random permutation of them, cycled when Q &gt; K). The answer mask
/// marks the positions whose target is a query's v (the position holding the queried k), so the
/// model must recall a value seen at least about 3T/4 - 3Q tokens earlier.
/// The default is passkey retrieval: K = Q = 1, one needle in a pattern haystack. K &gt; 1 is multi-query
/// associative recall (every query needs a key-matching lookup, learned much more slowly).
/// </summary>
public sealed class RecallTask : IBatchSource
{
    public const string TaskName = "recall";
    public const int PadToken = 0;
    public const int QueryToken = 1;
    public const int MinVocabSize = 64;
    public const int MinSeqLen = 8;

    /// <summary>Distinct filler ids of the pattern haystack.</summary>
    public const int PatternLength = 1;

    private long _position;

    /// <param name="seed">Selects the data; the same seed yields the same samples.</param>
    /// <param name="vocabSize">The model's vocab_size (&gt;= 64).</param>
    /// <param name="pairs">Key-value pairs per sample (K, at least 1; 1 = passkey retrieval).</param>
    /// <param name="queries">Queries per sample (Q); 0 = as many as pairs.</param>
    /// <param name="filler">The haystack: a repeated pattern (default) or random ids.</param>
    public RecallTask(ulong seed, int vocabSize, int pairs = 1, int queries = 0, RecallFiller filler = RecallFiller.Pattern)
    {
        if (vocabSize < MinVocabSize)
            throw new MemoException($"recall task: vocab_size {vocabSize} is too small (needs >= {MinVocabSize} ids for markers, keys, values and filler); use a model with a larger vocabulary");
        Alphabet = Math.Min(vocabSize, 256);
        KeyCount = Math.Min(32, Alphabet / 4);
        KeyFirst = 2;
        ValueFirst = KeyFirst + KeyCount;
        ValueCount = KeyCount;
        FillerFirst = ValueFirst + ValueCount;
        if (pairs < 1 || pairs > KeyCount)
            throw new MemoException($"recall task: {pairs} key-value pairs requested, but there are {KeyCount} distinct keys at vocab_size {vocabSize}; use 1..{KeyCount}");
        ArgumentOutOfRangeException.ThrowIfNegative(queries);
        Seed = seed;
        Pairs = pairs;
        Queries = queries > 0 ? queries : pairs;
        Filler = filler;
    }

    public string Name => TaskName;

    public ulong Seed { get; }

    /// <summary>Ids used are below this: min(vocab_size, 256).</summary>
    public int Alphabet { get; }

    public int KeyFirst { get; }

    public int KeyCount { get; }

    public int ValueFirst { get; }

    public int ValueCount { get; }

    public int FillerFirst { get; }

    public int FillerCount => Alphabet - FillerFirst;

    public RecallFiller Filler { get; }

    public string Description =>
        $"recall task (seed {Seed}; keys {KeyFirst}..{ValueFirst - 1}, values {ValueFirst}..{FillerFirst - 1}, filler {FillerFirst}..{Alphabet - 1}; " +
        $"{(Pairs == 1 ? "passkey, " : "")}pairs {Pairs}, queries {Queries}, {(Filler == RecallFiller.Pattern ? $"pattern filler of {PatternLength} ids" : "random filler")})";

    public int MinVocab => Alphabet;

    public long Position => _position;

    /// <summary>Key-value pairs per sample (K).</summary>
    public int Pairs { get; }

    /// <summary>Queries per sample (Q).</summary>
    public int Queries { get; }

    /// <summary>The fewest tokens between a needle's value and the query that asks for it, at length <paramref name="T"/>.</summary>
    public int MinDistance(int T) => T + 1 - 3 * Queries - ContextLength(T) + 2;

    /// <summary>Length of the context region (where the pairs are) at sequence length <paramref name="T"/>.</summary>
    public static int ContextLength(int T) => T / 4;

    public void Seek(long position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        _position = position;
    }

    public void NextBatch(int B, int T, Span<int> inputs, Span<int> targets, Span<byte> answerMask)
    {
        BatchArgs.Check(B, T, inputs, targets, answerMask);
        for (int b = 0; b < B; b++)
        {
            var row = new Range(b * T, (b + 1) * T);
            Sample(_position + b, T, inputs[row], targets[row], answerMask[row]);
        }
        _position += B;
    }

    /// <summary>Generates sample <paramref name="index"/> into one row (each span of length T).</summary>
    public void Sample(long index, int T, Span<int> inputs, Span<int> targets, Span<byte> answerMask)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        int K = Pairs, Q = Queries;
        CheckFits(T, K, Q);
        if (inputs.Length < T || targets.Length < T || answerMask.Length < T)
            throw new ArgumentException($"each row span must hold T = {T} elements");
        inputs = inputs[..T];
        targets = targets[..T];
        answerMask = answerMask[..T];
        var rng = new SplitMix(Hash(Hash(Seed) ^ Hash((ulong)index + 0x632BE59BD9B4E019UL)));

        // Sample token s[p] lives in inputs[0] for p = 0 and in targets[p - 1] for p = 1..T.
        int filler = FillerFirst, fillerCount = FillerCount;
        if (Filler == RecallFiller.Pattern)
        {
            int phase = rng.Below(PatternLength);
            inputs[0] = filler + phase;
            for (int p = 0; p < T; p++) targets[p] = filler + (p + 1 + phase) % PatternLength;
        }
        else
        {
            inputs[0] = filler + rng.Below(fillerCount);
            for (int p = 0; p < T; p++) targets[p] = filler + rng.Below(fillerCount);
        }
        answerMask.Clear();

        // K distinct keys in random order, each with a random value.
        Span<int> keys = stackalloc int[KeyCount];
        for (int i = 0; i < keys.Length; i++) keys[i] = i;
        for (int i = 0; i < K; i++)
        {
            int j = i + rng.Below(keys.Length - i);
            (keys[i], keys[j]) = (keys[j], keys[i]);
        }
        Span<int> values = stackalloc int[K];
        for (int i = 0; i < K; i++) values[i] = rng.Below(ValueCount);

        // K non-overlapping 2-token slots in [0, ctx): sorted distinct x_i in [0, ctx - K), start_i = x_i + i.
        int ctx = ContextLength(T);
        Span<int> starts = stackalloc int[K];
        for (int i = 0; i < K; i++)
        {
            int x;
            do x = rng.Below(ctx - K); while (starts[..i].Contains(x));
            starts[i] = x;
        }
        starts.Sort();
        for (int i = 0; i < K; i++)
        {
            int p = starts[i] + i;
            Put(inputs, targets, p, KeyFirst + keys[i]);
            Put(inputs, targets, p + 1, ValueFirst + values[i]);
        }

        // Q queries "QUERY k v" ending at s[T]; queried pair order is a random permutation, cycled.
        Span<int> order = stackalloc int[K];
        for (int i = 0; i < K; i++) order[i] = i;
        for (int i = K - 1; i > 0; i--)
        {
            int j = rng.Below(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        int q0 = T + 1 - 3 * Q;
        for (int j = 0; j < Q; j++)
        {
            int pair = order[j % K];
            int q = q0 + 3 * j;
            Put(inputs, targets, q, QueryToken);
            Put(inputs, targets, q + 1, KeyFirst + keys[pair]);
            Put(inputs, targets, q + 2, ValueFirst + values[pair]);
            answerMask[q + 1] = 1; // the target at position q+1 is s[q+2] = v
        }

        targets[..(T - 1)].CopyTo(inputs[1..]);
    }

    private static void Put(Span<int> inputs, Span<int> targets, int p, int token)
    {
        if (p == 0) inputs[0] = token;
        else targets[p - 1] = token;
    }

    private void CheckFits(int T, int K, int Q)
    {
        if (T < MinSeqLen)
            throw new MemoException($"recall task: sequence length {T} is too short (needs >= {MinSeqLen}); use a longer --seq");
        int ctx = ContextLength(T);
        if (2 * K > ctx)
            throw new MemoException($"recall task: {K} key-value pairs do not fit in the context region (first {ctx} tokens of {T}); use fewer pairs or a longer --seq");
        if (3L * Q > T + 1 - ctx)
            throw new MemoException($"recall task: {Q} queries ({3 * Q} tokens) do not fit after the context region ({T + 1 - ctx} tokens left of {T + 1}); use fewer queries or a longer --seq");
    }

    private static ulong Hash(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>SplitMix64: a tiny, fast generator whose whole state is one ulong.</summary>
    private struct SplitMix(ulong state)
    {
        private ulong _state = state;

        public ulong Next()
        {
            _state += 0x9E3779B97F4A7C15UL;
            return Hash(_state);
        }

        /// <summary>Uniform in [0, n) (multiply-shift on the high 32 bits; bias below 2^-32 * n).</summary>
        public int Below(int n) => (int)(((Next() >> 32) * (ulong)n) >> 32);
    }

    public void Dispose()
    {
    }
}

/// <summary>The haystack of the recall task.</summary>
public enum RecallFiller
{
    /// <summary>A fixed sequence of <see cref="RecallTask.PatternLength"/> filler ids, repeated from a random phase.</summary>
    Pattern,

    /// <summary>Independent uniformly random filler ids.</summary>
    Random,
}
