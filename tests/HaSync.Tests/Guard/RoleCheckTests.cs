using HaSync.Configuration;
using HaSync.Guard;

namespace HaSync.Tests.Guard;

/// <summary>Each way of telling the active node, with real addresses and real commands.</summary>
public sealed class RoleCheckTests
{
    private static Task<RoleVerdict> Evaluate(RoleConfig role) => RoleCheck.EvaluateAsync(role);

    [Fact]
    public async Task AVipOnALocalInterfaceMakesTheNodeActive()
    {
        var here = await Evaluate(new RoleConfig { Kind = RoleKind.Vip, Vip = System.Net.IPAddress.Loopback });
        Assert.Equal((true, "vip 127.0.0.1 is on lo"), (here.Active, here.Detail));
        var elsewhere = await Evaluate(new RoleConfig { Kind = RoleKind.Vip, Vip = System.Net.IPAddress.Parse("192.0.2.200") });
        Assert.Equal((false, false, "vip 192.0.2.200 is not on any local interface"), (elsewhere.Active, elsewhere.Failed, elsewhere.Detail));
    }

    [Fact]
    public async Task ACommandDecidesByItsExitCodeAndAFailureIsNotActive()
    {
        var active = await Evaluate(new RoleConfig { Kind = RoleKind.Command, Command = ["sh", "-c", "echo master"] });
        Assert.Equal((true, "role command 'sh -c echo master' exited 0: master"), (active.Active, active.Detail));

        var passive = await Evaluate(new RoleConfig { Kind = RoleKind.Command, Command = ["sh", "-c", "echo backup >&2; exit 3"] });
        Assert.Equal((false, false, "role command 'sh -c echo backup >&2; exit 3' exited 3: backup"), (passive.Active, passive.Failed, passive.Detail));

        var hung = await Evaluate(new RoleConfig { Kind = RoleKind.Command, Command = ["sleep", "30"], CommandTimeout = TimeSpan.FromMilliseconds(200) });
        Assert.Equal((false, true, "role command 'sleep 30' did not answer within 0.2 s"), (hung.Active, hung.Failed, hung.Detail));

        var missing = await Evaluate(new RoleConfig { Kind = RoleKind.Command, Command = ["/nonexistent/keepalived-state"] });
        Assert.False(missing.Active);
        Assert.True(missing.Failed);
        Assert.StartsWith("role command '/nonexistent/keepalived-state' cannot start", missing.Detail);
    }

    [Fact]
    public async Task AlwaysAndUnsetCountAsActive()
    {
        Assert.True((await Evaluate(new RoleConfig { Kind = RoleKind.Always })).Active);
        var unset = await Evaluate(new RoleConfig());
        Assert.Equal((true, "no role check is configured: this node counts as active"), (unset.Active, unset.Detail));
    }
}
