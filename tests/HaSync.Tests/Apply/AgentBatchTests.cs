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
}
