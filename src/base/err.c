/* Error names for HE_* codes and -errno. */
#include "base/err.h"

#include <string.h>

const char *herald_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define HE_CASE(name, val, str) \
    case (val):                 \
        return str;
        HE_ERRORS(HE_CASE)
#undef HE_CASE
    default:
        return err < 0 ? strerror(-err) : "unknown error";
    }
}
