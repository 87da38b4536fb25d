/* Stop signals (SIGINT, SIGTERM, SIGHUP) taken synchronously through a
 * signalfd instead of by handlers. */
#ifndef CELLVM_UTIL_SIGNALS_H
#define CELLVM_UTIL_SIGNALS_H

/* Blocks the stop signals in the calling thread (threads created later
 * inherit the mask), and also `also_block` unless it is 0, which the
 * signalfd does not take; ignores SIGPIPE. Returns a non-blocking,
 * close-on-exec signalfd for the stop signals, or -1. */
int stop_signals_fd(int also_block);

#endif
