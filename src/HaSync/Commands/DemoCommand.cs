using System.CommandLine;
using System.Reflection;
using HaSync.Apply;
using HaSync.Delta;

namespace HaSync.Cli.Commands;

/// <summary>
/// <c>hasync demo</c>: the main job on an embedded default, with no remote host. It seeds a local pair of
/// directories (an active tree with BlueMind-like configuration, and a stale passive copy: one file
/// missing, one outdated, one obsolete) and brings the passive in line with the delta engine: signature of
/// the passive's copy, delta of the active's, patch applied atomically. Run it again after editing a file
/// under <c>active/</c> and only the change travels.
/// </summary>
/// <remarks>Until the agent and <c>hasync resync</c> exist (issue 3) this drives the engine in-process.</remarks>
internal static class DemoCommand
{
    private const string ResourcePrefix = "demo/";

    public static Command Create()
    {
        var dir = new Option<string>("--dir") { Description = "Where the demo pair lives", DefaultValueFactory = _ => "demo" };
        var command = new Command("demo", "Sync the embedded demo pair of directories (DIR/active -> DIR/passive)") { dir };
        command.SetAction(r => CliErrors.Run("demo", () => Run(Path.GetFullPath(r.GetValue(dir)!))));
        return command;
    }

    private static void Run(string root)
    {
        string active = Path.Combine(root, "active"), passive = Path.Combine(root, "passive");
        if (!Directory.Exists(active))
            Seed(active, passive);

        Console.WriteLine($"syncing {active} -> {passive}");
        int created = 0, updated = 0, identical = 0, deleted = 0;
        long literal = 0, matched = 0;
        var activeFiles = RelativeFiles(active);
        foreach (string relative in activeFiles)
        {
            string source = Path.Combine(active, relative), target = Path.Combine(passive, relative);
            bool existed = File.Exists(target);
            if (existed && SameContent(source, target))
            {
                identical++;
                continue;
            }
            var stats = SyncFile(source, target);
            literal += stats.LiteralBytes;
            matched += stats.CopiedBytes;
            if (existed) updated++; else created++;
            Console.WriteLine($"  {(existed ? "updated" : "created"),-8} {relative}  (literal {stats.LiteralBytes:N0} B, matched {stats.CopiedBytes:N0} B)");
        }
        foreach (string relative in RelativeFiles(passive).Except(activeFiles))
        {
            File.Delete(Path.Combine(passive, relative));
            deleted++;
            Console.WriteLine($"  {"deleted",-8} {relative}");
        }

        var mismatches = activeFiles.Where(f => !File.Exists(Path.Combine(passive, f)) || !SameContent(Path.Combine(active, f), Path.Combine(passive, f))).ToList();
        if (mismatches.Count > 0 || RelativeFiles(passive).Count != activeFiles.Count)
            throw new HaSyncException($"{passive}: still differs from {active} after the sync: {string.Join(", ", mismatches)}");
        Console.WriteLine($"{activeFiles.Count} files: {created} created, {updated} updated, {identical} identical, {deleted} deleted; " +
                          $"sent {literal:N0} literal bytes, matched {matched:N0} bytes from the passive's own copies");
        Console.WriteLine("verified: passive is identical to active. Edit a file under active/ and run again to see only the change sent.");
    }

    /// <summary>signature(passive copy) -> delta(active copy) -> patch into a temp file renamed over the passive copy.</summary>
    private static DeltaStats SyncFile(string source, string target)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        using var basis = File.Exists(target) ? (Stream)File.OpenRead(target) : new MemoryStream();
        var signature = new MemoryStream();
        SignatureGenerator.Generate(basis, signature, SignatureParameters.Choose(basis.Length));
        signature.Position = 0;

        var delta = new MemoryStream();
        using (var input = File.OpenRead(source))
            DeltaEncoder.Encode(Signature.Read(signature), input, delta);
        delta.Position = 0;

        using var output = AtomicFile.Create(target);
        var stats = DeltaPatcher.Apply(basis, delta, output.Stream);
        output.Commit();
        return stats;
    }

    private static bool SameContent(string a, string b)
    {
        if (new FileInfo(a).Length != new FileInfo(b).Length)
            return false;
        return Hash(a).SequenceEqual(Hash(b));
    }

    private static byte[] Hash(string path)
    {
        var hasher = new Blake2b();
        hasher.Update(File.ReadAllBytes(path));
        var digest = new byte[Blake2b.HashLength];
        hasher.Finish(digest);
        return digest;
    }

    private static List<string> RelativeFiles(string root) => Directory.Exists(root)
        ? Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(root, f)).Order(StringComparer.Ordinal).ToList()
        : [];

    /// <summary>Writes the embedded active tree, and a passive copy that has fallen behind.</summary>
    private static void Seed(string active, string passive)
    {
        var assembly = Assembly.GetExecutingAssembly();
        foreach (string name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            string path = Path.Combine(active, name[ResourcePrefix.Length..]);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using var resource = assembly.GetManifestResourceStream(name)!;
            using var file = File.Create(path);
            resource.CopyTo(file);
        }
        foreach (string relative in RelativeFiles(active).Where(f => f != Path.Combine("etc", "aliases")))
        {
            string target = Path.Combine(passive, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(Path.Combine(active, relative), target);
        }
        // The passive's Elasticsearch configuration predates a tuning change on the active.
        string yml = Path.Combine(passive, "usr", "share", "bm-elasticsearch", "config", "elasticsearch.yml");
        File.WriteAllText(yml, File.ReadAllText(yml).Replace("queue_size: 1000", "queue_size: 200").Replace("mailspool_42:", "mailspool_42 (old):"));
        File.WriteAllText(Path.Combine(passive, "etc", "bm", "obsolete.conf"), "# left over from an older release\n");
        Console.WriteLine($"seeded a demo pair: {active} (the active node's files) and {passive} (a stale passive copy)");
    }
}
