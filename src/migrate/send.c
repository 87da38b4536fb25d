#include "migrate/migrate.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "migrate/storage.h"
#include "migrate/stream.h"
#include "migrate/tls.h"
#include "snapshot/file.h"
#include "util/err.h"
#include "virtio/blk.h"
#include "vmm/devices.h"
#include "vmm/disks.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

enum step { STEP_NONE, STEP_STOP, STEP_END };

struct migration {
	struct vm *vm;
	struct event_loop *loop;
	char dest[256], token[MIG_MAX_TOKEN + 1];
	struct mig_params p; /* its strings point to dest and token */
	void (*done)(void *ctx, enum mig_state end);
	void *ctx;
	struct mig_link link; /* its fd is -1 until connected */
	int efd;
	pthread_t thread;
	bool thread_ok, in_loop;
	uint64_t *send; /* this round's pages */
	uint64_t words;
	uint8_t *batch; /* a PAGES record's payload */
	struct storage_out disks; /* copy_storage */
	bool disks_ok;
	uint64_t mem_done;    /* this round's RAM bytes looked at (under lock) */
	double limit_t0;      /* max_bandwidth: since when bytes are counted */
	uint64_t limit_bytes; /* sent since then */
	/* Under lock: the thread's request to the main thread and its answer. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum step step;
	bool answered, aborted;
	int stop_rc;
	struct snap_file_writer state;
	bool state_ok;
	/* The main thread's own. */
	bool was_paused, was_tracking, stopped;
	struct event_timer deadline; /* max_time_ms: gives up before the stop */
	bool timer_ok;
	struct event_timer tick; /* auto-converge: kicks throttled vCPUs */
	bool tick_ok;
	double t0, t_stop;
	struct mig_status st; /* under lock */
};

const char *mig_state_name(enum mig_state s)
{
	static const char *const names[] = { "none", "active", "completed", "failed", "unknown" };

	return names[s];
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The first reason it failed, kept for the status (and the log). */
static void fail(struct migration *mg, const char *fmt, const char *arg)
{
	char msg[sizeof(mg->st.error)];
	int n = snprintf(msg, sizeof(msg), fmt, arg);

	if (n < 0 || (size_t)n >= sizeof(msg))
		msg[sizeof(msg) - 1] = 0;
	pthread_mutex_lock(&mg->lock);
	if (!mg->st.error[0])
		memcpy(mg->st.error, msg, sizeof(msg));
	pthread_mutex_unlock(&mg->lock);
}

static bool zero_page(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned i = 0; i < MIG_PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

static void sleep_ms(double ms)
{
	long long ns = (long long)(ms * 1e6);
	struct timespec t = { .tv_sec = (time_t)(ns / 1000000000LL), .tv_nsec = (long)(ns % 1000000000LL) };

	nanosleep(&t, NULL);
}

/* Every record goes out here: counted, and held to max_bandwidth until the
 * VM stops (the last round goes as fast as the link allows). */
static int out(void *opaque, uint32_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	struct migration *mg = opaque;
	int rc = mig_send(&mg->link, type, a, alen, b, blen);
	uint64_t n = 8 + alen + blen;

	pthread_mutex_lock(&mg->lock);
	mg->st.bytes += n;
	if (type == MIG_BLOCKS)
		mg->st.disk_bytes += n;
	pthread_mutex_unlock(&mg->lock);
	mg->limit_bytes += n;
	if (!rc && mg->p.max_bandwidth && !mg->stopped) {
		double due = (double)mg->limit_bytes * 1e3 / (double)mg->p.max_bandwidth - (now_ms() - mg->limit_t0);

		if (due > 0)
			sleep_ms(due);
	}
	return rc;
}

/* Sends the pages set in mg->send (all non-zero ones if `skip_zero`). */
static int send_pages(struct migration *mg, bool skip_zero)
{
	struct guest_mem *m = &mg->vm->mem;
	uint64_t pages = m->size / MIG_PAGE;
	uint32_t n = 0;
	uint8_t *idx = mg->batch + 4, *data = mg->batch + 4 + MIG_BATCH * 8;
	uint64_t seen = 0;
	int rc = 0;

	for (uint64_t p = 0; p < pages && !rc; p++) {
		const uint8_t *src = m->host + p * MIG_PAGE;
		uint64_t le = htole64(p);
		bool last = p + 1 == pages;

		bool marked = (mg->send[p / 64] >> (p % 64)) & 1;

		seen += marked;
		if (marked && !(skip_zero && zero_page(src))) {
			memcpy(idx + n * 8, &le, 8);
			memcpy(data + (size_t)n * MIG_PAGE, src, MIG_PAGE);
			n++;
		}
		if (n && (n == MIG_BATCH || last)) {
			uint32_t count = htole32(n);

			memcpy(mg->batch, &count, 4);
			/* The index list, then the pages right after it. */
			rc = out(mg, MIG_PAGES, mg->batch, 4 + (size_t)n * 8, data, (size_t)n * MIG_PAGE);
			pthread_mutex_lock(&mg->lock);
			mg->st.pages += n;
			mg->mem_done = seen * MIG_PAGE;
			pthread_mutex_unlock(&mg->lock);
			n = 0;
		}
	}
	return rc;
}

/* Adds what was written since the last collection to the pages still to
 * send (the last round's, when the VM is stopped); how many those are. */
static uint64_t take_dirty(struct migration *mg)
{
	struct dirty_log *d = &mg->vm->dirty;
	uint64_t count = 0;

	if (dirty_log_collect(d, &mg->vm->mem))
		return UINT64_MAX;
	for (uint64_t w = 0; w < mg->words; w++) {
		mg->send[w] |= d->pending[w];
		count += (uint64_t)__builtin_popcountll(mg->send[w]);
	}
	dirty_log_clear(d, &mg->vm->mem);
	return count;
}

/* Asks the main thread for a step and waits for it to be done. */
static int ask(struct migration *mg, enum step step)
{
	uint64_t one = 1;
	int rc;

	pthread_mutex_lock(&mg->lock);
	mg->step = step;
	mg->answered = false;
	pthread_mutex_unlock(&mg->lock);
	if (write(mg->efd, &one, 8) != 8)
		return CV_EFAIL;
	if (step == STEP_END)
		return 0;
	pthread_mutex_lock(&mg->lock);
	while (!mg->answered && !mg->aborted)
		pthread_cond_wait(&mg->cond, &mg->lock);
	rc = mg->aborted ? CV_EFAIL : mg->stop_rc;
	pthread_mutex_unlock(&mg->lock);
	return rc;
}

/* Auto-converge: a round that left more to send than half of what it
 * sent means the guest writes about as fast as the link carries; each
 * such round takes a bigger share of its vCPUs' time. */
#define THROTTLE_FIRST 20
#define THROTTLE_STEP 10
#define THROTTLE_MAX 99

static void converge(struct migration *mg, uint64_t left, uint64_t sent)
{
	unsigned pct = atomic_load(&mg->vm->throttle_pct);

	if (!mg->p.auto_converge || left * 2 <= sent)
		return;
	pct = pct ? pct + THROTTLE_STEP : THROTTLE_FIRST;
	vm_throttle(mg->vm, pct > THROTTLE_MAX ? THROTTLE_MAX : pct);
}

static int precopy(struct migration *mg)
{
	uint64_t ram = htole64(mg->vm->mem.size), dirty, disk_dirty = 0;
	double bw = 0; /* bytes per ms */
	int rc;

	uint64_t todo = mg->vm->mem.size + (mg->disks_ok ? mg->disks.todo : 0);

	memset(mg->send, 0xff, mg->words * 8);
	mg->limit_t0 = now_ms();
	for (unsigned round = 0;; round++) {
		double t = now_ms(), took;
		uint64_t before = mg->st.bytes, left;

		pthread_mutex_lock(&mg->lock);
		mg->st.round_todo = todo;
		mg->mem_done = 0;
		pthread_mutex_unlock(&mg->lock);

		if (round == 0 && (rc = out(mg, MIG_RAM, &ram, 8, NULL, 0)))
			return rc;
		if (round == 0 && mg->disks_ok && (rc = storage_out_announce(&mg->disks, out, mg)))
			return rc;
		if (mg->disks_ok && (rc = storage_out_round(&mg->disks, out, mg)))
			return rc;
		if ((rc = send_pages(mg, round == 0)))
			return rc;
		memset(mg->send, 0, mg->words * 8);
		took = now_ms() - t;
		if (took > 0)
			bw = (double)(mg->st.bytes - before) / took;
		if ((dirty = take_dirty(mg)) == UINT64_MAX)
			return CV_EFAIL;
		if (mg->disks_ok)
			disk_dirty = storage_out_dirty(&mg->disks);
		todo = left = dirty * MIG_PAGE + disk_dirty;
		if (round)
			converge(mg, left, mg->st.bytes - before);
		pthread_mutex_lock(&mg->lock);
		mg->st.round = round + 1;
		mg->st.dirty = dirty;
		mg->st.bandwidth = bw * 1e3;
		mg->st.dirty_rate = took > 0 ? (double)left * 1e3 / took : 0;
		mg->st.expected_downtime_ms = bw > 0 ? (double)left / bw : 0;
		mg->st.throttle_pct = atomic_load(&mg->vm->throttle_pct);
		pthread_mutex_unlock(&mg->lock);
		/* What is left fits the downtime at the bandwidth seen. */
		if (round + 1 >= MIG_MAX_ROUNDS || (bw > 0 && (double)left / bw <= mg->p.downtime_ms))
			return 0;
	}
}

/* Reads the destination's REPLY: its code, and its message into msg.
 * The payload length, or -errno (-EPROTO: not a REPLY). */
static long read_reply(struct migration *mg, uint32_t *code, char *msg, size_t cap)
{
	uint8_t reply[512];
	uint32_t type;
	long n = mig_recv(&mg->link, &type, reply, sizeof(reply) - 1);

	if (n >= 0 && (n < 4 || type != MIG_REPLY))
		return -EPROTO;
	if (n < 0)
		return n;
	memcpy(code, reply, 4);
	*code = le32toh(*code);
	reply[n] = 0;
	snprintf(msg, cap, "%s", (char *)reply + 4);
	return n;
}

/* The destination's REPLY: 0 if it says go on, else CV_EFAIL with the
 * reason recorded; CV_EINPUT when it did not answer at all (recorded as
 * `what` unless NULL). */
static int await_reply(struct migration *mg, const char *what)
{
	char msg[512];
	uint32_t code;
	long n = read_reply(mg, &code, msg, sizeof(msg));

	if (n < 0) {
		if (what || n == -EPROTO)
			fail(mg, what ? what : "%s", n == -EPROTO ? "bad reply" : strerror((int)-n));
		return n == -EPROTO ? CV_EFAIL : CV_EINPUT;
	}
	if (code) {
		fail(mg, "the destination refused the VM: %s", msg);
		return CV_EFAIL;
	}
	return 0;
}

/* Sending failed: a destination that refused said why before it hung up. */
static void heard_refusal(struct migration *mg)
{
	struct timeval tv = { .tv_sec = 1 };
	char msg[512];
	uint32_t code;

	setsockopt(mg->link.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (read_reply(mg, &code, msg, sizeof(msg)) >= 0 && code)
		fail(mg, "the destination refused the VM: %s", msg);
}

static void *run(void *opaque)
{
	struct migration *mg = opaque;
	uint8_t hello[12];
	uint32_t v = htole32(MIG_VERSION);
	enum mig_state end = MIG_FAILED;
	int rc;

	pthread_setname_np(pthread_self(), "migrate");
	memcpy(hello, MIG_MAGIC, 8);
	memcpy(hello + 8, &v, 4);
	if (mg->p.tls && (rc = mig_tls_start(&mg->link, mg->token, false)))
		fail(mg, "%s", cv_last_error());
	else if ((rc = mig_send(&mg->link, MIG_HELLO, hello, sizeof(hello), mg->token, strlen(mg->token))))
		fail(mg, "the destination does not listen: %s", strerror(-rc));
	else
		rc = await_reply(mg, "the destination did not answer (%s)");
	if (!rc && (rc = precopy(mg))) {
		if (rc == -ECONNRESET || rc == -EPIPE)
			heard_refusal(mg);
		fail(mg, "sending the VM failed: %s", strerror(-rc));
	} else if (!rc && (rc = ask(mg, STEP_STOP))) {
		fail(mg, "%s", "the VM could not be stopped for the last round");
	} else if (!rc) {
		/* The VM is paused; these are its last disk chunks and pages,
		 * and its state. */
		if (mg->disks_ok) {
			storage_out_dirty(&mg->disks);
			rc = storage_out_round(&mg->disks, out, mg);
		}
		if (rc || (rc = send_pages(mg, false)) ||
		    (rc = out(mg, MIG_STATE, mg->state.out.buf, mg->state.out.len, NULL, 0)) ||
		    (rc = out(mg, MIG_END, NULL, 0, NULL, 0))) {
			fail(mg, "sending the VM's state failed: %s", strerror(-rc));
		} else if ((rc = await_reply(mg, NULL)) == CV_EINPUT) {
			/* It has the whole VM and may run it: running it here too
			 * would make two. */
			end = MIG_UNKNOWN;
			fail(mg, "%s",
			     "the destination received the whole VM but did not say whether it runs it: the VM "
			     "stays paused here (resume it only once sure it does not run there)");
		}
	}
	pthread_mutex_lock(&mg->lock);
	mg->st.state = rc ? end : MIG_COMPLETED;
	pthread_mutex_unlock(&mg->lock);
	ask(mg, STEP_END);
	return NULL;
}

/* ---- the main thread's side */

/* Pauses the VM, lets its requests finish, closes its disks and builds
 * its state: what the thread sends last. */
static int stop_vm(struct migration *mg)
{
	struct vm *vm = mg->vm;
	struct disk_layers dl = { 0 };
	int rc;

	mg->t_stop = now_ms();
	vm_throttle(vm, 0);
	if (!vm->paused && (rc = vm_pause(vm)))
		return rc;
	mg->stopped = true;
	if ((rc = vm_drain(vm)))
		return rc;
	/* Shared disks: the destination opens them once closed here. Copied
	 * ones stay open for their last chunks. */
	for (unsigned i = 0; mg->disks_ok && i < vm->cfg->ndisks; i++)
		dl.copied[i] = (mg->p.copy_disks >> i) & 1;
	vm_disks_release(vm, mg->disks_ok ? mg->p.copy_disks : 0);
	if (take_dirty(mg) == UINT64_MAX)
		return CV_EFAIL;
	mg->state_ok = true;
	if ((rc = vm_state_build(vm, &dl, &mg->state)))
		return rc;
	if (mg->state.out.oom) {
		cv_err("migration: out of memory while encoding the VM's state");
		return CV_EFAIL;
	}
	snap_file_finish(&mg->state);
	return 0;
}

/* The VM stays here: as it was before the migration began (paused, when
 * it may run on the destination). */
static void keep_vm(struct migration *mg, bool unknown)
{
	struct vm *vm = mg->vm;

	vm_throttle(vm, 0);
	if (mg->stopped && !unknown) {
		if (vm_disks_reacquire(vm))
			cv_err("migration failed and a disk could not be reopened: the guest waits for it");
		if (!mg->was_paused && vm_resume(vm))
			cv_err("migration failed and the VM could not be resumed");
	}
	/* The pages a diff snapshot needed were sent and forgotten. */
	if (mg->was_tracking)
		dirty_log_mark_all(&vm->dirty, &vm->mem);
	else
		dirty_log_stop(&vm->dirty, &vm->mem);
}

static void on_tick(void *opaque)
{
	struct migration *mg = opaque;

	vm_throttle_kick(mg->vm);
	event_timer_arm(&mg->tick, (uint64_t)VM_THROTTLE_SLICE_MS * 1000000);
}

static void on_deadline(void *opaque)
{
	struct migration *mg = opaque;
	char limit[32];

	/* Once the VM is stopped its state is on the way: no giving up then,
	 * the destination may be starting it. */
	if (mg->stopped)
		return;
	snprintf(limit, sizeof(limit), "%u ms", mg->p.max_time_ms);
	fail(mg, "not done within max_time (%s): the guest writes memory faster than it can be sent", limit);
	shutdown(mg->link.fd, SHUT_RDWR);
}

static void on_step(void *opaque, uint32_t events)
{
	struct migration *mg = opaque;
	enum step step;
	uint64_t v;

	(void)events;
	if (read(mg->efd, &v, 8) < 0)
		return;
	pthread_mutex_lock(&mg->lock);
	step = mg->step;
	mg->step = STEP_NONE;
	pthread_mutex_unlock(&mg->lock);
	if (step == STEP_STOP) {
		int rc = stop_vm(mg);

		pthread_mutex_lock(&mg->lock);
		mg->stop_rc = rc;
		mg->answered = true;
		pthread_cond_signal(&mg->cond);
		pthread_mutex_unlock(&mg->lock);
	} else if (step == STEP_END) {
		enum mig_state end;

		pthread_join(mg->thread, NULL);
		mg->thread_ok = false;
		if (mg->timer_ok)
			event_timer_cancel(&mg->deadline);
		if (mg->tick_ok)
			event_timer_cancel(&mg->tick);
		if (mg->disks_ok)
			storage_out_stop(&mg->disks);
		mg->disks_ok = false;
		pthread_mutex_lock(&mg->lock);
		end = mg->st.state;
		mg->st.total_ms = now_ms() - mg->t0;
		mg->st.downtime_ms = mg->stopped ? now_ms() - mg->t_stop : 0;
		pthread_mutex_unlock(&mg->lock);
		if (end != MIG_COMPLETED)
			keep_vm(mg, end == MIG_UNKNOWN);
		mg->done(mg->ctx, end);
	}
}

/* copy_storage: the VM's kernel and initrd (a reboot reads them again),
 * opened read-only for the copy, and the disks in copy_disks. */
static int storage_start(struct migration *mg)
{
	const struct vm_config *cfg = mg->vm->cfg;
	const char *boot[] = { cfg->kernel, cfg->initrd };
	struct storage_src src[STORAGE_MAX];
	unsigned n = 0;
	int rc;

	for (unsigned i = 0; i < cfg->ndisks; i++)
		if ((mg->p.copy_disks >> i) & 1)
			src[n++] = (struct storage_src){ .b = virtio_blk_disk(devices_disk(mg->vm, i)),
							 .path = cfg->disks[i].path,
							 .id = cfg->disks[i].id,
							 .role = STORAGE_DISK,
							 .drive = i };
	for (unsigned k = 0; k < 2; k++) {
		if (!boot[k])
			continue;
		src[n] = (struct storage_src){ .path = boot[k],
					       .id = "",
					       .role = k ? STORAGE_INITRD : STORAGE_KERNEL,
					       .owned = true };
		if ((rc = block_open(boot[k], BLOCK_FORMAT_RAW, true, 4, mg->loop, &src[n].b))) {
			cv_err("cannot send the %s '%s' along", k ? "initrd" : "kernel", boot[k]);
			for (unsigned i = 0; i < n; i++)
				if (src[i].owned)
					src[i].b->ops->close(src[i].b);
			return rc;
		}
		n++;
	}
	return storage_out_start(&mg->disks, src, n);
}

int migration_start(struct migration **out, struct vm *vm, struct event_loop *loop, const struct mig_params *p,
		    void (*done)(void *ctx, enum mig_state end), void *ctx)
{
	struct migration *mg = calloc(1, sizeof(*mg));
	int rc = CV_EFAIL;

	if (!mg) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	mg->vm = vm;
	mg->loop = loop;
	mg->done = done;
	mg->ctx = ctx;
	mg->link.fd = mg->efd = -1;
	mg->t0 = now_ms();
	mg->st.state = MIG_ACTIVE;
	mg->was_paused = vm->paused;
	mg->was_tracking = vm->dirty.on;
	pthread_mutex_init(&mg->lock, NULL);
	pthread_cond_init(&mg->cond, NULL);
	snprintf(mg->dest, sizeof(mg->dest), "%s", p->dest);
	snprintf(mg->token, sizeof(mg->token), "%s", p->token);
	mg->p = *p;
	mg->p.dest = mg->dest;
	mg->p.token = mg->token;
	mg->words = guest_mem_bitmap_words(&vm->mem);
	if (!(mg->send = calloc(mg->words, 8)) || !(mg->batch = malloc(MIG_MAX_RECORD))) {
		cv_err("out of memory");
		goto fail;
	}
	if ((mg->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 || event_loop_add(loop, mg->efd, EPOLLIN, on_step, mg))
		goto fail;
	mg->in_loop = true;
	if (p->max_time_ms) {
		if (event_timer_init(&mg->deadline, loop, on_deadline, mg))
			goto fail;
		mg->timer_ok = true;
		event_timer_arm(&mg->deadline, (uint64_t)p->max_time_ms * 1000000);
	}
	if (p->auto_converge) {
		if (event_timer_init(&mg->tick, loop, on_tick, mg))
			goto fail;
		mg->tick_ok = true;
		event_timer_arm(&mg->tick, (uint64_t)VM_THROTTLE_SLICE_MS * 1000000);
	}
	/* Connecting is quick or fails at once: done here, so that a wrong
	 * address is the request's error. */
	if ((rc = mg->link.fd = mig_connect(p->dest)) < 0)
		goto fail;
	if (p->copy_storage) {
		if ((rc = storage_start(mg)))
			goto fail;
		mg->disks_ok = true;
	}
	if (!mg->was_tracking && (rc = dirty_log_start(&vm->dirty, &vm->mem)))
		goto fail;
	if (pthread_create(&mg->thread, NULL, run, mg)) {
		cv_err("cannot start the migration thread");
		if (!mg->was_tracking)
			dirty_log_stop(&vm->dirty, &vm->mem);
		rc = CV_EFAIL;
		goto fail;
	}
	mg->thread_ok = true;
	*out = mg;
	return 0;
fail:
	migration_free(mg);
	return rc < 0 ? rc : CV_EFAIL;
}

void migration_cancel(struct migration *mg)
{
	fail(mg, "%s", "cancelled");
	/* The thread's next send or receive fails; the VM stays. */
	shutdown(mg->link.fd, SHUT_RDWR);
}

void migration_status(struct migration *mg, struct mig_status *st)
{
	pthread_mutex_lock(&mg->lock);
	*st = mg->st;
	st->round_done = mg->mem_done + (mg->disks_ok ? atomic_load(&mg->disks.done) : 0);
	if (st->state == MIG_ACTIVE)
		st->total_ms = now_ms() - mg->t0;
	pthread_mutex_unlock(&mg->lock);
}

void migration_free(struct migration *mg)
{
	if (!mg)
		return;
	if (mg->thread_ok) {
		/* Still running (the process ends): cut the stream and answer a
		 * step it may wait for, so that it ends at once. */
		shutdown(mg->link.fd, SHUT_RDWR);
		pthread_mutex_lock(&mg->lock);
		mg->aborted = true;
		pthread_cond_signal(&mg->cond);
		pthread_mutex_unlock(&mg->lock);
		pthread_join(mg->thread, NULL);
	}
	if (mg->timer_ok)
		event_timer_destroy(&mg->deadline);
	if (mg->tick_ok)
		event_timer_destroy(&mg->tick);
	if (mg->disks_ok)
		storage_out_stop(&mg->disks);
	if (mg->in_loop)
		event_loop_del(mg->loop, mg->efd);
	if (mg->efd >= 0)
		close(mg->efd);
	mig_tls_end(&mg->link);
	if (mg->link.fd >= 0)
		close(mg->link.fd);
	if (mg->state_ok)
		snap_file_writer_free(&mg->state);
	free(mg->send);
	free(mg->batch);
	pthread_mutex_destroy(&mg->lock);
	pthread_cond_destroy(&mg->cond);
	free(mg);
}
