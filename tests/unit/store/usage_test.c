/* Unit tests for store/usage: the walk counts nested files, does not
 * follow symbolic links (a link to a big file elsewhere adds nothing), and
 * a missing directory is an error with the file system figures unknown. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/usage.h"

static void write_file(const char *path, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    char *buf = calloc(1, n ? n : 1);
    memset(buf, 'x', n); /* not sparse: blocks are allocated */
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    assert_int_equal(fsync(fd), 0);
    close(fd);
    free(buf);
}

static void test_walk(void **state)
{
    (void)state;
    char root[] = "/tmp/herald-usage-XXXXXX";
    assert_non_null(mkdtemp(root));
    char dir[256], p[300], outside[300], big[320];
    snprintf(dir, sizeof dir, "%s/data", root);
    assert_int_equal(mkdir(dir, 0755), 0);
    store_usage_t u;
    assert_int_equal(store_usage_measure(dir, &u), 0);
    int64_t empty = u.used_bytes;
    assert_true(u.free_bytes > 0 && u.total_bytes >= u.free_bytes);

    snprintf(p, sizeof p, "%s/topics", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/topics/t-0", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/topics/t-0/00000000000000000000.log", dir);
    write_file(p, 100000);
    snprintf(p, sizeof p, "%s/top", dir);
    write_file(p, 5000);
    /* a link out of the tree to a big file: not followed */
    snprintf(outside, sizeof outside, "%s/outside", root);
    assert_int_equal(mkdir(outside, 0755), 0);
    snprintf(big, sizeof big, "%s/big", outside);
    write_file(big, 1 << 20);
    snprintf(p, sizeof p, "%s/link", dir);
    assert_int_equal(symlink(outside, p), 0);

    assert_int_equal(store_usage_measure(dir, &u), 0);
    assert_true(u.used_bytes >= empty + 105000);
    assert_true(u.used_bytes < empty + (1 << 20));

    assert_int_equal(store_usage_measure(big, &u), -ENOTDIR);
    snprintf(p, sizeof p, "%s/missing", root);
    assert_int_equal(store_usage_measure(p, &u), -ENOENT);
    assert_int_equal(u.used_bytes, -1);
    assert_int_equal(u.free_bytes, -1);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
