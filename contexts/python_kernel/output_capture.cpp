#include "output_capture.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <streambuf>
#include <system_error>

namespace kh::python_kernel {

namespace {

// How long the reader waits between two messages of one stream: a loop printing as fast as it
// can yields a few hundred messages per second instead of one per line.
constexpr auto coalesce_interval = std::chrono::milliseconds(2);
// After a wake-up, the reader waits this long before reading, so the writes of one print()
// (text, then "\n") usually arrive as one message.
constexpr auto burst_delay = std::chrono::microseconds(200);
constexpr std::size_t max_chunk = 1 << 20;
constexpr int pipe_capacity = 1 << 20;

// A streambuf writing straight to a file descriptor (unbuffered).
class fd_streambuf final : public std::streambuf {
public:
    explicit fd_streambuf(int fd) : fd_(fd) {}

private:
    int_type overflow(int_type c) override {
        if (c == traits_type::eof()) {
            return traits_type::not_eof(c);
        }
        char ch = static_cast<char>(c);
        return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
    }
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        std::streamsize done = 0;
        while (done < n) {
            ssize_t w = ::write(fd_, s + done, static_cast<size_t>(n - done));
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                break;
            }
            done += w;
        }
        return done;
    }
    int fd_;
};

void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

// Number of trailing bytes of `s` that form the beginning of an incomplete UTF-8 sequence.
std::size_t incomplete_utf8_tail(const std::string& s) {
    const std::size_t n = s.size();
    for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
        const auto c = static_cast<unsigned char>(s[n - back]);
        if ((c & 0xC0) == 0x80) {
            continue;  // continuation byte: keep looking for the lead byte
        }
        std::size_t need = 1;
        if ((c & 0xE0) == 0xC0) {
            need = 2;
        } else if ((c & 0xF0) == 0xE0) {
            need = 3;
        } else if ((c & 0xF8) == 0xF0) {
            need = 4;
        }
        return need > back ? back : 0;
    }
    return 0;
}

}  // namespace

output_capture::output_capture() = default;

output_capture::~output_capture() { stop(); }

void output_capture::stop() {
    if (reader_.joinable()) {
        char b = 'x';
        (void)!::write(stop_pipe_[1], &b, 1);
        reader_.join();
    }
}

void output_capture::redirect() {
    std::fflush(stdout);
    std::fflush(stderr);
    log_fd_ = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (log_fd_ < 0) {
        throw_errno("dup(2)");
    }
    for (int target = 1; target <= 2; ++target) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw_errno("pipe2");
        }
        (void)::fcntl(fds[1], F_SETPIPE_SZ, pipe_capacity);
        if (::dup2(fds[1], target) < 0) {  // the duplicate does not have O_CLOEXEC: children inherit it
            throw_errno("dup2");
        }
        ::close(fds[1]);
        ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
        channels_[target - 1].read_fd = fds[0];
    }
    if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
        throw_errno("pipe2");
    }
    // The kernel's own diagnostics (xeus writes to std::cerr/std::clog) go to the original stderr.
    // Never destroyed: the streams flush into it from std::ios_base::Init's destructor, which runs
    // after every function-local static of ours is gone (a static here was used after its end).
    static fd_streambuf* const log_buf = new fd_streambuf(log_fd_);
    std::cout.rdbuf(log_buf);
    std::cerr.rdbuf(log_buf);
    std::clog.rdbuf(log_buf);
}

void output_capture::start(sink out) {
    sink_ = std::move(out);
    reader_ = std::thread([this] { run(); });
}

void output_capture::flush() {
    std::fflush(stdout);
    std::fflush(stderr);
    std::lock_guard lock(mutex_);
    for (auto& ch : channels_) {
        drain(ch, true);
    }
}

bool output_capture::drain(channel& ch, bool final_chunk) {
    std::string text = std::move(ch.pending);
    ch.pending.clear();
    bool open = true;
    char buf[65536];
    while (text.size() < max_chunk) {
        ssize_t n = ::read(ch.read_fd, buf, sizeof buf);
        if (n > 0) {
            text.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        open = n < 0;  // EAGAIN: nothing more for now; 0: every writer closed the pipe
        break;
    }
    if (!final_chunk) {
        const std::size_t tail = incomplete_utf8_tail(text);
        if (tail > 0) {
            ch.pending = text.substr(text.size() - tail);
            text.resize(text.size() - tail);
        }
    }
    if (!text.empty() && sink_) {
        sink_(ch.name, std::move(text));
        ch.last_sent = std::chrono::steady_clock::now();
    }
    return open;
}

void output_capture::run() {
    for (;;) {
        pollfd fds[3] = {{channels_[0].read_fd, POLLIN, 0},
                         {channels_[1].read_fd, POLLIN, 0},
                         {stop_pipe_[0], POLLIN, 0}};
        int r = ::poll(fds, 3, -1);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if (fds[2].revents) {
            return;
        }
        for (int i = 0; i < 2; ++i) {
            if (!(fds[i].revents & (POLLIN | POLLHUP))) {
                continue;
            }
            auto& ch = channels_[i];
            std::chrono::steady_clock::duration wait =
                ch.last_sent + coalesce_interval - std::chrono::steady_clock::now();
            std::this_thread::sleep_for(std::max<std::chrono::steady_clock::duration>(wait, burst_delay));
            std::lock_guard lock(mutex_);
            drain(ch, false);
        }
    }
}

}  // namespace kh::python_kernel
