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

    [Fact]
    public async Task AnAgentThatNeverAnswersFailsTheSessionAttemptInsteadOfHangingIt()
    {
        using var passive = new TempDir();
        var target = TestTree.LocalTarget(passive.Path) with { Command = ["/bin/sh", "-c", "sleep 60"] }; // a login that hangs
        await using var agent = AgentProcess.Start(target);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<SessionClosedException>(() =>
            AgentSession.Open(agent.Input, agent.Output, target.Name, agent.Describe, welcomeTimeout: TimeSpan.FromSeconds(1)));
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.9, 10);
        agent.Abandon(); // as the daemon does with a failed attempt: no grace for an orderly exit
        Assert.Contains("target local: cannot start a session: no answer from the agent 1 s after it was started (the remote login or command hangs)", e.Message);
    }

    [Fact]
    public void SshIsToldToGiveUpConnectingAndOnASilentLinkUnlessTheAdminSaidOtherwise()
    {
        var target = server.Target("ssh", "--root", "/srv");
        var ours = AgentProcess.CommandLine(target, out _);
        Assert.Contains("ConnectTimeout=10", ours);
        Assert.Contains("ServerAliveInterval=5", ours);
        var theirs = AgentProcess.CommandLine(target with { SshOptions = ["-o", "ConnectTimeout=3"] }, out _);
        Assert.DoesNotContain("ConnectTimeout=10", theirs);
        Assert.Contains("ConnectTimeout=3", theirs);
    }
}
