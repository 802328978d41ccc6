/* selfstat.c -- the process's own resource readings from the kernel and the allocator. */
#include "selfstat.h"

#include <dirent.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/*
 * Under AddressSanitizer the allocator is ASan's, and glibc's mallinfo2() reports zeros:
 * ask the sanitizer's allocator instead, so heap_bytes stays meaningful in the ASan build.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SELFSTAT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SELFSTAT_ASAN 1
#endif
#endif
#ifdef SELFSTAT_ASAN
/* From <sanitizer/allocator_interface.h>, which Debian's gcc does not ship. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

int64_t
selfstat_heap_bytes(void)
{
#ifdef SELFSTAT_ASAN
    return (int64_t)__sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return (int64_t)(mi.uordblks + mi.hblkhd);
#endif
}

/* Reads "Threads:", "VmRSS:" and "VmHWM:" from /proc/self/status. */
static void
read_status(struct selfstat *s)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "re");

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        long v;
        if (sscanf(line, "Threads: %ld", &v) == 1)
            s->threads = v;
        else if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            s->rss_bytes = (int64_t)v * 1024;
        else if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
            s->rss_peak_bytes = (int64_t)v * 1024;
    }
    fclose(f);
}

static long
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* Process start in Unix seconds: boot time plus field 22 of /proc/self/stat. */
static double
start_time(void)
{
    char buf[1024];
    FILE *f;
    size_t n;
    unsigned long long start_ticks = 0;
    double btime = 0;

    f = fopen("/proc/self/stat", "re");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                            "%*d %*d %*d %*d %llu",
                            &start_ticks) != 1)
        return -1;
    f = fopen("/proc/stat", "re");
    if (f == NULL)
        return -1;
    while (fgets(buf, sizeof(buf), f) != NULL)
        if (sscanf(buf, "btime %lf", &btime) == 1)
            break;
    fclose(f);
    return btime + (double)start_ticks / (double)sysconf(_SC_CLK_TCK);
}

void
selfstat_read(struct selfstat *s)
{
    static double started = -1;
    struct rusage ru;

    s->threads = -1;
    s->rss_bytes = -1;
    s->rss_peak_bytes = -1;
    read_status(s);
    s->fds = count_fds();
    s->heap_bytes = selfstat_heap_bytes();
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    else
        s->cpu_seconds = -1;
    if (started < 0)
        started = start_time();
    s->start_time = started;
}
