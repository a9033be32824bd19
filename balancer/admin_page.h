/* admin_page.h - the live status page served at GET / (admin_page.c; the
 * page itself is balancer/status_page.html, compiled in). */
#ifndef FULCRUM_BALANCER_ADMIN_PAGE_H
#define FULCRUM_BALANCER_ADMIN_PAGE_H

#include <stddef.h>

/* A piece of the page: static text, never freed. */
struct admin_page_part {
    const char *p;
    size_t len;
};

/* The page split at its no-script table: *head is everything before the
 * place the table goes, *tail everything after it. Any thread. */
void admin_page_parts(struct admin_page_part *head, struct admin_page_part *tail);

#endif
