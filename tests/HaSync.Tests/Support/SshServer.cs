using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using HaSync.Configuration;

namespace HaSync.Tests.Support;

/// <summary>
/// A real OpenSSH server for the transport tests: started on a free loopback port with throw-away host and
/// user keys, checked ready with the system ssh client, stopped at dispose. It fails loudly when sshd
/// cannot be had; ./test.sh installs it.
/// </summary>
public sealed class SshServer : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string? _netns;
    private Process _sshd;

    public SshServer() : this("127.0.0.1", netns: null)
    {
    }

    /// <summary>A server listening on <paramref name="address"/> inside network namespace <paramref name="netns"/> (for link
    /// cuts: the client reaches it through a veth the test can take down).</summary>
    public static SshServer InNamespace(string address, string netns) => new(address, netns);

    private SshServer(string address, string? netns)
    {
        (Address, _netns) = (address, netns);
        string sshd = File.Exists("/usr/sbin/sshd") ? "/usr/sbin/sshd" : throw new InvalidOperationException("/usr/sbin/sshd is not installed: run ./test.sh, which installs it, or apt-get install openssh-server");
        Tools.Require("ssh", "openssh-client");
        Directory.CreateDirectory("/run/sshd"); // privilege separation directory sshd insists on
        Tools.Check("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", _dir.File("host_key"));
        Tools.Check("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", _dir.File("user_key"));
        File.Copy(_dir.File("user_key.pub"), _dir.File("authorized_keys"));
        Port = FreePort();
        File.WriteAllText(_dir.File("sshd_config"), $"""
            Port {Port}
            ListenAddress {address}
            HostKey {_dir.File("host_key")}
            PidFile {_dir.File("sshd.pid")}
            AuthorizedKeysFile {_dir.File("authorized_keys")}
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin yes
            StrictModes no
            UsePAM no
            LogLevel ERROR
            SetEnv DOTNET_ROOT={Path.GetDirectoryName(Environment.ProcessPath) ?? "/usr/share/dotnet"}
            """);
        _sshd = Launch();
        WaitUntilReady();
    }

    private Process Launch() =>
        Process.Start(_netns is null
            ? new ProcessStartInfo("/usr/sbin/sshd", ["-D", "-e", "-f", _dir.File("sshd_config")]) { RedirectStandardError = true }
            : new ProcessStartInfo("ip", ["netns", "exec", _netns, "/usr/sbin/sshd", "-D", "-e", "-f", _dir.File("sshd_config")]) { RedirectStandardError = true })
            ?? throw new InvalidOperationException("cannot start sshd");

    /// <summary>Where it listens.</summary>
    public string Address { get; }

    /// <summary>Stops listening (sessions already open go on until their client ends them): the target is down.</summary>
    public void Stop()
    {
        _sshd.Kill();
        _sshd.WaitForExit(5000);
        _sshd.Dispose();
    }

    /// <summary>Listens again on the same port: the target is back.</summary>
    public void Start()
    {
        _sshd = Launch();
        WaitUntilReady();
    }

    public int Port { get; }

    public string IdentityFile => _dir.File("user_key");

    public static string User => Environment.UserName;

    /// <summary>ssh options that trust the throw-away host key without touching the user's known_hosts.</summary>
    public static IReadOnlyList<string> TrustOptions => ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"];

    /// <summary>A target that runs <c>hasync serve</c> through this server (with a state directory beside its <c>--root</c>
    /// unless the arguments name one).</summary>
    public TargetConfig Target(string name, params string[] serveArguments) => new()
    {
        Name = name,
        Transport = TransportKind.Ssh,
        Host = Address,
        Port = Port,
        User = User,
        IdentityFile = IdentityFile,
        SshOptions = TrustOptions,
        Command = [Path.Combine(AppContext.BaseDirectory, "hasync"), "serve",
            .. TestTree.WithState(serveArguments[Array.IndexOf(serveArguments, "--root") + 1], serveArguments)],
    };

    private void WaitUntilReady()
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            if (_sshd.HasExited)
                throw new InvalidOperationException($"sshd exited with {_sshd.ExitCode}: {_sshd.StandardError.ReadToEnd()}");
            var (code, _, stderr) = Tools.Run("ssh", ["-o", "BatchMode=yes", .. TrustOptions, "-i", IdentityFile, "-p", Port.ToString(), $"{User}@{Address}", "true"], timeout: TimeSpan.FromSeconds(10));
            if (code == 0)
                return;
            last = stderr;
            Thread.Sleep(100);
        }
        throw new InvalidOperationException($"sshd on port {Port} did not accept a login within 20 s: {last}");
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public void Dispose()
    {
        try
        {
            if (!_sshd.HasExited)
                _sshd.Kill();
            _sshd.WaitForExit(5000);
            _sshd.Dispose();
        }
        catch (InvalidOperationException)
        {
            // stopped by the test and never started again
        }
        _dir.Dispose();
    }
}
