using HaSync.Configuration;
using HaSync.Delta;
using HaSync.Scanning;

namespace HaSync.Sync;

/// <summary>
/// The active's side of a compare: the watched set walked and hashed on a thread of its own. It needs nothing of the
/// passive, so a resync starts it before the session opens and the walk runs while ssh connects and the agent starts
/// (the handshake is a third of a resync of /etc). A path changed after its scan is caught as with any scan: the
/// agent checks each file's hash on arrival, and the daemon's watch, set before its first scan, queues the change.
/// </summary>
public sealed class ActiveScan
{
    private ActiveScan(HaSyncConfig config, PathFilter exclude) => (Config, Exclude) = (config, exclude);

    /// <summary>The configuration scanned.</summary>
    public HaSyncConfig Config { get; }

    /// <summary>Names left out on both sides.</summary>
    public PathFilter Exclude { get; }

    /// <summary>The entries, in path order, once the walk is done.</summary>
    public Task<List<FileEntry>> Entries { get; private set; } = null!;

    /// <summary>What has been described so far.</summary>
    public ScanCounter Counter { get; } = new();

    /// <summary>Paths the active cannot read (each with its failure, path first), left out of the comparison on both sides
    /// with what is below them. Complete once <see cref="Entries"/> is.</summary>
    public Dictionary<string, string> Unreadable { get; } = new(StringComparer.Ordinal);

    /// <summary>The block sums the hash pass yields for each file large enough for a delta (strong sums cut to the sync
    /// length): a delta of that file need not compute them again. Complete once <see cref="Entries"/> is.</summary>
    public Dictionary<string, Signature> OwnSignatures { get; } = new(StringComparer.Ordinal);

    /// <summary>Starts the walk of <paramref name="config"/>'s watched set. <paramref name="forReport"/> (diff): a path that
    /// cannot be read fails the whole scan (a report must not show it as missing) instead of being left out, and no block
    /// sums are kept (nothing is sent).</summary>
    public static ActiveScan Start(HaSyncConfig config, HashCache? cache, CancellationToken cancellationToken, bool forReport = false)
    {
        var scan = new ActiveScan(config, new PathFilter(config.Exclude));
        scan.Entries = Task.Run(() =>
        {
            try
            {
                return TreeWalker.Walk(config.SourceRoot, config.Paths, scan.Exclude, withHash: true,
                    onSignature: forReport ? null : (entry, _, signature) => scan.OwnSignatures[entry.Path] = signature.Truncated(SignatureParameters.SyncStrongLength),
                    cache: cache, onUnreadable: forReport ? null : (path, e) => scan.Unreadable[path] = $"{path}: {Resync.Unreadable(e)}",
                    counter: scan.Counter, cancellationToken: cancellationToken);
            }
            finally
            {
                scan.Counter.Finish();
            }
        }, cancellationToken);
        return scan;
    }
}
