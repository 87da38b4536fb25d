#include "block/block.h"

#include "block/async.h"
#include "block/image.h"
#include "block/qcow2.h"

int block_open(const char *path, enum block_format format, bool readonly, unsigned max_inflight,
	       struct event_loop *loop, struct block **out)
{
	struct image *img;
	int rc = image_open(path, format, readonly ? 0 : IMAGE_RW, &img);

	if (rc)
		return rc;
	if ((rc = async_open(img, max_inflight, loop, out))) {
		image_close(img);
		return rc;
	}
	(*out)->format = qcow2_of(img) ? BLOCK_FORMAT_QCOW2 : BLOCK_FORMAT_RAW;
	return 0;
}
