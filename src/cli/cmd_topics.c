/*
 * `herald topics ...` and `herald groups ...`: the Kafka side of the admin
 * API (docs/http-api.md, "Topics" and "Consumer groups").
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli_int.h"

/* ---- topics ---- */

static void show_topics(const json_t *v)
{
    static const char *const h[] = {"TOPIC", "PARTITIONS", "MESSAGES", "SIZE", "IN/S", "OUT/S", NULL};
    cli_table_t *t = cli_table_new(h, "lrrrrr");
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        cli_table_cell(t, cli_jstr(e, "name"));
        cli_table_cellf(t, "%.0f", cli_jnum(e, "partitions"));
        cli_table_count(t, cli_jnum(e, "messages"));
        cli_table_bytes(t, cli_jnum(e, "size_bytes"));
        cli_table_rate(t, cli_jpnum(e, "rates.in"));
        cli_table_rate(t, cli_jpnum(e, "rates.out"));
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
}

static int topics_list(cli_t *c, int argc, char **argv)
{
    int rc = cli_parse(c, argc, argv, NULL, NULL, 0);
    return rc ? rc : cli_get_show(c, "/api/topics", show_topics);
}

static void show_partitions(const json_t *parts)
{
    static const char *const h[] = {"PARTITION", "START", "END", "MESSAGES", "SIZE", "SEGMENTS", "IN/S", "OUT/S",
                                    NULL};
    cli_table_t *t = cli_table_new(h, "rrrrrrrr");
    size_t i;
    const json_t *p;
    json_array_foreach(parts, i, p) {
        double start = cli_jnum(p, "start_offset"), end = cli_jnum(p, "end_offset");
        cli_table_cellf(t, "%.0f", cli_jnum(p, "partition"));
        cli_table_cellf(t, "%.0f", start);
        cli_table_cellf(t, "%.0f", end);
        cli_table_count(t, end - start);
        cli_table_bytes(t, cli_jnum(p, "size_bytes"));
        cli_table_cellf(t, "%.0f", cli_jnum(p, "segments"));
        cli_table_rate(t, cli_jpnum(p, "rates.in"));
        cli_table_rate(t, cli_jpnum(p, "rates.out"));
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
}

/* The configs set away from their defaults; the others are only counted. */
static void show_configs(const json_t *configs)
{
    static const char *const h[] = {"CONFIG", "VALUE", NULL};
    cli_table_t *t = cli_table_new(h, "ll");
    const char *k;
    const json_t *cv;
    size_t defaults = 0;
    json_object_foreach((json_t *)configs, k, cv) {
        if (json_is_true(json_object_get(cv, "default"))) {
            defaults++;
            continue;
        }
        char *s = cli_jshow(json_object_get(cv, "value"));
        cli_table_cell(t, k);
        cli_table_cell(t, s);
        free(s);
    }
    if (cli_table_rows(t)) {
        printf("\nconfigs set on this topic:\n");
        cli_table_print(t, stdout);
    }
    printf("\n%zu other configs at their defaults (--json shows them)\n", defaults);
    cli_table_free(t);
}

static void show_topic(const json_t *v)
{
    printf("topic %s  id %s  internal %s\n\n", cli_safe(cli_jstr(v, "name")), cli_safe(cli_jstr(v, "id")),
           cli_jyes(v, "internal"));
    show_partitions(json_object_get(v, "partitions"));
    show_configs(json_object_get(v, "configs"));
    const json_t *groups = json_object_get(v, "groups");
    printf("groups with committed offsets:");
    size_t i;
    const json_t *g;
    json_array_foreach(groups, i, g) printf("%s %s", i ? "," : "", cli_safe(json_string_value(g)));
    printf("%s\n", json_array_size(groups) ? "" : " none");
}

static int topics_describe(cli_t *c, int argc, char **argv)
{
    const char *name;
    int rc = cli_parse(c, argc, argv, NULL, &name, 1);
    if (rc) return rc;
    char *e = cli_escape(name);
    char *path = xasprintf("/api/topics/%s", e);
    rc = cli_get_show(c, path, show_topic);
    free(path);
    free(e);
    return rc;
}

static int topics_create(cli_t *c, int argc, char **argv)
{
    const char *name;
    int64_t parts = -1;
    cli_list_t configs = {0};
    const cli_opt_t opts[] = {
        {"--partitions", CLI_OPT_INT, &parts, 0},
        {"--config", CLI_OPT_LIST, &configs, 0},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_parse(c, argc, argv, opts, &name, 1);
    if (rc) return rc;
    json_t *cfg = cli_kv_object(c, "--config", &configs, 0);
    if (!cfg) return CLI_EUSAGE;
    json_t *body = json_pack("{s:s, s:o}", "name", name, "configs", cfg);
    if (parts >= 0) json_object_set_new(body, "partitions", json_integer(parts));
    char *done = xasprintf("created topic %s", name);
    rc = cli_write_say(c, "POST", "/api/topics", body, done);
    free(done);
    json_decref(body);
    return rc;
}

static int topics_delete(cli_t *c, int argc, char **argv)
{
    return cli_delete_named(c, argc, argv, "topics", "topic");
}

/* ---- groups ---- */

static char *join_strings(const json_t *arr)
{
    size_t len = 1, i;
    const json_t *s;
    json_array_foreach(arr, i, s) len += strlen(json_string_value(s) ? json_string_value(s) : "") + 1;
    char *out = xcalloc(1, len), *o = out;
    json_array_foreach(arr, i, s) {
        const char *str = json_string_value(s) ? json_string_value(s) : "";
        if (i) *o++ = ',';
        memcpy(o, str, strlen(str));
        o += strlen(str);
    }
    return out;
}

static void show_groups(const json_t *v)
{
    static const char *const h[] = {"GROUP", "STATE", "MEMBERS", "LAG", "TOPICS", NULL};
    cli_table_t *t = cli_table_new(h, "llrrl");
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        char *topics = join_strings(json_object_get(e, "topics"));
        cli_table_cell(t, cli_jstr(e, "group_id"));
        cli_table_cell(t, cli_jstr(e, "state"));
        cli_table_cellf(t, "%.0f", cli_jnum(e, "members"));
        cli_table_count(t, cli_jnum(e, "lag"));
        cli_table_cell(t, topics);
        free(topics);
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
}

static int groups_list(cli_t *c, int argc, char **argv)
{
    int rc = cli_parse(c, argc, argv, NULL, NULL, 0);
    return rc ? rc : cli_get_show(c, "/api/groups", show_groups);
}

static void show_members(const json_t *members)
{
    static const char *const h[] = {"MEMBER", "CLIENT", "HOST", "ASSIGNED", NULL};
    cli_table_t *t = cli_table_new(h, "llll");
    size_t i, j;
    const json_t *m, *a;
    json_array_foreach(members, i, m) {
        char assigned[512] = "";
        size_t off = 0;
        json_array_foreach(json_object_get(m, "assignments"), j, a) {
            char *parts = cli_jshow(json_object_get(a, "partitions"));
            off += (size_t)snprintf(assigned + off, off < sizeof assigned ? sizeof assigned - off : 0, "%s%s%s",
                                    j ? " " : "", cli_jstr(a, "topic"), parts);
            free(parts);
        }
        cli_table_cell(t, cli_jstr(m, "member_id"));
        cli_table_cell(t, cli_jstr(m, "client_id"));
        cli_table_cell(t, cli_jstr(m, "client_host"));
        cli_table_cell(t, assigned);
    }
    if (cli_table_rows(t)) cli_table_print(t, stdout);
    else printf("no members\n");
    cli_table_free(t);
}

static void show_offsets(const json_t *offsets)
{
    static const char *const h[] = {"TOPIC", "PARTITION", "COMMITTED", "HIGH WATERMARK", "LAG", NULL};
    cli_table_t *t = cli_table_new(h, "lrrrr");
    size_t i;
    const json_t *o;
    json_array_foreach(offsets, i, o) {
        cli_table_cell(t, cli_jstr(o, "topic"));
        cli_table_cellf(t, "%.0f", cli_jnum(o, "partition"));
        cli_table_cellf(t, "%.0f", cli_jnum(o, "committed"));
        cli_table_cellf(t, "%.0f", cli_jnum(o, "high_watermark"));
        cli_table_cellf(t, "%.0f", cli_jnum(o, "lag"));
    }
    if (cli_table_rows(t)) cli_table_print(t, stdout);
    else printf("no committed offsets\n");
    cli_table_free(t);
}

static void show_group(const json_t *v)
{
    printf("group %s  state %s", cli_safe(cli_jstr(v, "group_id")), cli_safe(cli_jstr(v, "state")));
    if (*cli_jstr(v, "protocol_type"))
        printf("  protocol %s/%s", cli_safe(cli_jstr(v, "protocol_type")), cli_safe(cli_jstr(v, "protocol")));
    printf("  lag %.0f\n\n", cli_jnum(v, "lag"));
    show_members(json_object_get(v, "members"));
    printf("\n");
    show_offsets(json_object_get(v, "offsets"));
}

static int groups_describe(cli_t *c, int argc, char **argv)
{
    const char *id;
    int rc = cli_parse(c, argc, argv, NULL, &id, 1);
    if (rc) return rc;
    char *e = cli_escape(id);
    char *path = xasprintf("/api/groups/%s", e);
    rc = cli_get_show(c, path, show_group);
    free(path);
    free(e);
    return rc;
}

static int groups_delete(cli_t *c, int argc, char **argv)
{
    return cli_delete_named(c, argc, argv, "groups", "group");
}

const cli_cmd_t cli_topic_cmds[] = {
    {"topics", "list", topics_list, "", "topics with partitions, messages, size and rates"},
    {"topics", "describe", topics_describe, "NAME", "partitions and their offsets, configs, groups"},
    {"topics", "create", topics_create, "NAME [--partitions N] [--config KEY=VALUE ...]", "create a topic"},
    {"topics", "delete", topics_delete, "NAME", "delete a topic and its records"},
    {"groups", "list", groups_list, "", "consumer groups with state, members and lag"},
    {"groups", "describe", groups_describe, "ID", "members, assignments, committed offsets and lag"},
    {"groups", "delete", groups_delete, "ID", "delete a group without members"},
    {NULL, NULL, NULL, NULL, NULL},
};
