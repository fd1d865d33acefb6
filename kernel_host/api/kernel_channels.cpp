#include "kernel_host/api/kernel_channels.hpp"

#include <chrono>

#include <fmt/format.h>

#include "common/log.hpp"
#include "contexts/kernel_client.hpp"
#include "kernel_host/api/kernel_wire.hpp"

namespace kh::api {
namespace {

namespace ctx = kh::contexts;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Python's str(float) for the limits in the notice ("1000.0", "3.0", "0.5").
std::string py_float(double v) {
  if (v == static_cast<double>(static_cast<long long>(v))) return fmt::format("{:.1f}", v);
  return fmt::format("{}", v);
}

std::string limit_notice(bool messages, const iopub_limits& l) {
  if (messages)
    return fmt::format(
        "IOPub message rate exceeded.\n"
        "The Jupyter server will temporarily stop sending output\n"
        "to the client in order to avoid crashing it.\n"
        "To change this limit, set the config variable\n"
        "`--ServerApp.iopub_msg_rate_limit`.\n"
        "\n"
        "Current values:\n"
        "ServerApp.iopub_msg_rate_limit={} (msgs/sec)\n"
        "ServerApp.rate_limit_window={} (secs)\n",
        py_float(l.msg_rate), py_float(l.window_s));
  return fmt::format(
      "IOPub data rate exceeded.\n"
      "The Jupyter server will temporarily stop sending output\n"
      "to the client in order to avoid crashing it.\n"
      "To change this limit, set the config variable\n"
      "`--ServerApp.iopub_data_rate_limit`.\n"
      "\n"
      "Current values:\n"
      "ServerApp.iopub_data_rate_limit={} (bytes/sec)\n"
      "ServerApp.rate_limit_window={} (secs)\n",
      py_float(l.data_rate), py_float(l.window_s));
}

}  // namespace

// ---- rate limits (jupyter_server ZMQChannelsHandler._on_zmq_reply) ---------------------------

bool iopub_rate_limiter::admit(std::string_view msg_type, std::size_t bytes, double now, std::string& notice) {
  if (msg_type == "status" || msg_type == "comm_open" || msg_type == "execute_input") return true;
  if (limits_.msg_rate <= 0 && limits_.data_rate <= 0) return true;
  while (!window_.empty() && window_.front().first < now) {
    msg_count_ -= 1;
    byte_count_ -= window_.front().second;
    window_.pop_front();
  }
  const std::size_t counted = msg_type == "stream" ? bytes : 0;
  msg_count_ += 1;
  byte_count_ += counted;
  window_.emplace_back(now + limits_.window_s, counted);
  const double window = limits_.window_s > 0 ? limits_.window_s : 1;
  const double msg_rate = static_cast<double>(msg_count_) / window;
  const double data_rate = static_cast<double>(byte_count_) / window;

  if (limits_.msg_rate > 0 && msg_rate > limits_.msg_rate) {
    if (!msgs_exceeded_) {
      msgs_exceeded_ = true;
      notice = limit_notice(true, limits_);
    }
  } else if (msgs_exceeded_ && msg_rate < 0.8 * limits_.msg_rate) {
    msgs_exceeded_ = false;
  }
  if (limits_.data_rate > 0 && data_rate > limits_.data_rate) {
    if (!data_exceeded_) {
      data_exceeded_ = true;
      if (notice.empty()) notice = limit_notice(false, limits_);
    }
  } else if (data_exceeded_ && data_rate < 0.8 * limits_.data_rate) {
    data_exceeded_ = false;
  }
  if (msgs_exceeded_ || data_exceeded_) {
    // not sent: take it out of the count again
    msg_count_ -= 1;
    byte_count_ -= counted;
    window_.pop_back();
    return false;
  }
  return true;
}

// ---- the hub ----------------------------------------------------------------------------------

struct kernel_channels::connection {
  std::uint64_t id = 0;
  std::weak_ptr<server::websocket_peer> peer;
  std::string session;
  bool v1 = false;
  std::mutex limiter_mutex;
  iopub_rate_limiter limiter;
  std::shared_ptr<ctx::kernel_client> client;  // for the notices' headers
  connection(iopub_limits l) : limiter(l) {}
};

kernel_channels::kernel_channels(std::shared_ptr<host::context> context, iopub_limits limits)
    : context_(std::move(context)), limits_(limits) {}

std::shared_ptr<kernel_channels> kernel_channels::make(std::shared_ptr<host::context> context, iopub_limits limits) {
  auto hub = std::shared_ptr<kernel_channels>(new kernel_channels(std::move(context), limits));
  hub->start();
  return hub;
}

void kernel_channels::start() {
  std::weak_ptr<kernel_channels> weak = shared_from_this();
  iopub_token_ = context_->kernel().client()->subscribe([weak](const ctx::message& m) {
    if (auto self = weak.lock()) self->on_iopub(m);
  });
  lifecycle_token_ = context_->kernel().watch_lifecycle([weak](ctx::kernel_state state) {
    if (auto self = weak.lock()) self->on_lifecycle(state);
  });
}

kernel_channels::~kernel_channels() {
  context_->kernel().client()->unsubscribe(iopub_token_);
  context_->kernel().unwatch_lifecycle(lifecycle_token_);
  for (auto& [id, conn] : connections_)
    if (auto p = conn->peer.lock()) p->close();
}

int kernel_channels::connections() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(connections_.size());
}

std::size_t kernel_channels::buffered() const {
  std::lock_guard lock(mutex_);
  return buffer_.size();
}

void kernel_channels::send(connection& conn, const ctx::message& m, std::string_view channel) {
  auto peer = conn.peer.lock();
  if (!peer) return;
  if (conn.v1) return peer->send_binary(to_wire_v1(m, channel));
  auto [data, binary] = to_wire_legacy(m, channel);
  if (binary) peer->send_binary(std::move(data));
  else peer->send_text(std::move(data));
}

void kernel_channels::send_limited(connection& conn, const ctx::message& m, std::string_view channel) {
  if (channel != "iopub") return send(conn, m, channel);
  std::string notice;
  bool admitted = false;
  {
    std::lock_guard lock(conn.limiter_mutex);
    std::size_t bytes = m.content.dump().size() + m.header.dump().size() + m.parent_header.dump().size();
    for (const auto& b : m.buffers) bytes += b.size();
    admitted = conn.limiter.admit(m.msg_type(), bytes, now_seconds(), notice);
  }
  if (!notice.empty() && conn.client) {
    auto stream = conn.client->new_message("stream", {{"name", "stderr"}, {"text", notice + "\n"}});
    stream.parent_header = m.parent_header;
    send(conn, stream, "iopub");
  }
  if (admitted) send(conn, m, channel);
}

void kernel_channels::on_iopub(const ctx::message& m) {
  std::lock_guard lock(mutex_);
  if (connections_.empty()) {
    if (!buffering_) return;
    buffer_.emplace_back("iopub", m);
    if (buffer_.size() > max_buffered) buffer_.pop_front();
    return;
  }
  for (auto& [id, conn] : connections_) send_limited(*conn, m, "iopub");
}

void kernel_channels::on_lifecycle(ctx::kernel_state state) {
  std::string announced;
  if (state == ctx::kernel_state::restarting) {
    int quiet = quiet_restarts_.load();
    while (quiet > 0 && !quiet_restarts_.compare_exchange_weak(quiet, quiet - 1)) {
    }
    if (quiet > 0) return;
    announced = "restarting";
  } else if (state == ctx::kernel_state::dead) {
    announced = "dead";
  } else if (state == ctx::kernel_state::shut_down) {
    // However it was removed (Jupyter or agent API, a session, culling): its sockets close.
    std::lock_guard lock(mutex_);
    for (auto& [id, conn] : connections_)
      if (auto p = conn->peer.lock()) p->close();
    buffer_.clear();
    buffering_ = false;
    return;
  } else {
    return;
  }
  // As jupyter_server's _send_status_message: a status without a parent, to the open sockets.
  auto msg = context_->kernel().client()->new_message("status", {{"execution_state", announced}});
  std::lock_guard lock(mutex_);
  for (auto& [id, conn] : connections_) send(*conn, msg, "iopub");
}

void kernel_channels::to_connection(std::uint64_t id, const std::string& session, const ctx::message& m,
                                    std::string_view channel) {
  std::lock_guard lock(mutex_);
  if (auto it = connections_.find(id); it != connections_.end()) return send(*it->second, m, channel);
  // The asking socket is gone: a socket of the same session takes its replies (as it takes over
  // jupyter_server's streams), else they wait in the buffer of that session.
  for (auto& [other, conn] : connections_)
    if (!session.empty() && conn->session == session) return send(*conn, m, channel);
  if (connections_.empty() && buffering_ && buffer_session_ == session) {
    buffer_.emplace_back(std::string(channel), m);
    if (buffer_.size() > max_buffered) buffer_.pop_front();
  }
}

void kernel_channels::attach(std::shared_ptr<server::websocket_peer> peer, const std::string& session_id, bool v1) {
  auto conn = std::make_shared<connection>(limits_);
  conn->peer = peer;
  conn->session = session_id;
  conn->v1 = v1;
  conn->client = context_->kernel().client();
  std::weak_ptr<kernel_channels> weak = shared_from_this();
  std::weak_ptr<connection> weak_conn = conn;
  {
    std::lock_guard lock(mutex_);
    conn->id = next_id_++;
    if (buffering_) {
      if (!session_id.empty() && session_id == buffer_session_) {
        kh::log::get("server")->info("kernel {}: replaying {} buffered messages to session {}", context_->id(),
                                     buffer_.size(), session_id);
        for (const auto& [channel, m] : buffer_) send_limited(*conn, m, channel);
      } else if (!buffer_.empty()) {
        kh::log::get("server")->info("kernel {}: discarding {} buffered messages of session {}", context_->id(),
                                     buffer_.size(), buffer_session_);
      }
      buffer_.clear();
      buffering_ = false;
      buffer_session_.clear();
    }
    connections_.emplace(conn->id, conn);
    context_->set_connections(static_cast<int>(connections_.size()));
  }
  peer->on_message = [weak, weak_conn](std::string data, bool binary) {
    auto self = weak.lock();
    auto c = weak_conn.lock();
    if (self && c) self->handle_frame(c, std::move(data), binary);
  };
  peer->on_close = [weak, id = conn->id] {
    if (auto self = weak.lock()) self->detach(id);
  };
}

void kernel_channels::detach(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  const std::string session = it->second->session;
  connections_.erase(it);
  context_->set_connections(static_cast<int>(connections_.size()));
  if (connections_.empty()) {  // the last one: buffer until its session comes back
    buffering_ = true;
    buffer_session_ = session;
    buffer_.clear();
  }
}

void kernel_channels::handle_frame(const std::shared_ptr<connection>& conn, std::string data, bool binary) {
  ctx::message msg;
  std::string channel;
  if (conn->v1) {
    if (!binary || !from_wire_v1(data, channel, msg)) return;
  } else if (binary) {
    if (!from_wire_legacy_binary(data, channel, msg)) return;
  } else {
    if (!from_wire_legacy_text(data, channel, msg)) return;
  }
  if (msg.parent_header.is_null()) msg.parent_header = nl::json::object();
  if (msg.metadata.is_null()) msg.metadata = nl::json::object();
  context_->touch();
  auto client = context_->kernel().client();
  if (channel == "stdin") return client->send(ctx::channel::input, std::move(msg));
  if (channel != "shell" && channel != "control") return;
  const auto ch = channel == "control" ? ctx::channel::control : ctx::channel::shell;
  std::weak_ptr<kernel_channels> weak = shared_from_this();
  ctx::request_handlers handlers;
  handlers.on_input_request = [weak, id = conn->id, session = conn->session](const ctx::message& m) {
    if (auto self = weak.lock()) self->to_connection(id, session, m, "stdin");
  };
  handlers.on_done = [weak, id = conn->id, session = conn->session, channel](result<ctx::message> reply) {
    if (!reply) return;
    if (auto self = weak.lock()) self->to_connection(id, session, *reply, channel);
  };
  client->request(ch, std::move(msg), std::move(handlers), {.wait_for_idle = false});
}

// ---- registry ---------------------------------------------------------------------------------

std::shared_ptr<kernel_channels> kernel_channels_registry::for_context(const std::shared_ptr<host::context>& context) {
  std::shared_ptr<kernel_channels> stale;  // destroyed outside the lock
  std::lock_guard lock(mutex_);
  auto& hub = hubs_[context->id()];
  if (hub && hub->context() != context) stale = std::move(hub);
  if (!hub) hub = kernel_channels::make(context, limits_);
  return hub;
}

std::shared_ptr<kernel_channels> kernel_channels_registry::find(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = hubs_.find(id);
  return it == hubs_.end() ? nullptr : it->second;
}

void kernel_channels_registry::prune(host::context_manager& contexts) {
  std::vector<std::shared_ptr<kernel_channels>> dropped;
  {
    std::lock_guard lock(mutex_);
    for (auto it = hubs_.begin(); it != hubs_.end();) {
      auto live = contexts.get(it->first);
      if (!live || *live != it->second->context()) {
        dropped.push_back(std::move(it->second));
        it = hubs_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

int kernel_channels_registry::connections(const std::string& id) const {
  auto hub = find(id);
  return hub ? hub->connections() : 0;
}

int kernel_channels_registry::total_connections() const {
  std::lock_guard lock(mutex_);
  int n = 0;
  for (const auto& [id, hub] : hubs_) n += hub->connections();
  return n;
}

}  // namespace kh::api
