using HaSync.Scanning;

namespace HaSync.Sync;

/// <summary>How far a resync has got, for a person watching it: first the compare, then the pushes.</summary>
public abstract record ResyncProgress;

/// <summary>The compare: what each side has described so far (hashing the files as it goes), reported a few times a second.</summary>
public sealed record CompareProgress(ScanCount Active, ScanCount Passive) : ResyncProgress
{
    /// <summary>"comparing: active 1204 entries, 56.2 MiB hashed; passive 980 entries, 41 MiB hashed".</summary>
    public override string ToString() => $"comparing: active {Side(Active)}; passive {Side(Passive)}";

    private static string Side(ScanCount side) => $"{side.Entries} entries, {Sizes.Human(side.Bytes)} {(side.Done ? "hashed, done" : "hashed")}";
}

/// <summary>One push of the resync (<paramref name="Done"/> of <paramref name="Total"/>), and the content bytes of the files
/// sent so far out of all the files to send (a delta reads the whole file, so it counts whole).</summary>
public sealed record PushProgress(int Done, int Total, string Action, string Path, long Bytes, long TotalBytes) : ResyncProgress
{
    /// <summary>"1.2 GiB of 3.4 GiB, 45 MiB/s, 0:51 left" after <paramref name="elapsed"/> of pushing; without the rate and
    /// what is left until there is a rate to speak of.</summary>
    public string Transfer(TimeSpan elapsed)
    {
        string amount = $"{Sizes.Human(Bytes)} of {Sizes.Human(TotalBytes)}";
        if (elapsed < TimeSpan.FromMilliseconds(500) || Bytes == 0)
            return amount;
        double rate = Bytes / elapsed.TotalSeconds;
        var left = TimeSpan.FromSeconds(Math.Ceiling((TotalBytes - Bytes) / rate));
        return $"{amount}, {Sizes.Human((long)rate)}/s, {(left.TotalHours >= 1 ? $"{(int)left.TotalHours}:{left:mm\\:ss}" : $"{(int)left.TotalMinutes}:{left:ss}")} left";
    }
}
