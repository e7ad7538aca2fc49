/*
 * Consumer-group coordinator: the classic rebalance protocol (as Kafka's
 * GroupCoordinator runs it). Committed offsets and their log are in
 * group_offsets.c.
 *
 * Group state lives in memory only; a restart forgets members and
 * generations (clients rejoin).
 *
 * Rebalance timing: one periodic sweep timer (SWEEP_MS) expires sessions,
 * pending (KIP-394) member ids, and rebalances whose timeout has passed; a
 * rebalance also completes as soon as every known member has rejoined.
 */
#include "broker/group_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

#define SWEEP_MS 100

/* ---- groups and members ---- */

group_t *group_find(group_coord_t *c, group_str_t gid)
{
    if (gid.len < 0) return NULL;
    group_t *g = NULL;
    HASH_FIND(hh, c->groups, gid.p, (unsigned)gid.len, g);
    return g;
}

group_t *group_create_(group_coord_t *c, group_str_t gid)
{
    group_t *g = xcalloc(1, sizeof *g);
    g->id = group_str_dup_(gid);
    g->idlen = gid.len;
    g->state = GROUP_EMPTY;
    HASH_ADD_KEYPTR(hh, c->groups, g->id, (unsigned)g->idlen, g);
    return g;
}

static void member_free(gmember_t *m)
{
    for (int i = 0; i < m->nprotos; i++) {
        free(m->pnames[i]);
        free(m->pmeta[i]);
    }
    free(m->pnames);
    free(m->pmeta);
    free(m->pmeta_len);
    free(m->id);
    free(m->instance);
    free(m->client_id);
    free(m->client_host);
    free(m->assign);
    free(m);
}

static void group_free_mem(group_t *g)
{
    group_offsets_free_(g);
    while (g->members) {
        gmember_t *m = g->members;
        g->members = m->next;
        member_free(m);
    }
    while (g->pending) {
        gpending_t *p = g->pending;
        g->pending = p->next;
        free(p->id);
        free(p);
    }
    free(g->ptype);
    free(g->proto);
    free(g->leader);
    free(g->id);
    free(g);
}

void group_maybe_drop_(group_coord_t *c, group_t *g)
{
    if (g->state != GROUP_EMPTY || g->members || g->offsets || g->pending) return;
    HASH_DEL(c->groups, g);
    group_free_mem(g);
}

static gmember_t *member_by_id(group_t *g, group_str_t id)
{
    for (gmember_t *m = g->members; m; m = m->next)
        if (group_str_eq_(m->id, id)) return m;
    return NULL;
}

static gmember_t *member_by_instance(group_t *g, group_str_t inst)
{
    if (inst.len < 0) return NULL;
    for (gmember_t *m = g->members; m; m = m->next)
        if (m->instance && group_str_eq_(m->instance, inst)) return m;
    return NULL;
}

static char *make_member_id(group_str_t client_id)
{
    uint8_t r[16];
    uv_random(NULL, NULL, r, sizeof r, 0, NULL);
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    int cl = client_id.len > 0 ? client_id.len : 0;
    return xasprintf("%.*s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", cl,
                     cl ? client_id.p : "", r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                     r[11], r[12], r[13], r[14], r[15]);
}

static void member_set_protocols(gmember_t *m, const group_join_req_t *r)
{
    for (int i = 0; i < m->nprotos; i++) {
        free(m->pnames[i]);
        free(m->pmeta[i]);
    }
    free(m->pnames);
    free(m->pmeta);
    free(m->pmeta_len);
    m->nprotos = r->nprotos;
    m->pnames = xcalloc((size_t)r->nprotos + 1, sizeof *m->pnames);
    m->pmeta = xcalloc((size_t)r->nprotos + 1, sizeof *m->pmeta);
    m->pmeta_len = xcalloc((size_t)r->nprotos + 1, sizeof *m->pmeta_len);
    for (int i = 0; i < r->nprotos; i++) {
        m->pnames[i] = group_str_dup_(r->protos[i].name.len < 0 ? (group_str_t){"", 0} : r->protos[i].name);
        int32_t ml = r->protos[i].meta_len > 0 ? r->protos[i].meta_len : 0;
        m->pmeta[i] = xmalloc((size_t)ml + 1);
        if (ml) memcpy(m->pmeta[i], r->protos[i].meta, (size_t)ml);
        m->pmeta_len[i] = ml;
    }
    m->session_ms = r->session_ms;
    m->rebalance_ms = r->rebalance_ms > 0 ? r->rebalance_ms : r->session_ms;
}

static int member_protocols_equal(const gmember_t *m, const group_join_req_t *r)
{
    if (m->nprotos != r->nprotos) return 0;
    for (int i = 0; i < r->nprotos; i++) {
        int32_t ml = r->protos[i].meta_len > 0 ? r->protos[i].meta_len : 0;
        if (!group_str_eq_(m->pnames[i], r->protos[i].name) || m->pmeta_len[i] != ml ||
            (ml && memcmp(m->pmeta[i], r->protos[i].meta, (size_t)ml) != 0))
            return 0;
    }
    return 1;
}

static int member_supports(const gmember_t *m, const char *proto)
{
    for (int i = 0; i < m->nprotos; i++)
        if (strcmp(m->pnames[i], proto) == 0) return i;
    return -1;
}

/* Whether a joining member shares a protocol with every current member. */
static int group_supports(const group_t *g, const group_join_req_t *r)
{
    if (r->protocol_type.len <= 0 || r->nprotos <= 0) return 0;
    if (!g->members) return 1;
    if (!g->ptype || !group_str_eq_(g->ptype, r->protocol_type)) return 0;
    for (int i = 0; i < r->nprotos; i++) {
        char *name = group_str_dup_(r->protos[i].name.len < 0 ? (group_str_t){"", 0} : r->protos[i].name);
        int all = 1;
        for (const gmember_t *m = g->members; m && all; m = m->next)
            if (member_supports(m, name) < 0) all = 0;
        free(name);
        if (all) return 1;
    }
    return 0;
}

/* A protocol every member supports, chosen by each member's first preference
 * among those (ties: the earlier candidate in the first member's order). */
static char *select_protocol(const group_t *g)
{
    const gmember_t *first = g->members;
    int best = -1, best_votes = -1;
    for (int i = 0; i < first->nprotos; i++) {
        const char *cand = first->pnames[i];
        int all = 1;
        for (const gmember_t *m = g->members; m && all; m = m->next)
            if (member_supports(m, cand) < 0) all = 0;
        if (!all) continue;
        int votes = 0;
        for (const gmember_t *m = g->members; m; m = m->next) {
            /* m's vote: its first protocol that every member supports */
            for (int j = 0; j < m->nprotos; j++) {
                int ok = 1;
                for (const gmember_t *o = g->members; o && ok; o = o->next)
                    if (member_supports(o, m->pnames[j]) < 0) ok = 0;
                if (ok) {
                    if (strcmp(m->pnames[j], cand) == 0) votes++;
                    break;
                }
            }
        }
        if (votes > best_votes) {
            best = i;
            best_votes = votes;
        }
    }
    return best >= 0 ? xstrdup(first->pnames[best]) : NULL;
}

static void answer_join_error(group_join_cb cb, void *ctx, int16_t err, const char *member_id)
{
    group_join_result_t r = {0};
    r.error = err;
    r.generation = -1;
    r.member_id = member_id ? member_id : "";
    cb(ctx, &r);
}

static void member_take_join(gmember_t *m, group_join_cb cb, void *ctx)
{
    if (m->join_cb) {
        /* A retried JoinGroup replaces the waiting one, which must still
         * be answered. */
        group_join_cb old = m->join_cb;
        m->join_cb = NULL;
        answer_join_error(old, m->join_ctx, GERR_REBALANCE_IN_PROGRESS, m->id);
    }
    m->join_cb = cb;
    m->join_ctx = ctx;
}

static void member_answer_sync(gmember_t *m, int16_t err, const group_t *g)
{
    if (!m->sync_cb) return;
    group_sync_cb cb = m->sync_cb;
    m->sync_cb = NULL;
    if (err) cb(m->sync_ctx, err, NULL, NULL, NULL, 0);
    else cb(m->sync_ctx, 0, g->ptype, g->proto, m->assign ? m->assign : (const uint8_t *)"", m->assign_len);
}

static void prepare_rebalance(group_coord_t *c, group_t *g)
{
    if (g->state == GROUP_COMPLETING)
        for (gmember_t *m = g->members; m; m = m->next) member_answer_sync(m, GERR_REBALANCE_IN_PROGRESS, g);
    int was_empty = g->state == GROUP_EMPTY;
    g->state = GROUP_PREPARING;
    int32_t rb = 0;
    for (gmember_t *m = g->members; m; m = m->next)
        if (m->rebalance_ms > rb) rb = m->rebalance_ms;
    uint64_t now = group_now_ms_(c);
    g->rb_deadline = now + (uint64_t)rb;
    int32_t delay = broker_config(c->b)->group_initial_delay_ms;
    if (delay > rb) delay = rb;
    g->rb_not_before = was_empty && delay > 0 ? now + (uint64_t)delay : now;
}

/* Ends the join phase: drops members that did not rejoin, bumps the
 * generation, picks the protocol and leader, answers every waiting join. */
static void complete_join(group_coord_t *c, group_t *g)
{
    gmember_t **pp = &g->members;
    while (*pp) {
        gmember_t *m = *pp;
        if (m->join_cb) {
            pp = &m->next;
            continue;
        }
        *pp = m->next;
        g->nmembers--;
        if (g->leader && strcmp(g->leader, m->id) == 0) {
            free(g->leader);
            g->leader = NULL;
        }
        member_answer_sync(m, GERR_UNKNOWN_MEMBER_ID, g);
        member_free(m);
    }
    g->generation++;
    free(g->proto);
    g->proto = NULL;
    if (!g->members) {
        g->state = GROUP_EMPTY;
        free(g->leader);
        g->leader = NULL;
        LOG_I("group %s: generation %d, empty", g->id, g->generation);
        return;
    }
    g->proto = select_protocol(g);
    if (!g->leader) g->leader = xstrdup(g->members->id);
    g->state = GROUP_COMPLETING;
    LOG_I("group %s: generation %d, %d member(s), protocol %s", g->id, g->generation, g->nmembers,
          g->proto ? g->proto : "(none)");
    group_member_info_t *infos = xcalloc((size_t)g->nmembers, sizeof *infos);
    int n = 0;
    for (gmember_t *m = g->members; m; m = m->next, n++) {
        int pi = g->proto ? member_supports(m, g->proto) : -1;
        infos[n].member_id = m->id;
        infos[n].instance_id = m->instance;
        infos[n].meta = pi >= 0 ? m->pmeta[pi] : (const uint8_t *)"";
        infos[n].meta_len = pi >= 0 ? m->pmeta_len[pi] : 0;
    }
    uint64_t now = group_now_ms_(c);
    for (gmember_t *m = g->members; m; m = m->next) {
        m->deadline = now + (uint64_t)m->session_ms;
        group_join_cb cb = m->join_cb;
        m->join_cb = NULL;
        group_join_result_t r = {0};
        r.generation = g->generation;
        r.protocol_type = g->ptype;
        r.protocol_name = g->proto;
        r.leader = g->leader;
        r.member_id = m->id;
        if (strcmp(m->id, g->leader) == 0) {
            r.nmembers = n;
            r.members = infos;
        }
        cb(m->join_ctx, &r);
    }
    free(infos);
}

static void maybe_complete_join(group_coord_t *c, group_t *g)
{
    if (g->state != GROUP_PREPARING) return;
    uint64_t now = group_now_ms_(c);
    if (now < g->rb_not_before) return;
    int all = !g->pending;
    for (gmember_t *m = g->members; m && all; m = m->next)
        if (!m->join_cb) all = 0;
    if (all || now >= g->rb_deadline) complete_join(c, g);
}

/* Removes a member (LeaveGroup, session expiry) and rebalances the rest. */
static void remove_member(group_coord_t *c, group_t *g, gmember_t *m)
{
    gmember_t **pp = &g->members;
    while (*pp != m) pp = &(*pp)->next;
    *pp = m->next;
    g->nmembers--;
    if (m->join_cb) {
        group_join_cb cb = m->join_cb;
        m->join_cb = NULL;
        answer_join_error(cb, m->join_ctx, GERR_UNKNOWN_MEMBER_ID, m->id);
    }
    member_answer_sync(m, GERR_UNKNOWN_MEMBER_ID, g);
    if (g->leader && strcmp(g->leader, m->id) == 0) {
        free(g->leader);
        g->leader = NULL;
    }
    member_free(m);
    if (g->state == GROUP_STABLE || g->state == GROUP_COMPLETING) prepare_rebalance(c, g);
    maybe_complete_join(c, g);
}

static gmember_t *add_member(group_coord_t *c, group_t *g, char *id, const group_join_req_t *r)
{
    gmember_t *m = xcalloc(1, sizeof *m);
    m->id = id;
    m->instance = group_str_dup_(r->instance_id);
    m->client_id = group_str_dup_(r->client_id.len < 0 ? (group_str_t){"", 0} : r->client_id);
    m->client_host = group_str_dup_(r->client_host.len < 0 ? (group_str_t){"", 0} : r->client_host);
    member_set_protocols(m, r);
    m->deadline = group_now_ms_(c) + (uint64_t)m->session_ms;
    gmember_t **pp = &g->members;
    while (*pp) pp = &(*pp)->next;
    *pp = m;
    g->nmembers++;
    if (!g->ptype) g->ptype = group_str_dup_(r->protocol_type);
    return m;
}

/* Answers a join with the current generation (no rebalance needed). */
static void answer_current(group_t *g, gmember_t *m, group_join_cb cb, void *ctx)
{
    group_join_result_t r = {0};
    r.generation = g->generation;
    r.protocol_type = g->ptype;
    r.protocol_name = g->proto;
    r.leader = g->leader ? g->leader : "";
    r.member_id = m->id;
    group_member_info_t *infos = NULL;
    if (g->leader && strcmp(g->leader, m->id) == 0) {
        infos = xcalloc((size_t)g->nmembers, sizeof *infos);
        int n = 0;
        for (gmember_t *o = g->members; o; o = o->next, n++) {
            int pi = g->proto ? member_supports(o, g->proto) : -1;
            infos[n].member_id = o->id;
            infos[n].instance_id = o->instance;
            infos[n].meta = pi >= 0 ? o->pmeta[pi] : (const uint8_t *)"";
            infos[n].meta_len = pi >= 0 ? o->pmeta_len[pi] : 0;
        }
        r.nmembers = n;
        r.members = infos;
    }
    cb(ctx, &r);
    free(infos);
}

/* Joins as a (re)joining member: waits for the rebalance. */
static void join_and_wait(group_coord_t *c, group_t *g, gmember_t *m, group_join_cb cb, void *ctx)
{
    member_take_join(m, cb, ctx);
    if (g->state != GROUP_PREPARING) prepare_rebalance(c, g);
    maybe_complete_join(c, g);
}

void group_join(group_coord_t *c, const group_join_req_t *r, group_join_cb cb, void *ctx)
{
    const config_t *cfg = broker_config(c->b);
    if (r->group_id.len <= 0) return answer_join_error(cb, ctx, GERR_INVALID_GROUP_ID, NULL);
    if (r->session_ms < cfg->group_min_session_ms || r->session_ms > cfg->group_max_session_ms)
        return answer_join_error(cb, ctx, GERR_INVALID_SESSION_TIMEOUT, NULL);
    group_t *g = group_find(c, r->group_id);
    int known = r->member_id.len > 0;
    if (!g) {
        if (known) return answer_join_error(cb, ctx, GERR_UNKNOWN_MEMBER_ID, NULL);
        group_t none = {0};
        if (!group_supports(&none, r))
            return answer_join_error(cb, ctx, GERR_INCONSISTENT_GROUP_PROTOCOL, NULL);
        g = group_create_(c, r->group_id);
    } else if (!group_supports(g, r)) {
        return answer_join_error(cb, ctx, GERR_INCONSISTENT_GROUP_PROTOCOL, NULL);
    }
    if (g->state == GROUP_DEAD) return answer_join_error(cb, ctx, GERR_COORDINATOR_NOT_AVAILABLE, NULL);

    if (!known) {
        char *id = make_member_id(r->client_id);
        gmember_t *m = member_by_instance(g, r->instance_id);
        if (m) {
            /* KIP-345: a restarted static member takes over its old identity;
             * the old member id is fenced from now on. */
            LOG_I("group %s: static member %s replaces %s", g->id, id, m->id);
            if (m->join_cb) {
                group_join_cb old = m->join_cb;
                m->join_cb = NULL;
                answer_join_error(old, m->join_ctx, GERR_FENCED_INSTANCE_ID, m->id);
            }
            member_answer_sync(m, GERR_FENCED_INSTANCE_ID, g);
            if (g->leader && strcmp(g->leader, m->id) == 0) {
                free(g->leader);
                g->leader = xstrdup(id);
            }
            free(m->id);
            m->id = id;
            m->deadline = group_now_ms_(c) + (uint64_t)r->session_ms;
            int same = member_protocols_equal(m, r);
            int is_leader = g->leader && strcmp(g->leader, m->id) == 0;
            if (g->state == GROUP_STABLE && same && !is_leader) {
                m->session_ms = r->session_ms;
                return answer_current(g, m, cb, ctx);
            }
            member_set_protocols(m, r);
            return join_and_wait(c, g, m, cb, ctx);
        }
        if (r->instance_id.len < 0 && r->require_known_member) {
            gpending_t *p = xcalloc(1, sizeof *p);
            p->id = id;
            p->deadline = group_now_ms_(c) + (uint64_t)r->session_ms;
            p->next = g->pending;
            g->pending = p;
            return answer_join_error(cb, ctx, GERR_MEMBER_ID_REQUIRED, id);
        }
        m = add_member(c, g, id, r);
        return join_and_wait(c, g, m, cb, ctx);
    }

    gmember_t *m = member_by_id(g, r->member_id);
    gmember_t *mi = member_by_instance(g, r->instance_id);
    if (mi && mi != m) return answer_join_error(cb, ctx, GERR_FENCED_INSTANCE_ID, NULL);
    if (!m) {
        for (gpending_t **pp = &g->pending; *pp; pp = &(*pp)->next) {
            gpending_t *p = *pp;
            if (!group_str_eq_(p->id, r->member_id)) continue;
            *pp = p->next;
            char *id = p->id;
            free(p);
            m = add_member(c, g, id, r);
            return join_and_wait(c, g, m, cb, ctx);
        }
        answer_join_error(cb, ctx, GERR_UNKNOWN_MEMBER_ID, NULL);
        group_maybe_drop_(c, g);
        return;
    }
    m->deadline = group_now_ms_(c) + (uint64_t)r->session_ms;
    int same = member_protocols_equal(m, r);
    int is_leader = g->leader && strcmp(g->leader, m->id) == 0;
    switch (g->state) {
    case GROUP_PREPARING:
        member_set_protocols(m, r);
        member_take_join(m, cb, ctx);
        maybe_complete_join(c, g);
        return;
    case GROUP_COMPLETING:
        if (same) return answer_current(g, m, cb, ctx);
        member_set_protocols(m, r);
        return join_and_wait(c, g, m, cb, ctx);
    case GROUP_STABLE:
        if (same && !is_leader) return answer_current(g, m, cb, ctx);
        member_set_protocols(m, r);
        return join_and_wait(c, g, m, cb, ctx);
    default:
        return answer_join_error(cb, ctx, GERR_UNKNOWN_MEMBER_ID, NULL);
    }
}

void group_sync(group_coord_t *c, const group_sync_req_t *r, group_sync_cb cb, void *ctx)
{
    group_t *g = group_find(c, r->group_id);
    if (!g) return cb(ctx, GERR_UNKNOWN_MEMBER_ID, NULL, NULL, NULL, 0);
    gmember_t *mi = member_by_instance(g, r->instance_id);
    gmember_t *m = member_by_id(g, r->member_id);
    if (mi && mi != m) return cb(ctx, GERR_FENCED_INSTANCE_ID, NULL, NULL, NULL, 0);
    if (!m) return cb(ctx, GERR_UNKNOWN_MEMBER_ID, NULL, NULL, NULL, 0);
    if (r->generation != g->generation) return cb(ctx, GERR_ILLEGAL_GENERATION, NULL, NULL, NULL, 0);
    if ((r->protocol_type.len >= 0 && !group_str_eq_(g->ptype, r->protocol_type)) ||
        (r->protocol_name.len >= 0 && !group_str_eq_(g->proto, r->protocol_name)))
        return cb(ctx, GERR_INCONSISTENT_GROUP_PROTOCOL, NULL, NULL, NULL, 0);
    m->deadline = group_now_ms_(c) + (uint64_t)m->session_ms;
    switch (g->state) {
    case GROUP_PREPARING:
        return cb(ctx, GERR_REBALANCE_IN_PROGRESS, NULL, NULL, NULL, 0);
    case GROUP_STABLE:
        return cb(ctx, 0, g->ptype, g->proto, m->assign ? m->assign : (const uint8_t *)"", m->assign_len);
    case GROUP_COMPLETING:
        if (m->sync_cb) member_answer_sync(m, GERR_REBALANCE_IN_PROGRESS, g);
        m->sync_cb = cb;
        m->sync_ctx = ctx;
        if (!g->leader || strcmp(g->leader, m->id) != 0) return;
        for (gmember_t *o = g->members; o; o = o->next) {
            free(o->assign);
            o->assign = NULL;
            o->assign_len = 0;
            for (int i = 0; i < r->nassign; i++) {
                if (!group_str_eq_(o->id, r->assign[i].member_id)) continue;
                int32_t len = r->assign[i].len > 0 ? r->assign[i].len : 0;
                o->assign = xmalloc((size_t)len + 1);
                if (len) memcpy(o->assign, r->assign[i].p, (size_t)len);
                o->assign_len = len;
                break;
            }
        }
        g->state = GROUP_STABLE;
        for (gmember_t *o = g->members; o; o = o->next) member_answer_sync(o, 0, g);
        return;
    default:
        return cb(ctx, GERR_UNKNOWN_MEMBER_ID, NULL, NULL, NULL, 0);
    }
}

int16_t group_heartbeat(group_coord_t *c, group_str_t gid, int32_t generation, group_str_t member,
                        group_str_t instance)
{
    group_t *g = group_find(c, gid);
    if (!g) return GERR_UNKNOWN_MEMBER_ID;
    gmember_t *mi = member_by_instance(g, instance);
    gmember_t *m = member_by_id(g, member);
    if (mi && mi != m) return GERR_FENCED_INSTANCE_ID;
    if (!m) return GERR_UNKNOWN_MEMBER_ID;
    if (generation != g->generation) return GERR_ILLEGAL_GENERATION;
    m->deadline = group_now_ms_(c) + (uint64_t)m->session_ms;
    switch (g->state) {
    case GROUP_PREPARING:
        return GERR_REBALANCE_IN_PROGRESS;
    case GROUP_COMPLETING:
    case GROUP_STABLE:
        return GERR_NONE;
    default:
        return GERR_UNKNOWN_MEMBER_ID;
    }
}

int16_t group_leave(group_coord_t *c, group_str_t gid, group_str_t member, group_str_t instance)
{
    group_t *g = group_find(c, gid);
    if (!g) return GERR_UNKNOWN_MEMBER_ID;
    gmember_t *m;
    if (instance.len >= 0) {
        m = member_by_instance(g, instance);
        if (m && member.len > 0 && !group_str_eq_(m->id, member)) return GERR_FENCED_INSTANCE_ID;
    } else {
        m = member_by_id(g, member);
    }
    if (!m) return GERR_UNKNOWN_MEMBER_ID;
    LOG_I("group %s: member %s left", g->id, m->id);
    remove_member(c, g, m);
    return GERR_NONE;
}

static void sweep(uv_timer_t *t)
{
    group_coord_t *c = t->data;
    uint64_t now = group_now_ms_(c);
    group_t *g, *tmp;
    HASH_ITER(hh, c->groups, g, tmp)
    {
        for (gpending_t **pp = &g->pending; *pp;) {
            gpending_t *p = *pp;
            if (now <= p->deadline) {
                pp = &p->next;
                continue;
            }
            *pp = p->next;
            free(p->id);
            free(p);
        }
        for (gmember_t *m = g->members, *next; m; m = next) {
            next = m->next;
            /* A member waiting on a join or sync is alive by definition. */
            if (m->join_cb || m->sync_cb || now <= m->deadline) continue;
            LOG_I("group %s: member %s session expired", g->id, m->id);
            remove_member(c, g, m);
            next = g->members; /* the list may have changed: rescan */
        }
        maybe_complete_join(c, g);
        group_maybe_drop_(c, g);
    }
}

int16_t group_commit_check(group_coord_t *c, group_str_t gid, int32_t generation, group_str_t member,
                           group_str_t instance)
{
    if (gid.len <= 0 || gid.len > 0xffff) return GERR_INVALID_GROUP_ID;
    group_t *g = group_find(c, gid);
    if (generation < 0 && (!g || g->state == GROUP_EMPTY)) return GERR_NONE;
    if (!g) return GERR_ILLEGAL_GENERATION;
    gmember_t *mi = member_by_instance(g, instance);
    gmember_t *m = member_by_id(g, member);
    if (mi && mi != m) return GERR_FENCED_INSTANCE_ID;
    if (g->state == GROUP_COMPLETING) return GERR_REBALANCE_IN_PROGRESS;
    if (!m) return GERR_UNKNOWN_MEMBER_ID;
    if (generation != g->generation) return GERR_ILLEGAL_GENERATION;
    m->deadline = group_now_ms_(c) + (uint64_t)m->session_ms;
    return GERR_NONE;
}

/* ---- inspection and deletion ---- */

group_t *group_first(group_coord_t *c) { return c->groups; }
group_t *group_next(group_t *g) { return g->hh.next; }
const char *group_id(const group_t *g) { return g->id; }
group_state_t group_state(const group_t *g) { return g->state; }
const char *group_protocol_type(const group_t *g) { return g->ptype ? g->ptype : ""; }
const char *group_protocol(const group_t *g) { return g->proto ? g->proto : ""; }
int group_member_count(const group_t *g) { return g->nmembers; }

const char *group_state_name(group_state_t s)
{
    switch (s) {
    case GROUP_EMPTY: return "Empty";
    case GROUP_PREPARING: return "PreparingRebalance";
    case GROUP_COMPLETING: return "CompletingRebalance";
    case GROUP_STABLE: return "Stable";
    default: return "Dead";
    }
}

int group_members(const group_t *g, group_member_info_t *out, int max)
{
    int n = 0;
    for (const gmember_t *m = g->members; m && n < max; m = m->next, n++) {
        int pi = g->proto ? member_supports(m, g->proto) : -1;
        out[n] = (group_member_info_t){m->id, m->instance, m->client_id, m->client_host,
                                       pi >= 0 ? m->pmeta[pi] : (const uint8_t *)"", pi >= 0 ? m->pmeta_len[pi] : 0,
                                       m->assign ? m->assign : (const uint8_t *)"", m->assign_len};
    }
    return n;
}

int16_t group_delete(group_coord_t *c, group_str_t gid, int64_t *target)
{
    *target = 0;
    group_t *g = group_find(c, gid);
    if (!g) return GERR_GROUP_ID_NOT_FOUND;
    if (g->state != GROUP_EMPTY || g->members) return GERR_NON_EMPTY_GROUP;
    goff_t *o, *tmp;
    HASH_ITER(hh, g->offsets, o, tmp)
    {
        wbuf_t k;
        wbuf_init(&k);
        group_offset_key_(&k, gid, (group_str_t){o->topic, (int32_t)strlen(o->topic)}, o->part);
        int rc = internal_append(c->b, c->log, k.p, (int32_t)k.len, NULL, -1, target);
        wbuf_destroy(&k);
        if (rc < 0) return GERR_STORAGE;
        group_offset_remove_(g, o);
    }
    LOG_I("group %s deleted", g->id);
    HASH_DEL(c->groups, g);
    group_free_mem(g);
    return GERR_NONE;
}

/* ---- lifecycle ---- */

group_coord_t *group_coord_new(broker_t *b, partition_t *offsets_log)
{
    group_coord_t *c = xcalloc(1, sizeof *c);
    c->b = b;
    c->log = offsets_log;
    int rc = group_offsets_replay_(c);
    if (rc < 0) {
        LOG_E("offsets log replay failed: %s", herald_strerror(rc));
        group_coord_free(c);
        return NULL;
    }
    c->timer = xmalloc(sizeof *c->timer);
    uv_timer_init(broker_loop(b), c->timer);
    c->timer->data = c;
    uv_timer_start(c->timer, sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)c->timer);
    return c;
}

static void timer_closed(uv_handle_t *h) { free(h); }

void group_coord_free(group_coord_t *c)
{
    if (!c) return;
    pwaiter_cancel(&c->compact_w);
    if (c->timer) {
        uv_timer_stop(c->timer);
        uv_close((uv_handle_t *)c->timer, timer_closed);
    }
    group_t *g, *tmp;
    HASH_ITER(hh, c->groups, g, tmp)
    {
        for (gmember_t *m = g->members; m; m = m->next) {
            if (m->join_cb) {
                group_join_cb cb = m->join_cb;
                m->join_cb = NULL;
                answer_join_error(cb, m->join_ctx, GERR_COORDINATOR_NOT_AVAILABLE, m->id);
            }
            member_answer_sync(m, GERR_COORDINATOR_NOT_AVAILABLE, g);
        }
        HASH_DEL(c->groups, g);
        group_free_mem(g);
    }
    free(c);
}
