using System.Text;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary>The README's main command: the embedded demo pair ends identical, and the daemon carries a live edit;
/// a second run sends nothing but its own live edit; an edit travels as a delta.</summary>
public sealed class DemoCliTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");

    private static string Demo(string dir)
    {
        var (code, stdout, stderr) = Tools.Run(Hasync, ["demo", "--dir", dir]);
        string output = Encoding.UTF8.GetString(stdout);
        Assert.True(code == 0, $"hasync demo exited {code}: {stderr}\n{output}");
        return output;
    }

    [Fact]
    public void SeedsResyncsAndThenSendsOnlyTheChange()
    {
        using var dir = new TempDir();
        string first = Demo(dir.Path);
        Assert.Contains("demo-passive: /etc/aliases: missing on passive", first);
        Assert.Contains("demo-passive: /etc/bm/obsolete.conf: CONFLICT: on the passive before HaSync wrote it (first contact", first);
        Assert.Contains("demo-passive: /usr/share/bm-elasticsearch/config/elasticsearch.yml: CONFLICT: on the passive before HaSync wrote it", first);
        Assert.Contains("demo-passive: /etc/sysctl.conf: metadata differs: mode (mode 0664 -> 0644)", first);
        Assert.Contains("-thread_pool.write.queue_size: 200", first);
        Assert.Contains("delta /usr/share/bm-elasticsearch/config/elasticsearch.yml", first);
        Assert.Contains("demo-passive: in sync", first);
        Assert.Matches(@"demo: /etc/bm/bm.ini was edited on the active; the passive had the change \d+ ms later", first);
        Assert.Contains("# edited live by the demo at", File.ReadAllText(dir.File("passive/etc/bm/bm.ini")));
        // The listed paths; their parents outside the watched set (/etc, /etc/ssl/certs) are not HaSync's to keep.
        foreach (string listed in new[] { "/etc/bm", "/etc/aliases", "/etc/sysctl.conf", "/etc/ssl/certs/bm_cert.pem" })
            TestTree.AssertIdentical(dir.File("active"), dir.File("passive"), listed);

        string second = Demo(dir.Path);
        Assert.Contains("0 files sent, 0 dirs/links made, 0 metadata fixed, 0 deleted, 0 adopted, 0 conflicts, 0 failed; literal 0 B", second); // the live edit went live

        File.AppendAllText(dir.File("active/usr/share/bm-elasticsearch/config/elasticsearch.yml"), "http.max_content_length: 200mb\n");
        string third = Demo(dir.Path);
        Assert.Contains("content, mtime differs", third);
        Assert.Contains("+http.max_content_length: 200mb", third);
        Assert.Matches(@"1 files sent, .* matched [1-9][0-9.]* (B|KiB|MiB)", third);
        TestTree.AssertIdentical(dir.File("active"), dir.File("passive"), "/usr/share/bm-elasticsearch/config/elasticsearch.yml");
    }
}
