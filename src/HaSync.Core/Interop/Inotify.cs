using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace HaSync.Interop;

/// <summary>inotify(7), poll(2) and eventfd(2): the kernel's change notifications, read on a thread of our own.</summary>
internal static partial class Inotify
{
    public const uint IN_MODIFY = 0x2, IN_ATTRIB = 0x4, IN_CLOSE_WRITE = 0x8, IN_MOVED_FROM = 0x40, IN_MOVED_TO = 0x80,
        IN_CREATE = 0x100, IN_DELETE = 0x200, IN_DELETE_SELF = 0x400, IN_MOVE_SELF = 0x800, IN_Q_OVERFLOW = 0x4000,
        IN_IGNORED = 0x8000, IN_ONLYDIR = 0x01000000, IN_DONT_FOLLOW = 0x02000000, IN_EXCL_UNLINK = 0x04000000, IN_ISDIR = 0x40000000;
    private const int IN_CLOEXEC = 0x80000, EFD_CLOEXEC = 0x80000;
    private const short POLLIN = 1;
    public const int ENOENT = 2, EINTR = 4, EMFILE = 24, ENOSPC = 28, ENOTDIR = 20;

    /// <summary>One event as the kernel reports it; <see cref="Name"/> is empty for events on the watched directory itself.</summary>
    public readonly record struct Event(int Wd, uint Mask, string Name);

    [LibraryImport("libc", EntryPoint = "inotify_init1", SetLastError = true)]
    private static partial int inotify_init1(int flags);

    [LibraryImport("libc", EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int inotify_add_watch(int fd, string path, uint mask);

    [LibraryImport("libc", EntryPoint = "inotify_rm_watch", SetLastError = true)]
    private static partial int inotify_rm_watch(int fd, int wd);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int poll(PollFd* fds, nuint count, int timeoutMs);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary>A new inotify instance (close-on-exec), or the errno.</summary>
    public static int Init(out int errno)
    {
        int fd = inotify_init1(IN_CLOEXEC);
        errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return fd;
    }

    /// <summary>Adds (or merges into) a watch; the watch descriptor, or -1 with the errno.</summary>
    public static int AddWatch(int fd, string path, uint mask, out int errno)
    {
        int wd = inotify_add_watch(fd, path, mask);
        errno = wd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return wd;
    }

    public static void RemoveWatch(int fd, int wd) => inotify_rm_watch(fd, wd);

    /// <summary>An eventfd that wakes <see cref="Wait"/>.</summary>
    public static int WakeHandle()
    {
        int fd = eventfd(0, EFD_CLOEXEC);
        return fd >= 0 ? fd : throw new IOException($"eventfd failed: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    public static unsafe void Wake(int wakeFd)
    {
        ulong one = 1;
        write(wakeFd, (byte*)&one, sizeof(ulong));
    }

    /// <summary>Blocks until <paramref name="inotifyFd"/> is readable (true), the wake handle fires or the timeout passes (false).</summary>
    public static unsafe bool Wait(int inotifyFd, int wakeFd, int timeoutMs)
    {
        var fds = stackalloc PollFd[2];
        fds[0] = new PollFd { Fd = inotifyFd, Events = POLLIN };
        fds[1] = new PollFd { Fd = wakeFd, Events = POLLIN };
        int ready = poll(fds, 2, timeoutMs);
        if (ready < 0 && Marshal.GetLastPInvokeError() != EINTR)
            throw new IOException($"poll on the inotify descriptor failed: {Marshal.GetLastPInvokeErrorMessage()}");
        return ready > 0 && (fds[0].Revents & POLLIN) != 0;
    }

    /// <summary>Reads what events are queued (the descriptor must be readable) and decodes them.</summary>
    public static unsafe List<Event> Read(int fd, byte[] buffer)
    {
        nint count;
        fixed (byte* p = buffer)
            count = read(fd, p, (nuint)buffer.Length);
        if (count < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno == EINTR ? [] : throw new IOException($"read from the inotify descriptor failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        var events = new List<Event>();
        for (int offset = 0; offset + 16 <= count;)
        {
            var header = buffer.AsSpan(offset, 16);
            int wd = BinaryPrimitives.ReadInt32LittleEndian(header);
            uint mask = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
            int nameLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(header[12..]);
            var name = buffer.AsSpan(offset + 16, nameLength);
            int end = name.IndexOf((byte)0);
            events.Add(new Event(wd, mask, Encoding.UTF8.GetString(end >= 0 ? name[..end] : name)));
            offset += 16 + nameLength;
        }
        return events;
    }

    public static int Close(int fd) => Libc.close(fd);

    /// <summary>A kernel limit's current value, for error messages ("?" when unreadable).</summary>
    public static string Limit(string name)
    {
        try
        {
            return File.ReadAllText($"/proc/sys/fs/inotify/{name}").Trim();
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
