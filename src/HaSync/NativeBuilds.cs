using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace HaSync.Cli;

/// <summary>
/// hasync ships as two native builds of the same program: <c>hasync</c> for any x86-64 CPU (x86-64-v2: SSE4.2, POPCNT),
/// and <c>hasync-x86-64-v3</c> beside it, compiled for AVX2 and its kin (BMI1/2, FMA, LZCNT, MOVBE, F16C), which the
/// hashing and delta code uses. A compiled-ahead program cannot choose its instruction set at run time, and the v3 build
/// refuses to start on a CPU without it; so the first thing the baseline build does, on a CPU that has it all, is to
/// replace itself with the v3 build (execv: same process, arguments, environment, descriptors). HASYNC_BASELINE=1 keeps
/// the baseline build (a CPU that reports AVX2 to CPUID but whose kernel does not enable it).
/// </summary>
internal static class NativeBuilds
{
    /// <summary>The v3 build's file name, beside the baseline executable.</summary>
    public const string V3Name = "hasync-x86-64-v3";

    /// <summary>Execs the v3 build when this is the baseline build, the CPU has x86-64-v3, and the v3 build is there;
    /// returns otherwise (and if the exec fails: the baseline build does the same work, slower).</summary>
    public static void PreferTheFasterBuild(string[] args)
    {
        if (Avx2.IsSupported // this is the v3 build: the compiler folded the check to true
            || !RuntimeInformation.ProcessArchitecture.Equals(Architecture.X64)
            || Environment.GetEnvironmentVariable("HASYNC_BASELINE") == "1"
            || !CpuHasX8664V3())
            return;
        string v3 = Path.Combine(AppContext.BaseDirectory, V3Name);
        if (!File.Exists(v3))
            return;
        // argv[0] as the admin typed it: usage lines and messages say "hasync". execv(2) wants the list ended by a null. It
        // returns only on failure: then this build does the same work, slower.
        _ = Mono.Unix.Native.Syscall.execv(v3, [Environment.GetCommandLineArgs()[0], .. args, null!]);
    }

    /// <summary>What the v3 build needs, as CPUID reports it, and the OS saving the AVX registers (OSXSAVE).</summary>
    private static bool CpuHasX8664V3()
    {
        if (!X86Base.IsSupported || X86Base.CpuId(0, 0).Eax < 7)
            return false;
        var (_, _, ecx1, _) = X86Base.CpuId(1, 0);
        var (_, ebx7, _, _) = X86Base.CpuId(7, 0);
        var (_, _, ecxExtended, _) = X86Base.CpuId(unchecked((int)0x80000001), 0);
        static bool Bit(int register, int bit) => (register & (1 << bit)) != 0;
        return Bit(ecx1, 12) && Bit(ecx1, 22) && Bit(ecx1, 27) && Bit(ecx1, 28) && Bit(ecx1, 29) // FMA, MOVBE, OSXSAVE, AVX, F16C
            && Bit(ebx7, 3) && Bit(ebx7, 5) && Bit(ebx7, 8)                                      // BMI1, AVX2, BMI2
            && Bit(ecxExtended, 5);                                                              // LZCNT
    }
}
