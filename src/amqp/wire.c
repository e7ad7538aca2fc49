/* AMQP wire primitives; see wire.h for the frame layout. */
#include "amqp/wire.h"

#include <string.h>

int amqp_bytes_eq(amqp_bytes_t b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && (n == 0 || memcmp(b.p, s, n) == 0);
}
