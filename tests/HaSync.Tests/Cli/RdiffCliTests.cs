using System.Text;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary>The <c>hasync rdiff</c> verbs as an admin runs them: files, pipes, errors.</summary>
public sealed class RdiffCliTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");

    private static (int Code, byte[] Stdout, string Stderr) Run(byte[]? stdin, params string[] arguments) =>
        Tools.Run(Hasync, ["rdiff", .. arguments], stdin);

    [Fact]
    public void FilesRoundTripAndMatchRdiff()
    {
        using var dir = new TempDir();
        var (basis, updated) = TestData.Pair(Mutation.Inserts, 200_000, seed: 1);
        File.WriteAllBytes(dir.File("basis"), basis);
        File.WriteAllBytes(dir.File("new"), updated);

        Assert.Equal(0, Run(null, "signature", dir.File("basis"), dir.File("sig")).Code);
        Assert.Equal(0, Run(null, "delta", dir.File("sig"), dir.File("new"), dir.File("delta")).Code);
        var patch = Run(null, "patch", "-s", dir.File("basis"), dir.File("delta"), dir.File("out"));
        Assert.Equal(0, patch.Code);
        Assert.Equal(updated, File.ReadAllBytes(dir.File("out")));
        Assert.Matches(@"literal \d+ bytes in \d+ commands, copied \d+ bytes", patch.Stderr);

        Tools.Check(Tools.Rdiff, "signature", dir.File("basis"), dir.File("sig.rdiff"));
        Tools.Check(Tools.Rdiff, "delta", dir.File("sig.rdiff"), dir.File("new"), dir.File("delta.rdiff"));
        Assert.Equal(File.ReadAllBytes(dir.File("sig.rdiff")), File.ReadAllBytes(dir.File("sig")));
        Assert.Equal(File.ReadAllBytes(dir.File("delta.rdiff")), File.ReadAllBytes(dir.File("delta")));
    }

    [Fact]
    public void PipesWorkWhereRdiffAllowsThem()
    {
        using var dir = new TempDir();
        var (basis, updated) = TestData.Pair(Mutation.Edits, 100_000, seed: 2);
        File.WriteAllBytes(dir.File("basis"), basis);

        var signature = Run(basis, "signature", "-", "-");
        Assert.Equal(0, signature.Code);
        var (_, rdiffSignature, _) = Tools.Run(Tools.Rdiff, ["signature"], basis);
        Assert.Equal(rdiffSignature, signature.Stdout);

        File.WriteAllBytes(dir.File("sig"), signature.Stdout);
        var delta = Run(updated, "delta", dir.File("sig")); // new file and delta default to stdin and stdout
        Assert.Equal(0, delta.Code);
        var patch = Run(delta.Stdout, "patch", dir.File("basis"), "-", "-");
        Assert.Equal(0, patch.Code);
        Assert.Equal(updated, patch.Stdout);
    }

    [Fact]
    public void RefusesToOverwriteWithoutForce()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("basis"), [1, 2, 3]);
        File.WriteAllText(dir.File("sig"), "keep me");
        var result = Run(null, "signature", dir.File("basis"), dir.File("sig"));
        Assert.NotEqual(0, result.Code);
        Assert.Contains($"{dir.File("sig")}: already exists (use -f to overwrite)", result.Stderr);
        Assert.Equal("keep me", File.ReadAllText(dir.File("sig")));
        Assert.Equal(0, Run(null, "signature", "-f", dir.File("basis"), dir.File("sig")).Code);
    }

    [Fact]
    public void CorruptDeltaLeavesTheExistingOutputIntactAndNoTempFile()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("basis"), TestData.Random(new Random(3), 5000));
        File.WriteAllText(dir.File("out"), "previous complete content");
        // A valid literal of 64 bytes, then a reserved opcode: the output has been partly written by then.
        File.WriteAllBytes(dir.File("bad.delta"), [0x72, 0x73, 0x02, 0x36, 0x40, .. new byte[64], 0x99, 0x00]);

        var result = Run(null, "patch", "-f", dir.File("basis"), dir.File("bad.delta"), dir.File("out"));
        Assert.Equal(1, result.Code);
        Assert.Contains($"{dir.File("bad.delta")}: delta: reserved opcode 0x99 at byte 69", result.Stderr);
        Assert.Equal("previous complete content", File.ReadAllText(dir.File("out")));
        Assert.Equal(["bad.delta", "basis", "out"], Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void CorruptSignatureIsNamed()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("sig"), "not a signature at all");
        var result = Run(Encoding.ASCII.GetBytes("new data"), "delta", dir.File("sig"), "-", dir.File("delta"));
        Assert.Equal(1, result.Code);
        Assert.Contains($"{dir.File("sig")}: signature: bad magic 0x6e6f7420 at byte 0", result.Stderr);
        Assert.False(File.Exists(dir.File("delta")));
    }

    [Fact]
    public void MissingFileAndStdinBasisAreClearErrors()
    {
        using var dir = new TempDir();
        var missing = Run(null, "signature", dir.File("nope"), dir.File("sig"));
        Assert.Equal(1, missing.Code);
        Assert.Contains(dir.File("nope"), missing.Stderr);

        var stdinBasis = Run([], "patch", "-", dir.File("delta"), dir.File("out"));
        Assert.Equal(1, stdinBasis.Code);
        Assert.Contains("the basis cannot be stdin", stdinBasis.Stderr);
    }

    [Fact]
    public void BadOptionValuesAreRefused()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("basis"), [1, 2, 3]);
        var result = Run(null, "signature", "-S", "40", dir.File("basis"), dir.File("sig"));
        Assert.Equal(1, result.Code);
        Assert.Contains("strong sum length 40 is outside 1..32", result.Stderr);
        Assert.NotEqual(0, Run(null, "signature", "-H", "sha1", dir.File("basis"), dir.File("sig2")).Code);
    }
}
