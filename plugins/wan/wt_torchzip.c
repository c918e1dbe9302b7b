/* wt_torchzip.c: torch.save zip checkpoints (in progress). */
#include "config.h"

#include "wt_internal.h"

int wt_load_torchzip(struct wt_file *f, char *err, size_t errlen)
{
	wt_seterr(err, errlen, "'%s': torch zip checkpoints are not supported yet", f->path);
	return -1;
}
