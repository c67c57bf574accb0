namespace HaSync.Scanning;

/// <summary>
/// Lists the watched set under a node's root: each listed path, and everything below a listed directory,
/// without following symlinks. The active's scan and the agent's manifest both come from here, so the two
/// sides describe paths the same way.
/// </summary>
public static class TreeWalker
{
    /// <summary>Joins a node's root and a logical path.</summary>
    public static string FullPath(string root, string logicalPath) =>
        logicalPath == "/" ? root : Path.Join(root, logicalPath.TrimStart('/'));

    /// <summary>The entries of the watched set, parents before children, in ordinal order, excluded names left out.</summary>
    /// <param name="root">The node's root ("/" in production).</param>
    /// <param name="logicalPaths">The listed paths (absolute logical paths).</param>
    /// <param name="exclude">Names and paths never listed.</param>
    /// <param name="withHash">Hash file content.</param>
    /// <param name="onSignature">Receives the signatures the hash pass yields (see <see cref="PosixFiles.Describe"/>).</param>
    /// <param name="cancellationToken">Observed per entry.</param>
    public static List<FileEntry> Walk(string root, IEnumerable<string> logicalPaths, PathFilter exclude, bool withHash = true,
        Action<FileEntry, Mono.Unix.Native.Stat, Delta.Signature>? onSignature = null, CancellationToken cancellationToken = default)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var entries = new List<FileEntry>();
        var walk = new Walker(root, exclude, withHash, seen, entries, onSignature, cancellationToken);
        foreach (string logical in logicalPaths.Order(StringComparer.Ordinal))
            walk.Visit(logical);
        entries.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return entries;
    }

    private sealed record Walker(string Root, PathFilter Exclude, bool WithHash, HashSet<string> Seen, List<FileEntry> Entries,
        Action<FileEntry, Mono.Unix.Native.Stat, Delta.Signature>? OnSignature, CancellationToken CancellationToken)
    {
        public void Visit(string logical)
        {
            CancellationToken.ThrowIfCancellationRequested();
            if (Exclude.Matches(logical) || !Seen.Add(logical))
                return;
            string full = FullPath(Root, logical);
            var entry = PosixFiles.Describe(full, logical, WithHash, OnSignature);
            if (entry is null)
                return;
            Entries.Add(entry);
            if (entry.Kind != EntryKind.Directory)
                return;
            List<string> children;
            try
            {
                children = Directory.EnumerateFileSystemEntries(full).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
            }
            catch (DirectoryNotFoundException)
            {
                return; // removed while we looked
            }
            foreach (string name in children)
                Visit(logical == "/" ? "/" + name : logical + "/" + name);
        }
    }
}
