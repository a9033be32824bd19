/* counters.c - names of the balancer's global counters, shared by the
 * connection log line (`end=`) and the admin port (status.json, /metrics). */
#include "counters.h"

static const char *const lb_end_names[LB_END_MAX] = {
    [LB_END_DONE] = "done",
    [LB_END_CLIENT_RESET] = "client_reset",
    [LB_END_SERVER_RESET] = "server_reset",
    [LB_END_CLIENT_TIMEOUT] = "client_timeout",
    [LB_END_SERVER_TIMEOUT] = "server_timeout",
    [LB_END_NO_NODE] = "no_node",
    [LB_END_CONNECT_FAILED] = "connect_failed",
    [LB_END_STOPPED] = "stopped",
};

const char *lb_end_name(enum lb_end e)
{
    return (unsigned)e < LB_END_MAX ? lb_end_names[e] : "?";
}
