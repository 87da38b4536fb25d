#include "mmds/tcp.h"

#include <stdlib.h>
#include <string.h>

#include "net/dhcp.h"
#include "util/bytes.h"

enum { FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10 };
enum conn_state { C_FREE, C_SYN_RCVD, C_OPEN };

#define SEQ_LT(a, b) ((int32_t)((a) - (b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((a) - (b)) <= 0)

struct conn {
	enum conn_state state;
	uint32_t raddr;
	uint16_t rport;
	uint32_t iss, snd_una, snd_nxt, snd_max; /* snd_max: the highest sent */
	uint32_t data_end;                       /* after the last byte queued */
	uint32_t rcv_nxt;
	uint32_t peer_wnd;
	uint16_t peer_mss;
	uint8_t rbuf[TCP_RCV_BUF];
	size_t rlen;
	char *out; /* unacknowledged response bytes; out[0] is sequence out_seq */
	size_t out_len;
	uint32_t out_seq;
	bool fin_rcvd, fin_queued, ack_now, done_after_ack;
	uint64_t rto_at; /* 0: no timer */
	unsigned rto_ms, retries;
	bool probe; /* the window is shut: a timer sends one byte anyway */
	uint64_t last_rx;
};

struct rst {
	uint32_t raddr, seq, ack;
	uint16_t rport;
	uint8_t flags;
};

struct tcp_server {
	uint32_t laddr;
	uint16_t lport;
	struct tcp_app app;
	uint32_t iss_next;
	struct conn c[TCP_MAX_CONNS];
	struct rst rst[TCP_MAX_RESETS];
	unsigned nrst, cursor;
};

struct seg {
	uint16_t sport, dport, wnd, mss;
	uint32_t seq, ack;
	uint8_t flags;
	const uint8_t *data;
	size_t len;
};

uint16_t tcp_checksum(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len)
{
	uint8_t ph[12];

	put32(ph, src);
	put32(ph + 4, dst);
	ph[8] = 0;
	ph[9] = 6;
	put16(ph + 10, (uint16_t)len);
	return dhcp_ip_checksum(seg, len, (uint16_t)~dhcp_ip_checksum(ph, sizeof(ph), 0));
}

struct tcp_server *tcp_server_new(uint32_t laddr, uint16_t lport, const struct tcp_app *app, uint32_t iss_seed)
{
	struct tcp_server *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->laddr = laddr;
	t->lport = lport;
	t->app = *app;
	t->iss_next = iss_seed;
	return t;
}

static void conn_free(struct conn *c)
{
	free(c->out);
	memset(c, 0, sizeof(*c));
}

void tcp_server_free(struct tcp_server *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < TCP_MAX_CONNS; i++)
		conn_free(&t->c[i]);
	free(t);
}

unsigned tcp_connections(const struct tcp_server *t)
{
	unsigned n = 0;

	for (unsigned i = 0; i < TCP_MAX_CONNS; i++)
		n += t->c[i].state != C_FREE;
	return n;
}

static bool parse(const uint8_t *p, size_t len, struct seg *s)
{
	size_t doff;

	if (len < 20)
		return false;
	doff = (size_t)(p[12] >> 4) * 4;
	if (doff < 20 || doff > len)
		return false;
	*s = (struct seg){ .sport = be16(p), .dport = be16(p + 2), .seq = be32(p + 4), .ack = be32(p + 8),
			   .flags = p[13] & 0x3f, .wnd = be16(p + 14), .data = p + doff, .len = len - doff };
	/* Options: only MSS matters (on a SYN). */
	for (size_t i = 20; i < doff;) {
		uint8_t kind = p[i], olen;

		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= doff || (olen = p[i + 1]) < 2 || i + olen > doff)
			break;
		if (kind == 2 && olen == 4)
			s->mss = be16(p + i + 2);
		i += olen;
	}
	return true;
}

/* A reset for a segment no connection takes (RFC 793's rules for the
 * reset's numbers); dropped when the queue is full. */
static void queue_rst(struct tcp_server *t, uint32_t raddr, const struct seg *s)
{
	struct rst *r;

	if (s->flags & RST || t->nrst == TCP_MAX_RESETS)
		return;
	r = &t->rst[t->nrst++];
	r->raddr = raddr;
	r->rport = s->sport;
	if (s->flags & ACK) {
		r->seq = s->ack;
		r->ack = 0;
		r->flags = RST;
	} else {
		r->seq = 0;
		r->ack = s->seq + (uint32_t)s->len + !!(s->flags & SYN) + !!(s->flags & FIN);
		r->flags = RST | ACK;
	}
}

static void reset_conn(struct tcp_server *t, struct conn *c)
{
	if (t->nrst < TCP_MAX_RESETS)
		t->rst[t->nrst++] = (struct rst){ .raddr = c->raddr, .rport = c->rport, .seq = c->snd_nxt,
						  .ack = c->rcv_nxt, .flags = RST | ACK };
	conn_free(c);
}

static struct conn *find(struct tcp_server *t, uint32_t raddr, uint16_t rport)
{
	for (unsigned i = 0; i < TCP_MAX_CONNS; i++)
		if (t->c[i].state != C_FREE && t->c[i].raddr == raddr && t->c[i].rport == rport)
			return &t->c[i];
	return NULL;
}

static struct conn *slot(struct tcp_server *t, uint64_t now_ms)
{
	struct conn *idle = NULL;

	for (unsigned i = 0; i < TCP_MAX_CONNS; i++) {
		struct conn *c = &t->c[i];

		if (c->state == C_FREE)
			return c;
		if (now_ms - c->last_rx >= TCP_IDLE_EVICT_MS && (!idle || c->last_rx < idle->last_rx))
			idle = c;
	}
	if (idle)
		reset_conn(t, idle);
	return idle;
}

static void open_conn(struct tcp_server *t, uint32_t raddr, const struct seg *s, uint64_t now_ms)
{
	struct conn *c = slot(t, now_ms);

	if (!c) {
		queue_rst(t, raddr, s);
		return;
	}
	c->state = C_SYN_RCVD;
	c->raddr = raddr;
	c->rport = s->sport;
	c->iss = t->iss_next;
	t->iss_next += 64000 + (uint32_t)(now_ms * 250);
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->data_end = c->out_seq = c->iss + 1;
	c->rcv_nxt = s->seq + 1;
	c->peer_wnd = s->wnd;
	c->peer_mss = s->mss && s->mss < TCP_MSS ? s->mss : s->mss ? TCP_MSS : 536;
	c->rto_ms = TCP_RTO_MS;
	c->last_rx = now_ms;
}

/* Hands complete requests to the app while no response is outstanding. */
static void serve(struct tcp_server *t, struct conn *c, uint64_t now_ms)
{
	while (!c->out_len && !c->fin_queued && c->rlen) {
		char *resp = NULL;
		size_t rl = 0;
		bool close = false;
		long used = t->app.serve(t->app.ctx, c->rbuf, c->rlen, now_ms, &resp, &rl, &close);

		if (used < 0 || (!used && c->rlen == TCP_RCV_BUF) || (size_t)used > c->rlen) {
			free(resp);
			reset_conn(t, c);
			return;
		}
		if (!used)
			break;
		memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
		c->rlen -= (size_t)used;
		c->ack_now = true; /* the window opened */
		if (rl) {
			c->out = resp;
			c->out_len = rl;
			c->out_seq = c->data_end;
			c->data_end += (uint32_t)rl;
		} else {
			free(resp);
		}
		c->fin_queued = close;
	}
	if (c->fin_rcvd && !c->out_len)
		c->fin_queued = true;
}

/* The peer acknowledged up to ack. */
static void acked(struct conn *c, uint32_t ack, uint64_t now_ms)
{
	uint32_t done;

	/* Unsigned distances: an ACK half the sequence space away is neither
	 * before nor after anything. */
	if (!(ack - c->snd_una) || ack - c->snd_una > c->snd_max - c->snd_una)
		return;
	c->snd_una = ack;
	if (SEQ_LT(c->snd_nxt, ack))
		c->snd_nxt = ack; /* after a rewind, the peer had more than we resent */
	if (c->state == C_SYN_RCVD)
		c->state = C_OPEN;
	if (c->out_len && SEQ_LT(c->out_seq, ack)) {
		done = ack - c->out_seq;
		if (done >= c->out_len) {
			free(c->out);
			c->out = NULL;
			c->out_seq += (uint32_t)c->out_len;
			c->out_len = 0;
		} else {
			memmove(c->out, c->out + done, c->out_len - done);
			c->out_len -= done;
			c->out_seq = ack;
		}
	}
	c->retries = 0;
	c->rto_ms = TCP_RTO_MS;
	c->rto_at = c->snd_una == c->snd_max ? 0 : now_ms + c->rto_ms;
}

static bool fin_acked(const struct conn *c)
{
	return c->fin_queued && c->snd_una == c->data_end + 1;
}

void tcp_input(struct tcp_server *t, uint32_t raddr, const uint8_t *p, size_t len, uint64_t now_ms)
{
	struct seg s;
	struct conn *c;

	if (!parse(p, len, &s))
		return;
	if (s.dport != t->lport) {
		queue_rst(t, raddr, &s);
		return;
	}
	c = find(t, raddr, s.sport);
	if (c && (s.flags & RST)) {
		conn_free(c);
		return;
	}
	if (c && (s.flags & SYN)) {
		if (c->state == C_SYN_RCVD && s.seq + 1 == c->rcv_nxt) {
			c->snd_nxt = c->iss; /* our SYN-ACK was not seen: again */
			c->last_rx = now_ms;
			return;
		}
		conn_free(c); /* a new connection on the same port */
		c = NULL;
	}
	if (!c) {
		if ((s.flags & (SYN | ACK | RST | FIN)) == SYN)
			open_conn(t, raddr, &s, now_ms);
		else
			queue_rst(t, raddr, &s);
		return;
	}
	c->last_rx = now_ms;
	if (!(s.flags & ACK))
		return; /* after the SYN every segment carries one */
	acked(c, s.ack, now_ms);
	c->peer_wnd = s.wnd;
	if (c->state == C_SYN_RCVD)
		return; /* it did not acknowledge our SYN */
	if (s.len || (s.flags & FIN)) {
		uint32_t off = c->rcv_nxt - s.seq; /* bytes already had (huge: a gap) */

		c->ack_now = true;
		if (off <= s.len) {
			size_t take = s.len - off, room = TCP_RCV_BUF - c->rlen;

			if (take > room)
				take = room;
			if (!c->fin_rcvd) {
				memcpy(c->rbuf + c->rlen, s.data + off, take);
				c->rlen += take;
				c->rcv_nxt += (uint32_t)take;
				if ((s.flags & FIN) && take == s.len - off) {
					c->rcv_nxt++;
					c->fin_rcvd = true;
				}
			}
		}
	}
	if (fin_acked(c) && c->fin_rcvd) {
		/* Both halves closed: forget it once their FIN is acknowledged. */
		if (c->ack_now)
			c->done_after_ack = true;
		else
			conn_free(c);
		return;
	}
	serve(t, c, now_ms);
}

static size_t write_seg(const struct tcp_server *t, uint8_t *buf, size_t cap, uint32_t raddr, uint16_t rport,
			uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd, const void *data, size_t len,
			bool mss)
{
	size_t hl = mss ? 24 : 20;

	if (cap < hl + len)
		return 0;
	put16(buf, t->lport);
	put16(buf + 2, rport);
	put32(buf + 4, seq);
	put32(buf + 8, ack);
	buf[12] = (uint8_t)(hl / 4 << 4);
	buf[13] = flags;
	put16(buf + 14, wnd);
	put16(buf + 16, 0);
	put16(buf + 18, 0);
	if (mss) {
		buf[20] = 2;
		buf[21] = 4;
		put16(buf + 22, TCP_MSS);
	}
	if (len)
		memcpy(buf + hl, data, len);
	put16(buf + 16, tcp_checksum(t->laddr, raddr, buf, hl + len));
	return hl + len;
}

/* A timer ran out: send again from the first unacknowledged byte. False
 * when the connection gave up (reset). */
static bool timed_out(struct tcp_server *t, struct conn *c, uint64_t now_ms)
{
	if (!c->rto_at || now_ms < c->rto_at)
		return true;
	if (++c->retries > TCP_MAX_RETRIES) {
		reset_conn(t, c);
		return false;
	}
	c->probe = c->snd_una == c->snd_max; /* nothing in flight: the window is shut */
	c->snd_nxt = c->snd_una;
	c->rto_ms = c->rto_ms * 2 > TCP_RTO_MAX_MS ? TCP_RTO_MAX_MS : c->rto_ms * 2;
	c->rto_at = now_ms + c->rto_ms;
	return true;
}

static size_t conn_output(struct tcp_server *t, struct conn *c, uint8_t *buf, size_t cap, uint64_t now_ms)
{
	uint16_t wnd = (uint16_t)(TCP_RCV_BUF - c->rlen);
	uint32_t end = c->out_seq + (uint32_t)c->out_len, sent, inflight, allow;
	size_t n = 0, len;
	uint8_t flags = ACK;

	if (!timed_out(t, c, now_ms))
		return 0;
	sent = c->snd_nxt - c->out_seq;
	if (c->state == C_SYN_RCVD) {
		if (c->snd_nxt != c->iss)
			return 0;
		if (!(len = write_seg(t, buf, cap, c->raddr, c->rport, c->iss, c->rcv_nxt, SYN | ACK, wnd, NULL, 0, true)))
			return 0;
		c->snd_nxt = c->iss + 1;
		c->snd_max = c->snd_nxt;
		if (!c->rto_at)
			c->rto_at = now_ms + c->rto_ms;
		return len;
	}
	inflight = c->snd_nxt - c->snd_una;
	allow = c->peer_wnd > inflight ? c->peer_wnd - inflight : 0;
	if (sent < c->out_len) {
		n = c->out_len - sent;
		if (!allow && c->probe)
			allow = 1;
		if (n > allow)
			n = allow;
		if (n > c->peer_mss)
			n = c->peer_mss;
	}
	if (n) {
		flags |= PSH;
		c->probe = false;
	} else if (c->fin_queued && c->snd_nxt == end && SEQ_LT(c->snd_max, end + 1)) {
		flags |= FIN;
	} else if (c->fin_queued && c->snd_nxt == end && c->snd_max == end + 1 && c->snd_una != c->snd_max) {
		flags |= FIN; /* resent after a timeout */
	} else if (!c->ack_now) {
		if (sent < c->out_len && !c->rto_at)
			c->rto_at = now_ms + c->rto_ms; /* shut window: probe later */
		return 0;
	}
	len = write_seg(t, buf, cap, c->raddr, c->rport, c->snd_nxt, c->rcv_nxt, flags, wnd,
			n ? c->out + sent : NULL, n, false);
	if (!len)
		return 0;
	c->ack_now = false;
	c->snd_nxt += (uint32_t)n + !!(flags & FIN);
	if (SEQ_LT(c->snd_max, c->snd_nxt))
		c->snd_max = c->snd_nxt;
	if ((n || (flags & FIN)) && !c->rto_at)
		c->rto_at = now_ms + c->rto_ms;
	if (c->done_after_ack && !n && !(flags & FIN))
		conn_free(c);
	return len;
}

size_t tcp_output(struct tcp_server *t, uint8_t *buf, size_t cap, uint64_t now_ms, uint32_t *raddr)
{
	if (t->nrst) {
		struct rst *r = &t->rst[--t->nrst];

		*raddr = r->raddr;
		return write_seg(t, buf, cap, r->raddr, r->rport, r->seq, r->ack, r->flags, 0, NULL, 0, false);
	}
	for (unsigned k = 0; k < TCP_MAX_CONNS; k++) {
		struct conn *c = &t->c[(t->cursor + k) % TCP_MAX_CONNS];
		uint32_t ra = c->raddr;
		size_t len;

		if (c->state == C_FREE || !(len = conn_output(t, c, buf, cap, now_ms))) {
			if (t->nrst) /* it gave up: its reset goes first */
				return tcp_output(t, buf, cap, now_ms, raddr);
			continue;
		}
		t->cursor = (t->cursor + k + 1) % TCP_MAX_CONNS;
		*raddr = ra;
		return len;
	}
	return 0;
}

long tcp_next_timeout(const struct tcp_server *t, uint64_t now_ms)
{
	long best = -1;

	for (unsigned i = 0; i < TCP_MAX_CONNS; i++) {
		const struct conn *c = &t->c[i];
		long d;

		if (c->state == C_FREE || !c->rto_at)
			continue;
		d = c->rto_at > now_ms ? (long)(c->rto_at - now_ms) : 0;
		if (best < 0 || d < best)
			best = d;
	}
	return best;
}
