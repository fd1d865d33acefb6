#include "kernel_server.hpp"

#include <cerrno>
#include <iostream>
#include <set>
#include <utility>

#include <xeus/xmiddleware.hpp>
#include <xeus/xzmq_serializer.hpp>
#include <zmq_addon.hpp>

namespace kh::python_kernel {

kernel_server::kernel_server(zmq::context_t& context, const xeus::xconfiguration& config,
                             nl::json::error_handler_t error_handler)
    : xeus::xserver_zmq(context, config, error_handler) {
    // The inproc PUB socket feeding xeus' iopub thread drops messages beyond its high-water mark
    // (1000). Streams from a fast loop must not be lost, so make that hop unbounded. The option
    // only applies to new connections, hence the reconnect.
    const std::string endpoint = xeus::get_publisher_end_point();
    m_publisher_pub.disconnect(endpoint);
    m_publisher_pub.set(zmq::sockopt::sndhwm, 0);
    m_publisher_pub.connect(endpoint);
}

std::unique_ptr<xeus::xserver> kernel_server::make(xeus::xcontext& context,
                                                   const xeus::xconfiguration& config,
                                                   nl::json::error_handler_t error_handler) {
    return std::make_unique<kernel_server>(context.get_wrapped_context<zmq::context_t>(), config,
                                           error_handler);
}

void kernel_server::set_pre_dispatch_hook(pre_dispatch_hook hook) { pre_dispatch_ = std::move(hook); }

void kernel_server::set_interrupted_hook(interrupted_hook hook) { interrupted_ = std::move(hook); }

void kernel_server::set_exit_hook(exit_hook hook) { exit_ = std::move(hook); }

void kernel_server::publish_stream(const std::string& name, std::string text) {
    nl::json content;
    content["name"] = name;
    content["text"] = std::move(text);
    publish_from_any_thread("stream", std::move(content));
}

void kernel_server::publish_from_any_thread(const std::string& msg_type, nl::json content) {
    std::lock_guard lock(publish_mutex_);
    xeus::xpub_message msg(topic_prefix_ + msg_type,
                           xeus::make_header(msg_type, user_name_, session_id_), stream_parent_,
                           nl::json::object(), std::move(content), xeus::buffer_sequence());
    zmq::multipart_t wire =
        xeus::xzmq_serializer::serialize_iopub(std::move(msg), *p_auth, m_error_handler);
    wire.send(m_publisher_pub);
}

void kernel_server::publish_impl(xeus::xpub_message msg, xeus::channel) {
    std::lock_guard lock(publish_mutex_);
    zmq::multipart_t wire =
        xeus::xzmq_serializer::serialize_iopub(std::move(msg), *p_auth, m_error_handler);
    wire.send(m_publisher_pub);
}

void kernel_server::send_stdin_impl(xeus::xmessage msg) {
    // Drop replies to earlier input requests that were abandoned (interrupted).
    for (;;) {
        zmq::multipart_t stale;
        if (!stale.recv(m_stdin, ZMQ_DONTWAIT)) {
            break;
        }
    }
    // xeus 2.4.1 names the password flag "pwd"; the protocol (and every frontend) says "password".
    nl::json content = msg.content();
    if (auto pwd = content.find("pwd"); pwd != content.end()) {
        content["password"] = *pwd;
        content.erase("pwd");
    }
    xeus::xmessage fixed(msg.identities(), msg.header(), msg.parent_header(), msg.metadata(),
                         std::move(content), xeus::buffer_sequence());
    zmq::multipart_t wire = xeus::xzmq_serializer::serialize(std::move(fixed), *p_auth, m_error_handler);
    wire.send(m_stdin);

    // Wait with a short timeout: a SIGINT that lands before the wait starts trips Python's handler
    // without interrupting anything, so the hook also checks for it periodically.
    zmq::multipart_t reply;
    for (;;) {
        try {
            zmq::pollitem_t item{m_stdin, 0, ZMQ_POLLIN, 0};
            if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) > 0 &&
                reply.recv(m_stdin, ZMQ_DONTWAIT)) {
                break;
            }
        } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) {
                throw;
            }
        }
        if (interrupted_) {
            interrupted_();  // throws when an interrupt must abort input()
        }
    }
    xeus::xmessage parsed = xeus::xzmq_serializer::deserialize(reply, *p_auth);
    notify_stdin_listener(std::move(parsed));
}

void kernel_server::start_impl(xeus::xpub_message start_msg) {
    {
        std::lock_guard lock(publish_mutex_);
        const std::string& topic = start_msg.topic();  // "kernel_core.<kernel id>.status"
        topic_prefix_ = topic.substr(0, topic.rfind('.') + 1);
        user_name_ = start_msg.header().value("username", "");
        session_id_ = start_msg.header().value("session", "");
    }
    start_publisher_thread();
    start_heartbeat_thread();
    m_request_stop = false;
    publish(std::move(start_msg), xeus::channel::SHELL);
    while (!m_request_stop) {
        poll_once();
    }
    if (exit_) {
        exit_();
    }
    stop_channels();
    // Like xserver_zmq: the interpreter already ran atexit handlers and flushed its streams in
    // shutdown_request_impl; finalizing Python here could block on user threads.
    std::exit(0);
}

void kernel_server::publish_status(const char* state, const nl::json& parent) {
    std::lock_guard lock(publish_mutex_);
    xeus::xpub_message msg(topic_prefix_ + "status",
                           xeus::make_header("status", user_name_, session_id_), parent,
                           nl::json::object(), nl::json{{"execution_state", state}},
                           xeus::buffer_sequence());
    zmq::multipart_t wire =
        xeus::xzmq_serializer::serialize_iopub(std::move(msg), *p_auth, m_error_handler);
    wire.send(m_publisher_pub);
}

void kernel_server::send_aborted_reply(const xeus::xmessage& request) {
    // ipykernel's shape for requests aborted after an error (status "aborted").
    xeus::xmessage reply(request.identities(),
                         xeus::make_header("execute_reply", user_name_, session_id_),
                         request.header(), nl::json::object(), nl::json{{"status", "aborted"}},
                         xeus::buffer_sequence());
    zmq::multipart_t wire = xeus::xzmq_serializer::serialize(std::move(reply), *p_auth, m_error_handler);
    wire.send(m_shell);
}

void kernel_server::send_shell_impl(xeus::xmessage msg) {
    if (msg.header().value("msg_type", "") == "execute_reply" &&
        msg.content().value("status", "") == "error") {
        // Everything queued now was sent before the client could see this error.
        for (;;) {
            zmq::multipart_t wire;
            try {
                if (!wire.recv(m_shell, ZMQ_DONTWAIT)) {
                    break;
                }
                pending_.push_back(xeus::xzmq_serializer::deserialize(wire, *p_auth));
            } catch (const std::exception& e) {
                std::cerr << "kernel-host-python: dropped a message: " << e.what() << std::endl;
            }
        }
    }
    xeus::xserver_zmq::send_shell_impl(std::move(msg));
}

bool kernel_server::reply_if_unsupported(const xeus::xmessage& msg, zmq::socket_t& socket) {
    static const std::set<std::string> handled = {
        "execute_request",     "complete_request", "inspect_request",   "history_request",
        "is_complete_request", "comm_info_request", "comm_open",        "comm_close",
        "comm_msg",            "kernel_info_request", "shutdown_request", "interrupt_request"};
    const std::string type = msg.header().value("msg_type", "");
    if (handled.count(type) != 0) {
        return false;
    }
    publish_status("busy", msg.header());
    const auto suffix = type.rfind("_request");
    if (suffix != std::string::npos && suffix + 8 == type.size()) {
        const std::string reply_type = type.substr(0, suffix) + "_reply";
        nl::json content = {{"status", "error"},
                            {"ename", "NotImplementedError"},
                            {"evalue", "kernel-host-python does not handle " + type},
                            {"traceback", nl::json::array()}};
        xeus::xmessage reply(msg.identities(), xeus::make_header(reply_type, user_name_, session_id_),
                             msg.header(), nl::json::object(), std::move(content),
                             xeus::buffer_sequence());
        zmq::multipart_t wire =
            xeus::xzmq_serializer::serialize(std::move(reply), *p_auth, m_error_handler);
        wire.send(socket);
    }
    std::cerr << "kernel-host-python: unsupported message type '" << type << "'" << std::endl;
    publish_status("idle", msg.header());
    return true;
}

void kernel_server::abort_queue_impl(const listener&, long) {
    std::deque<xeus::xmessage> kept;
    for (auto& msg : pending_) {
        if (msg.header().value("msg_type", "") != "execute_request") {
            kept.push_back(std::move(msg));
            continue;
        }
        try {
            publish_status("busy", msg.header());
            send_aborted_reply(msg);
            publish_status("idle", msg.header());
        } catch (const std::exception& e) {
            std::cerr << "kernel-host-python: while aborting a request: " << e.what() << std::endl;
        }
    }
    pending_ = std::move(kept);
}

void kernel_server::dispatch_shell(xeus::xmessage msg) {
    if (reply_if_unsupported(msg, m_shell)) {
        return;
    }
    remember_parent(msg);
    if (pre_dispatch_) {
        pre_dispatch_(msg);
    }
    notify_shell_listener(std::move(msg));
}

void kernel_server::remember_parent(const xeus::xmessage& msg) {
    const std::string type = msg.header().value("msg_type", "");
    if (type == "execute_request" || type == "comm_msg" || type == "comm_open") {
        std::lock_guard lock(publish_mutex_);
        stream_parent_ = msg.header();
    }
}

void kernel_server::poll_once() {
    if (!pending_.empty()) {
        xeus::xmessage msg = std::move(pending_.front());
        pending_.pop_front();
        dispatch_shell(std::move(msg));
        return;
    }
    zmq::pollitem_t items[] = {{m_controller, 0, ZMQ_POLLIN, 0}, {m_shell, 0, ZMQ_POLLIN, 0}};
    try {
        zmq::poll(&items[0], 2, std::chrono::milliseconds(-1));
    } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) {
            return;
        }
        std::cerr << "kernel-host-python: poll failed: " << e.what() << std::endl;
        return;
    }
    try {
        if (items[0].revents & ZMQ_POLLIN) {
            zmq::multipart_t wire;
            if (wire.recv(m_controller, ZMQ_DONTWAIT)) {
                xeus::xmessage msg = xeus::xzmq_serializer::deserialize(wire, *p_auth);
                if (!reply_if_unsupported(msg, m_controller)) {
                    notify_control_listener(std::move(msg));
                }
            }
        }
        if (!m_request_stop && (items[1].revents & ZMQ_POLLIN)) {
            zmq::multipart_t wire;
            if (wire.recv(m_shell, ZMQ_DONTWAIT)) {
                dispatch_shell(xeus::xzmq_serializer::deserialize(wire, *p_auth));
            }
        }
    } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) {
            std::cerr << "kernel-host-python: " << e.what() << std::endl;
        }
    } catch (const std::exception& e) {
        // Bad signature or malformed message: xeus logs and drops it too.
        std::cerr << "kernel-host-python: dropped a message: " << e.what() << std::endl;
    }
}

}  // namespace kh::python_kernel
