using System.Text;
using System.Text.RegularExpressions;

namespace HaSync.Scanning;

/// <summary>
/// Glob patterns as admins write them in <c>exclude</c> and <c>redact</c>: <c>*</c> and <c>?</c> stay within one
/// path segment, <c>**</c> crosses segments. A pattern without a slash matches the file name (as rsync's
/// do); one with a slash matches the whole logical path.
/// </summary>
public sealed class PathFilter
{
    private readonly Regex[] _namePatterns;
    private readonly Regex[] _pathPatterns;

    /// <summary>Compiles the patterns.</summary>
    public PathFilter(IEnumerable<string> patterns)
    {
        var list = patterns.ToList();
        _namePatterns = list.Where(p => !p.Contains('/')).Select(Compile).ToArray();
        _pathPatterns = list.Where(p => p.Contains('/')).Select(Compile).ToArray();
    }

    /// <summary>A filter that matches nothing.</summary>
    public static PathFilter None { get; } = new([]);

    /// <summary>True when <paramref name="logicalPath"/> or its file name matches a pattern.</summary>
    public bool Matches(string logicalPath)
    {
        string name = TreeWalker.NameOf(logicalPath);
        return _namePatterns.Any(p => p.IsMatch(name)) || _pathPatterns.Any(p => p.IsMatch(logicalPath));
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
            else
                regex.Append(Regex.Escape(c.ToString()));
        }
        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}
