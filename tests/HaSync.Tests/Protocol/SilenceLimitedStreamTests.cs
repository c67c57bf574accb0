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
    public async Task NoWakeUpIsLostWhenBothSidesKeepFallingAsleep()
    {
        // The two threads hand over without a lock while neither waits: a wake-up lost in the hand-over would leave a read
        // asleep with data in the buffer, here for the (short) silence limit. Writes and reads of every size, with pauses
        // on both sides so that each keeps catching up with the other; the buffer fills now and then too.
        int seed = Environment.GetEnvironmentVariable("HASYNC_STDIN_SEED") is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next();
        Console.WriteLine($"stdin hand-over seed {seed} (HASYNC_STDIN_SEED={seed} replays it)");
        var random = new Random(seed);
        var data = new byte[24 << 20];
        random.NextBytes(data);
        var chunks = new List<int>();
        for (int total = 0; total < data.Length;)
        {
            int size = Math.Min(data.Length - total, random.Next(4) == 0 ? random.Next(1, 1 << 20) : random.Next(1, 600));
            chunks.Add(size);
            total += size;
        }
        var readSizes = Enumerable.Range(0, 4096).Select(_ => random.Next(3) == 0 ? random.Next(1, 1 << 20) : random.Next(1, 64)).ToArray();
        using var pipe = new Pipe();
        var server = pipe.Writer;
        var limit = TimeSpan.FromSeconds(10);
        var input = new SilenceLimitedStream(pipe.Reader) { Limit = limit };
        var writing = Task.Run(() =>
        {
            var pauses = new Random(seed + 1);
            int offset = 0;
            foreach (int size in chunks)
            {
                server.Write(data, offset, size);
                offset += size;
                if (pauses.Next(64) == 0)
                    Thread.Sleep(1); // the reader drains the buffer and goes to sleep
            }
            server.Close();
        });
        var received = new MemoryStream();
        var buffer = new byte[1 << 20];
        var readerPauses = new Random(seed + 2);
        int read, reads = 0;
        var longest = TimeSpan.Zero; // a lost wake-up: a read asleep until the limit, though the data is there
        var timer = System.Diagnostics.Stopwatch.StartNew();
        while ((read = input.Read(buffer, 0, readSizes[reads++ % readSizes.Length])) > 0)
        {
            longest = TimeSpan.FromTicks(Math.Max(longest.Ticks, timer.Elapsed.Ticks));
            received.Write(buffer, 0, read);
            if (readerPauses.Next(256) == 0)
                Thread.Sleep(2); // the read-ahead fills the buffer and goes to sleep
            timer.Restart();
        }
        await writing;
        Assert.True(longest < limit / 2, $"a read waited {longest.TotalSeconds:F1} s for data that was sent (seed {seed})");
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received.ToArray()));
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

    [Fact]
    public async Task IdleWorkRunsWhenAReadFindsNothingBufferedAndNeverWhileDataWaits()
    {
        using var pipe = new Pipe();
        var server = pipe.Writer;
        var input = new SilenceLimitedStream(pipe.Reader);
        int idle = 0;
        input.Idle = () => idle++;
        server.Write([1, 2, 3, 4]);
        var buffer = new byte[2];
        Assert.Equal(2, input.ReadAtLeast(buffer, 2)); // the first read may find the buffer empty, before the read-ahead
        int beforeBuffered = idle;
        Assert.InRange(beforeBuffered, 0, 1);
        Assert.Equal(2, input.ReadAtLeast(buffer, 2)); // already buffered: no idle work
        Assert.Equal(beforeBuffered, idle);
        var reading = Task.Run(() => input.Read(buffer, 0, 1)); // nothing buffered: the idle work runs, then the read waits
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref idle) == beforeBuffered + 1, TimeSpan.FromSeconds(30)), "the idle work never ran");
        Assert.False(reading.IsCompleted);
        server.Write([5]);
        Assert.Equal(1, await reading.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(5, buffer[0]);
        Assert.Equal(beforeBuffered + 1, idle);
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
