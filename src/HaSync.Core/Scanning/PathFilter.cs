using System.Text;
using System.Text.RegularExpressions;

namespace HaSync.Scanning;

/// <summary>
/// Glob patterns as admins write them in <c>exclude</c> and <c>redact</c>: <c>*</c> and <c>?</c> stay within one
/// path segment, <c>**</c> crosses segments, <c>[abc]</c>, <c>[a-z]</c> and <c>[!abc]</c> match one character of a set.
/// A pattern without a slash matches the file name (as rsync's do); one with a slash matches the whole logical path
/// from the root; a trailing slash (rsync's way of naming a directory) is the directory, and with it all below.
/// </summary>
public sealed class PathFilter
{
    private readonly Regex[] _namePatterns;
    private readonly Regex[] _pathPatterns;

    /// <summary>Compiles the patterns (each checked by <see cref="Problem"/> when the configuration was loaded).</summary>
    public PathFilter(IEnumerable<string> patterns)
    {
        var list = patterns.Select(Normalise).ToList();
        _namePatterns = list.Where(p => !p.Contains('/')).Select(Compile).ToArray();
        _pathPatterns = list.Where(p => p.Contains('/')).Select(Compile).ToArray();
    }

    /// <summary>A filter that matches nothing.</summary>
    public static PathFilter None { get; } = new([]);

    /// <summary>True when <paramref name="logicalPath"/> or its file name matches a pattern.</summary>
    public bool Matches(string logicalPath)
    {
        // Asked of every entry a scan meets: no allocation.
        var name = logicalPath.AsSpan(logicalPath.LastIndexOf('/') + 1);
        foreach (var pattern in _namePatterns)
            if (pattern.IsMatch(name))
                return true;
        foreach (var pattern in _pathPatterns)
            if (pattern.IsMatch(logicalPath))
                return true;
        return false;
    }

    /// <summary>Why <paramref name="glob"/> is malformed or can never match a path of <paramref name="watched"/>, or null.</summary>
    public static string? Problem(string glob, IReadOnlyList<string> watched)
    {
        if (glob.Length == 0 || glob == "/")
            return "an empty pattern matches nothing";
        string pattern = Normalise(glob);
        for (int i = 0; i < pattern.Length; i++)
            if (pattern[i] == '[' && ClassEnd(pattern, i) < 0)
                return $"'[' at character {i + 1} opens a set of characters that no ']' closes (write '[[]' for a '[' itself)";
        if (!pattern.Contains('/'))
            return null;
        if (pattern[0] != '/' && !pattern.StartsWith("**", StringComparison.Ordinal))
            return "a pattern with a '/' matches the whole path from the root: start it with '/' (or '**/' for any depth)";
        // The part before the first wildcard is a fixed place: it must be inside the watched set, or above part of it.
        int wildcard = pattern.IndexOfAny(['*', '?', '[']);
        int slash = wildcard <= 0 ? -1 : pattern.LastIndexOf('/', wildcard - 1);
        string fixedPart = wildcard < 0 ? pattern : slash <= 0 ? "" : pattern[..slash];
        if (fixedPart.Length > 1 && !watched.Any(w => TreeWalker.Within(fixedPart, w) || TreeWalker.Within(w, fixedPart)))
            return $"it can only match below {fixedPart}, which is not in the watched paths ({string.Join(", ", watched)})";
        return null;
    }

    private static string Normalise(string glob) => glob.Length > 1 && glob.EndsWith('/') ? glob.TrimEnd('/') : glob;

    /// <summary>Where the set of characters opened at <paramref name="open"/> closes, or -1.</summary>
    private static int ClassEnd(string glob, int open)
    {
        int i = open + 1;
        if (i < glob.Length && glob[i] is '!' or '^')
            i++;
        if (i < glob.Length && glob[i] == ']')
            i++; // a ']' first in the set is one of its characters
        for (; i < glob.Length; i++)
            if (glob[i] == ']')
                return i;
        return -1;
    }

    private static Regex Compile(string glob)
    {
        var regex = new StringBuilder("^");
        for (int i = 0; i < glob.Length; i++)
        {
            char c = glob[i];
            if (c == '*' && i + 1 < glob.Length && glob[i + 1] == '*')
            {
                regex.Append(".*");
                i++;
            }
            else if (c == '*')
                regex.Append("[^/]*");
            else if (c == '?')
                regex.Append("[^/]");
            else if (c == '[' && ClassEnd(glob, i) is var end and >= 0)
            {
                string set = glob[(i + 1)..end];
                bool negated = set.Length > 0 && set[0] is '!' or '^';
                if (negated)
                    set = set[1..];
                regex.Append(negated ? "[^/" : "[").Append(set.Replace("\\", "\\\\").Replace("[", "\\[").Replace("]", "\\]")).Append(']');
                i = end;
            }
            else
                regex.Append(Regex.Escape(c.ToString()));
        }
        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}
