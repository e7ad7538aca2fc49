/* Deletion on the worker pool; see deleter.h. */
#include "store/deleter.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/io.h"

static uv_loop_t *g_loop;

void store_deleter_install(uv_loop_t *loop) { g_loop = loop; }
void store_deleter_uninstall(void) { g_loop = NULL; }

typedef struct {
    uv_work_t req;
    char *path;
    int is_dir;
    int rc;
} del_t;

/* Removes a directory and the files in it (logs hold no subdirectories). */
static int remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -errno;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) {
            rc = -ENAMETOOLONG;
            continue;
        }
        if (io_ops.unlink(p) < 0 && errno != ENOENT && !rc) rc = -errno;
    }
    closedir(d);
    if (rmdir(dir) < 0 && errno != ENOENT && !rc) rc = -errno;
    return rc;
}

static void del_run(del_t *d)
{
    if (d->is_dir) d->rc = remove_tree(d->path);
    else d->rc = io_ops.unlink(d->path) < 0 && errno != ENOENT ? -errno : 0;
}

static void on_work(uv_work_t *w) { del_run((del_t *)w); }

static void on_done(uv_work_t *w, int status)
{
    del_t *d = (del_t *)w;
    if (status == 0 && d->rc < 0) LOG_W("store: cannot remove %s: %s", d->path, herald_strerror(d->rc));
    free(d->path);
    free(d);
}

static void submit(const char *path, int is_dir)
{
    del_t *d = xcalloc(1, sizeof *d);
    d->path = xstrdup(path);
    d->is_dir = is_dir;
    if (g_loop && uv_queue_work(g_loop, &d->req, on_work, on_done) == 0) return;
    del_run(d);
    on_done(&d->req, 0);
}

void store_unlink(const char *path) { submit(path, 0); }

int store_remove_dir(const char *dir)
{
    uint8_t rnd[6];
    char tomb[4096];
    if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) < 0) memset(rnd, 0, sizeof rnd);
    if (snprintf(tomb, sizeof tomb, "%s.deleting-%02x%02x%02x%02x%02x%02x", dir, rnd[0], rnd[1], rnd[2], rnd[3],
                 rnd[4], rnd[5]) >= (int)sizeof tomb)
        return -ENAMETOOLONG;
    if (io_ops.renameat(AT_FDCWD, dir, AT_FDCWD, tomb) < 0) return errno == ENOENT ? 0 : -errno;
    submit(tomb, 1);
    return 0;
}

void store_sweep_deleting(const char *parent)
{
    DIR *d = opendir(parent);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".deleting-")) continue;
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", parent, e->d_name) >= (int)sizeof p) continue;
        LOG_I("store: removing %s left by an interrupted deletion", p);
        submit(p, 1);
    }
    closedir(d);
}
