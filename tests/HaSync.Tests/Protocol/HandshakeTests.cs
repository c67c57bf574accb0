using HaSync.Guard;
using HaSync.Protocol;

namespace HaSync.Tests.Protocol;

/// <summary>The session's first messages and the acks, byte for byte: both ends call the one layout in Protocol/, and
/// these bytes are what an older or newer hasync on the other node must meet.</summary>
public class HandshakeTests
{
    private static string Hex(PayloadWriter payload) => Convert.ToHexString(payload.WrittenMemory.Span);

    private static Frame AsFrame(FrameType type, PayloadWriter payload) => new(type, payload.WrittenMemory.ToArray());

    [Fact]
    public void TheHelloIsMagicVersionAndHeartbeat()
    {
        Assert.Equal("4853594E" + "0004" + "00000BB8", Hex(Hello.Write(TimeSpan.FromSeconds(3))));
        Assert.Equal(TimeSpan.FromSeconds(3), Hello.Check(AsFrame(FrameType.Hello, Hello.Write(TimeSpan.FromSeconds(3)))));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(99)]
    [InlineData(60_001)]
    public void AHelloWithAHeartbeatThatCouldHoldTheAgentOrFloodItIsRefused(int milliseconds)
    {
        var e = Assert.Throws<ProtocolException>(() => Hello.Check(AsFrame(FrameType.Hello, Hello.Write(TimeSpan.FromMilliseconds(milliseconds)))));
        Assert.Equal($"reading hello: a heartbeat every {milliseconds} ms is outside 100..60000 ms", e.Message);
    }

    [Fact]
    public void AWelcomeWithoutAnEpochHasItsGoldenBytesAndReadsBack()
    {
        var welcome = new Welcome("/", ["/etc/bm"], false, null);
        Assert.Equal("4853594E" + "0004" + "00000001" + "2F" + "00000001" + "00000007" + "2F6574632F626D" + "00" + "00", Hex(welcome.Write()));
        var read = Welcome.Read(AsFrame(FrameType.Welcome, welcome.Write()));
        Assert.Equal(("/", "/etc/bm", 1, false, (Epoch?)null), (read.Root, read.Allowed[0], read.Allowed.Count, read.KeepsSetId, read.Epoch));
    }

    [Fact]
    public void AWelcomeWithAnEpochHasItsGoldenBytesAndReadsBack()
    {
        var epoch = new Epoch(3, "node-a", "bm1", DateTimeOffset.FromUnixTimeMilliseconds(1764547200000));
        var welcome = new Welcome("/srv", [], true, epoch);
        Assert.Equal("4853594E" + "0004" + "00000004" + "2F737276" + "00000000" + "01" + "01"
            + "0000000000000003" + "00000006" + "6E6F64652D61" + "00000003" + "626D31" + "0000019AD7358400", Hex(welcome.Write()));
        var read = Welcome.Read(AsFrame(FrameType.Welcome, welcome.Write()));
        Assert.Equal((epoch, true), (read.Epoch, read.KeepsSetId));
    }

    [Fact]
    public void AWelcomeWithAPolicyThisSenderDoesNotKnowIsRefused()
    {
        var payload = new PayloadWriter().U32(Wire.Magic).U16(Wire.Version).Text("/").U32(0).U8(0x03).U8(0);
        var e = Assert.Throws<ProtocolException>(() => Welcome.Read(AsFrame(FrameType.Welcome, payload)));
        Assert.Equal("the agent's welcome has unknown policy flags 0x03", e.Message);
    }

    [Fact]
    public void AWelcomeFromAnotherVersionIsRefusedWithBothVersionsNamed()
    {
        var other = new PayloadWriter().U32(Wire.Magic).U16(1);
        var e = Assert.Throws<ProtocolException>(() => Welcome.Read(AsFrame(FrameType.Welcome, other)));
        Assert.Equal("the agent speaks magic 0x4853594e version 1, we speak version 4", e.Message);
    }

    [Fact]
    public void AcksCarryIdsAsDifferencesAndMessagesOnlyForFailures()
    {
        var payload = AckFrames.Payload([(1, AckStatus.Ok, "ignored"), (3, AckStatus.Failed, "disk full")]);
        Assert.Equal("02" + "02" + "00" + "04" + "01" + "00000009" + "6469736B2066756C6C", Hex(payload));
        var read = new List<(uint, AckStatus, string)>();
        var reader = new PayloadReader(payload.WrittenMemory, FrameType.Acks);
        AckFrames.Read(ref reader, (id, status, message) => read.Add((id, status, message)));
        Assert.Equal([(1u, AckStatus.Ok, ""), (3u, AckStatus.Failed, "disk full")], read);
    }
}
