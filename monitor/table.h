/* table.h - the monitor's status table: one row per node, its state machine,
 * weights and ranks, and the two output formats (aligned text, JSON line).
 *
 * No I/O and no clock of its own: callers pass now_ms (monotonic ms) and the
 * decoded, already-verified messages, so the balancer can embed it and tests
 * can drive it round by round. Not thread-safe: one owner thread.
 *
 * Node states:
 *   up        answered the last round and its service is up
 *   suspect   missed 1 or 2 rounds in a row; stays in rotation
 *   down      missed mon_table_cfg.miss_down rounds (3), or its agent says
 *             its service is down; out of rotation (weight 0)
 *   draining  an operator asked for no new connections; weight 0; shown
 *             unless the node is down
 */
#ifndef FULCRUM_MONITOR_TABLE_H
#define FULCRUM_MONITOR_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto-t.h"
#include "weight.h"

enum mon_state { MON_UP = 0, MON_SUSPECT, MON_DOWN, MON_DRAINING, MON_STATE_MAX };

struct mon_table_cfg {
    unsigned max_nodes; /* hello/response from a new node past this: -ENOSPC */
    unsigned miss_down; /* rounds missed in a row before down: 3 */
    uint64_t forget_ms; /* a down node leaves the table after this: 300000 */
    struct mon_weight_cfg weight;
};

/* A copy of one row, as callers see it (mon_table_snapshot). */
struct mon_node {
    char name[PROTO_NAME_MAX + 1];
    char boot[PROTO_NONCE_HEX + 1]; /* agent process id of the last report */
    struct proto_metrics m;         /* last metrics reported */
    enum mon_state state;
    bool drain; /* operator's drain flag */
    bool has_rtt;
    double rtt_ms;        /* last measured RTT */
    double srtt_ms;       /* smoothed RTT (7/8 old + 1/8 new) */
    uint64_t first_ms;    /* when it joined (now_ms of first report) */
    uint64_t last_ms;     /* now_ms of the last report */
    uint64_t up_since_ms; /* when it last became up (slow start) */
    unsigned missed;      /* rounds missed in a row */
    double weight;        /* smoothed metrics weight, floor..cap */
    unsigned eff_weight;  /* weight for the balancer: 0 unless up/suspect */
    unsigned rank;        /* 1 = best by eff_weight; 0 = not in rotation */
    uint64_t agent_seq;   /* last hello/bye seq seen for this boot */
};

struct mon_table;

void mon_table_cfg_default(struct mon_table_cfg *cfg);

/* Returns a new empty table; cfg is copied. Aborts on allocation failure. */
struct mon_table *mon_table_new(const struct mon_table_cfg *cfg);
void mon_table_free(struct mon_table *t);

/* Starts round `round` (the probe's seq): from now on a node may answer once. */
void mon_table_begin_round(struct mon_table *t, uint64_t round, uint64_t now_ms);

/* A verified probe_response (rtt_ms >= 0) or hello (rtt_ms < 0) from msg->name.
 * Adds the node if new. Returns 0, or
 *   -EALREADY  a second response from this node in this round, or a hello
 *              whose (boot, seq) is not newer than the last seen: a replay
 *   -ESTALE    a hello from a boot that already said bye (tombstoned)
 *   -ENOSPC    new node but the table holds max_nodes
 * On error the table is unchanged. */
int mon_table_report(struct mon_table *t, const struct proto_msg *msg, double rtt_ms,
                     uint64_t now_ms);

/* A verified bye. Removes the node and tombstones (name, boot). Returns 0,
 * -ENOENT (unknown name), -ESTALE (boot differs from the node's current),
 * or -EALREADY (seq not newer than the last seen). */
int mon_table_bye(struct mon_table *t, const struct proto_msg *msg);

/* Closes the current round: every node that did not report in it misses
 * one; states, weights and ranks are recomputed; down nodes older than
 * forget_ms are removed. */
void mon_table_end_round(struct mon_table *t, uint64_t now_ms);

/* Sets or clears the drain flag. Returns 0 or -ENOENT. Effective at once. */
int mon_table_set_drain(struct mon_table *t, const char *name, bool drain);

/* Number of rows. */
size_t mon_table_count(const struct mon_table *t);

/* Copies up to max rows into out, ordered by rank (ranked first, best
 * first), then by name. Returns the number copied. */
size_t mon_table_snapshot(const struct mon_table *t, struct mon_node *out, size_t max);

/* Looks up one row by name; returns true and copies it when found. */
bool mon_table_get(const struct mon_table *t, const char *name, struct mon_node *out);

const char *mon_state_name(enum mon_state s);

/* Render rows (as from mon_table_snapshot) for `tail -f`. now_ms gives the
 * age column; wall_ms is the wall clock for the header/ts. Both write at most
 * len bytes including the NUL and return the length the full output needs
 * (snprintf contract), or -errno.
 * Text: a header line "round N  <ISO-8601 UTC>  nodes N  up N", a column
 * line, one aligned row per node, and a blank line.
 * JSON: one line, no trailing newline:
 *   {"round":N,"ts":<unix seconds, 3 decimals>,"nodes":[{"name":..,"addr":"ip:port",
 *    "state":..,"cpu_idle":..,"ram_free":..,"ram_total":..,"load1":..,
 *    "service":"up"|"down","rtt_ms":..|null,"age_s":..,"weight":..,"rank":..}]} */
int mon_table_format_text(const struct mon_node *rows, size_t n, uint64_t round, uint64_t now_ms,
                          uint64_t wall_ms, char *buf, size_t len);
/* The same text with flags: MON_FMT_COLOR wraps the state and service
 * cells in ANSI colours (green up, yellow suspect, red down, cyan
 * draining); the padding stays outside the escapes' width, so columns
 * still line up. For terminals only: files and pipes get plain text. */
#define MON_FMT_COLOR 0x1u
int mon_table_format_text_ex(const struct mon_node *rows, size_t n, uint64_t round, uint64_t now_ms,
                             uint64_t wall_ms, unsigned flags, char *buf, size_t len);
int mon_table_format_json(const struct mon_node *rows, size_t n, uint64_t round, uint64_t now_ms,
                          uint64_t wall_ms, char *buf, size_t len);

#endif
