using System.CommandLine;
using HaSync.Apply;
using HaSync.Configuration;
using HaSync.Protocol;

namespace HaSync.Cli.Commands;

/// <summary>
/// <c>hasync serve --root DIR [--allow PATH]... [--state DIR] [--allow-setid]</c>: the agent on the passive, started over ssh (put it in an
/// authorized_keys forced command) or by the local transport. stdout is protocol only; logs go to stderr. The state
/// directory (journal, epoch, conflict copies) should be the one the node's own daemon uses, so that the epoch it
/// accepts as passive is the one it outbids when it becomes active.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var root = new Option<string>("--root") { Description = "Directory under which every path is written", Required = true };
        var allow = new Option<string[]>("--allow") { Description = "A path (under the root) that may be written; repeat it; default: everything under the root", AllowMultipleArgumentsPerToken = false };
        var state = new Option<string>("--state") { Description = "The node's state directory: journal of what HaSync wrote, epochs, conflict copies (never written through the protocol)", DefaultValueFactory = _ => HaSyncConfig.DefaultStateDirectory };
        var walk = new Option<bool>("--resolve-by-walk")
        {
            Description = "Resolve paths below the root one component at a time (openat with O_NOFOLLOW), as on a kernel without openat2 (before 5.6); equally safe, a little slower",
        };
        var setId = new Option<bool>("--allow-setid")
        {
            Description = "Keep set-user-id and set-group-id bits as the active has them; by default they are stripped from every file and directory written (and diff reports it)",
        };
        var command = new Command("serve", "Run the receiving agent on stdin/stdout (started by ssh or the local transport)") { root, allow, state, walk, setId };
        command.SetAction((r, cancellationToken) =>
        {
            PathGuard guard;
            try
            {
                HaSync.Guard.StateDirectory.Ensure(r.GetValue(state)!); // before the guard: it forbids it by its real path
                guard = new PathGuard(r.GetValue(root)!, r.GetValue(allow) ?? [], forbidden: [r.GetValue(state)!], useOpenat2: !r.GetValue(walk));
            }
            catch (ConfinementException e)
            {
                Console.Error.WriteLine($"hasync serve: {e.Message}");
                return Task.FromResult(2);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"hasync serve: --state {r.GetValue(state)}: {e.Message}");
                return Task.FromResult(2);
            }
            // Console streams are unbuffered on Linux: without buffers, every frame header and payload is its own read(2).
            // A pipe as large as an unprivileged process may have (fs.pipe-max-size, 1 MiB by default): sshd writes what came
            // in larger pieces, and rarely has to hold any of it (see SilenceLimitedStream).
            HaSync.Interop.Libc.TryResizePipe(0, 1 << 20); // refused (not a pipe, over the limit): the pipe stays as it was
            using var stdin = new SilenceLimitedStream(Console.OpenStandardInput());
            using var stdout = new BufferedStream(Console.OpenStandardOutput(), 1 << 16);
            Agent agent;
            try
            {
                agent = new Agent(guard, Path.GetFullPath(r.GetValue(state)!), Console.Error, keepSetId: r.GetValue(setId));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"hasync serve: --state {r.GetValue(state)}: {e.Message}");
                return Task.FromResult(2);
            }
            using (agent)
                return Task.FromResult(agent.Serve(stdin, stdout, cancellationToken));
        });
        return command;
    }
}
