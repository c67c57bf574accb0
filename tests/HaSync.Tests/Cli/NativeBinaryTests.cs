using System.Diagnostics;
using System.Text;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary>The shipped artifact itself: the tests' <c>hasync</c> is the launcher of the native executables, its two builds
/// (any x86-64, and x86-64-v3) give the same bytes as rdiff, and the launcher starts the v3 build exactly when the CPU
/// has it.</summary>
public sealed class NativeBinaryTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");
    private static readonly string HasyncBaseline = Path.Combine(AppContext.BaseDirectory, "hasync-x86-64");
    private static readonly string HasyncV3 = Path.Combine(AppContext.BaseDirectory, "hasync-x86-64-v3");

    /// <summary>What the kernel says of this CPU (an oracle apart from the program's own CPUID check).</summary>
    private static bool CpuHasAvx2 => File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal))
        .Split(' ').Contains("avx2");

    [Fact]
    public void TheHasyncTheTestsRunIsNativeAndNeedsNoDotnet()
    {
        foreach (string binary in new[] { HasyncBaseline, HasyncV3 })
        {
            var ldd = Encoding.UTF8.GetString(Tools.Check("ldd", binary));
            Assert.DoesNotContain("hostfxr", ldd); // a .NET apphost loads the runtime through libhostfxr
            Assert.True(new FileInfo(binary).Length > 4 << 20, $"{binary}: {new FileInfo(binary).Length} bytes, not a native build");
        }
        // The launcher loads no library at all (it is static), so its own exec costs next to nothing.
        var launcher = Tools.Run("ldd", [Hasync]);
        Assert.Contains("not a dynamic executable", Encoding.UTF8.GetString(launcher.Stdout) + launcher.Stderr);
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
            // This CPU cannot run the v3 build: the launcher must not start it.
            Assert.Equal(HasyncBaseline, ExeOf(Hasync, baseline: false));
            return;
        }
        using var dir = new TempDir();
        var (basis, updated) = TestData.Pair(Mutation.Edits, 3_000_000, seed: 11); // enough blocks for the vector loops to run
        File.WriteAllBytes(dir.File("basis"), basis);
        File.WriteAllBytes(dir.File("new"), updated);
        string binary = v3 ? HasyncV3 : HasyncBaseline;
        Tools.Check(Tools.Rdiff, "signature", dir.File("basis"), dir.File("sig.rdiff"));
        Tools.Check(Tools.Rdiff, "delta", dir.File("sig.rdiff"), dir.File("new"), dir.File("delta.rdiff"));
        foreach (string hash in new[] { "blake2", "md4" })
        {
            Tools.Check(Tools.Rdiff, "-H", hash, "-f", "signature", dir.File("basis"), dir.File($"sig-{hash}.rdiff"));
            Assert.Equal(0, Tools.Run(binary, ["rdiff", "signature", "-H", hash, dir.File("basis"), dir.File($"sig-{hash}")]).ExitCode);
            Assert.Equal(File.ReadAllBytes(dir.File($"sig-{hash}.rdiff")), File.ReadAllBytes(dir.File($"sig-{hash}")));
        }
        Assert.Equal(0, Tools.Run(binary, ["rdiff", "delta", dir.File("sig.rdiff"), dir.File("new"), dir.File("delta")]).ExitCode);
        Assert.Equal(File.ReadAllBytes(dir.File("delta.rdiff")), File.ReadAllBytes(dir.File("delta")));
        Assert.Equal(0, Tools.Run(binary, ["rdiff", "patch", dir.File("basis"), dir.File("delta"), dir.File("out")]).ExitCode);
        Assert.Equal(updated, File.ReadAllBytes(dir.File("out")));
    }

    [Fact]
    public void TheLauncherStartsTheV3BuildExactlyWhenTheCpuHasIt()
    {
        Assert.Equal(CpuHasAvx2 ? HasyncV3 : HasyncBaseline, ExeOf(Hasync, baseline: false));
        Assert.Equal(HasyncBaseline, ExeOf(Hasync, baseline: true));
    }

    [Fact]
    public void TheLauncherFallsBackToTheBaselineBuildAndSaysWhatIsMissing()
    {
        // A v3 build missing (a copy that left it out) leaves the baseline build, on any CPU.
        using var dir = new TempDir();
        File.Copy(Hasync, dir.File("hasync"));
        File.Copy(HasyncBaseline, dir.File("hasync-x86-64"));
        File.Copy(Path.Combine(AppContext.BaseDirectory, "libMonoPosixHelper.so"), dir.File("libMonoPosixHelper.so"));
        Assert.Equal(dir.File("hasync-x86-64"), ExeOf(dir.File("hasync"), baseline: false));
        // No build at all beside it: a message that names the one it needs, and 127 as a shell gives for "cannot run".
        File.Delete(dir.File("hasync-x86-64"));
        var alone = Tools.Run(dir.File("hasync"), ["--version"]);
        Assert.Equal(127, alone.ExitCode);
        Assert.Contains($"cannot start {dir.File("hasync-x86-64")}: No such file or directory", alone.Stderr);
        Assert.Empty(alone.Stdout);
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
            for (var clock = Stopwatch.StartNew(); !exe.Contains("hasync-x86-64") && clock.Elapsed < TimeSpan.FromSeconds(2); Thread.Sleep(20))
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
