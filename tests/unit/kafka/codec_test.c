/*
 * Kafka codec tests: hand-written byte vectors from the protocol guide's
 * field layouts, round trips of every API at every version (sample values
 * from the generated kafka_sample.c), truncation at every prefix, and
 * hostile lengths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/kafka_msgs.h"
#include "kafka/kafka_sample.h"

/* ---- helpers ---- */

static void assert_kstr(kstr_t s, const char *want)
{
    if (!want) {
        assert_int_equal(s.len, -1);
        return;
    }
    assert_int_equal(s.len, (int32_t)strlen(want));
    if (s.len > 0)
        assert_memory_equal(s.p, want, strlen(want));
}

static void assert_wbuf(const wbuf_t *w, const uint8_t *want, size_t n)
{
    assert_int_equal(w->len, n);
    assert_memory_equal(w->p, want, n);
}

#define ASSERT_WBUF(w, arr) assert_wbuf((w), (arr), sizeof(arr))

/* ---- headers ---- */

static void test_req_header_v1(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x12,             /* api_key 18 ApiVersions */
        0x00, 0x00,             /* api_version 0 */
        0x00, 0x00, 0x00, 0x07, /* correlation_id 7 */
        0x00, 0x03, 'a', 'b', 'c', /* client_id int16 len 3 "abc" */
    };
    rbuf_t r;
    rbuf_init(&r, in, sizeof in);
    kafka_req_header_t h;
    assert_int_equal(kafka_req_header_decode(&r, &h), 0);
    assert_int_equal(h.api_key, 18);
    assert_int_equal(h.api_version, 0);
    assert_int_equal(h.correlation_id, 7);
    assert_kstr(h.client_id, "abc");
    assert_ptr_equal(h.client_id.p, (const char *)in + 10); /* a view */
    assert_int_equal(rbuf_remaining(&r), 0);

    wbuf_t w;
    wbuf_init(&w);
    kafka_req_header_encode(&w, &h);
    ASSERT_WBUF(&w, in);
    wbuf_destroy(&w);

    static const uint8_t null_id[] = {
        0x00, 0x03, 0x00, 0x01, /* Metadata v1 */
        0xff, 0xff, 0xff, 0xff, /* correlation_id -1 */
        0xff, 0xff,             /* client_id null */
    };
    rbuf_init(&r, null_id, sizeof null_id);
    assert_int_equal(kafka_req_header_decode(&r, &h), 0);
    assert_int_equal(h.correlation_id, -1);
    assert_kstr(h.client_id, NULL);

    /* every prefix fails */
    for (size_t n = 0; n < sizeof in; n++) {
        rbuf_init(&r, in, n);
        assert_int_not_equal(kafka_req_header_decode(&r, &h), 0);
    }
}

static void test_req_header_v2(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x03,             /* api_key 3 Metadata */
        0x00, 0x09,             /* api_version 9: flexible -> header v2 */
        0x00, 0x00, 0x00, 0x2a, /* correlation_id 42 */
        0x00, 0x04, 'r', 'd', 'k', '1', /* client_id: int16 length even in v2 */
        0x01,                   /* tagged fields: 1 */
        0x05, 0x02, 0xaa, 0xbb, /*   tag 5, size 2, data (unknown, skipped) */
        0x7e,                   /* first body byte */
    };
    rbuf_t r;
    rbuf_init(&r, in, sizeof in);
    kafka_req_header_t h;
    assert_int_equal(kafka_req_header_decode(&r, &h), 0);
    assert_int_equal(h.api_key, 3);
    assert_int_equal(h.api_version, 9);
    assert_int_equal(h.correlation_id, 42);
    assert_kstr(h.client_id, "rdk1");
    assert_int_equal(rbuf_remaining(&r), 1);
    assert_int_equal(rbuf_u8(&r), 0x7e);

    /* ApiVersions v3 request header is v2 too; a version above the schema's
     * max (a newer client) still parses as v2 */
    static const uint8_t av4[] = {
        0x00, 0x12, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,
        0xff, 0xff, /* client_id null */
        0x00,       /* no tagged fields */
    };
    rbuf_init(&r, av4, sizeof av4);
    assert_int_equal(kafka_req_header_decode(&r, &h), 0);
    assert_int_equal(rbuf_remaining(&r), 0);

    /* tag size past the end */
    static const uint8_t bad[] = {
        0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff,
        0x01, 0x00, 0x10, 0x00, /* 1 tag, tag 0, size 16, one byte */
    };
    rbuf_init(&r, bad, sizeof bad);
    assert_int_not_equal(kafka_req_header_decode(&r, &h), 0);

    for (size_t n = 0; n < sizeof in - 1; n++) {
        rbuf_init(&r, in, n);
        assert_int_not_equal(kafka_req_header_decode(&r, &h), 0);
    }
}

static void test_resp_header(void **state)
{
    (void)state;
    wbuf_t w;
    wbuf_init(&w);
    /* Metadata v8: header v0 */
    kafka_resp_header_encode(&w, KAFKA_API_METADATA, 8, 5);
    static const uint8_t v0[] = { 0x00, 0x00, 0x00, 0x05 };
    ASSERT_WBUF(&w, v0);
    wbuf_reset(&w);
    /* Metadata v9: header v1 = correlation id + empty tagged fields */
    kafka_resp_header_encode(&w, KAFKA_API_METADATA, 9, 5);
    static const uint8_t v1[] = { 0x00, 0x00, 0x00, 0x05, 0x00 };
    ASSERT_WBUF(&w, v1);
    wbuf_reset(&w);
    /* ApiVersions v3: always header v0 */
    kafka_resp_header_encode(&w, KAFKA_API_API_VERSIONS, 3, 5);
    ASSERT_WBUF(&w, v0);
    wbuf_destroy(&w);
}

static void test_api_table(void **state)
{
    (void)state;
    const kafka_api_info_t *a = kafka_api_lookup(18);
    assert_non_null(a);
    assert_string_equal(a->name, "ApiVersions");
    assert_int_equal(a->min_version, 0);
    assert_int_equal(a->max_version, 3);
    assert_int_equal(a->flexible_min, 3);
    a = kafka_api_lookup(KAFKA_API_PRODUCE);
    assert_non_null(a);
    assert_int_equal(a->max_version, 11);
    assert_int_equal(a->flexible_min, 9);
    assert_null(kafka_api_lookup(-1));
    assert_null(kafka_api_lookup(1000));
    for (size_t i = 1; i < KAFKA_API_COUNT; i++)
        assert_true(kafka_api_table[i - 1].key < kafka_api_table[i].key);
    assert_true(kafka_api_is_flexible(KAFKA_API_FETCH, 12));
    assert_false(kafka_api_is_flexible(KAFKA_API_FETCH, 11));
}

/* The ranges the brief and COMPAT-NOTES fix: {key, min, max, first flexible}. */
static void test_api_ranges(void **state)
{
    (void)state;
    static const int16_t want[][4] = {
        { 0, 0, 11, 9 },  { 1, 0, 12, 12 }, { 2, 0, 8, 6 },   { 3, 0, 12, 9 },
        { 8, 0, 8, 8 },   { 9, 0, 8, 6 },   { 10, 0, 4, 3 },  { 11, 0, 9, 6 },
        { 12, 0, 4, 4 },  { 13, 0, 5, 4 },  { 14, 0, 5, 4 },  { 15, 0, 5, 5 },
        { 16, 0, 4, 3 },  { 17, 0, 1, -1 }, { 18, 0, 3, 3 },  { 19, 0, 7, 5 },
        { 20, 0, 6, 4 },  { 21, 0, 2, 2 },  { 22, 0, 4, 2 },  { 23, 0, 4, 4 },
        { 32, 0, 4, 4 },  { 33, 0, 2, 2 },  { 36, 0, 2, 2 },  { 37, 0, 3, 2 },
        { 42, 0, 2, 2 },  { 44, 0, 1, 1 },  { 60, 0, 1, 0 },
    };
    assert_int_equal(KAFKA_API_COUNT, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < KAFKA_API_COUNT; i++) {
        const kafka_api_info_t *a = kafka_api_lookup(want[i][0]);
        assert_non_null(a);
        assert_int_equal(a->min_version, want[i][1]);
        assert_int_equal(a->max_version, want[i][2]);
        assert_int_equal(a->flexible_min, want[i][3]);
    }
}

/* ---- ApiVersions ---- */

static void test_api_versions_req(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a);
    rbuf_t r;
    kafka_api_versions_req_t req;

    /* v0: empty body */
    rbuf_init(&r, "", 0);
    assert_int_equal(kafka_api_versions_req_decode(&r, 0, &a, &req), 0);
    assert_int_equal(req.client_software_name.len, 0);

    static const uint8_t v3[] = {
        0x05, 'k', 'c', 'a', 't', /* client_software_name: compact, len+1 = 5 */
        0x04, '1', '.', '7',      /* client_software_version: compact "1.7" */
        0x00,                     /* tagged fields: none */
    };
    rbuf_init(&r, v3, sizeof v3);
    assert_int_equal(kafka_api_versions_req_decode(&r, 3, &a, &req), 0);
    assert_kstr(req.client_software_name, "kcat");
    assert_kstr(req.client_software_version, "1.7");
    assert_int_equal(rbuf_remaining(&r), 0);

    wbuf_t w;
    wbuf_init(&w);
    kafka_api_versions_req_encode(&w, 3, &req);
    ASSERT_WBUF(&w, v3);
    wbuf_destroy(&w);

    /* a null name is malformed (the field is not nullable) */
    static const uint8_t null_name[] = { 0x00, 0x01, 0x00 };
    rbuf_init(&r, null_name, sizeof null_name);
    assert_int_equal(kafka_api_versions_req_decode(&r, 3, &a, &req), HE_MALFORMED);

    /* a version outside the schema */
    rbuf_init(&r, v3, sizeof v3);
    assert_int_equal(kafka_api_versions_req_decode(&r, 4, &a, &req), HE_UNSUPPORTED);
    arena_destroy(&a);
}

static void test_api_versions_resp(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a);
    kafka_api_versions_resp_t resp;
    kafka_api_versions_resp_api_version_t keys[2] = {
        { .api_key = 0, .min_version = 0, .max_version = 11 },
        { .api_key = 18, .min_version = 0, .max_version = 3 },
    };
    kafka_api_versions_resp_init(&resp);
    resp.api_keys = keys;
    resp.api_keys_n = 2;
    resp.throttle_time_ms = 0x0102;

    static const uint8_t v0[] = {
        0x00, 0x00,             /* error_code 0 */
        0x00, 0x00, 0x00, 0x02, /* api_keys: int32 count 2 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, /* Produce 0-11 */
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03, /* ApiVersions 0-3 */
        /* no throttle_time_ms in v0 */
    };
    static const uint8_t v3[] = {
        0x00, 0x00,                         /* error_code 0 */
        0x03,                               /* api_keys: compact, 2+1 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, /* Produce 0-11 */
        0x00,                               /*   tagged fields */
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03, /* ApiVersions 0-3 */
        0x00,                               /*   tagged fields */
        0x00, 0x00, 0x01, 0x02,             /* throttle_time_ms 258 */
        0x00,                               /* tagged fields: all default */
    };
    wbuf_t w;
    wbuf_init(&w);
    kafka_api_versions_resp_encode(&w, 0, &resp);
    ASSERT_WBUF(&w, v0);
    wbuf_reset(&w);
    kafka_api_versions_resp_encode(&w, 3, &resp);
    ASSERT_WBUF(&w, v3);
    wbuf_destroy(&w);

    kafka_api_versions_resp_t out;
    rbuf_t r;
    rbuf_init(&r, v0, sizeof v0);
    assert_int_equal(kafka_api_versions_resp_decode(&r, 0, &a, &out), 0);
    assert_int_equal(out.api_keys_n, 2);
    assert_int_equal(out.api_keys[1].api_key, 18);
    assert_int_equal(out.api_keys[1].max_version, 3);
    assert_int_equal(out.throttle_time_ms, 0);
    assert_int_equal(out.finalized_features_epoch, -1); /* default */

    /* v3 with tagged finalized_features_epoch (tag 1) */
    static const uint8_t v3tag[] = {
        0x00, 0x23,             /* error_code 35 UNSUPPORTED_VERSION */
        0x01,                   /* api_keys: empty */
        0x00, 0x00, 0x00, 0x00, /* throttle_time_ms */
        0x01,                   /* tagged fields: 1 */
        0x01, 0x08,             /*   tag 1 finalized_features_epoch, size 8 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
    };
    rbuf_init(&r, v3tag, sizeof v3tag);
    assert_int_equal(kafka_api_versions_resp_decode(&r, 3, &a, &out), 0);
    assert_int_equal(out.error_code, 35);
    assert_int_equal(out.api_keys_n, 0);
    assert_int_equal(out.finalized_features_epoch, 9);
    wbuf_init(&w);
    kafka_api_versions_resp_encode(&w, 3, &out);
    ASSERT_WBUF(&w, v3tag);
    wbuf_destroy(&w);
    arena_destroy(&a);
}

/* ---- Metadata ---- */

static void test_metadata_req(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a);
    kafka_metadata_req_t req;
    rbuf_t r;

    static const uint8_t v1[] = {
        0x00, 0x00, 0x00, 0x02,     /* topics: int32 count 2 */
        0x00, 0x03, 'f', 'o', 'o',  /*   name "foo" */
        0x00, 0x01, 'b',            /*   name "b" */
    };
    rbuf_init(&r, v1, sizeof v1);
    assert_int_equal(kafka_metadata_req_decode(&r, 1, &a, &req), 0);
    assert_int_equal(req.topics_n, 2);
    assert_kstr(req.topics[0].name, "foo");
    assert_kstr(req.topics[1].name, "b");
    assert_true(req.allow_auto_topic_creation); /* v4+ field: default true */
    assert_int_equal(rbuf_remaining(&r), 0);

    static const uint8_t v1_all[] = { 0xff, 0xff, 0xff, 0xff }; /* topics null = all */
    rbuf_init(&r, v1_all, sizeof v1_all);
    assert_int_equal(kafka_metadata_req_decode(&r, 1, &a, &req), 0);
    assert_int_equal(req.topics_n, -1);
    /* v0 topics are not nullable */
    rbuf_init(&r, v1_all, sizeof v1_all);
    assert_int_equal(kafka_metadata_req_decode(&r, 0, &a, &req), HE_MALFORMED);

    static const uint8_t v9[] = {
        0x02,                   /* topics: compact, 1+1 */
        0x04, 'f', 'o', 'o',    /*   name: compact "foo" */
        0x00,                   /*   tagged fields */
        0x00,                   /* allow_auto_topic_creation false */
        0x01,                   /* include_cluster_authorized_operations true */
        0x00,                   /* include_topic_authorized_operations false */
        0x00,                   /* tagged fields */
    };
    rbuf_init(&r, v9, sizeof v9);
    assert_int_equal(kafka_metadata_req_decode(&r, 9, &a, &req), 0);
    assert_int_equal(req.topics_n, 1);
    assert_kstr(req.topics[0].name, "foo");
    assert_false(req.allow_auto_topic_creation);
    assert_true(req.include_cluster_authorized_operations);
    assert_false(req.include_topic_authorized_operations);
    assert_int_equal(rbuf_remaining(&r), 0);

    wbuf_t w;
    wbuf_init(&w);
    kafka_metadata_req_encode(&w, 9, &req);
    ASSERT_WBUF(&w, v9);
    wbuf_destroy(&w);
    arena_destroy(&a);
}

/* ---- Produce ---- */

static void test_produce_req_v3(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0xff, 0xff,             /* transactional_id null */
        0xff, 0xff,             /* acks -1 */
        0x00, 0x00, 0x75, 0x30, /* timeout_ms 30000 */
        0x00, 0x00, 0x00, 0x01, /* topic_data: count 1 */
        0x00, 0x03, 'f', 'o', 'o', /* name "foo" */
        0x00, 0x00, 0x00, 0x01, /*   partition_data: count 1 */
        0x00, 0x00, 0x00, 0x02, /*     index 2 */
        0x00, 0x00, 0x00, 0x0a, /*     records: int32 length 10 */
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, /* (opaque record batch bytes) */
    };
    arena_t a;
    arena_init(&a);
    rbuf_t r;
    rbuf_init(&r, in, sizeof in);
    kafka_produce_req_t req;
    assert_int_equal(kafka_produce_req_decode(&r, 3, &a, &req), 0);
    assert_kstr(req.transactional_id, NULL);
    assert_int_equal(req.acks, -1);
    assert_int_equal(req.timeout_ms, 30000);
    assert_int_equal(req.topic_data_n, 1);
    assert_kstr(req.topic_data[0].name, "foo");
    assert_int_equal(req.topic_data[0].partition_data_n, 1);
    kafka_produce_req_partition_produce_data_t *p = &req.topic_data[0].partition_data[0];
    assert_int_equal(p->index, 2);
    assert_int_equal(p->records.len, 10);
    assert_ptr_equal(p->records.p, in + 29); /* not copied */
    assert_int_equal(rbuf_remaining(&r), 0);

    wbuf_t w;
    wbuf_init(&w);
    kafka_produce_req_encode(&w, 3, &req);
    ASSERT_WBUF(&w, in);
    wbuf_destroy(&w);
    arena_destroy(&a);
}

static void test_produce_req_v9(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x04, 't', 'x', '1',    /* transactional_id: compact "tx1" */
        0x00, 0x01,             /* acks 1 */
        0x00, 0x00, 0x03, 0xe8, /* timeout_ms 1000 */
        0x02,                   /* topic_data: compact 1+1 */
        0x04, 'f', 'o', 'o',    /*   name: compact "foo" */
        0x03,                   /*   partition_data: compact 2+1 */
        0x00, 0x00, 0x00, 0x00, /*     index 0 */
        0x06, 'a', 'b', 'c', 'd', 'e', /* records: compact 5+1 */
        0x00,                   /*     tagged fields */
        0x00, 0x00, 0x00, 0x01, /*     index 1 */
        0x00,                   /*     records: null */
        0x00,                   /*     tagged fields */
        0x00,                   /*   tagged fields */
        0x00,                   /* tagged fields */
    };
    arena_t a;
    arena_init(&a);
    rbuf_t r;
    rbuf_init(&r, in, sizeof in);
    kafka_produce_req_t req;
    assert_int_equal(kafka_produce_req_decode(&r, 9, &a, &req), 0);
    assert_kstr(req.transactional_id, "tx1");
    assert_int_equal(req.acks, 1);
    assert_int_equal(req.timeout_ms, 1000);
    assert_int_equal(req.topic_data_n, 1);
    assert_int_equal(req.topic_data[0].partition_data_n, 2);
    kafka_produce_req_partition_produce_data_t *p = req.topic_data[0].partition_data;
    assert_int_equal(p[0].records.len, 5);
    assert_ptr_equal(p[0].records.p, in + 21);
    assert_int_equal(p[1].index, 1);
    assert_int_equal(p[1].records.len, -1);
    assert_int_equal(rbuf_remaining(&r), 0);

    wbuf_t w;
    wbuf_init(&w);
    kafka_produce_req_encode(&w, 9, &req);
    ASSERT_WBUF(&w, in);
    wbuf_destroy(&w);
    arena_destroy(&a);
}

/* ---- Fetch ---- */

static void test_fetch_resp_v4(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x00, 0x00, 0x00, /* throttle_time_ms 0 */
        0x00, 0x00, 0x00, 0x01, /* responses: count 1 */
        0x00, 0x03, 'f', 'o', 'o', /* topic "foo" */
        0x00, 0x00, 0x00, 0x01, /*   partitions: count 1 */
        0x00, 0x00, 0x00, 0x03, /*     partition_index 3 */
        0x00, 0x00,             /*     error_code 0 */
        0, 0, 0, 0, 0, 0, 0, 0x64, /*  high_watermark 100 */
        0, 0, 0, 0, 0, 0, 0, 0x60, /*  last_stable_offset 96 */
        0x00, 0x00, 0x00, 0x01, /*     aborted_transactions: count 1 */
        0, 0, 0, 0, 0, 0, 0x10, 0x01, /* producer_id 4097 */
        0, 0, 0, 0, 0, 0, 0, 0x50, /*    first_offset 80 */
        0x00, 0x00, 0x00, 0x05, /*     records: int32 length 5 */
        'R', 'B', 'x', 'y', 'z',
    };
    arena_t a;
    arena_init(&a);
    rbuf_t r;
    rbuf_init(&r, in, sizeof in);
    kafka_fetch_resp_t resp;
    assert_int_equal(kafka_fetch_resp_decode(&r, 4, &a, &resp), 0);
    assert_int_equal(resp.responses_n, 1);
    kafka_fetch_resp_partition_data_t *p = &resp.responses[0].partitions[0];
    assert_int_equal(p->partition_index, 3);
    assert_int_equal(p->high_watermark, 100);
    assert_int_equal(p->last_stable_offset, 96);
    assert_int_equal(p->log_start_offset, -1); /* v5+: default */
    assert_int_equal(p->aborted_transactions_n, 1);
    assert_int_equal(p->aborted_transactions[0].producer_id, 4097);
    assert_int_equal(p->aborted_transactions[0].first_offset, 80);
    assert_int_equal(p->records.len, 5);
    assert_ptr_equal(p->records.p, in + sizeof in - 5);
    assert_int_equal(rbuf_remaining(&r), 0);

    wbuf_t w;
    wbuf_init(&w);
    kafka_fetch_resp_encode(&w, 4, &resp);
    ASSERT_WBUF(&w, in);
    wbuf_destroy(&w);
    arena_destroy(&a);
}

/* A flexible struct with a known tag (0, diverging_epoch) and an unknown one. */
static void test_fetch_resp_v12_tags(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x00, 0x00, 0x00, /* throttle_time_ms */
        0x00, 0x00,             /* error_code */
        0x00, 0x00, 0x00, 0x07, /* session_id 7 */
        0x02,                   /* responses: compact 1+1 */
        0x02, 'x',              /*   topic: compact "x" */
        0x02,                   /*   partitions: compact 1+1 */
        0x00, 0x00, 0x00, 0x00, /*     partition_index 0 */
        0x00, 0x00,             /*     error_code */
        0, 0, 0, 0, 0, 0, 0, 0x0a, /*  high_watermark 10 */
        0, 0, 0, 0, 0, 0, 0, 0x0a, /*  last_stable_offset 10 */
        0, 0, 0, 0, 0, 0, 0, 0x00, /*  log_start_offset 0 */
        0x00,                   /*     aborted_transactions: null */
        0xff, 0xff, 0xff, 0xff, /*     preferred_read_replica -1 */
        0x00,                   /*     records: null */
        0x02,                   /*     tagged fields: 2 */
        0x00, 0x0d,             /*       tag 0 diverging_epoch, size 13 */
        0x00, 0x00, 0x00, 0x04, /*         epoch 4 */
        0, 0, 0, 0, 0, 0, 0, 0x08, /*      end_offset 8 */
        0x00,                   /*         tagged fields */
        0x07, 0x03, 0xaa, 0xbb, 0xcc, /*  tag 7 (unknown), size 3: skipped */
        0x00,                   /*   tagged fields */
        0x00,                   /* tagged fields */
    };
    /* the same without the unknown tag: what re-encoding gives */
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
        0x02, 0x02, 'x', 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0, 0, 0, 0, 0, 0, 0, 0x0a,
        0, 0, 0, 0, 0, 0, 0, 0x0a,
        0, 0, 0, 0, 0, 0, 0, 0x00,
        0x00, 0xff, 0xff, 0xff, 0xff, 0x00,
        0x01,                   /* tagged fields: 1 */
        0x00, 0x0d, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00,
        0x00, 0x00,
    };
    arena_t a;
    arena_init(&a);
    rbuf_t r;
    rbuf_init(&r, in, sizeof in);
    kafka_fetch_resp_t resp;
    assert_int_equal(kafka_fetch_resp_decode(&r, 12, &a, &resp), 0);
    assert_int_equal(rbuf_remaining(&r), 0);
    assert_int_equal(resp.session_id, 7);
    kafka_fetch_resp_partition_data_t *p = &resp.responses[0].partitions[0];
    assert_int_equal(p->aborted_transactions_n, -1);
    assert_int_equal(p->records.len, -1);
    assert_int_equal(p->diverging_epoch.epoch, 4);
    assert_int_equal(p->diverging_epoch.end_offset, 8);
    assert_int_equal(p->current_leader.leader_id, -1); /* absent tag: default */
    assert_int_equal(p->snapshot_id.end_offset, -1);

    wbuf_t w;
    wbuf_init(&w);
    kafka_fetch_resp_encode(&w, 12, &resp);
    ASSERT_WBUF(&w, want);
    wbuf_destroy(&w);

    /* a known tag whose data is shorter than its field: malformed */
    uint8_t bad[sizeof in];
    memcpy(bad, in, sizeof in);
    bad[52] = 0x03; /* byte 52 is diverging_epoch's size: 13 -> 3 */
    rbuf_init(&r, bad, sizeof bad);
    assert_int_not_equal(kafka_fetch_resp_decode(&r, 12, &a, &resp), 0);
    arena_destroy(&a);
}

/* Fetch v12 request: the cluster_id tag (0) in the top-level struct. */
static void test_fetch_req_v12_tag(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0xff, 0xff, 0xff, 0xff, /* replica_id -1 */
        0x00, 0x00, 0x01, 0xf4, /* max_wait_ms 500 */
        0x00, 0x00, 0x00, 0x01, /* min_bytes 1 */
        0x03, 0x20, 0x00, 0x00, /* max_bytes 52428800 */
        0x01,                   /* isolation_level 1 */
        0x00, 0x00, 0x00, 0x00, /* session_id 0 */
        0xff, 0xff, 0xff, 0xff, /* session_epoch -1 */
        0x01,                   /* topics: compact, empty */
        0x01,                   /* forgotten_topics_data: compact, empty */
        0x03, 'r', '1',         /* rack_id "r1" */
        0x01,                   /* tagged fields: 1 */
        0x00, 0x03, 0x03, 'c', 'l', /* tag 0 cluster_id, size 3, compact "cl" */
    };
    arena_t a;
    arena_init(&a);
    rbuf_t r;
    rbuf_init(&r, in, sizeof in);
    kafka_fetch_req_t req;
    assert_int_equal(kafka_fetch_req_decode(&r, 12, &a, &req), 0);
    assert_int_equal(rbuf_remaining(&r), 0);
    assert_kstr(req.cluster_id, "cl");
    assert_int_equal(req.max_bytes, 52428800);
    assert_int_equal(req.isolation_level, 1);
    assert_kstr(req.rack_id, "r1");
    wbuf_t w;
    wbuf_init(&w);
    kafka_fetch_req_encode(&w, 12, &req);
    ASSERT_WBUF(&w, in);
    wbuf_destroy(&w);
    arena_destroy(&a);
}

/* CreateTopics v5 response: topic_config_error_code is tag 0 of a nested struct. */
static void test_create_topics_resp_v5_tag(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x00, 0x00, 0x00, /* throttle_time_ms */
        0x02,                   /* topics: compact 1+1 */
        0x02, 't',              /*   name "t" */
        0x00, 0x28,             /*   error_code 40 INVALID_CONFIG */
        0x00,                   /*   error_message null */
        0xff, 0xff, 0xff, 0xff, /*   num_partitions -1 */
        0xff, 0xff,             /*   replication_factor -1 */
        0x00,                   /*   configs: null */
        0x01,                   /*   tagged fields: 1 */
        0x00, 0x02, 0x00, 0x29, /*     tag 0 topic_config_error_code, size 2: 41 */
        0x00,                   /* tagged fields */
    };
    arena_t a;
    arena_init(&a);
    rbuf_t r;
    rbuf_init(&r, in, sizeof in);
    kafka_create_topics_resp_t resp;
    assert_int_equal(kafka_create_topics_resp_decode(&r, 5, &a, &resp), 0);
    assert_int_equal(rbuf_remaining(&r), 0);
    assert_int_equal(resp.topics_n, 1);
    assert_int_equal(resp.topics[0].error_code, 40);
    assert_kstr(resp.topics[0].error_message, NULL);
    assert_int_equal(resp.topics[0].configs_n, -1);
    assert_int_equal(resp.topics[0].topic_config_error_code, 41);
    wbuf_t w;
    wbuf_init(&w);
    kafka_create_topics_resp_encode(&w, 5, &resp);
    ASSERT_WBUF(&w, in);
    /* at its default (0) the tag is not written */
    resp.topics[0].topic_config_error_code = 0;
    wbuf_reset(&w);
    kafka_create_topics_resp_encode(&w, 5, &resp);
    assert_int_equal(w.len, sizeof in - 4);
    assert_int_equal(w.p[sizeof in - 6], 0x00); /* topic's tagged fields: 0 */
    wbuf_destroy(&w);
    arena_destroy(&a);
}

/* ---- hostile input ---- */

static void test_hostile_lengths(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a);
    rbuf_t r;
    int rc;

    /* Metadata v1: topics count 2^31-1, then 10 bytes */
    static const uint8_t big[] = { 0x7f, 0xff, 0xff, 0xff, 0, 1, 'x', 0, 1, 'y', 0, 1, 'z', 0 };
    kafka_metadata_req_t md;
    rbuf_init(&r, big, sizeof big);
    rc = kafka_metadata_req_decode(&r, 1, &a, &md);
    assert_true(rc == HE_TRUNCATED || rc == HE_MALFORMED);

    /* the same with a compact count (uvarint 0xffffffff) in v9 */
    static const uint8_t bigc[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
    rbuf_init(&r, bigc, sizeof bigc);
    rc = kafka_metadata_req_decode(&r, 9, &a, &md);
    assert_true(rc == HE_TRUNCATED || rc == HE_MALFORMED);

    /* a uvarint longer than 5 bytes */
    static const uint8_t longvar[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0 };
    rbuf_init(&r, longvar, sizeof longvar);
    assert_int_equal(kafka_metadata_req_decode(&r, 9, &a, &md), HE_MALFORMED);

    /* negative counts other than -1 */
    static const uint8_t neg[] = { 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0 };
    rbuf_init(&r, neg, sizeof neg);
    assert_int_equal(kafka_metadata_req_decode(&r, 1, &a, &md), HE_MALFORMED);

    /* Produce v3: records length 2^31-1 */
    static const uint8_t rec[] = {
        0xff, 0xff, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 't',
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x7f, 0xff, 0xff, 0xff, 1, 2, 3,
    };
    kafka_produce_req_t pr;
    rbuf_init(&r, rec, sizeof rec);
    rc = kafka_produce_req_decode(&r, 3, &a, &pr);
    assert_true(rc == HE_TRUNCATED || rc == HE_MALFORMED);

    /* a string length of 0x7fff with 4 bytes */
    static const uint8_t str[] = { 0x00, 0x00, 0x00, 0x01, 0x7f, 0xff, 'a', 'b', 'c', 'd' };
    rbuf_init(&r, str, sizeof str);
    rc = kafka_metadata_req_decode(&r, 1, &a, &md);
    assert_true(rc == HE_TRUNCATED || rc == HE_MALFORMED);

    /* tagged-field count 2^28 in an ApiVersions v3 request */
    static const uint8_t tags[] = { 0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00, 0x00 };
    kafka_api_versions_req_t av;
    rbuf_init(&r, tags, sizeof tags);
    rc = kafka_api_versions_req_decode(&r, 3, &a, &av);
    assert_true(rc == HE_TRUNCATED || rc == HE_MALFORMED);

    /* nothing big was allocated */
    assert_true(a.total < 4096);
    arena_destroy(&a);
}

/* ---- every API, every version: round trip and truncation ---- */

static void test_round_trips(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a);
    wbuf_t w1, w2;
    wbuf_init(&w1);
    wbuf_init(&w2);
    unsigned checked = 0, nonempty = 0;
    for (size_t i = 0; i < KAFKA_API_COUNT; i++) {
        const kafka_api_info_t *api = &kafka_api_table[i];
        const kafka_sample_ops_t *ops = &kafka_sample_ops[i];
        assert_int_equal(ops->key, api->key);
        for (int16_t v = api->min_version; v <= api->max_version; v++) {
            for (int dir = 0; dir < 2; dir++) {
                for (uint32_t seed = 1; seed <= 6; seed++) {
                    void *msg = arena_alloc(&a, ops->size[dir]);
                    void *back = arena_alloc(&a, ops->size[dir]);
                    ops->sample[dir](&a, v, seed * 7919u + (uint32_t)v, msg);
                    wbuf_reset(&w1);
                    wbuf_reset(&w2);
                    ops->encode[dir](&w1, v, msg);

                    rbuf_t r;
                    rbuf_init(&r, w1.p, w1.len);
                    int rc = ops->decode[dir](&r, v, &a, back);
                    if (rc != 0 || rbuf_remaining(&r) != 0)
                        fail_msg("%s v%d %s seed %u: decode rc %d, %zu left", api->name, v,
                                 dir ? "response" : "request", seed, rc, rbuf_remaining(&r));
                    ops->encode[dir](&w2, v, back);
                    if (w1.len != w2.len || (w1.len && memcmp(w1.p, w2.p, w1.len)))
                        fail_msg("%s v%d %s seed %u: re-encoding differs", api->name, v,
                                 dir ? "response" : "request", seed);

                    /* every strict prefix fails cleanly */
                    for (size_t n = 0; n < w1.len; n++) {
                        rbuf_init(&r, w1.p, n);
                        rc = ops->decode[dir](&r, v, &a, back);
                        if (rc != HE_TRUNCATED && rc != HE_MALFORMED)
                            fail_msg("%s v%d %s: prefix %zu/%zu gave %d", api->name, v,
                                     dir ? "response" : "request", n, w1.len, rc);
                    }
                    checked++;
                    nonempty += w1.len > 8;
                    arena_reset(&a);
                }
            }
        }
    }
    assert_true(checked > 100);
    assert_true(nonempty > checked / 2);
    wbuf_destroy(&w1);
    wbuf_destroy(&w2);
    arena_destroy(&a);
}

/* Corrupted encodings (random bytes overwritten) of every API and version:
 * decode must return 0 or a negative code without tripping ASan/UBSan, and a
 * message that still decodes must re-encode. */
static void test_mutations(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a);
    wbuf_t w, out;
    wbuf_init(&w);
    wbuf_init(&out);
    uint32_t rnd = 12345;
    unsigned decoded = 0, rejected = 0;
    for (size_t i = 0; i < KAFKA_API_COUNT; i++) {
        const kafka_api_info_t *api = &kafka_api_table[i];
        const kafka_sample_ops_t *ops = &kafka_sample_ops[i];
        for (int16_t v = api->min_version; v <= api->max_version; v++) {
            for (int dir = 0; dir < 2; dir++) {
                void *msg = arena_alloc(&a, ops->size[dir]);
                ops->sample[dir](&a, v, 99u + (uint32_t)v, msg);
                wbuf_reset(&w);
                ops->encode[dir](&w, v, msg);
                if (w.len == 0)
                    continue;
                for (int round = 0; round < 200; round++) {
                    uint8_t *buf = arena_alloc(&a, w.len);
                    memcpy(buf, w.p, w.len);
                    for (int k = 0; k <= round % 3; k++) {
                        rnd = rnd * 1103515245u + 12345u;
                        /* mostly small values and 0xff: lengths, counts, nulls */
                        static const uint8_t pick[] = { 0x00, 0x01, 0x02, 0x7f, 0x80, 0xff };
                        buf[(rnd >> 8) % w.len] = (rnd & 1) ? pick[(rnd >> 4) % 6] : (uint8_t)(rnd >> 16);
                    }
                    rbuf_t r;
                    rbuf_init(&r, buf, w.len);
                    int rc = ops->decode[dir](&r, v, &a, arena_alloc(&a, ops->size[dir]));
                    assert_true(rc <= 0);
                    if (rc == 0) {
                        decoded++;
                        rbuf_init(&r, buf, w.len);
                        void *back = arena_alloc(&a, ops->size[dir]);
                        assert_int_equal(ops->decode[dir](&r, v, &a, back), 0);
                        wbuf_reset(&out);
                        ops->encode[dir](&out, v, back);
                    } else {
                        rejected++;
                    }
                }
                arena_reset(&a);
            }
        }
    }
    assert_true(decoded > 0 && rejected > 0);
    wbuf_destroy(&w);
    wbuf_destroy(&out);
    arena_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_header_v1),
        cmocka_unit_test(test_req_header_v2),
        cmocka_unit_test(test_resp_header),
        cmocka_unit_test(test_api_table),
        cmocka_unit_test(test_api_ranges),
        cmocka_unit_test(test_api_versions_req),
        cmocka_unit_test(test_api_versions_resp),
        cmocka_unit_test(test_metadata_req),
        cmocka_unit_test(test_produce_req_v3),
        cmocka_unit_test(test_produce_req_v9),
        cmocka_unit_test(test_fetch_resp_v4),
        cmocka_unit_test(test_fetch_resp_v12_tags),
        cmocka_unit_test(test_fetch_req_v12_tag),
        cmocka_unit_test(test_create_topics_resp_v5_tag),
        cmocka_unit_test(test_hostile_lengths),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
