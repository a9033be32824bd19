/* test_carry.c - what a reload carries over (balancer/carry.c): the admin
 * drains and weight overrides, through FULCRUM_RUNTIME, both ways, and
 * what a malformed entry does (skipped, the others applied). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "carry.h"
#include "node.h"
#include "nodes.h"

static struct lb_nodes *nodes_with(int n)
{
    struct lb_nodes_cfg cfg = {.slowstart_ms = 1000, .stale_ms = 3000, .grace_ms = 1000};
    struct lb_nodes *ns = lb_nodes_new(&cfg);

    for (int i = 0; i < n; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(9000 + i))};

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(lb_nodes_add_static(ns, &a), 0);
    }
    return ns;
}

Test(carry, drains_and_overrides_go_over_and_nothing_else)
{
    struct lb_nodes *old = nodes_with(3), *fresh = nodes_with(3);
    struct lb_carry *c;
    const struct lb_node *n;

    cr_assert_eq(lb_carry_export(old), 0);
    cr_assert_null(getenv(LB_ENV_RUNTIME), "nothing to carry, yet the variable is set");
    cr_assert_eq(lb_nodes_set_drain(old, "127.0.0.1:9000", true, 0), 0);
    cr_assert_eq(lb_nodes_set_override(old, "127.0.0.1:9001", 7, 0), 0);
    cr_assert_eq(lb_nodes_set_drain(old, "127.0.0.1:9001", true, 0), 0);
    cr_assert_eq(lb_carry_export(old), 2);
    cr_assert_str_eq(getenv(LB_ENV_RUNTIME), "127.0.0.1:9000/d,127.0.0.1:9001/d/w7");
    c = lb_carry_import();
    cr_assert_not_null(c);
    cr_assert_null(getenv(LB_ENV_RUNTIME), "import leaves the variable for the next reload");
    lb_carry_apply(c, fresh, NULL, 0);
    n = lb_nodes_find(fresh, "127.0.0.1:9000");
    cr_assert(n->drain && n->override == LB_OVERRIDE_NONE);
    n = lb_nodes_find(fresh, "127.0.0.1:9001");
    cr_assert(n->drain && n->override == 7);
    n = lb_nodes_find(fresh, "127.0.0.1:9002");
    cr_assert(!n->drain && n->override == LB_OVERRIDE_NONE);
    lb_carry_free(c);
    lb_nodes_free(old);
    lb_nodes_free(fresh);
}

Test(carry, a_node_not_known_yet_is_applied_when_it_comes)
{
    struct lb_nodes *ns = nodes_with(1);
    struct lb_carry *c;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9005)};

    setenv(LB_ENV_RUNTIME, "127.0.0.1:9005/w0", 1);
    c = lb_carry_import();
    lb_carry_apply(c, ns, NULL, 0); /* not there yet: kept */
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(lb_nodes_add_static(ns, &a), 0);
    lb_carry_apply(c, ns, NULL, 0);
    cr_assert_eq(lb_nodes_find(ns, "127.0.0.1:9005")->override, 0);
    lb_carry_free(c);
    lb_nodes_free(ns);
}

Test(carry, malformed_entries_are_skipped_the_rest_applied)
{
    struct lb_nodes *ns = nodes_with(2);
    struct lb_carry *c;

    setenv(LB_ENV_RUNTIME,
           "nodeless,/d,127.0.0.1:9000/x,127.0.0.1:9000/w300,127.0.0.1:9000/w,"
           "127.0.0.1:9000/w5junk,127.0.0.1:9000/,127.0.0.1:9001/w12",
           1);
    c = lb_carry_import();
    cr_assert_not_null(c, "the one good entry was dropped with the bad ones");
    lb_carry_apply(c, ns, NULL, 0);
    cr_assert_eq(lb_nodes_find(ns, "127.0.0.1:9001")->override, 12);
    cr_assert_not(lb_nodes_find(ns, "127.0.0.1:9000")->drain);
    cr_assert_eq(lb_nodes_find(ns, "127.0.0.1:9000")->override, LB_OVERRIDE_NONE);
    lb_carry_free(c);
    setenv(LB_ENV_RUNTIME, ",,,", 1);
    cr_assert_null(lb_carry_import());
    lb_nodes_free(ns);
}
