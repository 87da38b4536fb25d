#include "util/signals.h"

#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>

int stop_signals_fd(int also_block)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (also_block)
		sigaddset(&set, also_block);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -1;
	if (also_block)
		sigdelset(&set, also_block);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}
