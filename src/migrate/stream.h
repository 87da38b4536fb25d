/* The migration stream: records over one TCP connection, each an 8-byte
 * header (type, payload length; little-endian) and its payload.
 *
 *   HELLO   "CELLVMIG", u32 version, the shared token (the rest)
 *   RAM     u64 bytes of guest RAM
 *   DISKS   (copy_storage) u32 n, then per file: u64 size, u8 format
 *           (1 raw, 2 qcow2), u8 role (0 disk, 1 kernel, 2 initrd), u8
 *           drive (a disk's index in the VM), u16 length + the source's
 *           path, u16 length + the drive's id
 *   BLOCKS  u32 disk, u32 flags (1: zeroes), u64 offset, u32 length, the
 *           bytes (none for zeroes)
 *   PAGES   u32 n, n x u64 page number (in RAM order), n x 4096 bytes
 *   STATE   the VM's state file (src/snapshot/file.h) without memory
 *   END     nothing
 *   REPLY   u32 code (0: the VM runs), a message (the rest)
 *
 * The source sends HELLO and waits for a REPLY (0: go on), then sends
 * RAM, [DISKS], BLOCKS and PAGES..., STATE, END and waits for the REPLY that says the VM runs
 * there. Every length and page number is checked by the receiver. */
#ifndef CELLVM_MIGRATE_STREAM_H
#define CELLVM_MIGRATE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "migrate/migrate.h"

#define MIG_MAGIC "CELLVMIG"
#define MIG_VERSION 1
#define MIG_PAGE 4096u
#define MIG_BATCH 256u /* pages per PAGES record */
#define MIG_MAX_STATE (16u << 20)
#define MIG_MAX_RECORD (4 + MIG_BATCH * (8 + MIG_PAGE))
/* The largest payload of any record: a receiver's buffer. */
#define MIG_MAX_PAYLOAD (MIG_MAX_RECORD > MIG_MAX_STATE ? MIG_MAX_RECORD : MIG_MAX_STATE)
/* Without progress for this long, a side gives up. */
#define MIG_IO_TIMEOUT_S 30

#define MIG_BLOCKS_MAX (1u << 20) /* bytes of one BLOCKS record */
#define MIG_BLOCKS_ZERO 1u

enum mig_type { MIG_HELLO = 1, MIG_RAM, MIG_PAGES, MIG_STATE, MIG_END, MIG_REPLY, MIG_DISKS, MIG_BLOCKS };

/* "tcp:HOST:PORT" into a connected socket (connect) or a listening one
 * (listen, HOST may be empty or 0.0.0.0). -errno or CV_EINPUT, reported
 * naming spec. */
int mig_connect(const char *spec);
int mig_listen(const char *spec);

/* I/O timeouts (MIG_IO_TIMEOUT_S) and no Nagle delay on a connection. */
void mig_tune(int fd);

/* One record out: 0 or -errno. */
int mig_send(struct mig_link *l, uint32_t type, const void *a, size_t alen, const void *b, size_t blen);
/* One record in, its payload (up to max bytes) into buf: the payload
 * length, or -errno (-EPROTO: longer than max). */
long mig_recv(struct mig_link *l, uint32_t *type, void *buf, size_t max);

#endif
