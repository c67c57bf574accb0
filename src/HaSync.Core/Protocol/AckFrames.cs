namespace HaSync.Protocol;

/// <summary>
/// The agent's answers to changes: one frame for many, ids as differences from the previous one (they rise with the
/// requests), a status each, and a message only for what failed (at most <see cref="MaxMessage"/> characters: it names
/// a path and where a conflict's copy went). Both ends use this one layout.
/// </summary>
internal static class AckFrames
{
    public const int MaxMessage = 2000;

    /// <summary>Writes <paramref name="acks"/> in as many frames as they need, each far from the frame limit.</summary>
    public static void Write(FrameWriter writer, List<(uint Id, AckStatus Status, string Message)> acks)
    {
        const int budget = Wire.MaxFrameLength / 2; // bytes per frame, far from the limit even when the last answer is the longest
        int start = 0;
        while (start < acks.Count)
        {
            int end = start, bytes = 0;
            for (; end < acks.Count && bytes < budget; end++)
                bytes += 16 + (acks[end].Status == AckStatus.Ok ? 0 : 3 * Math.Min(acks[end].Message.Length, MaxMessage)); // UTF-8: at most 3 bytes a char
            writer.Write(FrameType.Acks, Payload(acks.Skip(start).Take(end - start)));
            start = end;
        }
    }

    /// <summary>One frame's payload for <paramref name="acks"/>.</summary>
    public static PayloadWriter Payload(IEnumerable<(uint Id, AckStatus Status, string Message)> acks)
    {
        var list = acks.ToList();
        var payload = new PayloadWriter().VarU((ulong)list.Count);
        long previous = 0;
        foreach (var (id, status, message) in list)
        {
            payload.VarS(id - previous).U8((byte)status);
            if (status != AckStatus.Ok)
                payload.Text(message.Length > MaxMessage ? message[..MaxMessage] : message);
            previous = id;
        }
        return payload;
    }

    /// <summary>Reads one Acks frame's payload, calling <paramref name="each"/> per answer in order.</summary>
    public static void Read(ref PayloadReader payload, Action<uint, AckStatus, string> each)
    {
        long id = 0;
        for (ulong count = payload.VarU("count"); count > 0; count--)
        {
            id += payload.VarS("id");
            var status = (AckStatus)payload.U8("status");
            string message = status == AckStatus.Ok ? "" : payload.Text("message");
            each((uint)id, status, message);
        }
        payload.End();
    }
}
