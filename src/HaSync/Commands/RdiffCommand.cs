using System.CommandLine;
using HaSync.Apply;
using HaSync.Delta;

namespace HaSync.Cli.Commands;

/// <summary>
/// <c>hasync rdiff signature|delta|patch</c>: the delta engine on its own, with rdiff's argument order,
/// defaults and <c>-</c> for stdin/stdout. Files it writes appear whole or not at all.
/// </summary>
internal static class RdiffCommand
{
    public static Command Create()
    {
        var force = new Option<bool>("--force", "-f") { Description = "Overwrite existing output files" };
        var statistics = new Option<bool>("--statistics", "-s") { Description = "Print delta statistics to stderr" };
        var fsync = new Option<bool>("--fsync") { Description = "Flush the output file to disk before renaming it into place (rdiff does not)" };

        var blockSize = new Option<int>("--block-size", "-b") { Description = "Signature block size; 0 (default) for the recommended size" };
        var sumSize = new Option<int>("--sum-size", "-S") { Description = "Strong sum length; 0 (default) for the maximum, -1 for the minimum" };
        var hash = new Option<string>("--hash", "-H") { Description = "Strong hash: blake2 (default) or md4", DefaultValueFactory = _ => "blake2" };
        var rollsum = new Option<string>("--rollsum", "-R") { Description = "Rolling sum: rabinkarp (default) or rollsum", DefaultValueFactory = _ => "rabinkarp" };
        hash.AcceptOnlyFromAmong("blake2", "md4");
        rollsum.AcceptOnlyFromAmong("rabinkarp", "rollsum");

        var sigBasis = Path("basis", "File to describe; - or absent for stdin");
        var sigOut = Path("signature", "Where to write the signature; - or absent for stdout");
        var signature = new Command("signature", "Write the signature of BASIS") { blockSize, sumSize, hash, rollsum, force, fsync, sigBasis, sigOut };
        signature.SetAction(r => CliErrors.Run("rdiff signature", () =>
        {
            var magic = (r.GetValue(hash), r.GetValue(rollsum)) switch
            {
                ("md4", "rollsum") => SignatureMagic.Md4,
                ("md4", _) => SignatureMagic.RabinKarpMd4,
                (_, "rollsum") => SignatureMagic.Blake2,
                _ => SignatureMagic.RabinKarpBlake2,
            };
            using var input = OpenInput(r.GetValue(sigBasis)!);
            long? length = input.CanSeek ? input.Length : null;
            var parameters = SignatureParameters.Choose(length, magic, r.GetValue(blockSize), r.GetValue(sumSize));
            WriteOutput(r.GetValue(sigOut)!, r.GetValue(force), r.GetValue(fsync), output => SignatureGenerator.Generate(input, output, parameters));
        }));

        var deltaSig = Path("signature", "Signature of the basis");
        deltaSig.Arity = ArgumentArity.ExactlyOne;
        var deltaNew = Path("newfile", "New file; - or absent for stdin");
        var deltaOut = Path("delta", "Where to write the delta; - or absent for stdout");
        var delta = new Command("delta", "Write the delta from the signature's basis to NEWFILE") { force, fsync, statistics, deltaSig, deltaNew, deltaOut };
        delta.SetAction(r => CliErrors.Run("rdiff delta", () =>
        {
            Signature sig;
            string sigPath = r.GetValue(deltaSig)!;
            using (var sigInput = OpenInput(sigPath))
                sig = NamingFile(sigPath, () => Signature.Read(sigInput));
            using var input = OpenInput(r.GetValue(deltaNew)!);
            DeltaStats? stats = null;
            WriteOutput(r.GetValue(deltaOut)!, r.GetValue(force), r.GetValue(fsync), output => stats = DeltaEncoder.Encode(sig, input, output));
            if (r.GetValue(statistics))
                PrintStats("delta", stats!);
        }));

        var patchBasis = Path("basis", "The old file (must be a file: the patch seeks in it)");
        patchBasis.Arity = ArgumentArity.ExactlyOne;
        var patchDelta = Path("delta", "Delta; - or absent for stdin");
        var patchOut = Path("newfile", "Where to write the new file; - or absent for stdout");
        var patch = new Command("patch", "Apply DELTA to BASIS, writing NEWFILE") { force, fsync, statistics, patchBasis, patchDelta, patchOut };
        patch.SetAction(r => CliErrors.Run("rdiff patch", () =>
        {
            string basisPath = r.GetValue(patchBasis)!;
            if (basisPath == "-")
                throw new ArgumentException("the basis cannot be stdin: patching seeks in it");
            using var basis = new FileStream(basisPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            string deltaPath = r.GetValue(patchDelta)!;
            using var input = OpenInput(deltaPath);
            DeltaStats? stats = null;
            WriteOutput(r.GetValue(patchOut)!, r.GetValue(force), r.GetValue(fsync), output => stats = NamingFile(deltaPath, () => DeltaPatcher.Apply(basis, input, output)));
            if (r.GetValue(statistics))
                PrintStats("patch", stats!);
        }));

        return new Command("rdiff", "The delta engine on its own, byte-compatible with librsync's rdiff") { signature, delta, patch };
    }

    private static Argument<string> Path(string name, string description) =>
        new(name) { Description = description, Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => "-" };

    /// <summary>Puts the file's name in front of a format error, which only knows the byte offset.</summary>
    private static T NamingFile<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (DeltaFormatException e)
        {
            throw new DeltaFormatException($"{(path == "-" ? "stdin" : path)}: {e.Message}");
        }
    }

    private static Stream OpenInput(string path) => path == "-"
        ? Console.OpenStandardInput(1 << 16)
        : new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);

    /// <summary>Writes to stdout, or to a file that appears only when complete (temp file, then rename).</summary>
    private static void WriteOutput(string path, bool force, bool fsync, Action<Stream> write)
    {
        if (path == "-")
        {
            using var stdout = new BufferedStream(Console.OpenStandardOutput(), 1 << 16);
            write(stdout);
            return;
        }
        if (!force && (File.Exists(path) || Directory.Exists(path)))
            throw new IOException($"{path}: already exists (use -f to overwrite)");
        using var file = AtomicFile.Create(path);
        write(file.Stream);
        file.Commit(durable: fsync);
    }

    private static void PrintStats(string verb, DeltaStats stats) =>
        Console.Error.WriteLine(
            $"hasync rdiff {verb}: literal {stats.LiteralBytes} bytes in {stats.LiteralCommands} commands, " +
            $"copied {stats.CopiedBytes} bytes in {stats.CopyCommands} commands, delta {stats.DeltaLength} bytes");
}
