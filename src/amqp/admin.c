/* The AMQP front end's views for the HTTP admin API. See admin.h. */
#include "amqp/admin.h"

#include "amqp/channel_int.h"

void amqp_admin_conns(void (*fn)(void *ctx, const amqp_conn_info_t *i), void *ctx)
{
    for (amqp_conn_t *c = amqp_conn_next(NULL); c; c = amqp_conn_next(c)) {
        if (c->state != AC_RUNNING && c->state != AC_CLOSING) continue;
        amqp_conn_info_t i = {c->peer,     c->user, c->client_product, c->client_version, c->conn_name,
                              c->nchan,    c->connected_at_ms,         c->bytes_in,       c->bytes_out};
        fn(ctx, &i);
    }
}

void amqp_admin_channels(void (*fn)(void *ctx, const amqp_channel_info_t *i), void *ctx)
{
    for (amqp_conn_t *c = amqp_conn_next(NULL); c; c = amqp_conn_next(c)) {
        if (c->state != AC_RUNNING) continue;
        for (uint32_t n = 1; n < c->chan_cap; n++) {
            amqp_channel_t *ch = c->channels[n];
            if (!ch || ch->closing) continue;
            uint32_t nc = 0;
            for (amqp_consumer_t *k = ch->consumers; k; k = k->next) nc++;
            amqp_channel_info_t i = {c->peer, ch->id, nc, ch->unacked,
                                     ch->prefetch_global ? ch->prefetch_global : ch->prefetch_next,
                                     ch->confirm_mode};
            fn(ctx, &i);
        }
    }
}

void amqp_admin_consumer(const qconsumer_t *qc, amqp_consumer_info_t *out)
{
    const amqp_consumer_t *k = (const amqp_consumer_t *)qc; /* qc is its first member */
    out->tag = (amqp_bytes_t){k->tag, k->tag_len};
    out->conn_peer = k->ch->c->peer;
    out->channel = k->ch->id;
    out->prefetch = k->prefetch;
    out->ack = !k->no_ack;
}
