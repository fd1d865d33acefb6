#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>
#include <xeus/xeus_context.hpp>
#include <xeus/xkernel_configuration.hpp>
#include <xeus/xserver_zmq.hpp>

namespace kh::python_kernel {

namespace nl = nlohmann;

// xeus 2.4.1's single-threaded ZeroMQ server (shell and control polled on the main thread, where
// Python runs), with these changes:
//  - publishing is thread-safe: the output reader thread publishes stdout/stderr while the main
//    thread runs a cell (xeus' inproc PUB socket is used under a mutex, which also provides the
//    memory barrier ZeroMQ requires when a socket changes threads);
//  - EINTR never escapes: xeus' own loop lets zmq::error_t(EINTR) terminate the process;
//  - a hook sees every shell message before xeus dispatches it;
//  - stop_on_error aborts exactly the execute requests that were queued before the error reply
//    went out, each with busy/idle and an `aborted` reply. xeus 2.4.1 polls the socket after the
//    reply (for 50 ms after each aborted message), so it also swallowed the cell a client sends
//    once it has seen the error, without an idle status, and it aborted every request type;
//  - every request gets a reply: a message type xeus does not handle (it would only log it, and
//    debug_request without a debugger) gets an error reply `<type>_reply` with busy/idle;
//  - waiting for an input_reply can be interrupted (SIGINT raises KeyboardInterrupt in input()),
//    and input_request carries `password` (xeus 2.4.1 sends `pwd`).
class kernel_server final : public xeus::xserver_zmq {
public:
    using pre_dispatch_hook = std::function<void(const xeus::xmessage&)>;
    // Called while waiting for an input_reply, after a signal and every 100 ms; throws to abort
    // the wait (the kernel raises KeyboardInterrupt when SIGINT tripped Python's handler).
    using interrupted_hook = std::function<void()>;
    // Called on the main thread once the shell loop ends, before the channels close and the
    // process exits: stops the threads that publish (the output reader), so none of them signs a
    // message while exit() tears down OpenSSL and the statics.
    using exit_hook = std::function<void()>;

    kernel_server(zmq::context_t& context, const xeus::xconfiguration& config,
                  nl::json::error_handler_t error_handler);

    // The xkernel server builder: a plain function, as xeus requires.
    static std::unique_ptr<xeus::xserver> make(xeus::xcontext& context,
                                               const xeus::xconfiguration& config,
                                               nl::json::error_handler_t error_handler);

    void set_pre_dispatch_hook(pre_dispatch_hook hook);
    void set_interrupted_hook(interrupted_hook hook);
    void set_exit_hook(exit_hook hook);

    // Publishes an iopub message from any thread. Its parent is the last shell request that runs
    // user code (execute_request, comm_open, comm_msg), as ipykernel does for output written by
    // background threads and child processes.
    void publish_from_any_thread(const std::string& msg_type, nl::json content);
    void publish_stream(const std::string& name, std::string text);

private:
    void publish_impl(xeus::xpub_message msg, xeus::channel c) override;
    void send_stdin_impl(xeus::xmessage msg) override;
    void start_impl(xeus::xpub_message start_msg) override;
    void abort_queue_impl(const listener& l, long polling_interval) override;
    void send_shell_impl(xeus::xmessage msg) override;

    void poll_once();
    void dispatch_shell(xeus::xmessage msg);
    void remember_parent(const xeus::xmessage& msg);
    void publish_status(const char* state, const nl::json& parent);
    void send_aborted_reply(const xeus::xmessage& request);
    // True (after replying) when xeus would leave `msg` unanswered.
    bool reply_if_unsupported(const xeus::xmessage& msg, zmq::socket_t& socket);

    pre_dispatch_hook pre_dispatch_;
    interrupted_hook interrupted_;
    exit_hook exit_;
    // Shell requests read from the socket when a cell failed (before its reply was sent): the
    // only candidates for stop_on_error; whatever is not aborted is dispatched next, in order.
    std::deque<xeus::xmessage> pending_;

    std::mutex publish_mutex_;  // guards m_publisher_pub and the fields below
    nl::json stream_parent_ = nl::json::object();
    std::string topic_prefix_;
    std::string user_name_;
    std::string session_id_;
};

}  // namespace kh::python_kernel
