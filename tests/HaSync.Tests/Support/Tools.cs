using System.Diagnostics;

namespace HaSync.Tests.Support;

/// <summary>Real external programs the tests use as peers and oracles. A missing one fails the test
/// loudly: ./test.sh installs them, and a test that silently skipped would prove nothing.</summary>
internal static class Tools
{
    public static string Require(string program, string debianPackage)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':'))
        {
            string candidate = Path.Combine(dir, program);
            if (File.Exists(candidate))
                return candidate;
        }
        throw new InvalidOperationException($"{program} is not installed: run ./test.sh, which installs it, or apt-get install {debianPackage}");
    }

    public static string Rdiff => Require("rdiff", "rdiff");

    /// <summary>Runs a program to completion (with a timeout) and returns exit code, stdout and stderr.</summary>
    public static (int ExitCode, byte[] Stdout, string Stderr) Run(string program, IEnumerable<string> arguments,
        byte[]? stdin = null, TimeSpan? timeout = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            start.Environment[name] = value;
        foreach (string argument in arguments)
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {program}");
        var stdout = new MemoryStream();
        var copyOut = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var readErr = process.StandardError.ReadToEndAsync();
        try
        {
            if (stdin != null)
                process.StandardInput.BaseStream.Write(stdin);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // it stopped reading (and most likely exited): what it said matters, not the rest of its input
        }
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish in time");
        }
        copyOut.Wait();
        return (process.ExitCode, stdout.ToArray(), readErr.Result);
    }

    /// <summary>Runs a program that must succeed.</summary>
    public static byte[] Check(string program, params string[] arguments)
    {
        var (code, stdout, stderr) = Run(program, arguments);
        if (code != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited {code}: {stderr}");
        return stdout;
    }
}

/// <summary>A temp directory removed at dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "hasync-test-" + Guid.NewGuid().ToString("N")[..12]);

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { /* a test that failed may leave a file open; the temp dir is not worth a second failure */ }
    }
}
