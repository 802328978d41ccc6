/* selfstat.h -- the process's own resource readings from the kernel and the allocator. */
#ifndef SA_SELFSTAT_H
#define SA_SELFSTAT_H

#include <stdint.h>

struct selfstat {
    long threads;           /* /proc/self/status Threads: */
    int64_t rss_bytes;      /* VmRSS */
    int64_t rss_peak_bytes; /* VmHWM */
    long fds;               /* entries of /proc/self/fd */
    int64_t heap_bytes;     /* mallinfo2() uordblks + hblkhd */
    double cpu_seconds;     /* user + system */
    double start_time;      /* process start, Unix seconds */
};

/* Heap bytes in use, as heap_bytes: the allocator alone, cheap enough for a watchdog tick. */
int64_t selfstat_heap_bytes(void);

/* Fills S; fields that cannot be read are -1. */
void selfstat_read(struct selfstat *s);

#endif
