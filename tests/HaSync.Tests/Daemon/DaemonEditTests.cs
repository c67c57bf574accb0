using HaSync.Tests.Support;

namespace HaSync.Tests.Daemon;

/// <summary>
/// The ways admins, editors and package scripts change configuration, each made on a real active folder watched
/// with real inotify, and each reaching the passive through a real sshd with the right content and metadata.
/// </summary>
[Collection("daemon")]
public class DaemonEditTests(SshServer server) : IClassFixture<SshServer>
{
    public static TheoryData<string> Edits =>
    [
        "plain write", "write in place in several writes", "rename save", "sed -i", "cp over", "mv in", "ln -sf",
        "chmod alone", "chown alone", "delete", "new directory with files written at once", "directory rename",
        "same-size rewrite in the same second", "watched directory replaced", "an excluded swap file made and removed alone",
    ];

    [Theory]
    [MemberData(nameof(Edits))]
    public async Task EachEditReachesThePassive(string edit)
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), server.Target("ssh", "--root", dir.File("passive")),
            dir.File("state"), exclude: ["*.swp", "*~"]);
        await daemon.WaitConnectedAsync();
        await daemon.WaitIdenticalAsync(); // the start-up resync

        string ini = daemon.Active("bm.ini");
        void Shell(string script) => Tools.Check("sh", "-c", $"cd '{daemon.Active("")}' && {script}");
        switch (edit)
        {
            case "plain write":
                File.WriteAllText(daemon.Active("new.conf"), "new\n");
                break;
            case "write in place in several writes":
                using (var stream = new FileStream(ini, FileMode.Open, FileAccess.Write))
                    for (int i = 0; i < 3; i++)
                    {
                        stream.Write(System.Text.Encoding.UTF8.GetBytes($"part {i} of an edit made in several write() calls\n"));
                        stream.Flush();
                        Thread.Sleep(15);
                    }
                break;
            case "rename save":
                File.WriteAllText(daemon.Active(".bm.ini.swp"), "editor swap\n");
                File.WriteAllText(daemon.Active("bm.ini.new"), "[global]\nhost = 192.0.2.99\n");
                File.Move(daemon.Active("bm.ini.new"), ini, overwrite: true);
                break;
            case "an excluded swap file made and removed alone": // never shipped, but conf.d's time moved twice
                File.WriteAllText(daemon.Active("conf.d/.mail.conf.swp"), "editor swap\n");
                Thread.Sleep(100);
                File.Delete(daemon.Active("conf.d/.mail.conf.swp"));
                break;
            case "sed -i":
                Shell("sed -i s/192.0.2.10/192.0.2.20/ bm.ini");
                break;
            case "cp over":
                File.WriteAllText(dir.File("elsewhere.ini"), "copied over\n");
                Shell($"cp '{dir.File("elsewhere.ini")}' bm.ini");
                break;
            case "mv in":
                File.WriteAllText(dir.File("active/outside.conf"), "moved in\n");
                Shell("mv ../../outside.conf moved.conf");
                break;
            case "ln -sf":
                Shell("ln -sf conf.d/mail.conf current.ini");
                break;
            case "chmod alone":
                TestTree.Chmod(ini, "640");
                break;
            case "chown alone":
                TestTree.Chown(ini, TestTree.NobodyUid, 0);
                break;
            case "delete":
                File.Delete(ini);
                break;
            case "new directory with files written at once":
                Shell("mkdir -p new/deep && echo a > new/a.conf && echo b > new/deep/b.conf && mkdir new/empty");
                break;
            case "directory rename":
                Shell("mv conf.d conf.e");
                break;
            case "watched directory replaced":
                // The listed directory itself moved away and made anew (as a package upgrade might).
                Shell("cd .. && mv bm bm.old && mkdir bm && echo fresh > bm/fresh.conf && chmod 700 bm");
                break;
            case "same-size rewrite in the same second":
                // Same size, same mtime (to the nanosecond): only the content and the ctime differ. rsync's quick check misses this.
                var before = File.GetLastWriteTimeUtc(ini);
                string text = File.ReadAllText(ini);
                File.WriteAllText(ini, text.Replace("10", "99"));
                File.SetLastWriteTimeUtc(ini, before);
                break;
        }
        await daemon.WaitIdenticalAsync();

        switch (edit)
        {
            case "rename save":
                Assert.Equal("[global]\nhost = 192.0.2.99\n", File.ReadAllText(daemon.Passive("bm.ini")));
                Assert.False(File.Exists(daemon.Passive(".bm.ini.swp")), "an excluded editor file reached the passive");
                break;
            case "delete":
                Assert.False(File.Exists(daemon.Passive("bm.ini")));
                break;
            case "watched directory replaced":
                Assert.Equal("fresh\n", File.ReadAllText(daemon.Passive("fresh.conf")));
                File.WriteAllText(daemon.Active("after.conf"), "the new directory is watched\n");
                await daemon.WaitIdenticalAsync();
                break;
            case "directory rename":
                Assert.False(Directory.Exists(daemon.Passive("conf.d")));
                Assert.True(File.Exists(daemon.Passive("conf.e/mail.conf")));
                break;
            case "same-size rewrite in the same second":
                Assert.Contains("192.0.2.99", File.ReadAllText(daemon.Passive("bm.ini")));
                break;
        }
        Assert.Empty(Directory.GetFiles(dir.File("passive"), "*.hasync-*.tmp", SearchOption.AllDirectories)); // no temp file left
    }
}
