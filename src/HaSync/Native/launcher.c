/*
 * `hasync`, the command admins and ssh run: it picks the build of the program this CPU can run and replaces itself
 * with it (execve: same process, arguments, environment and descriptors). Linked statically (HaSync.csproj), so its
 * own exec loads no library: it costs a fraction of a millisecond, where the baseline build's own start before it
 * could hand over cost 2.5-4 ms of every hasync process on a VM.
 *
 * hasync ships as two builds of the same program beside this launcher: `hasync-x86-64` for any x86-64 CPU
 * (x86-64-v2: SSE4.2, POPCNT), and `hasync-x86-64-v3`, compiled for AVX2 and its kin (BMI1/2, FMA, LZCNT, MOVBE,
 * F16C), which the hashing and delta code uses. A program compiled ahead of time cannot choose its instruction set
 * when it runs, and the v3 build refuses to start on a CPU without it. HASYNC_BASELINE=1 runs the baseline build on
 * any CPU. A v3 build that cannot be started (missing, not executable) leaves the baseline build: the same work,
 * slower. argv[0] stays as the admin typed it: usage lines and messages say "hasync".
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int bit(unsigned int reg, int n) { return (reg >> n) & 1; }

/* What the v3 build needs, as CPUID reports it, and the kernel saving the SSE and AVX registers (XCR0 bits 1 and 2). */
static int cpu_has_x86_64_v3(void)
{
    unsigned int eax, ebx, ecx, edx, ebx7, ecx1, lo, hi;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx) || eax < 7)
        return 0;
    __cpuid(1, eax, ebx, ecx1, edx);
    if (!(bit(ecx1, 12) && bit(ecx1, 22) && bit(ecx1, 27) && bit(ecx1, 28) && bit(ecx1, 29))) /* FMA MOVBE OSXSAVE AVX F16C */
        return 0;
    __cpuid_count(7, 0, eax, ebx7, ecx, edx);
    if (!(bit(ebx7, 3) && bit(ebx7, 5) && bit(ebx7, 8))) /* BMI1 AVX2 BMI2 */
        return 0;
    if (!__get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) || !bit(ecx, 5)) /* LZCNT */
        return 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0)); /* OSXSAVE is set, so XGETBV exists */
    (void)hi;
    return (lo & 6) == 6;
}

/* Points the file name part of path (after its last '/') at name; 0 if it does not fit. */
static int beside(char *path, const char *name)
{
    char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash + 1 - path) + strlen(name) + 1 > PATH_MAX)
        return 0;
    strcpy(slash + 1, name);
    return 1;
}

int main(int argc, char **argv, char **envp)
{
    (void)argc;
    /* The builds are looked for beside the launcher itself, a symlink into the PATH resolved (/proc/self/exe). */
    char self[PATH_MAX], path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
    {
        fprintf(stderr, "hasync: cannot find where this launcher is (readlink /proc/self/exe: %s); is /proc mounted?\n", strerror(errno));
        return 127;
    }
    self[n] = '\0';
    const char *keep = getenv("HASYNC_BASELINE");
    if (!(keep && strcmp(keep, "1") == 0) && cpu_has_x86_64_v3())
    {
        memcpy(path, self, (size_t)n + 1);
        if (beside(path, "hasync-x86-64-v3"))
            execve(path, argv, envp); /* returns only if it could not: the baseline build then */
    }
    memcpy(path, self, (size_t)n + 1);
    if (beside(path, "hasync-x86-64"))
        execve(path, argv, envp);
    fprintf(stderr, "hasync: cannot start %s: %s (the launcher needs the hasync-x86-64 build beside it)\n", path, strerror(errno));
    return 127;
}
