#include "sigint_control.hpp"

#include <pthread.h>
#include <signal.h>
#include <time.h>

namespace kh::python_kernel {

namespace {

sigset_t sigint_set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    return set;
}

}  // namespace

void block_sigint() {
    sigset_t set = sigint_set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void allow_sigint(bool allowed) {
    sigset_t set = sigint_set();
    if (!allowed) {
        pthread_sigmask(SIG_BLOCK, &set, nullptr);
        return;
    }
    timespec zero{0, 0};
    while (sigtimedwait(&set, nullptr, &zero) == SIGINT) {
        // discard SIGINTs that arrived while idle
    }
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace kh::python_kernel
