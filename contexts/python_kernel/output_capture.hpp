#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace kh::python_kernel {

// Captures file descriptors 1 and 2 of the kernel process: both are redirected to pipes, so
// whatever Python, C extensions and child processes (os.system, subprocess without capture) write
// there becomes `stream` output. A reader thread forwards chunks as they arrive (live streaming
// while a cell runs); `flush()` on the main thread forwards everything written so far, which
// keeps the order of streams relative to rich outputs, results and the reply.
//
// The original descriptors are kept as the kernel's own log (std::cout/std::cerr/std::clog are
// pointed at them), so diagnostics of the kernel never reach the frontend and can never block on
// a full pipe.
class output_capture {
public:
    // Receives "stdout" or "stderr" and the text (raw bytes; invalid UTF-8 is replaced when the
    // message is serialized). Called under the capture's lock, from the reader thread or from
    // the thread calling flush().
    using sink = std::function<void(const std::string& name, std::string text)>;

    output_capture();
    ~output_capture();
    output_capture(const output_capture&) = delete;
    output_capture& operator=(const output_capture&) = delete;

    // Redirects fds 1 and 2. Call before any other thread starts.
    void redirect();
    // Starts forwarding to `out`.
    void start(sink out);
    // Forwards everything written to fds 1 and 2 so far.
    void flush();
    // Stops the reader thread (what is still in the pipes stays there). Idempotent.
    void stop();

    int log_fd() const { return log_fd_; }

private:
    struct channel {
        const char* name;
        int read_fd = -1;
        std::string pending;  // an incomplete UTF-8 sequence kept for the next chunk
        std::chrono::steady_clock::time_point last_sent{};
    };

    void run();
    // Reads what is available on `ch` and forwards it; returns false on EOF. Caller holds mutex_.
    bool drain(channel& ch, bool final_chunk);

    std::array<channel, 2> channels_{{{"stdout"}, {"stderr"}}};
    int log_fd_ = -1;
    int stop_pipe_[2] = {-1, -1};
    sink sink_;
    std::mutex mutex_;
    std::thread reader_;
};

}  // namespace kh::python_kernel
