using HaSync.Configuration;
using System.Diagnostics;

namespace HaSync.Tests.Support;

/// <summary>Bounded waits for a running daemon's passive to hold what its active holds, judged by <see cref="TreeOracle"/>
/// (not the product's own comparison), and for the daemon to say it is healthy once it does.</summary>
internal static class Convergence
{
    /// <summary>The excludes the daemon tests run with.</summary>
    public static readonly string[] Excludes = ["*.swp", "*~"];

    /// <summary>A role that says "active": without one, <c>hasync check</c> warns (exit 1) however healthy the daemon is.</summary>
    public static HaSyncConfig AlwaysActive(HaSyncConfig config) => config with { Role = new RoleConfig { Kind = RoleKind.Always } };

    /// <summary>Polls every 200 ms until the oracle finds no difference below <paramref name="watched"/>; returns how long
    /// that took. On timeout fails with <paramref name="context"/> (seed, last operations...), the differences and the log's tail.</summary>
    public static async Task<TimeSpan> WaitAsync(DaemonHarness daemon, TimeSpan within, Func<string> context, string watched = "etc/bm")
    {
        var clock = Stopwatch.StartNew();
        List<string> differences;
        while (true)
        {
            differences = Differences(daemon, watched);
            if (differences.Count == 0)
                return clock.Elapsed;
            if (clock.Elapsed > within)
                break;
            await Task.Delay(200);
        }
        Assert.Fail($"the passive did not converge within {within.TotalSeconds:F0} s\n{context()}\n"
            + $"{differences.Count} differences (active vs passive):\n  {string.Join("\n  ", differences.Take(60))}\n"
            + $"daemon log (last 80 lines):\n{Tail(daemon.Log.Lines, 80)}");
        return clock.Elapsed;
    }

    public static List<string> Differences(DaemonHarness daemon, string watched = "etc/bm") =>
        TreeOracle.Compare(Path.Join(daemon.ActiveRoot, watched), Path.Join(daemon.PassiveRoot, watched), daemon.Config.Exclude,
            setIdKept: daemon.Config.Targets[0].Command.Contains("--allow-setid"));

    /// <summary>Once converged: <c>hasync check</c> exits 0, the target's queue is empty (both polled: the status file is
    /// written once a second) and the log holds no error.</summary>
    public static async Task AssertHealthyAsync(DaemonHarness daemon, TimeSpan within, Func<string> context)
    {
        var clock = Stopwatch.StartNew();
        (int Code, string Line) check;
        int queue;
        while (true)
        {
            check = daemon.Check();
            queue = daemon.Status().Targets[0].Queue;
            if (check.Code == 0 && queue == 0)
                break;
            if (clock.Elapsed > within)
                Assert.Fail($"converged, but after {within.TotalSeconds:F0} s check says {check.Code} '{check.Line.Trim()}' and the queue holds {queue}\n"
                    + $"{context()}\ndaemon log (last 80 lines):\n{Tail(daemon.Log.Lines, 80)}");
            await Task.Delay(250);
        }
        var errors = daemon.Log.Lines.Where(l => l.StartsWith("Error:", StringComparison.Ordinal) || l.StartsWith("Critical:", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, $"the daemon logged errors:\n{string.Join("\n", errors.Take(30))}\n{context()}");
    }

    public static string Tail(IReadOnlyList<string> lines, int count) => string.Join("\n", lines.Skip(Math.Max(0, lines.Count - count)));
}
