using HaSync.Guard;

namespace HaSync.Protocol;

/// <summary>The hello the sender opens a session with: magic, version, and the heartbeat interval it keeps (milliseconds),
/// from which the agent takes how long a silence it waits out.</summary>
internal static class Hello
{
    public static PayloadWriter Write(TimeSpan heartbeat) =>
        new PayloadWriter().U32(Wire.Magic).U16(Wire.Version).U32((uint)heartbeat.TotalMilliseconds);

    /// <summary>Checks the first frame the agent reads; returns the sender's heartbeat interval.</summary>
    public static TimeSpan Check(Frame hello)
    {
        if (hello.Type != FrameType.Hello)
            throw new ProtocolException($"reading hello: got {Wire.Describe(hello.Type)} first");
        var payload = hello.Reader();
        uint magic = payload.U32("magic");
        ushort version = payload.U16("version");
        if (magic != Wire.Magic)
            throw new ProtocolException($"reading hello: bad magic 0x{magic:x8} (is the other side hasync?)");
        if (version != Wire.Version)
            throw new ProtocolException($"reading hello: protocol version {version}, this agent speaks {Wire.Version}: install the same hasync on both nodes");
        var heartbeat = TimeSpan.FromMilliseconds(payload.U32("heartbeat"));
        payload.End();
        if (heartbeat < Wire.MinHeartbeat || heartbeat > Wire.MaxHeartbeat)
            throw new ProtocolException($"reading hello: a heartbeat every {heartbeat.TotalMilliseconds} ms is outside {Wire.MinHeartbeat.TotalMilliseconds}..{Wire.MaxHeartbeat.TotalMilliseconds} ms");
        return heartbeat;
    }
}

/// <summary>The agent's answer to the hello: magic, version, its root, allow-list and policy (from its own command line:
/// whether it keeps set-id bits), and the highest epoch it has accepted, if any.</summary>
internal sealed record Welcome(string Root, IReadOnlyList<string> Allowed, bool KeepsSetId, Epoch? Epoch)
{
    private const byte KeepsSetIdFlag = 1;

    public PayloadWriter Write()
    {
        var payload = new PayloadWriter().U32(Wire.Magic).U16(Wire.Version).Text(Root).U32((uint)Allowed.Count);
        foreach (string allowed in Allowed)
            payload.Text(allowed);
        payload.U8(KeepsSetId ? KeepsSetIdFlag : (byte)0);
        return Epoch is null ? payload.U8(0) : EpochWire.Write(payload.U8(1), Epoch);
    }

    /// <summary>Reads the agent's first frame.</summary>
    public static Welcome Read(Frame? frame)
    {
        if (frame is not { Type: FrameType.Welcome } welcome)
            throw new ProtocolException(frame is null ? "the agent closed the connection before its welcome" : $"expected the agent's welcome, got {Wire.Describe(frame.Value.Type)}");
        var payload = welcome.Reader();
        uint magic = payload.U32("magic");
        ushort version = payload.U16("version");
        if (magic != Wire.Magic || version != Wire.Version)
            throw new ProtocolException($"the agent speaks magic 0x{magic:x8} version {version}, we speak version {Wire.Version}");
        string root = payload.Text("root");
        var allowed = new List<string>();
        for (uint i = payload.U32("allowed count"); i > 0; i--)
            allowed.Add(payload.Text("allowed"));
        byte policy = payload.U8("policy");
        if ((policy & ~KeepsSetIdFlag) != 0)
            throw new ProtocolException($"the agent's welcome has unknown policy flags 0x{policy:x2}");
        var epoch = payload.U8("has epoch") == 1 ? EpochWire.Read(ref payload) : null;
        payload.End();
        return new Welcome(root, allowed, (policy & KeepsSetIdFlag) != 0, epoch);
    }
}

/// <summary>An epoch on the wire: number, node, host, time taken (Unix milliseconds).</summary>
internal static class EpochWire
{
    public static PayloadWriter Write(PayloadWriter payload, Epoch epoch) =>
        payload.I64(epoch.Number).Text(epoch.Node).Text(epoch.Host).I64(epoch.At.ToUnixTimeMilliseconds());

    public static Epoch Read(ref PayloadReader payload)
    {
        long number = payload.I64("epoch");
        string node = payload.Text("epoch node"), host = payload.Text("epoch host");
        long at = payload.I64("epoch time");
        if (number < 1 || node.Length == 0 || at < 0 || at > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())
            throw new ProtocolException($"impossible epoch {number} of node '{node}' at {at}");
        return new Epoch(number, node, host, DateTimeOffset.FromUnixTimeMilliseconds(at));
    }
}
