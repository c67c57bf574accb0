namespace HaSync.Tests.Support;

/// <summary>How a new file is derived from its basis in the delta tests.</summary>
public enum Mutation { Identical, Unrelated, Inserts, Deletes, Edits, Repeats, Append, Truncate, MovedBlocks, Text }

/// <summary>Deterministic basis/new pairs for a seed.</summary>
internal static class TestData
{
    public static byte[] Random(Random random, int length)
    {
        var data = new byte[length];
        random.NextBytes(data);
        return data;
    }

    public static (byte[] Basis, byte[] New) Pair(Mutation mutation, int size, int seed)
    {
        var random = new Random(seed);
        byte[] basis = mutation is Mutation.Repeats ? Repeating(random, size) : mutation is Mutation.Text ? Text(random, size) : Random(random, size);
        var result = new List<byte>(basis);
        int edits = 1 + random.Next(8);
        switch (mutation)
        {
            case Mutation.Identical:
                break;
            case Mutation.Unrelated:
                return (basis, Random(random, Math.Max(0, size + random.Next(-size / 4 - 1, size / 4 + 2))));
            case Mutation.Inserts:
                for (int i = 0; i < edits; i++)
                    result.InsertRange(random.Next(result.Count + 1), Random(random, 1 + random.Next(300)));
                break;
            case Mutation.Deletes:
                for (int i = 0; i < edits && result.Count > 0; i++)
                {
                    int at = random.Next(result.Count);
                    result.RemoveRange(at, Math.Min(result.Count - at, 1 + random.Next(300)));
                }
                break;
            case Mutation.Edits:
            case Mutation.Repeats:
            case Mutation.Text:
                for (int i = 0; i < edits && result.Count > 0; i++)
                {
                    int at = random.Next(result.Count);
                    for (int j = at; j < Math.Min(result.Count, at + 1 + random.Next(40)); j++)
                        result[j] = (byte)random.Next(256);
                }
                break;
            case Mutation.Append:
                result.AddRange(Random(random, 1 + random.Next(5000)));
                break;
            case Mutation.Truncate:
                result.RemoveRange(result.Count / 2, result.Count - result.Count / 2);
                break;
            case Mutation.MovedBlocks:
                for (int i = 0; i < edits && result.Count > 2; i++)
                {
                    int length = 1 + random.Next(Math.Max(1, result.Count / 4));
                    int from = random.Next(result.Count - length + 1);
                    var chunk = result.GetRange(from, length);
                    result.RemoveRange(from, length);
                    result.InsertRange(random.Next(result.Count + 1), chunk);
                }
                break;
        }
        return (basis, result.ToArray());
    }

    /// <summary>Data made of a few short patterns repeated: many equal blocks, so the "first equal block" rule matters.</summary>
    private static byte[] Repeating(Random random, int size)
    {
        var patterns = Enumerable.Range(0, 3).Select(_ => Random(random, 1 + random.Next(600))).ToArray();
        var data = new List<byte>(size);
        while (data.Count < size)
            data.AddRange(patterns[random.Next(patterns.Length)]);
        return data.Take(size).ToArray();
    }

    /// <summary>Configuration-file-like text.</summary>
    private static byte[] Text(Random random, int size)
    {
        string[] words = ["server", "listen", "127.0.0.1", "=", "yes", "no", "# comment", "mail", "bm-core", "smtp", "port", "25", "\n", "\n", "\t"];
        var text = new System.Text.StringBuilder(size);
        while (text.Length < size)
            text.Append(words[random.Next(words.Length)]).Append(' ');
        return System.Text.Encoding.ASCII.GetBytes(text.ToString(0, size));
    }
}
