using Memo.Planner;
using Buffer = Memo.Planner.Buffer;

namespace Memo.Tests.Planner;

public sealed class PlanCsvTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("memo-plancsv-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string File(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Reads_columns_by_header_name()
    {
        var p = PlanCsv.Read(File("a.csv", "size,upper,id,lower,alignment\n4,3,b1,0,2\n8,9,b2,3,\n"));
        Assert.Equal(2, p.Count);
        Assert.Equal(new Buffer("b1", new Lifespan(0, 3), 4, 2), p.Buffers[0]);
        Assert.Equal(new Buffer("b2", new Lifespan(3, 9), 8, 1), p.Buffers[1]);
    }

    [Fact]
    public void Understands_minimallocs_synonyms()
    {
        // "end" is inclusive: upper = end + 1.
        var p = PlanCsv.Read(File("s.csv", "buffer,start,end,size,hint\nx,0,2,4,0\n"));
        Assert.Equal(new Lifespan(0, 3), p.Buffers[0].Lifespan);
    }

    [Fact]
    public void Round_trips_with_offsets_and_tags()
    {
        var p = new Problem(
        [
            new Buffer("a", new Lifespan(0, 3), 4) { Kind = "act", Group = "fwd", Layer = 2 },
            new Buffer("b", new Lifespan(1, 9), 8, 4),
        ]);
        string path = Path.Combine(_dir, "out.csv");
        PlanCsv.Write(path, p, [0, 4]);
        var (back, offsets) = PlanCsv.ReadWithOffsets(path);
        Assert.Equal(p.Buffers, back.Buffers);
        Assert.Equal(new long[] { 0, 4 }, offsets);
        Assert.Equal("id,lower,upper,size,alignment,kind,group,layer,offset", System.IO.File.ReadLines(path).First());
        Assert.Single(Directory.GetFiles(_dir));  // no temporary file left behind
    }

    [Fact]
    public void Plain_problems_write_minimallocs_columns()
    {
        var p = new Problem([new Buffer("b1", new Lifespan(0, 3), 4)]);
        string path = Path.Combine(_dir, "plain.csv");
        PlanCsv.Write(path, p, [8]);
        Assert.Equal("id,lower,upper,size,offset\nb1,0,3,4,8\n", System.IO.File.ReadAllText(path));
    }

    [Theory]
    [InlineData("id,lower,upper\nb1,0,3\n", ":1: missing column 'size'")]
    [InlineData("id,lower,upper,size\nb1,0,3,4\nb2,0,x,4\n", ":3: column 'upper': 'x' is not an integer")]
    [InlineData("id,lower,upper,size\nb1,0,3,-4\n", ":2: column 'size': -4 is negative")]
    [InlineData("id,lower,upper,size\nb1,0,3,4\n\nb2,5,5,4\n", ":4: buffer 'b2' has upper 5 <= lower 5")]
    [InlineData("id,lower,upper,size\nb1,0,3,4\nb1,3,4,4\n", ":3: duplicate id 'b1' (first on line 2)")]
    [InlineData("id,lower,upper,size\nb1,0,3,9223372036854775807\nb2,0,3,1\n", ":3: the sizes up to buffer 'b2' add up to more than")]
    [InlineData("id,lower,upper,size\nb1,0,3,99999999999999999999\n", ":2: column 'size': 99999999999999999999 is out of range")]
    [InlineData("id,lower,upper,size\nb1,0,3\n", ":2: 3 field(s) but the header has 4; the row is short (no 'size')")]
    [InlineData("id,lower,upper,sizes\nb1,0,3,4\n", ":1: unknown column 'sizes'")]
    [InlineData("id,lower,upper,size,alignment\nb1,0,3,4,0\n", ":2: buffer 'b1' has alignment 0")]
    [InlineData("", "empty file")]
    public void Bad_input_names_file_line_and_problem(string text, string expected)
    {
        string path = File("bad.csv", text);
        var e = Assert.Throws<MemoException>(() => PlanCsv.Read(path));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.StartsWith(path, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Missing_file_and_directory_are_user_errors()
    {
        Assert.Throws<MemoException>(() => PlanCsv.Read(Path.Combine(_dir, "nope.csv")));
        var p = new Problem([new Buffer("b1", new Lifespan(0, 3), 4)]);
        Assert.Throws<MemoException>(() => PlanCsv.Write(Path.Combine(_dir, "no", "such", "dir.csv"), p, [0]));
    }

    [MinimallocSuiteFact]
    public void Minimallocs_solutions_pass_the_validator()
    {
        // minimalloc's own outputs (shared/benchmarks/minimalloc/solutions): every one is valid and
        // its peak is at or below the capacity in the instance's file name.
        string dir = Path.Combine(PlannerTestData.MinimallocSuite()!, "solutions");
        var files = Directory.GetFiles(dir, "*.csv");
        Assert.NotEmpty(files);
        foreach (string file in files)
        {
            var (problem, offsets) = PlanCsv.ReadWithOffsets(file);
            Assert.NotNull(offsets);
            var solution = Solution.FromOffsets(problem, offsets);
            var check = PlanValidator.Validate(problem, solution);
            Assert.True(check.IsOk, $"{file}: {check.Message}");
            Assert.True(solution.Peak <= 1048576, $"{file}: peak {solution.Peak}");
            Assert.True(solution.Peak >= problem.LowerBound());
        }
    }
}
