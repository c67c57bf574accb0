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

    /// <summary>An absolute path as a logical path ("/" and its non-empty segments), or null when a segment is "." or
    /// "..": the configuration's paths and an admin's arguments are written the same way.</summary>
    public static string? Normalise(string absolutePath)
    {
        var segments = absolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return segments.Any(s => s is "." or "..") ? null : "/" + string.Join('/', segments);
    }

    /// <summary>The logical path's directory ("/" for a top-level path and for "/" itself).</summary>
    public static string Parent(string logicalPath) => logicalPath.LastIndexOf('/') is var slash and > 0 ? logicalPath[..slash] : "/";

    /// <summary>The logical path's last segment.</summary>
    public static string NameOf(string logicalPath) => logicalPath[(logicalPath.LastIndexOf('/') + 1)..];

    /// <summary>The logical path of <paramref name="name"/> inside <paramref name="directory"/>.</summary>
    public static string Child(string directory, string name) => directory == "/" ? "/" + name : directory + "/" + name;

    /// <summary>True when <paramref name="path"/> is <paramref name="ancestor"/> or below it.</summary>
    public static bool Within(string path, string ancestor) =>
        ancestor == "/" || path == ancestor
        || (path.Length > ancestor.Length && path[ancestor.Length] == '/' && path.StartsWith(ancestor, StringComparison.Ordinal));

    /// <summary>True when <paramref name="path"/> is one of <paramref name="ancestors"/> or below one (a walk up the path,
    /// not a scan of the set).</summary>
    public static bool WithinAny(string path, IReadOnlySet<string> ancestors)
    {
        for (string p = path; ; p = Parent(p))
        {
            if (ancestors.Contains(p))
                return true;
            if (p == "/")
                return false;
        }
    }

    /// <summary><paramref name="paths"/> and every directory above them, up to "/".</summary>
    public static HashSet<string> WithAncestors(IEnumerable<string> paths)
    {
        var all = new HashSet<string>(StringComparer.Ordinal);
        foreach (string path in paths)
            for (string p = path; all.Add(p) && p != "/"; p = Parent(p)) { }
        return all;
    }

    /// <summary>The fewest of <paramref name="paths"/> that hold them all (none below another), in ordinal order.</summary>
    public static List<string> Cover(IEnumerable<string> paths)
    {
        var kept = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<string>();
        foreach (string path in paths.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)) // ancestors sort first
        {
            if (!WithinAny(path, kept) && kept.Add(path))
                result.Add(path);
        }
        return result;
    }

    /// <summary>The entries of the watched set, parents before children, in ordinal order, excluded names left out.</summary>
    /// <param name="root">The node's root ("/" in production).</param>
    /// <param name="logicalPaths">The listed paths (absolute logical paths).</param>
    /// <param name="exclude">Names and paths never listed.</param>
    /// <param name="withHash">Hash file content.</param>
    /// <param name="onSignature">Receives the signatures the hash pass yields (see <c>PosixFiles.Describe</c>).</param>
    /// <param name="cancellationToken">Observed per entry.</param>
    /// <param name="cache">Hashes already known (see <see cref="HashCache"/>).</param>
    /// <param name="onUnreadable">When given, a path that cannot be read is reported here and left out (with what is
    /// below it) instead of failing the walk; the caller must then not mistake its absence for a delete.</param>
    /// <param name="counter">When given, counts each entry as it is described (for a progress line).</param>
    public static List<FileEntry> Walk(string root, IEnumerable<string> logicalPaths, PathFilter exclude, bool withHash = true,
        Action<FileEntry, Mono.Unix.Native.Stat, Delta.Signature>? onSignature = null, HashCache? cache = null,
        Action<string, IOException>? onUnreadable = null, ScanCounter? counter = null, CancellationToken cancellationToken = default)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var entries = new List<FileEntry>();
        var walk = new Walker(root, exclude, withHash, seen, entries, onSignature, cache, onUnreadable, counter, cancellationToken);
        foreach (string logical in logicalPaths.Order(StringComparer.Ordinal))
            walk.Visit(logical);
        entries.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return entries;
    }

    private sealed record Walker(string Root, PathFilter Exclude, bool WithHash, HashSet<string> Seen, List<FileEntry> Entries,
        Action<FileEntry, Mono.Unix.Native.Stat, Delta.Signature>? OnSignature, HashCache? Cache,
        Action<string, IOException>? OnUnreadable, ScanCounter? Counter, CancellationToken CancellationToken)
    {
        public void Visit(string logical)
        {
            CancellationToken.ThrowIfCancellationRequested();
            if (Exclude.Matches(logical) || !Seen.Add(logical))
                return;
            string full = FullPath(Root, logical);
            FileEntry? entry;
            List<string> children;
            try
            {
                entry = PosixFiles.Describe(full, logical, WithHash, OnSignature, Cache);
                if (entry is null)
                    return;
                Counter?.Add(entry);
                if (entry.Kind != EntryKind.Directory)
                {
                    Entries.Add(entry);
                    return;
                }
                children = PosixFiles.NamesIn(full);
                children.Sort(StringComparer.Ordinal);
            }
            catch (DirectoryNotFoundException)
            {
                return; // removed while we looked
            }
            catch (Exception e) when (OnUnreadable is not null && e is IOException or UnauthorizedAccessException)
            {
                OnUnreadable(logical, e as IOException ?? new IOException($"{full}: {e.Message}", e));
                return;
            }
            Entries.Add(entry);
            foreach (string name in children)
                Visit(Child(logical, name));
        }
    }
}
