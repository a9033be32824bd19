/* xalloc.h - allocation for daemons: failure aborts with a message
 * (Redis zmalloc's rule), so callers never see NULL. */
#ifndef FULCRUM_XALLOC_H
#define FULCRUM_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
