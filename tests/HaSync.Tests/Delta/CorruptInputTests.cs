using System.Buffers.Binary;
using HaSync.Delta;
using HaSync.Tests.Support;

namespace HaSync.Tests.Delta;

/// <summary>Each kind of bad signature or delta is refused with a message that says what and where.</summary>
public sealed class CorruptInputTests
{
    private static readonly byte[] Basis = TestData.Random(new Random(1), 10_000);

    private static byte[] Delta(params byte[] commands) => [0x72, 0x73, 0x02, 0x36, .. commands];

    private static DeltaFormatException Patch(byte[] delta, long maxOutput = long.MaxValue) =>
        Assert.Throws<DeltaFormatException>(() => DeltaPatcher.Apply(new MemoryStream(Basis), new MemoryStream(delta), new MemoryStream(), maxOutput));

    [Fact]
    public void ValidHandMadeDeltaApplies()
    {
        // The building blocks the corrupt cases below break: literal "hi", COPY 10 bytes from 100 (1-byte widths), END.
        var output = new MemoryStream();
        DeltaPatcher.Apply(new MemoryStream(Basis), new MemoryStream(Delta(0x02, (byte)'h', (byte)'i', 0x45, 100, 10, 0x00)), output);
        Assert.Equal([(byte)'h', (byte)'i', .. Basis.AsSpan(100, 10)], output.ToArray());
    }

    [Fact]
    public void BadMagic() => Assert.Contains("bad magic 0xdeadbeef at byte 0", Patch([0xde, 0xad, 0xbe, 0xef, 0x00]).Message);

    [Fact]
    public void SignatureGivenAsDelta() => Assert.Contains("this is a signature, not a delta", Patch([0x72, 0x73, 0x01, 0x47, 0, 0, 1, 0, 0, 0, 0, 32]).Message);

    [Fact]
    public void TruncatedHeader() => Assert.Contains("truncated header", Patch([0x72, 0x73]).Message);

    [Fact]
    public void MissingEnd() => Assert.Contains("truncated at byte 7: expected a command or END", Patch(Delta(0x02, 1, 2)).Message);

    [Fact]
    public void TruncatedLiteral() => Assert.Contains("truncated literal at byte 4: 3 of 16 bytes present", Patch(Delta(0x10, 1, 2, 3)).Message);

    [Fact]
    public void TruncatedOperand() => Assert.Contains("truncated copy length of the command at byte 4", Patch(Delta(0x4a, 0, 1)).Message);

    [Theory]
    [InlineData(0x55)]
    [InlineData(0x99)]
    [InlineData(0xff)]
    public void ReservedOpcode(byte opcode) => Assert.Contains($"reserved opcode 0x{opcode:x2} at byte 6", Patch(Delta(0x01, 7, opcode, 0x00)).Message);

    [Fact]
    public void CopyBeyondTheBasis()
    {
        // COPY_N2_N2: position 9990, length 20 on a 10,000-byte basis.
        var e = Patch(Delta(0x4a, 0x27, 0x06, 0x00, 20, 0x00));
        Assert.Contains("COPY at byte 4 reads basis bytes 9990..10010 but the basis has 10000 bytes", e.Message);
    }

    [Fact]
    public void NegativeEightByteLength()
    {
        byte[] command = new byte[1 + 1 + 8];
        command[0] = 0x48; // COPY_N1_N8
        BinaryPrimitives.WriteInt64BigEndian(command.AsSpan(2), -5);
        Assert.Contains("absurd copy length", Patch(Delta([.. command, 0x00])).Message);
    }

    [Fact]
    public void AbsurdLiteralLengthIsTruncationNotAnAllocation()
    {
        byte[] command = new byte[1 + 8];
        command[0] = 0x44; // LITERAL_N8
        BinaryPrimitives.WriteInt64BigEndian(command.AsSpan(1), long.MaxValue);
        Assert.Contains("truncated literal at byte 4", Patch(Delta([.. command, 1, 2, 3])).Message);
    }

    [Fact]
    public void OutputBeyondTheAllowedLength()
    {
        // Ten copies of the whole basis: a delta bomb when the receiver expects a small file.
        byte[] copy = [0x4a, 0x00, 0x00, 0x27, 0x10]; // COPY_N2_N2: position 0, length 10,000
        byte[] delta = Delta([.. Enumerable.Repeat(copy, 10).SelectMany(c => c), 0x00]);
        Assert.Contains("longer than the allowed 50000 bytes", Patch(delta, maxOutput: 50_000).Message);
    }

    [Fact]
    public void UnseekableBasisIsRefusedBeforeAnyOutput()
    {
        var output = new MemoryStream();
        var e = Assert.Throws<ArgumentException>(() => DeltaPatcher.Apply(new RepeatingStream(Basis, Basis.Length), new MemoryStream(Delta(0x00)), output));
        Assert.Contains("the basis must be seekable", e.Message);
        Assert.Equal(0, output.Length);
    }

    [Fact]
    public void DataAfterEnd() => Assert.Contains("data after END at byte 5", Patch(Delta(0x00, 0x00)).Message);

    private static DeltaFormatException ReadSignature(byte[] signature) =>
        Assert.Throws<DeltaFormatException>(() => Signature.Read(new MemoryStream(signature)));

    [Fact]
    public void SignatureWithDeltaMagic() => Assert.Contains("this is a delta, not a signature", ReadSignature([0x72, 0x73, 0x02, 0x36, 0, 0, 1, 0, 0, 0, 0, 32]).Message);

    [Fact]
    public void SignatureTruncatedHeader() => Assert.Contains("truncated header at byte 5", ReadSignature([0x72, 0x73, 0x01, 0x47, 0]).Message);

    [Fact]
    public void SignatureZeroBlockLength() => Assert.Contains("block length 0 at byte 4", ReadSignature([0x72, 0x73, 0x01, 0x47, 0, 0, 0, 0, 0, 0, 0, 32]).Message);

    [Fact]
    public void SignatureStrongLengthTooLong() => Assert.Contains("strong sum length 17 at byte 8", ReadSignature([0x72, 0x73, 0x01, 0x46, 0, 0, 1, 0, 0, 0, 0, 17]).Message);

    [Fact]
    public void SignatureTruncatedEntry()
    {
        // strong length 8: entries are 12 bytes; give one whole entry and 5 bytes of the next.
        byte[] signature = [0x72, 0x73, 0x01, 0x47, 0, 0, 1, 0, 0, 0, 0, 8, .. new byte[12], .. new byte[5]];
        Assert.Contains("truncated block entry at byte 24 (block 1: 5 of 12 bytes)", ReadSignature(signature).Message);
    }
}
