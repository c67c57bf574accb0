using HaSync.Sync;
using HaSync.Tests.Support;
using HaSync.Transport;

namespace HaSync.Tests.Sync;

/// <summary>What an admin reads when a session cannot start for the usual reasons of a new pair: the cause in their
/// words, and what to do about it; never a frame type or a length read out of someone's banner.</summary>
[Collection("daemon")]
public sealed class SessionMessagesTests(SshServer server) : IClassFixture<SshServer>
{
    private static async Task<string> OpenFails(HaSync.Configuration.TargetConfig target)
    {
        await using var agent = AgentProcess.Start(target);
        var e = Assert.Throws<SessionClosedException>(() => AgentSession.Open(agent.Input, agent.Output, target.Name, agent.Describe, target.Heartbeat));
        return e.Message;
    }

    [Fact]
    public async Task AShellThatPrintsBeforeTheAgentIsNamedAsSuch()
    {
        using var passive = new TempDir();
        var agent = TestTree.LocalTarget(passive.Path);
        var target = agent with { Command = ["/bin/sh", "-c", "echo 'Welcome to bm2 (Debian GNU/Linux)'; exec \"$@\"", "sh", .. agent.Command] };
        string message = await OpenFails(target);
        Assert.Contains("cannot start a session: the remote shell printed text before the agent started (\"Welco…\"): is the shell clean?", message);
        Assert.DoesNotContain("frame", message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task AnUnknownHostKeyComesWithTheStepsToTrustIt()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("known_hosts"), "");
        var target = server.Target("ssh", "--root", dir.Path) with
        {
            SshOptions = ["-o", "StrictHostKeyChecking=yes", "-o", $"UserKnownHostsFile={dir.File("known_hosts")}", "-o", "LogLevel=ERROR"],
        };
        string message = await OpenFails(target);
        Assert.Contains("Host key verification failed", message);
        Assert.Contains($"then 'ssh-keyscan -p {server.Port} 127.0.0.1 >> /etc/hasync/known_hosts' and ssh_options: [-o, UserKnownHostsFile=/etc/hasync/known_hosts]", message);
    }
}
