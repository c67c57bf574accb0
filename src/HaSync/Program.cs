using System.CommandLine;
using HaSync.Cli;
using HaSync.Cli.Commands;

var root = new RootCommand("HaSync: real-time configuration sync for Linux HA pairs")
{
    ResyncCommand.Create(),
    DiffCommand.Create(),
    ServeCommand.Create(),
    RdiffCommand.Create(),
    DemoCommand.Create(),
    DaemonCommand.Create(),
    StatusCommand.Create(),
    StatusCommand.CreateCheck(),
    ResolveCommand.Create(),
    ConfigCommand.Create(),
};
// SIGTERM/SIGINT cancel the command's token; the daemon then needs time for its last push.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = DaemonCommand.ShutdownTimeout });
