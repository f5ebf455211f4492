#pragma once
// SIGINT and SIGTERM for a daemon's main thread: blocked before any other
// thread starts (threads inherit the mask, so none of them takes them),
// then waited for with sigwait or sigtimedwait on the returned set.

#include <pthread.h>
#include <signal.h>

namespace setdiag {

inline sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

}  // namespace setdiag
