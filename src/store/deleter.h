/*
 * File deletion off the event loop. Unlinking a large segment can take
 * milliseconds (the file system frees its extents), so once a loop installs
 * the deleter, dropped segments and deleted logs are removed on libuv's
 * worker pool. Without it (unit tests, tools) removal is inline.
 *
 * Crash safety: a log directory is first renamed to a unique
 * "<dir>.deleting-<hex>" name (one atomic rename, on the loop), so a new log
 * can take the old name at once and a crash before the removal finishes
 * leaves only a directory that store_sweep_deleting() removes at the next
 * start. A segment dropped by retention is already below the log start
 * offset, and recovery ignores or re-drops it if its unlink never happened.
 */
#ifndef HERALD_STORE_DELETER_H
#define HERALD_STORE_DELETER_H

#include <uv.h>

/* Routes deletions to loop's worker pool until store_deleter_uninstall().
 * Pending removals complete as the loop keeps running. */
void store_deleter_install(uv_loop_t *loop);
void store_deleter_uninstall(void);

/* Removes one file (async when installed; errors are logged). */
void store_unlink(const char *path);

/* Renames dir out of the way and removes it with its files (async when
 * installed). Returns 0 or -errno from the rename; ENOENT is success. */
int store_remove_dir(const char *dir);

/* Removes every "*.deleting-*" directory left in parent by a crash. */
void store_sweep_deleting(const char *parent);

#endif
