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
    /// <param name="cancellationToken">Observed per entry.</param>
    public static List<FileEntry> Walk(string root, IEnumerable<string> logicalPaths, PathFilter exclude, bool withHash = true,
        CancellationToken cancellationToken = default)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var entries = new List<FileEntry>();
        foreach (string logical in logicalPaths.Order(StringComparer.Ordinal))
            Visit(root, logical, exclude, withHash, seen, entries, cancellationToken);
        entries.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return entries;
    }

    private static void Visit(string root, string logical, PathFilter exclude, bool withHash, HashSet<string> seen,
        List<FileEntry> entries, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (exclude.Matches(logical) || !seen.Add(logical))
            return;
        var entry = PosixFiles.Describe(FullPath(root, logical), logical, withHash);
        if (entry is null)
            return;
        entries.Add(entry);
        if (entry.Kind != EntryKind.Directory)
            return;
        string full = FullPath(root, logical);
        IEnumerable<string> children;
        try
        {
            children = Directory.EnumerateFileSystemEntries(full).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
        }
        catch (DirectoryNotFoundException)
        {
            return; // removed while we looked
        }
        foreach (string name in children)
            Visit(root, logical == "/" ? "/" + name : logical + "/" + name, exclude, withHash, seen, entries, cancellationToken);
    }
}
