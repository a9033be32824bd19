/* opts.h - configuration-table entries that several daemons share, so a
 * key means the same thing, with the same default and help, everywhere.
 * T is the daemon's config struct; it must have the fields named. */
#ifndef FULCRUM_OPTS_H
#define FULCRUM_OPTS_H

#include <stddef.h>

#include "cfg.h"
#include "log.h"

/* log_file (char *), log_level (int) */
#define OPTS_LOG(T)                                                                            \
    {"log-file", CFG_STR, offsetof(T, log_file),                                               \
     0,          4095,    "-",                                                                 \
     NULL,       "FILE",  "log here instead of stderr (reopened on SIGHUP)"},                  \
    {                                                                                          \
        "log-level", CFG_ENUM, offsetof(T, log_level), 0, 0, "info", log_level_names, "LEVEL", \
            "least severe level logged"                                                        \
    }

/* key, key_next (char *); key_help says what the key does for this daemon */
#define OPTS_KEY(T, key_def, key_help)                                            \
    {"key", CFG_STR, offsetof(T, key), 0, 4095, key_def, NULL, "FILE", key_help}, \
    {                                                                             \
        "key-next", CFG_STR, offsetof(T, key_next), 0, 4095, "", NULL, "FILE",    \
            "second key accepted during a key rotation"                           \
    }

/* group, mcast_if (char *), max_skew (double) */
#define OPTS_GROUP(T)                                                               \
    {"group", CFG_STR,     offsetof(T, group),                                      \
     0,       255,         "239.255.77.77:7777",                                    \
     NULL,    "ADDR:PORT", "multicast group and port of the probes"},               \
        {"mcast-if", CFG_STR, offsetof(T, mcast_if),                                \
         0,          63,      "127.0.0.1",                                          \
         NULL,       "ADDR",  "address of the interface that joins the group"},     \
    {                                                                               \
        "max-skew", CFG_DOUBLE, offsetof(T, max_skew), 1, 86400, "30", NULL, "SEC", \
            "a message whose timestamp is further off than this is dropped"         \
    }

/* interval (double), miss_down (long long): the monitor's rounds */
#define OPTS_ROUNDS(T)                                                        \
    {"interval", CFG_DOUBLE, offsetof(T, interval),   0.05, 3600, "5",        \
     NULL,       "SEC",      "seconds between probes"},                       \
    {                                                                         \
        "miss-down", CFG_INT, offsetof(T, miss_down), 1, 100, "3", NULL, "N", \
            "rounds a node may miss before it is down"                        \
    }

#endif
