/*
 * What hasync does before .NET's runtime starts: an ELF constructor, linked into both native builds (HaSync.csproj).
 * Every hasync is a short process or starts many (each resync, diff, and the agent ssh starts on the passive), so what
 * start-up costs is paid on every session.
 *
 * 1. The baseline build hands over to the v3 build (HASYNC_HANDS_OVER, defined for the baseline build only).
 *    hasync ships as two builds of the same program: `hasync` for any x86-64 CPU (x86-64-v2: SSE4.2, POPCNT), and
 *    `hasync-x86-64-v3` beside it, compiled for AVX2 and its kin (BMI1/2, FMA, LZCNT, MOVBE, F16C), which the hashing
 *    and delta code uses. A program compiled ahead of time cannot choose its instruction set when it runs, and the v3
 *    build refuses to start on a CPU without it; so on a CPU that has it all, the baseline build replaces itself with
 *    the v3 build (execve: same process, arguments, environment, descriptors). Done here, that costs one exec, not a
 *    second runtime start (15 ms). HASYNC_BASELINE=1 keeps the baseline build. Anything unexpected (no /proc, no v3
 *    build beside it, a failed exec) leaves the baseline build running: the same work, slower.
 *
 * 2. The zero-filled end of the writable segment (.bss, and .hydrated, where the runtime unpacks 2 MiB of type data
 *    as it starts) is made present in one madvise rather than by 550 page faults, one per page: in a VM a fault costs
 *    10-20 us, and this took 3 ms of the 15 ms a `hasync --help` took.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#ifdef HASYNC_HANDS_OVER
static const char v3_name[] = "hasync-x86-64-v3";

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

/* Returns only if this build stays. argv[0] stays as the admin typed it: usage lines and messages say "hasync". */
static void hand_over_to_v3(char **argv, char **envp)
{
    const char *keep = getenv("HASYNC_BASELINE");
    if ((keep && strcmp(keep, "1") == 0) || !cpu_has_x86_64_v3())
        return;
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash + 1 - path) + sizeof v3_name > sizeof path)
        return;
    memcpy(slash + 1, v3_name, sizeof v3_name);
    execve(path, argv, envp);
}
#endif

static int populate_zero_filled_data(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++)
    {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W) || ph->p_memsz <= ph->p_filesz)
            continue;
        uintptr_t start = (info->dlpi_addr + ph->p_vaddr + ph->p_filesz + page - 1) & ~(page - 1);
        uintptr_t end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        if (end > start)
            madvise((void *)start, end - start, MADV_POPULATE_WRITE); /* an older kernel says EINVAL: it faults as before */
    }
    return 1; /* the first object listed is the executable itself */
}

/* glibc calls an executable's constructors with main's arguments. */
__attribute__((constructor)) static void before_the_runtime(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    (void)envp;
#ifdef HASYNC_HANDS_OVER
    hand_over_to_v3(argv, envp);
#endif
    dl_iterate_phdr(populate_zero_filled_data, NULL);
}
