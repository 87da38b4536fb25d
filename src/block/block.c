#include "block/block.h"

#include "block/async.h"
#include "block/image.h"

int block_open(const char *path, enum block_format format, bool readonly, unsigned max_inflight,
	       struct event_loop *loop, struct block **out)
{
	struct image *img;
	int rc = image_open(path, format, readonly ? 0 : IMAGE_RW, &img);

	if (rc)
		return rc;
	if ((rc = async_open(img, max_inflight, loop, out)))
		image_close(img);
	return rc;
}
