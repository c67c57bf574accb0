using System.IO.Pipes;
using System.Security.Cryptography;
using HaSync.Protocol;

namespace HaSync.Tests.Protocol;

/// <summary>The agent's stdin, read ahead on its own thread: every byte comes out once and in order, however the reads
/// are cut and however far behind the reader falls; the end is the end; silence is an error.</summary>
public sealed class SilenceLimitedStreamTests
{
    [Fact]
    public async Task BytesComeOutInOrderThroughAFullBufferAndAroundItsEnd()
    {
        // 20 MiB through an 8 MiB read-ahead, read in odd sizes and slowly at first: the buffer fills, the sender blocks,
        // and the buffer wraps around twice.
        var data = RandomNumberGenerator.GetBytes(20 << 20);
        using var pipe = new Pipe();
        var server = pipe.Writer;
        var input = new SilenceLimitedStream(pipe.Reader);
        var writing = Task.Run(() =>
        {
            for (int offset = 0; offset < data.Length; offset += 300_007)
                server.Write(data, offset, Math.Min(300_007, data.Length - offset));
            server.Close(); // the end of the data: the reader's read returns 0
        });
        await Task.Delay(500); // the read-ahead fills and waits
        var received = new MemoryStream();
        var buffer = new byte[70_001];
        int read, reads = 0;
        while ((read = input.Read(buffer, 0, 1 + reads++ * 7919 % buffer.Length)) > 0)
            received.Write(buffer, 0, read);
        await writing;
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received.ToArray()));
        Assert.Equal(0, input.Read(buffer, 0, buffer.Length)); // the end stays the end
    }

    [Fact]
    public void ASenderThatSaysNothingFailsTheReadAfterTheLimit()
    {
        using var pipe = new Pipe();
        var server = pipe.Writer;
        var input = new SilenceLimitedStream(pipe.Reader) { Limit = TimeSpan.FromMilliseconds(300) };
        server.Write([1, 2, 3]);
        var buffer = new byte[16];
        Assert.Equal(3, input.ReadAtLeast(buffer, 3));
        var started = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<PeerSilentException>(() => input.Read(buffer, 0, buffer.Length));
        Assert.InRange(started.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(30));
        Assert.Contains("nothing came from the sender for 0.3 s", e.Message);
    }

    /// <summary>A pipe whose write end is closed before its read end: a read blocked in the read-ahead thread returns
    /// (its end) before the descriptor it reads is closed.</summary>
    private sealed class Pipe : IDisposable
    {
        public AnonymousPipeServerStream Writer { get; } = new(PipeDirection.Out);
        public AnonymousPipeClientStream Reader { get; }

        public Pipe() => Reader = new AnonymousPipeClientStream(PipeDirection.In, Writer.ClientSafePipeHandle);

        public void Dispose()
        {
            Writer.Dispose();
            Reader.Dispose();
        }
    }
}
