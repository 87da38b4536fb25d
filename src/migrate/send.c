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
#include <time.h>
#include <unistd.h>

#include "migrate/stream.h"
#include "snapshot/file.h"
#include "util/err.h"
#include "vmm/disks.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

enum step { STEP_NONE, STEP_STOP, STEP_END };

struct migration {
	struct vm *vm;
	struct event_loop *loop;
	char dest[256], token[MIG_MAX_TOKEN + 1];
	unsigned downtime_ms;
	void (*done)(void *ctx, bool ok);
	void *ctx;
	int fd, efd;
	pthread_t thread;
	bool thread_ok, in_loop;
	uint64_t *send; /* this round's pages */
	uint64_t words;
	uint8_t *batch; /* a PAGES record's payload */
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
	unsigned max_time_ms;
	double t0, t_stop;
	struct mig_status st; /* under lock */
};

const char *mig_state_name(enum mig_state s)
{
	static const char *const names[] = { "none", "active", "completed", "failed" };

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

/* Sends the pages set in mg->send (all non-zero ones if `skip_zero`). */
static int send_pages(struct migration *mg, bool skip_zero)
{
	struct guest_mem *m = &mg->vm->mem;
	uint64_t pages = m->size / MIG_PAGE;
	uint32_t n = 0;
	uint8_t *idx = mg->batch + 4, *data = mg->batch + 4 + MIG_BATCH * 8;
	int rc = 0;

	for (uint64_t p = 0; p < pages && !rc; p++) {
		const uint8_t *src = m->host + p * MIG_PAGE;
		uint64_t le = htole64(p);
		bool last = p + 1 == pages;

		if ((mg->send[p / 64] >> (p % 64)) & 1 && !(skip_zero && zero_page(src))) {
			memcpy(idx + n * 8, &le, 8);
			memcpy(data + (size_t)n * MIG_PAGE, src, MIG_PAGE);
			n++;
		}
		if (n && (n == MIG_BATCH || last)) {
			uint32_t count = htole32(n);

			memcpy(mg->batch, &count, 4);
			/* The index list, then the pages right after it. */
			rc = mig_send(mg->fd, MIG_PAGES, mg->batch, 4 + (size_t)n * 8, data, (size_t)n * MIG_PAGE);
			pthread_mutex_lock(&mg->lock);
			mg->st.pages += n;
			mg->st.bytes += 12 + (uint64_t)n * (8 + MIG_PAGE);
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

static int precopy(struct migration *mg)
{
	uint64_t ram = htole64(mg->vm->mem.size), dirty;
	double bw = 0; /* bytes per ms */
	int rc;

	memset(mg->send, 0xff, mg->words * 8);
	for (unsigned round = 0;; round++) {
		double t = now_ms();
		uint64_t before = mg->st.bytes;

		if (round == 0 && (rc = mig_send(mg->fd, MIG_RAM, &ram, 8, NULL, 0)))
			return rc;
		if ((rc = send_pages(mg, round == 0)))
			return rc;
		memset(mg->send, 0, mg->words * 8);
		if (now_ms() > t)
			bw = (double)(mg->st.bytes - before) / (now_ms() - t);
		if ((dirty = take_dirty(mg)) == UINT64_MAX)
			return CV_EFAIL;
		pthread_mutex_lock(&mg->lock);
		mg->st.round = round + 1;
		mg->st.dirty = dirty;
		pthread_mutex_unlock(&mg->lock);
		/* What is left fits the downtime at the bandwidth seen. */
		if (round + 1 >= MIG_MAX_ROUNDS || (bw > 0 && (double)dirty * MIG_PAGE / bw <= mg->downtime_ms))
			return 0;
	}
}

/* The destination's REPLY: 0 if it says go on, else CV_EFAIL with the
 * reason recorded. */
static int await_reply(struct migration *mg, const char *what)
{
	uint8_t reply[512];
	uint32_t type, code;
	long n = mig_recv(mg->fd, &type, reply, sizeof(reply) - 1);

	if (n < 4 || type != MIG_REPLY) {
		fail(mg, what, n < 0 ? strerror((int)-n) : "bad reply");
		return CV_EFAIL;
	}
	memcpy(&code, reply, 4);
	reply[n] = 0;
	if (le32toh(code)) {
		fail(mg, "the destination refused the VM: %s", (char *)reply + 4);
		return CV_EFAIL;
	}
	return 0;
}

static void *run(void *opaque)
{
	struct migration *mg = opaque;
	uint8_t hello[12];
	uint32_t v = htole32(MIG_VERSION);
	int rc;

	memcpy(hello, MIG_MAGIC, 8);
	memcpy(hello + 8, &v, 4);
	if ((rc = mig_send(mg->fd, MIG_HELLO, hello, sizeof(hello), mg->token, strlen(mg->token))))
		fail(mg, "the destination does not listen: %s", strerror(-rc));
	else
		rc = await_reply(mg, "the destination did not answer (%s)");
	if (!rc && (rc = precopy(mg))) {
		fail(mg, "sending memory failed: %s", strerror(-rc));
	} else if (!rc && (rc = ask(mg, STEP_STOP))) {
		fail(mg, "%s", "the VM could not be stopped for the last round");
	} else if (!rc) {
		/* The VM is paused; these are its last pages and its state. */
		if ((rc = send_pages(mg, false)) ||
		    (rc = mig_send(mg->fd, MIG_STATE, mg->state.out.buf, mg->state.out.len, NULL, 0)) ||
		    (rc = mig_send(mg->fd, MIG_END, NULL, 0, NULL, 0)))
			fail(mg, "sending the VM's state failed: %s", strerror(-rc));
		/* Without a reply saying it runs there, the VM stays here. */
		else
			rc = await_reply(mg, "the destination did not confirm the VM runs there (%s)");
	}
	pthread_mutex_lock(&mg->lock);
	mg->st.state = rc ? MIG_FAILED : MIG_COMPLETED;
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
	struct disk_layers none = { 0 };
	int rc;

	mg->t_stop = now_ms();
	if (!vm->paused && (rc = vm_pause(vm)))
		return rc;
	mg->stopped = true;
	if ((rc = vm_drain(vm)))
		return rc;
	vm_disks_release(vm);
	if (take_dirty(mg) == UINT64_MAX)
		return CV_EFAIL;
	mg->state_ok = true;
	if ((rc = vm_state_build(vm, &none, &mg->state)))
		return rc;
	if (mg->state.out.oom) {
		cv_err("migration: out of memory while encoding the VM's state");
		return CV_EFAIL;
	}
	snap_file_finish(&mg->state);
	return 0;
}

/* The VM stays here: as it was before the migration began. */
static void keep_vm(struct migration *mg)
{
	struct vm *vm = mg->vm;

	if (mg->stopped) {
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

static void on_deadline(void *opaque)
{
	struct migration *mg = opaque;
	char limit[32];

	/* Once the VM is stopped its state is on the way: no giving up then,
	 * the destination may be starting it. */
	if (mg->stopped)
		return;
	snprintf(limit, sizeof(limit), "%u ms", mg->max_time_ms);
	fail(mg, "not done within max_time (%s): the guest writes memory faster than it can be sent", limit);
	shutdown(mg->fd, SHUT_RDWR);
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
		bool ok;

		pthread_join(mg->thread, NULL);
		mg->thread_ok = false;
		if (mg->timer_ok)
			event_timer_cancel(&mg->deadline);
		pthread_mutex_lock(&mg->lock);
		ok = mg->st.state == MIG_COMPLETED;
		mg->st.total_ms = now_ms() - mg->t0;
		mg->st.downtime_ms = mg->stopped ? now_ms() - mg->t_stop : 0;
		pthread_mutex_unlock(&mg->lock);
		if (!ok)
			keep_vm(mg);
		mg->done(mg->ctx, ok);
	}
}

int migration_start(struct migration **out, struct vm *vm, struct event_loop *loop, const char *dest,
		    const char *token, unsigned downtime_ms, unsigned max_time_ms, void (*done)(void *ctx, bool ok),
		    void *ctx)
{
	struct migration *mg = calloc(1, sizeof(*mg));
	int rc = CV_EFAIL;

	if (!mg) {
		cv_err("out of memory");
		return CV_EFAIL;
	}
	mg->vm = vm;
	mg->loop = loop;
	mg->downtime_ms = downtime_ms;
	mg->done = done;
	mg->ctx = ctx;
	mg->fd = mg->efd = -1;
	mg->t0 = now_ms();
	mg->st.state = MIG_ACTIVE;
	mg->was_paused = vm->paused;
	mg->was_tracking = vm->dirty.on;
	pthread_mutex_init(&mg->lock, NULL);
	pthread_cond_init(&mg->cond, NULL);
	snprintf(mg->dest, sizeof(mg->dest), "%s", dest);
	snprintf(mg->token, sizeof(mg->token), "%s", token);
	mg->words = guest_mem_bitmap_words(&vm->mem);
	if (!(mg->send = calloc(mg->words, 8)) || !(mg->batch = malloc(MIG_MAX_RECORD))) {
		cv_err("out of memory");
		goto fail;
	}
	if ((mg->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 || event_loop_add(loop, mg->efd, EPOLLIN, on_step, mg))
		goto fail;
	mg->in_loop = true;
	mg->max_time_ms = max_time_ms;
	if (max_time_ms) {
		if (event_timer_init(&mg->deadline, loop, on_deadline, mg))
			goto fail;
		mg->timer_ok = true;
		event_timer_arm(&mg->deadline, (uint64_t)max_time_ms * 1000000);
	}
	/* Connecting is quick or fails at once: done here, so that a wrong
	 * address is the request's error. */
	if ((rc = mg->fd = mig_connect(dest)) < 0)
		goto fail;
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
	shutdown(mg->fd, SHUT_RDWR);
}

void migration_status(struct migration *mg, struct mig_status *st)
{
	pthread_mutex_lock(&mg->lock);
	*st = mg->st;
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
		shutdown(mg->fd, SHUT_RDWR);
		pthread_mutex_lock(&mg->lock);
		mg->aborted = true;
		pthread_cond_signal(&mg->cond);
		pthread_mutex_unlock(&mg->lock);
		pthread_join(mg->thread, NULL);
	}
	if (mg->timer_ok)
		event_timer_destroy(&mg->deadline);
	if (mg->in_loop)
		event_loop_del(mg->loop, mg->efd);
	if (mg->efd >= 0)
		close(mg->efd);
	if (mg->fd >= 0)
		close(mg->fd);
	if (mg->state_ok)
		snap_file_writer_free(&mg->state);
	free(mg->send);
	free(mg->batch);
	pthread_mutex_destroy(&mg->lock);
	pthread_cond_destroy(&mg->cond);
	free(mg);
}
