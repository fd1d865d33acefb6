#pragma once

namespace kh::python_kernel {

// SIGINT policy of the kernel (see shared/reference/xeus-and-platform-notes.md, pitfall 3):
// SIGINT is blocked in every thread except while the main thread runs user code. An idle
// SIGINT (jupyter_client sends one before every shutdown) therefore stays pending and is
// discarded before the next cell, instead of interrupting zmq_poll or tripping Python's handler.

// Blocks SIGINT in the calling thread; call first thing in main() so every thread inherits it.
void block_sigint();

// Main thread only: unblock (after discarding any pending SIGINT) or block again.
void allow_sigint(bool allowed);

}  // namespace kh::python_kernel
