/* How guest RAM is backed (`--memory SIZE[,OPTION...]`): anonymous memory,
 * a memfd, or a file (e.g. on hugetlbfs or tmpfs, or to share the RAM with
 * another process); 4 KiB pages, huge pages from the host's pool (2M,
 * 1G) or transparent huge pages; marked mergeable for the host's KSM;
 * touched up front; bound to a NUMA node. */
#ifndef CELLVM_VMM_RAM_H
#define CELLVM_VMM_RAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ram_backend { RAM_ANON, RAM_MEMFD, RAM_FILE };
enum ram_pages { RAM_PAGES_4K, RAM_PAGES_2M, RAM_PAGES_1G, RAM_PAGES_THP };

struct ram_config {
	enum ram_backend backend;
	char file[4096]; /* RAM_FILE */
	enum ram_pages pages;
	/* MAP_SHARED? By default on for memfd and file, off for anon. */
	enum { RAM_SHARED_DEFAULT, RAM_SHARED_ON, RAM_SHARED_OFF } shared;
	bool merge, prealloc;
	bool bind;     /* to NUMA node `node` */
	unsigned node;
};

/* All zero: anonymous 4 KiB pages, as a zeroed struct is. */
#define RAM_CONFIG_DEFAULT ((struct ram_config){ .backend = RAM_ANON })

/* Parses the options after the size, "backend=memfd,hugepages=2M,...",
 * into c (which starts as RAM_CONFIG_DEFAULT). 0 or CV_EINPUT with a
 * one-line reason naming the bad value in err. */
int ram_parse(const char *opts, struct ram_config *c, char *err, size_t errlen);
/* The options as ram_parse takes them ("" for the defaults). */
void ram_format(const struct ram_config *c, char *buf, size_t cap);
/* Bytes of one page of c. */
uint64_t ram_page_size(const struct ram_config *c);

/* Maps `size` bytes of guest RAM as c says: the mapping, or NULL with the
 * error reported (CV_EINPUT in *rc for what the user asked wrongly: a
 * file too small, a pool too small, a node that does not exist). *fd is
 * the memfd or file of a shared mapping (else -1), which ram_discard
 * needs; the caller closes it. */
void *ram_map(const struct ram_config *c, uint64_t size, int *fd, int *rc);
/* Gives [off, off+len) of the RAM back to the host (a balloon, free page
 * reporting); what it held is lost. 0 or -errno. */
int ram_discard(void *host, int fd, uint64_t off, uint64_t len);

#endif
