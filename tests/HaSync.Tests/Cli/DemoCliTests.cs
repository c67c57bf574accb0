using System.Text;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary>The README's main command: the embedded demo pair ends identical, and a second run sends nothing.</summary>
public sealed class DemoCliTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");

    private static string Demo(string dir)
    {
        var (code, stdout, stderr) = Tools.Run(Hasync, ["demo", "--dir", dir]);
        Assert.True(code == 0, $"hasync demo exited {code}: {stderr}");
        return Encoding.UTF8.GetString(stdout);
    }

    private static Dictionary<string, byte[]> Tree(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f), File.ReadAllBytes);

    [Fact]
    public void SeedsSyncsAndThenSendsOnlyTheChange()
    {
        using var dir = new TempDir();
        string first = Demo(dir.Path);
        Assert.Contains("created  etc/aliases", first);
        Assert.Contains("updated  usr/share/bm-elasticsearch/config/elasticsearch.yml", first);
        Assert.Contains("deleted  etc/bm/obsolete.conf", first);

        var active = Tree(dir.File("active"));
        var passive = Tree(dir.File("passive"));
        Assert.Equal(active.Keys.Order(), passive.Keys.Order());
        foreach (var (path, content) in active)
            Assert.True(content.AsSpan().SequenceEqual(passive[path]), $"{path} differs after the demo");

        string second = Demo(dir.Path);
        Assert.Contains("0 created, 0 updated, 7 identical, 0 deleted; sent 0 literal bytes", second);

        File.AppendAllText(dir.File("active/usr/share/bm-elasticsearch/config/elasticsearch.yml"), "http.max_content_length: 200mb\n");
        string third = Demo(dir.Path);
        Assert.Matches(@"updated  usr/share/bm-elasticsearch/config/elasticsearch.yml  \(literal [0-9,]+ B, matched [1-9][0-9,]+ B\)", third);
        Assert.Contains("0 created, 1 updated, 6 identical", third);
    }
}
