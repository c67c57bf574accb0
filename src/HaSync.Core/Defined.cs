namespace HaSync;

/// <summary><see cref="Enum.IsDefined{TEnum}(TEnum)"/> with the values read once: under Native AOT that call goes through
/// the reflection layer every time, and the agent checks a frame type and an entry kind for every file it receives.</summary>
internal static class Defined<TEnum> where TEnum : struct, Enum
{
    private static readonly HashSet<TEnum> Values = [.. Enum.GetValues<TEnum>()];

    /// <summary>True when <paramref name="value"/> is one of the enum's named values.</summary>
    public static bool Is(TEnum value) => Values.Contains(value);
}
