/* Process figures. See sysinfo.h. */
#include "broker/sysinfo.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>


/* Process start time from /proc: field 22 of /proc/self/stat (clock ticks
 * after boot) plus the boot time ("btime" in /proc/stat). 0 if unknown.
 * It never changes, so it is read once. */
static double read_start_time(void)
{
    static double cached = -1;
    if (cached >= 0) return cached;
    cached = 0;
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f) return cached;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold anything:
     * fields are counted after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) return cached;
    unsigned long long ticks = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
        if (++field == 22) {
            ticks = strtoull(tok, NULL, 10);
            break;
        }
    if (field != 22) return cached;
    f = fopen("/proc/stat", "re");
    if (!f) return cached;
    char line[256];
    unsigned long long btime = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1) break;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (btime && hz > 0) cached = (double)btime + (double)ticks / (double)hz;
    return cached;
}

static int64_t count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int64_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

void sysinfo_proc_sample(sysinfo_proc_t *out)
{
    struct rusage ru;
    out->cpu_seconds = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    size_t rss;
    out->rss_bytes = uv_resident_set_memory(&rss) == 0 ? (int64_t)rss : -1;
    out->start_time_s = read_start_time();
    out->open_fds = count_open_fds();
    struct rlimit rl;
    out->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (int64_t)rl.rlim_cur : -1;
}
