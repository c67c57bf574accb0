using HaSync.Protocol;
using HaSync.Scanning;
using HaSync.Sync;
using HaSync.Tests.Support;
using HaSync.Transport;

namespace HaSync.Tests.Apply;

/// <summary>The agent's group commit keeps request order: what a request sees is what the requests before it did.</summary>
public sealed class AgentBatchTests
{

    [Fact]
    public async Task PipelinedRequestsSeeTheChangesBeforeThem()
    {
        using var dir = new TempDir();
        var root = new { Path = dir.File("passive") };
        Directory.CreateDirectory(root.Path);
        await using var agent = AgentProcess.Start(TestTree.LocalTarget(root.Path));
        using var session = AgentSession.Open(agent.Input, agent.Output, "batch", agent.Describe);
        await TestTree.ClaimAsync(session);

        byte[] first = "first\n"u8.ToArray(), second = "second version\n"u8.ToArray();
        var put1 = session.SendPut(TestTree.FileEntry("/etc/a.conf", first), PutEncoding.Whole, s => s.Write(first));
        var put2 = session.SendPut(TestTree.FileEntry("/etc/a.conf", second), PutEncoding.Whole, s => s.Write(second));
        var read = session.RequestContent("/etc/a.conf", 1000);
        var others = Enumerable.Range(0, 50).Select(i =>
        {
            byte[] content = System.Text.Encoding.ASCII.GetBytes($"file {i}\n");
            return session.SendPut(TestTree.FileEntry($"/etc/many/{i}.conf", content), PutEncoding.Whole, s => s.Write(content));
        }).ToList();
        var manifest = session.RequestManifest(["/etc/many"]);

        Assert.Equal(AckStatus.Ok, (await put1.WaitAsync(TimeSpan.FromSeconds(30))).Status);
        Assert.Equal(AckStatus.Ok, (await put2.WaitAsync(TimeSpan.FromSeconds(30))).Status);
        Assert.Equal(second, await read.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.All(await Task.WhenAll(others).WaitAsync(TimeSpan.FromSeconds(30)), a => Assert.Equal(AckStatus.Ok, a.Status));
        Assert.Equal(51, (await manifest.WaitAsync(TimeSpan.FromSeconds(30))).Count); // the directory and its 50 files
        Assert.Equal(second, File.ReadAllBytes(Path.Join(root.Path, "etc/a.conf")));
        Assert.Empty(Directory.GetFiles(root.Path, "*.hasync-*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task ADirectoryReplacedByAFileInTheSameBatchFailsNothingElseInIt()
    {
        using var dir = new TempDir();
        string root = dir.File("passive");
        Directory.CreateDirectory(Path.Join(root, "etc/x"));
        File.WriteAllText(Path.Join(root, "etc/x/f.conf"), "in x\n");

        // One batch, as the daemon sends 'mkdir a; echo > a/keep.conf; rm -r x; echo > x': the commit must not look
        // for the file system of etc/x through a path that is now a file.
        byte[] keep = "keep\n"u8.ToArray(), x = "x is a file now\n"u8.ToArray();
        var acks = await TestTree.WithSession(TestTree.LocalTarget(root), async session =>
        {
            var sent = new List<Task<Ack>>
            {
                session.SendDelete("/etc/x/f.conf"), // what stands in the way goes first, as a resync orders it
                session.SendDelete("/etc/x"),
                session.SendMakeDirectory(new FileEntry { Path = "/etc/a", Kind = EntryKind.Directory, Mode = 0x1ed }),
                session.SendPut(TestTree.FileEntry("/etc/a/keep.conf", keep), PutEncoding.Whole, s => s.Write(keep)),
                session.SendPut(TestTree.FileEntry("/etc/x", x), PutEncoding.Whole, s => s.Write(x)),
            };
            await session.SendFlush();
            return await Task.WhenAll(sent);
        });
        foreach (var ack in acks)
            Assert.Equal((AckStatus.Ok, ""), (ack.Status, ack.Message));
        Assert.Equal(x, File.ReadAllBytes(Path.Join(root, "etc/x")));
        Assert.Equal(keep, File.ReadAllBytes(Path.Join(root, "etc/a/keep.conf")));
    }

    [Fact]
    public async Task ADeleteBelowAPathThatIsNowAFileIsAlreadyDone()
    {
        using var dir = new TempDir();
        string root = dir.File("passive");
        Directory.CreateDirectory(Path.Join(root, "etc"));
        File.WriteAllText(Path.Join(root, "etc/conf.d"), "a file where a directory was\n");

        var (delete, manifest) = await TestTree.WithSession(TestTree.LocalTarget(root), async session =>
            (await session.SendDelete("/etc/conf.d/a.conf"), await session.RequestManifest(["/etc/conf.d/a.conf", "/etc/missing/b.conf"])));
        Assert.Equal(AckStatus.Ok, delete.Status);
        Assert.Empty(manifest); // nothing stands there: nothing to list, no refusal
        Assert.True(File.Exists(Path.Join(root, "etc/conf.d")));
    }
}
