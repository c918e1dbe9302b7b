/* wan_err.h: the one error-message formatter of libwan (the subsystems' "char *err, size_t
 * errlen" convention). Defined in wt_file.c. */
#ifndef HERU_WAN_ERR_H
#define HERU_WAN_ERR_H

#include <stddef.h>

/* printf FMT into ERR (ERRLEN bytes, always terminated); nothing when ERR is NULL or ERRLEN 0. */
void wt_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
