using System.Globalization;

namespace HaSync;

/// <summary>Sizes as an admin reads them.</summary>
public static class Sizes
{
    /// <summary>Bytes in binary units, three significant digits: "0 B", "812 B", "2.15 MiB", "1.6 GiB".</summary>
    public static string Human(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double value = bytes;
        int unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        string number = unit == 0 ? bytes.ToString(CultureInfo.InvariantCulture)
            : value.ToString(value < 10 ? "0.##" : value < 100 ? "0.#" : "0", CultureInfo.InvariantCulture);
        return $"{number} {units[unit]}";
    }
}
