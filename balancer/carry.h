/* carry.h - what a reload (reload.h) carries over to the new process: the
 * admin drains and weight overrides, which live in the node registry of
 * the process that took them (docs/admin.md).
 *
 * The old process puts them in the environment the new one inherits,
 * FULCRUM_RUNTIME = "NAME/d/wN,...", one entry per node ("/d": drained,
 * "/wN": weight override N; node names never hold '/' or ','). The new one
 * applies each entry as soon as its node is known: static nodes at once,
 * an agent's node when the monitor first hears it, before that node can be
 * picked. Main thread only.
 */
#ifndef FULCRUM_LB_CARRY_H
#define FULCRUM_LB_CARRY_H

#include "mon.h"
#include "nodes.h"

#define LB_ENV_RUNTIME "FULCRUM_RUNTIME"

struct lb_carry;

/* Old side, before the new process is spawned: sets FULCRUM_RUNTIME from
 * ns, or unsets it when no node is drained or overridden. Returns how many
 * nodes it names. */
size_t lb_carry_export(const struct lb_nodes *ns);

/* New side: reads FULCRUM_RUNTIME and unsets it. NULL when it names
 * nothing (or is absent); a malformed entry is logged and skipped. */
struct lb_carry *lb_carry_import(void);

/* Applies the entries whose node is now in ns (and drains it in mon too,
 * when given), each once, logging it. c may be NULL. */
void lb_carry_apply(struct lb_carry *c, struct lb_nodes *ns, struct mon *mon, uint64_t now_ms);

void lb_carry_free(struct lb_carry *c);

#endif
