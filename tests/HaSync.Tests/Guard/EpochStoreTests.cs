using HaSync.Guard;
using HaSync.Tests.Support;

namespace HaSync.Tests.Guard;

/// <summary>Epochs between two nodes' state directories, as the agent and the sender use them (no processes).</summary>
public sealed class EpochStoreTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly EpochStore _a;
    private readonly EpochStore _b;

    public EpochStoreTests()
    {
        _a = new EpochStore(_dir.File("a"));
        _b = new EpochStore(_dir.File("b"));
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void EachNodeHasItsOwnLastingId()
    {
        Assert.NotEqual(_a.NodeId, _b.NodeId);
        Assert.Equal(_a.NodeId, new EpochStore(_dir.File("a")).NodeId);
        Assert.Matches("^[0-9a-f]{16}$", _a.NodeId);
    }

    [Fact]
    public void APassiveThatBecomesActiveOutbidsTheFormerActive()
    {
        var first = _a.TakeNew();
        Assert.Equal((1, _a.NodeId), (first.Number, first.Node));
        _b.Accept(first);                           // B, passive, takes A's pushes
        _b.Accept(first);                           // the same term again: A's next session

        var second = _b.TakeNew();                  // failover: B becomes active
        Assert.Equal(2, second.Number);
        _a.Accept(second);                          // B pushes to A

        var stale = Assert.Throws<FencedException>(() => _b.Accept(first)); // A's old term, coming back
        Assert.Contains($"refusing epoch 1 of {Environment.MachineName} (node {_a.NodeId}", stale.Message);
        Assert.Contains($"this node has since accepted epoch 2 of {Environment.MachineName} (node {_b.NodeId}", stale.Message);
        Assert.Contains("run 'hasync resync --force' there", stale.Message);
        Assert.Equal(second, _b.Known());
    }

    [Fact]
    public void TwoNodesTakingTheSameNumberDoNotBothWin()
    {
        var a = _a.TakeNew();
        var b = _b.TakeNew();
        Assert.Equal(a.Number, b.Number);
        var passive = new EpochStore(_dir.File("c"));
        passive.Accept(a);
        Assert.Throws<FencedException>(() => passive.Accept(b));
    }

    [Fact]
    public void ASessionNoticesALaterClaimMadeMeanwhile()
    {
        var first = _a.TakeNew();
        _b.Accept(first);
        _b.EnsureStillCurrent(first);
        var second = new EpochStore(_dir.File("c")).TakeNew(above: 1);
        new EpochStore(_dir.File("b")).Accept(second); // another agent session on B, another process in real life
        var e = Assert.Throws<FencedException>(() => _b.EnsureStillCurrent(first));
        Assert.Contains("has since accepted epoch 2", e.Message);
    }

    [Fact]
    public void ASupersededNodeTakesNoNewTermUntilItCaughtUpOrAnAdminForces()
    {
        var aOld = _a.TakeNew();
        _b.Accept(aOld);
        var bTerm = _b.TakeNew();
        _a.RecordSuperseded(bTerm);                    // A's claim was refused by B's agent

        var refused = Assert.Throws<FencedException>(() => _a.TakeNew());
        Assert.Contains("takes no new term until it has received that node's changes", refused.Message);
        Assert.Equal(bTerm, _a.SupersededBy());

        _a.Accept(bTerm);                              // B's next session reaches A: A has caught up
        Assert.Null(_a.SupersededBy());
        Assert.Equal(3, _a.TakeNew().Number);

        _b.RecordSuperseded(new Epoch(9, "feedfeedfeedfeed", "elsewhere", DateTimeOffset.UtcNow));
        Assert.Throws<FencedException>(() => _b.TakeNew());
        Assert.Equal(10, _b.TakeNew(above: 9, admin: true).Number); // resync --force
        Assert.Null(_b.SupersededBy());
    }

    [Fact]
    public void ACorruptEpochFileIsNamedNotGuessed()
    {
        Directory.CreateDirectory(_dir.File("a"));
        File.WriteAllText(_a.FilePath, "{ not json");
        var e = Assert.Throws<HaSyncException>(() => _a.TakeNew());
        Assert.Contains($"{_a.FilePath}: unreadable epoch file", e.Message);
    }
}
