using System.CommandLine;

namespace HaSync.Cli.Commands;

internal static class DemoCommand
{
    public static Command Create() => new("demo", "Sync the embedded demo pair of directories");
}
