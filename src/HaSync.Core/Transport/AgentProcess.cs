using System.Diagnostics;
using System.Text;
using HaSync.Configuration;

namespace HaSync.Transport;

/// <summary>The agent could not be started or reached.</summary>
public sealed class TransportException(string message) : HaSyncException(message);

/// <summary>
/// The agent process for one target: <c>ssh … host -- hasync serve …</c> for the ssh transport (the admin's own
/// OpenSSH client, config, known_hosts and agent), or the agent command spawned directly for the local one.
/// Its stdin/stdout carry the protocol; its stderr is kept (last lines) for error messages and forwarded.
/// </summary>
public sealed class AgentProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Queue<string> _stderrTail = new();
    private readonly Task _stderrPump;

    private readonly string? _host;
    private readonly int? _port;

    private AgentProcess(Process process, TargetConfig target, Action<string>? onStderr)
    {
        _process = process;
        Target = target.Name;
        (_host, _port) = (target.Host, target.Port);
        _stderrPump = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                lock (_stderrTail)
                {
                    _stderrTail.Enqueue(line);
                    if (_stderrTail.Count > 20)
                        _stderrTail.Dequeue();
                }
                onStderr?.Invoke(line);
            }
        });
    }

    /// <summary>The target's name.</summary>
    public string Target { get; }

    /// <summary>To the agent.</summary>
    public Stream Input => _process.StandardInput.BaseStream;

    /// <summary>From the agent.</summary>
    public Stream Output => _process.StandardOutput.BaseStream;

    /// <summary>The last lines the agent (or ssh) wrote to stderr.</summary>
    public string StderrTail
    {
        get
        {
            lock (_stderrTail)
                return string.Join(" | ", _stderrTail);
        }
    }

    /// <summary>Starts the agent for <paramref name="target"/>.</summary>
    /// <param name="target">The target's configuration.</param>
    /// <param name="onStderr">Receives each line the agent (or ssh) writes to stderr (null: keep them for messages only).</param>
    public static AgentProcess Start(TargetConfig target, Action<string>? onStderr = null)
    {
        var start = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (target.Transport == TransportKind.Local && target.WorkingDirectory is { } directory)
            start.WorkingDirectory = directory;
        var arguments = CommandLine(target, out string program);
        foreach (string argument in arguments)
            start.ArgumentList.Add(argument);
        start.FileName = program;
        try
        {
            var process = Process.Start(start) ?? throw new TransportException($"target {target.Name}: cannot start {program}");
            return new AgentProcess(process, target, onStderr);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new TransportException($"target {target.Name}: cannot start {program}: {e.Message}");
        }
    }

    /// <summary>The program and arguments that start the agent.</summary>
    public static IReadOnlyList<string> CommandLine(TargetConfig target, out string program)
    {
        if (target.Transport == TransportKind.Local)
        {
            var command = target.Command.ToList();
            program = command[0] == "hasync" ? ThisHasync() : command[0];
            return command.Skip(1).ToList();
        }
        program = "ssh";
        var args = new List<string> { "-o", "BatchMode=yes" };
        // ssh's own check of a dead link, 15 s as the heartbeat's default, and of one that never answers, unless the admin's
        // options say otherwise: for each option the first value given wins, so ours must not come before theirs.
        foreach (var (option, value) in new[] { ("ServerAliveInterval", "5"), ("ServerAliveCountMax", "3"), ("ConnectTimeout", "10") })
            if (!target.SshOptions.Any(o => o.Contains(option, StringComparison.OrdinalIgnoreCase)))
                args.AddRange(["-o", $"{option}={value}"]);
        if (target.Port is int port)
            args.AddRange(["-p", port.ToString()]);
        if (target.User is { } user)
            args.AddRange(["-l", user]);
        if (target.IdentityFile is { } identity)
            args.AddRange(["-i", identity, "-o", "IdentitiesOnly=yes"]);
        args.AddRange(target.SshOptions);
        args.Add(target.Host!);
        args.Add("--");
        // ssh joins the remote command into one string for the remote shell: quote each word.
        args.Add(string.Join(' ', target.Command.Select(ShellQuote)));
        return args;
    }

    /// <summary>This hasync's executable (the local transport's "hasync").</summary>
    public static string ThisHasync()
    {
        string beside = Path.Combine(AppContext.BaseDirectory, "hasync");
        return File.Exists(beside) ? beside : Environment.ProcessPath ?? "hasync";
    }

    /// <summary>POSIX shell single-quoting.</summary>
    public static string ShellQuote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%".Contains(c))
            ? word
            : "'" + word.Replace("'", "'\\''") + "'";

    private volatile string? _final; // Describe() at dispose: a session's reader may ask after that

    /// <summary>The process started: ssh, or the agent itself with the local transport.</summary>
    public int Pid => _process.Id;

    /// <summary>Why the agent went away: exit code and its last stderr lines.</summary>
    public string Describe()
    {
        if (_final is { } final)
            return final; // the process object is disposed; this is what it said at the end
        var text = new StringBuilder();
        try
        {
            text.Append(_process.HasExited ? $"exited with code {_process.ExitCode}" : "still running");
        }
        catch (InvalidOperationException)
        {
            return _final ?? "has ended"; // disposed meanwhile
        }
        string tail = StderrTail;
        if (tail.Length > 0)
            text.Append($"; it said: {tail}");
        if (Hint(tail) is { } hint)
            text.Append($" ({hint})");
        return text.ToString();
    }

    /// <summary>What an admin does about the usual ssh failures, or null.</summary>
    private string? Hint(string stderr)
    {
        string keyscan = $"ssh-keyscan {(_port is int port ? $"-p {port} " : "")}{_host ?? "HOST"} >> /etc/hasync/known_hosts";
        if (stderr.Contains("Host key verification failed", StringComparison.Ordinal))
            return $"the passive's host key is not known here: compare its fingerprint with the passive's own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub there), " +
                   $"then '{keyscan}' and ssh_options: [-o, UserKnownHostsFile=/etc/hasync/known_hosts]";
        if (stderr.Contains("REMOTE HOST IDENTIFICATION HAS CHANGED", StringComparison.Ordinal))
            return "the passive's host key changed: if it was reinstalled, check the new key's fingerprint and replace its line in the known_hosts file; if not, someone may be in between";
        if (stderr.Contains("Permission denied (publickey", StringComparison.Ordinal))
            return "the passive does not accept this node's key: add its public key to root's authorized_keys there, with the forced command of samples/authorized_keys.example";
        return null;
    }

    private TimeSpan _exitGrace = TimeSpan.FromSeconds(5); // for the agent's last commit after a goodbye

    /// <summary>The session is lost (silent, or broken): at dispose, the process gets a second to go rather than five, so
    /// that the outage is reported, and the next connection tried, without waiting on an ssh stuck behind a dead link.</summary>
    public void Abandon() => _exitGrace = TimeSpan.FromSeconds(1);

    /// <summary>Closes stdin, waits briefly for the agent to exit, then kills it.</summary>
    public async ValueTask DisposeAsync()
    {
        try { _process.StandardInput.Close(); } catch (IOException) { /* already gone */ }
        using var wait = new CancellationTokenSource(_exitGrace);
        try
        {
            await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
        }
        await _stderrPump.ConfigureAwait(false);
        _final = Describe();
        _process.Dispose();
    }
}
