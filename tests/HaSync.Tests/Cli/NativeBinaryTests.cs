using System.Diagnostics;
using System.Text;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary>The shipped artifact itself: the tests' <c>hasync</c> is the native executable, its two builds (any x86-64, and
/// x86-64-v3) give the same bytes as rdiff, and the baseline build hands over to the v3 build exactly when the CPU has it.</summary>
public sealed class NativeBinaryTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");
    private static readonly string HasyncV3 = Path.Combine(AppContext.BaseDirectory, "hasync-x86-64-v3");

    /// <summary>What the kernel says of this CPU (an oracle apart from the program's own CPUID check).</summary>
    private static bool CpuHasAvx2 => File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal))
        .Split(' ').Contains("avx2");

    [Fact]
    public void TheHasyncTheTestsRunIsNativeAndNeedsNoDotnet()
    {
        foreach (string binary in new[] { Hasync, HasyncV3 })
        {
            var ldd = Encoding.UTF8.GetString(Tools.Check("ldd", binary));
            Assert.DoesNotContain("hostfxr", ldd); // a .NET apphost loads the runtime through libhostfxr
            Assert.True(new FileInfo(binary).Length > 4 << 20, $"{binary}: {new FileInfo(binary).Length} bytes, not a native build");
        }
        // No .NET anywhere on the way: an empty environment, and no dotnet on PATH.
        var start = new ProcessStartInfo(Hasync, ["--help"]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment.Clear();
        start.Environment["PATH"] = "/usr/bin:/bin";
        using var process = Process.Start(start)!;
        string help = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        Assert.Contains("Usage:\n  hasync [command] [options]", help); // its name as typed, whichever build answered
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EachBuildSignsAndDeltasByteForByteAsRdiffDoes(bool v3)
    {
        if (v3 && !CpuHasAvx2)
        {
            // This CPU cannot run the v3 build: the baseline build must refuse to hand over to it.
            Assert.Equal(ExeOf(Hasync, baseline: false), Hasync);
            return;
        }
        using var dir = new TempDir();
        var (basis, updated) = TestData.Pair(Mutation.Edits, 3_000_000, seed: 11); // enough blocks for the vector loops to run
        File.WriteAllBytes(dir.File("basis"), basis);
        File.WriteAllBytes(dir.File("new"), updated);
        string binary = v3 ? HasyncV3 : Hasync;
        var baseline = new Dictionary<string, string> { ["HASYNC_BASELINE"] = "1" }; // the baseline build stays itself
        Tools.Check(Tools.Rdiff, "signature", dir.File("basis"), dir.File("sig.rdiff"));
        Tools.Check(Tools.Rdiff, "delta", dir.File("sig.rdiff"), dir.File("new"), dir.File("delta.rdiff"));
        foreach (string hash in new[] { "blake2", "md4" })
        {
            Tools.Check(Tools.Rdiff, "-H", hash, "-f", "signature", dir.File("basis"), dir.File($"sig-{hash}.rdiff"));
            Assert.Equal(0, Tools.Run(binary, ["rdiff", "signature", "-H", hash, dir.File("basis"), dir.File($"sig-{hash}")], environment: baseline).ExitCode);
            Assert.Equal(File.ReadAllBytes(dir.File($"sig-{hash}.rdiff")), File.ReadAllBytes(dir.File($"sig-{hash}")));
        }
        Assert.Equal(0, Tools.Run(binary, ["rdiff", "delta", dir.File("sig.rdiff"), dir.File("new"), dir.File("delta")], environment: baseline).ExitCode);
        Assert.Equal(File.ReadAllBytes(dir.File("delta.rdiff")), File.ReadAllBytes(dir.File("delta")));
        Assert.Equal(0, Tools.Run(binary, ["rdiff", "patch", dir.File("basis"), dir.File("delta"), dir.File("out")], environment: baseline).ExitCode);
        Assert.Equal(updated, File.ReadAllBytes(dir.File("out")));
    }

    [Fact]
    public void TheBaselineBuildHandsOverToTheV3BuildExactlyWhenTheCpuHasIt()
    {
        Assert.Equal(CpuHasAvx2 ? HasyncV3 : Hasync, ExeOf(Hasync, baseline: false));
        Assert.Equal(Hasync, ExeOf(Hasync, baseline: true));
    }

    /// <summary>The executable a <c>hasync serve</c> started from <paramref name="binary"/> runs as, by /proc.</summary>
    private static string ExeOf(string binary, bool baseline)
    {
        using var root = new TempDir();
        var start = new ProcessStartInfo(binary, ["serve", "--root", root.Path, "--state", root.File("state")])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (baseline)
            start.Environment["HASYNC_BASELINE"] = "1";
        using var agent = Process.Start(start)!;
        try
        {
            // The exec, if any, comes within milliseconds; two seconds without one means none.
            string exe = "";
            for (var clock = Stopwatch.StartNew(); exe != HasyncV3 && clock.Elapsed < TimeSpan.FromSeconds(2); Thread.Sleep(20))
                exe = new FileInfo($"/proc/{agent.Id}/exe").LinkTarget ?? "";
            if (agent.HasExited)
                Assert.Fail($"the agent exited: {agent.StandardError.ReadToEnd()}");
            return exe;
        }
        finally
        {
            agent.Kill(); // what it runs as is all this wanted of it
            agent.WaitForExit();
        }
    }
}
