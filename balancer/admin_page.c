/* admin_page.c - the live status page of GET / (docs/admin.md, "The status
 * page"). The HTML, CSS and JavaScript live in balancer/status_page.html,
 * a plain file kept readable in the tree; embed.cmake turns it into a byte
 * array at build time, included here. admin_view.c sends the page with the
 * balancer's own table, for browsers without JavaScript, in place of the
 * marker comment.
 */
#include "admin_page.h"

#include <string.h>

#define ADMIN_PAGE_MARK "<!--FULCRUM_TABLE-->"

static const char admin_page_html[] = {
#include "status_page.inc"
    '\0'};

void admin_page_parts(struct admin_page_part *head, struct admin_page_part *tail)
{
    size_t len = sizeof(admin_page_html) - 1;
    const char *mark = strstr(admin_page_html, ADMIN_PAGE_MARK);

    /* The build checks the page has its marker (CMake); without it, the
     * page is sent whole and the no-script table left out. */
    if (!mark) {
        *head = (struct admin_page_part){admin_page_html, len};
        *tail = (struct admin_page_part){admin_page_html + len, 0};
        return;
    }
    *head = (struct admin_page_part){admin_page_html, (size_t)(mark - admin_page_html)};
    tail->p = mark + strlen(ADMIN_PAGE_MARK);
    tail->len = len - (size_t)(tail->p - admin_page_html);
}
