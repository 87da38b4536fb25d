#include "util/file_id.h"

#include <string.h>
#include <sys/stat.h>

int file_id_get(const char *path, struct file_id *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) < 0)
		return -1;
	id->ino = (uint64_t)st.st_ino;
	id->size = (uint64_t)st.st_size;
	id->mtime_sec = (uint64_t)st.st_mtim.tv_sec;
	id->mtime_nsec = (uint64_t)st.st_mtim.tv_nsec;
	return 0;
}

const char *file_id_diff(const struct file_id *was, const struct file_id *now)
{
	/* Not the inode: a copy that keeps the modification time (cp -p,
	 * tar, cellvm export and import) is the same file. */
	if (was->size != now->size)
		return "its size";
	if (was->mtime_sec != now->mtime_sec || was->mtime_nsec != now->mtime_nsec)
		return "its modification time";
	return NULL;
}
