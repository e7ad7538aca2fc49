/*
 * Herald's own error codes. 0 is success; failures are negative: either
 * -errno passed through from the OS, or one of the HE_* codes below, which
 * live far below any errno value. herald_strerror() names both.
 */
#ifndef HERALD_BASE_ERR_H
#define HERALD_BASE_ERR_H

#define HE_ERRORS(X)                                                   \
    X(TRUNCATED, -10001, "input truncated")                            \
    X(MALFORMED, -10002, "malformed input")                            \
    X(TOO_LARGE, -10003, "size over the configured limit")             \
    X(CORRUPT, -10004, "stored data failed its checksum")              \
    X(NOT_FOUND, -10005, "not found")                                  \
    X(EXISTS, -10006, "already exists")                                \
    X(OUT_OF_RANGE, -10007, "offset out of range")                     \
    X(UNSUPPORTED, -10008, "unsupported")                              \
    X(INVALID, -10009, "invalid argument")                             \
    X(STORAGE, -10010, "storage failure: log is read-only")            \
    X(CLOSED, -10011, "closed")                                        \
    X(BUSY, -10012, "in use")                                          \
    X(DENIED, -10013, "not allowed")

enum {
#define HE_ENUM(name, val, str) HE_##name = (val),
    HE_ERRORS(HE_ENUM)
#undef HE_ENUM
};

/* Returns a static description of err (HE_* or -errno). */
const char *herald_strerror(int err);

#endif
