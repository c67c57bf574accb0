using HaSync.Delta;
using HaSync.Tests.Support;

namespace HaSync.Tests.Delta;

/// <summary>A gigabyte goes through signature, delta and patch in a few megabytes of memory, and a
/// cancelled token stops each CPU loop.</summary>
public sealed class StreamingTests
{
    private const long OneGiB = 1L << 30;
    private const long MemoryBound = 16L << 20; // buffers and the signature index: a few MiB, whatever the input size

    private static readonly byte[] Basis = TestData.Random(new Random(42), 4 << 20);
    private static readonly Signature BasisSignature = SignatureOf(Basis);

    private static Signature SignatureOf(byte[] basis)
    {
        var signature = new MemoryStream();
        SignatureGenerator.Generate(new MemoryStream(basis), signature, SignatureParameters.Choose(basis.Length));
        signature.Position = 0;
        return Signature.Read(signature);
    }

    [Fact]
    public void OneGibibyteNeedsNoMoreThanAFewMebibytes()
    {
        _ = BasisSignature.Index; // built once; its size depends on the basis, not on the new data

        long before = GC.GetAllocatedBytesForCurrentThread();
        var signatureOutput = new CountingStream();
        long blocks = SignatureGenerator.Generate(new RepeatingStream(Basis, OneGiB), signatureOutput, SignatureParameters.Choose(null));
        Assert.Equal(OneGiB / SignatureFormat.DefaultBlockLength, blocks);
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, MemoryBound);

        before = GC.GetAllocatedBytesForCurrentThread();
        var delta = new MemoryStream();
        var stats = DeltaEncoder.Encode(BasisSignature, new RepeatingStream(Basis, OneGiB), delta);
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, MemoryBound + delta.Capacity);
        Assert.Equal(OneGiB, stats.CopiedBytes);
        Assert.Equal(0, stats.LiteralBytes);

        before = GC.GetAllocatedBytesForCurrentThread();
        delta.Position = 0;
        var output = new CountingStream();
        DeltaPatcher.Apply(new MemoryStream(Basis), delta, output);
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, MemoryBound);
        Assert.Equal(OneGiB, output.Count);
    }

    [Fact]
    public void CancellingStopsTheSignature()
    {
        using var cts = new CancellationTokenSource();
        var input = new RepeatingStream(Basis, long.MaxValue, read => { if (read > 50 << 20) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            SignatureGenerator.Generate(input, Stream.Null, SignatureParameters.Choose(null), cts.Token));
    }

    [Fact]
    public void CancellingStopsTheDeltaInTheMissLoop()
    {
        // Unrelated data: the encoder spends its time rolling byte by byte, the loop that must still look at the token.
        using var cts = new CancellationTokenSource();
        byte[] unrelated = TestData.Random(new Random(43), 1 << 20);
        var input = new RepeatingStream(unrelated, long.MaxValue, read => { if (read > 20 << 20) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => DeltaEncoder.Encode(BasisSignature, input, Stream.Null, cancellationToken: cts.Token));
    }

    [Fact]
    public void CancellingStopsTheDeltaInTheMatchLoop()
    {
        using var cts = new CancellationTokenSource();
        var input = new RepeatingStream(Basis, long.MaxValue, read => { if (read > 50 << 20) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => DeltaEncoder.Encode(BasisSignature, input, Stream.Null, cancellationToken: cts.Token));
    }

    [Fact]
    public void CancellingStopsALongCopyInThePatch()
    {
        // One COPY of the whole 4 MiB basis, repeated: the token is looked at inside each copy.
        byte[] copy = [0x4b, 0, 0, 0x00, 0x40, 0x00, 0x00]; // COPY_N2_N4: position 0, length 4 MiB
        byte[] delta = [0x72, 0x73, 0x02, 0x36, .. Enumerable.Repeat(copy, 100).SelectMany(c => c), 0x00];
        using var cts = new CancellationTokenSource();
        var output = new CountingStream(written => { if (written > 1 << 20) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => DeltaPatcher.Apply(new MemoryStream(Basis), new MemoryStream(delta), output, cancellationToken: cts.Token));
        Assert.True(output.Count < 8 << 20, $"patch went on for {output.Count} bytes after cancellation");
    }
}
