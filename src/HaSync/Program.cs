using System.CommandLine;
using HaSync.Cli.Commands;

var root = new RootCommand("HaSync: real-time configuration sync for Linux HA pairs")
{
    ResyncCommand.Create(),
    DiffCommand.Create(),
    ServeCommand.Create(),
    RdiffCommand.Create(),
    DemoCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
