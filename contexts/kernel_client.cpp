#include "contexts/kernel_client.hpp"

#include <future>

#include <fmt/format.h>

#include "common/ids.hpp"
#include "common/log.hpp"
#include "contexts/wire_codec.hpp"

namespace kh::contexts {
namespace {

using namespace std::chrono_literals;

}  // namespace

nl::json execute_request::to_content() const {
  return {{"code", code},
          {"silent", silent},
          {"store_history", store_history && !silent},
          {"user_expressions", user_expressions.is_object() ? user_expressions : nl::json::object()},
          {"allow_stdin", allow_stdin},
          {"stop_on_error", stop_on_error}};
}

kernel_client::kernel_client(reactor& r, connection_info info, client_options options)
    : reactor_(r), info_(std::move(info)), options_(std::move(options)) {
  if (options_.session.empty()) options_.session = kh::new_uuid();
  signer_ = std::make_unique<message_signer>(info_.key);
}

std::shared_ptr<kernel_client> kernel_client::make(reactor& r, connection_info info, client_options options) {
  std::shared_ptr<kernel_client> client(new kernel_client(r, std::move(info), std::move(options)));
  r.call([&] { client->open_sockets(); });
  return client;
}

kernel_client::~kernel_client() {
  // The last reference may be dropped inside a reactor callback; sockets die on the reactor thread.
  if (reactor_.in_reactor_thread()) {
    close_sockets();
  } else {
    reactor_.call([this] { close_sockets(); });
  }
}

zmq::socket_t* kernel_client::socket_for(channel ch) {
  switch (ch) {
    case channel::shell: return shell_.get();
    case channel::control: return control_.get();
    case channel::input: return stdin_.get();
    case channel::iopub: return iopub_.get();
    case channel::heartbeat: return hb_.get();
  }
  return nullptr;
}

void kernel_client::open_sockets() {
  auto& ctx = reactor_.zmq_context();
  // shell and stdin must share one routing id: the kernel routes input_request with the shell's.
  const std::string identity = kh::random_hex(8);
  auto make_socket = [&](channel ch, zmq::socket_type type) {
    auto socket = std::make_unique<zmq::socket_t>(ctx, type);
    socket->set(zmq::sockopt::linger, 0);
    socket->set(zmq::sockopt::reconnect_ivl, static_cast<int>(options_.reconnect_interval.count()));
    socket->set(zmq::sockopt::reconnect_ivl_max, 0);
    if (ch == channel::shell || ch == channel::input) socket->set(zmq::sockopt::routing_id, identity);
    if (ch == channel::iopub) {
      socket->set(zmq::sockopt::rcvhwm, options_.iopub_high_water_mark);
      socket->set(zmq::sockopt::subscribe, "");
    }
    socket->connect(info_.endpoint(ch));
    return socket;
  };
  shell_ = make_socket(channel::shell, zmq::socket_type::dealer);
  control_ = make_socket(channel::control, zmq::socket_type::dealer);
  stdin_ = make_socket(channel::input, zmq::socket_type::dealer);
  iopub_ = make_socket(channel::iopub, zmq::socket_type::sub);
  hb_ = make_socket(channel::heartbeat, zmq::socket_type::req);
  auto weak = weak_from_this();
  for (channel ch : {channel::shell, channel::control, channel::input, channel::iopub, channel::heartbeat}) {
    reactor_.add_socket(*socket_for(ch), [weak, ch] {
      if (auto self = weak.lock()) self->on_readable(ch);
    });
  }
  hb_outstanding_ = false;
  hb_misses_ = 0;
  if (options_.heartbeat_interval > 0ms) {
    hb_timer_ = reactor_.add_timer(reactor::clock::now() + options_.heartbeat_interval, [weak] {
      if (auto self = weak.lock()) self->heartbeat_tick();
    });
  }
}

void kernel_client::close_sockets() {
  if (hb_timer_) reactor_.cancel_timer(hb_timer_);
  hb_timer_ = 0;
  for (auto* socket : {&shell_, &control_, &stdin_, &iopub_, &hb_}) {
    if (*socket) {
      reactor_.remove_socket(**socket);
      socket->reset();
    }
  }
}

message kernel_client::new_message(std::string_view msg_type, nl::json content) const {
  return make_message(msg_type, std::move(content), options_.session, options_.username);
}

void kernel_client::send_now(channel ch, message& msg) {
  zmq::socket_t* socket = socket_for(ch);
  if (!socket) throw zmq::error_t();
  auto frames = encode_message(msg, *signer_);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const auto flags = (i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none) |
                       zmq::send_flags::dontwait;
    // Never block the reactor: a kernel that stops reading fills its queue and requests fail.
    if (!socket->send(zmq::buffer(frames[i]), flags)) throw zmq::error_t();
  }
  std::lock_guard lock(shared_mutex_);
  ++counters_.messages_sent;
}

std::string kernel_client::request(channel ch, message msg, request_handlers handlers, request_options options) {
  std::string msg_id = msg.msg_id();
  reactor_.post([self = shared_from_this(), ch, msg = std::move(msg), handlers = std::move(handlers), options,
                 msg_id]() mutable {
    if (self->stopped_) {
      error err = self->stop_error_.value_or(error{errc::kernel_not_running, "the kernel is not running"});
      if (handlers.on_done) handlers.on_done(std::unexpected(err));
      return;
    }
    pending entry;
    entry.handlers = std::move(handlers);
    entry.wait_for_idle = options.wait_for_idle || !options.expect_reply;
    entry.expect_reply = options.expect_reply;
    if (options.timeout > 0ms) {
      std::weak_ptr<kernel_client> weak = self;
      entry.timeout_timer =
          self->reactor_.add_timer(reactor::clock::now() + options.timeout, [weak, msg_id, timeout = options.timeout] {
            if (auto client = weak.lock()) {
              auto found = client->pending_.find(msg_id);
              if (found == client->pending_.end()) return;
              found->second.timeout_timer = 0;
              client->finish(msg_id, fail(errc::timeout,
                                          fmt::format("no reply within {} ms", timeout.count()),
                                          {{"timeout_ms", timeout.count()}, {"msg_id", msg_id}}));
            }
          });
    }
    self->pending_.emplace(msg_id, std::move(entry));
    try {
      self->send_now(ch, msg);
    } catch (const zmq::error_t& e) {
      self->finish(msg_id, fail(errc::kernel_not_running,
                                std::string("cannot send to the kernel: ") + (e.num() ? e.what() : "queue full")));
    }
  });
  return msg_id;
}

std::string kernel_client::execute(const execute_request& req, request_handlers handlers,
                                   std::chrono::milliseconds timeout) {
  return request(channel::shell, new_message("execute_request", req.to_content()), std::move(handlers),
                 {.wait_for_idle = true, .timeout = timeout});
}

void kernel_client::send(channel ch, message msg) {
  reactor_.post([self = shared_from_this(), ch, msg = std::move(msg)]() mutable {
    try {
      self->send_now(ch, msg);
    } catch (const zmq::error_t& e) {
      kh::log::get("contexts")->warn("dropped {} to a kernel that is not reading: {}", msg.msg_type(), e.what());
    }
  });
}

void kernel_client::send_input_reply(const message& input_request, std::string value) {
  message reply = new_message("input_reply", {{"value", std::move(value)}, {"status", "ok"}});
  reply.parent_header = input_request.header;
  send(channel::input, std::move(reply));
}

result<message> kernel_client::request_sync(channel ch, message msg, std::chrono::milliseconds timeout,
                                            bool wait_for_idle) {
  if (reactor_.in_reactor_thread())
    return fail(errc::internal_error, "request_sync called on the reactor thread");
  auto promise = std::make_shared<std::promise<result<message>>>();
  auto future = promise->get_future();
  request(ch, std::move(msg), {.on_done = [promise](result<message> r) { promise->set_value(std::move(r)); }},
          {.wait_for_idle = wait_for_idle, .timeout = timeout});
  return future.get();  // the client's own timer (or close/fail_all) always completes the request
}

std::uint64_t kernel_client::subscribe(std::function<void(const message&)> on_iopub) {
  const std::uint64_t token = next_token_++;
  reactor_.post([self = shared_from_this(), token, fn = std::move(on_iopub)]() mutable {
    self->subscribers_.emplace(token, std::move(fn));
  });
  return token;
}

void kernel_client::unsubscribe(std::uint64_t token) {
  reactor_.post([self = shared_from_this(), token] { self->subscribers_.erase(token); });
}

void kernel_client::set_output_settle(std::chrono::milliseconds settle) {
  reactor_.post([self = shared_from_this(), settle] { self->options_.output_settle = settle; });
}

void kernel_client::on_heartbeat_failure(std::function<void()> handler) {
  reactor_.call([&] { on_heartbeat_failure_ = std::move(handler); });
}

void kernel_client::fail_all(error err, bool stop) {
  reactor_.post([self = shared_from_this(), err = std::move(err), stop] {
    self->fail_pending(err);
    if (stop) {
      self->stopped_ = true;
      self->stop_error_ = error{errc::kernel_not_running, "the kernel is not running (" + err.message + ")"};
    }
  });
}

void kernel_client::reconnect(std::optional<connection_info> info) {
  reactor_.call([&] {
    close_sockets();
    fail_pending({errc::kernel_restarting, "the kernel was restarted"});
    if (info) {
      info_ = std::move(*info);
      signer_ = std::make_unique<message_signer>(info_.key);
    }
    iopub_seen_ = false;
    stopped_ = false;
    stop_error_.reset();
    open_sockets();
  });
}

void kernel_client::close() {
  reactor_.call([&] {
    fail_pending({errc::kernel_not_running, "the kernel was shut down"});
    close_sockets();
    stopped_ = true;
    stop_error_ = error{errc::kernel_not_running, "the kernel was shut down"};
  });
}

std::string kernel_client::execution_state() const {
  std::lock_guard lock(shared_mutex_);
  return execution_state_;
}

client_counters kernel_client::counters() const {
  std::lock_guard lock(shared_mutex_);
  return counters_;
}

void kernel_client::on_readable(channel ch) {
  zmq::message_t part;
  std::vector<std::string> frames;
  for (int budget = 0; budget < 256; ++budget) {  // bounded: one flooding kernel cannot starve the rest
    zmq::socket_t* socket = socket_for(ch);  // re-read: a handler may have reconnected
    if (!socket) return;
    // A REQ socket may only receive while a ping is outstanding (else it throws EFSM).
    if (ch == channel::heartbeat && !hb_outstanding_) return;
    if (!socket->recv(part, zmq::recv_flags::dontwait)) return;
    frames.clear();
    frames.emplace_back(part.data<char>(), part.size());
    while (part.more()) {
      if (!socket->recv(part, zmq::recv_flags::none)) break;
      frames.emplace_back(part.data<char>(), part.size());
    }
    if (ch == channel::heartbeat) {
      hb_outstanding_ = false;
      hb_misses_ = 0;
      continue;
    }
    auto decoded = decode_message(std::move(frames), *signer_);
    frames = {};
    if (!decoded) {
      std::lock_guard lock(shared_mutex_);
      if (decoded.error().message.find("signature") != std::string::npos)
        ++counters_.dropped_bad_signature;
      else
        ++counters_.dropped_malformed;
      log_dropped(ch, decoded.error());
      continue;
    }
    {
      std::lock_guard lock(shared_mutex_);
      ++counters_.messages_received;
    }
    handle(ch, std::move(*decoded));
  }
  // More may be queued: come back on the next loop turn instead of hogging the thread.
  reactor_.post([weak = weak_from_this(), ch] {
    if (auto self = weak.lock()) self->on_readable(ch);
  });
}

void kernel_client::handle(channel ch, message msg) {
  if (ch == channel::iopub) return handle_iopub(msg);
  const std::string parent = msg.parent_msg_id();
  if (ch == channel::input) {
    auto it = pending_.find(parent);
    if (msg.msg_type() == "input_request" && it != pending_.end() && it->second.handlers.on_input_request) {
      auto handler = it->second.handlers.on_input_request;
      handler(msg);
    } else if (msg.msg_type() == "input_request") {
      // Nobody can answer: reply empty rather than leave the kernel blocked forever.
      kh::log::get("contexts")->warn("input_request with no handler (parent {}): answered empty", parent);
      send_input_reply(msg, "");
    }
    return;
  }
  auto it = pending_.find(parent);
  if (it == pending_.end()) return;  // a reply to a request that timed out or was failed
  it->second.got_reply = true;
  it->second.reply = std::move(msg);
  maybe_finish(parent);
}

void kernel_client::handle_iopub(message& msg) {
  iopub_seen_ = true;
  const std::string type = msg.msg_type();
  if (type == "status") {
    std::lock_guard lock(shared_mutex_);
    execution_state_ = msg.content.value("execution_state", "");
  }
  if (!subscribers_.empty()) {
    auto subscribers = subscribers_;  // a subscriber may unsubscribe while we iterate
    for (auto& [token, fn] : subscribers) fn(msg);
  }
  const std::string parent = msg.parent_msg_id();
  auto it = pending_.find(parent);
  if (it == pending_.end()) return;
  if (it->second.handlers.on_iopub) {
    auto handler = it->second.handlers.on_iopub;
    handler(msg);
    it = pending_.find(parent);
    if (it == pending_.end()) return;
  }
  if (type == "status" && msg.content.value("execution_state", "") == "idle") {
    it->second.got_idle = true;
    if (!it->second.expect_reply && !it->second.got_reply) {
      it->second.got_reply = true;
      it->second.reply = msg;
    }
    maybe_finish(parent);
  } else if (it->second.got_idle) {
    maybe_finish(parent);  // output after idle: extend the settle period
  }
}

void kernel_client::maybe_finish(const std::string& msg_id) {
  auto it = pending_.find(msg_id);
  if (it == pending_.end()) return;
  pending& entry = it->second;
  if (!entry.got_reply) return;
  if (!entry.wait_for_idle) {
    message reply = std::move(*entry.reply);
    finish(msg_id, std::move(reply));
    return;
  }
  if (entry.got_idle) {
    if (options_.output_settle <= 0ms) {
      message reply = std::move(*entry.reply);
      finish(msg_id, std::move(reply));
      return;
    }
    // (Re)start the quiet period: every late output for this request pushes completion back.
    if (entry.settle_timer) reactor_.cancel_timer(entry.settle_timer);
    entry.settle_timer = reactor_.add_timer(reactor::clock::now() + options_.output_settle,
                                            [weak = weak_from_this(), msg_id] {
                                              auto self = weak.lock();
                                              if (!self) return;
                                              auto found = self->pending_.find(msg_id);
                                              if (found == self->pending_.end()) return;
                                              found->second.settle_timer = 0;
                                              message reply = std::move(*found->second.reply);
                                              self->finish(msg_id, std::move(reply));
                                            });
    return;
  }
  if (entry.idle_timer == 0) {
    entry.idle_timer = reactor_.add_timer(reactor::clock::now() + options_.idle_grace,
                                          [weak = weak_from_this(), msg_id] {
                                            auto self = weak.lock();
                                            if (!self) return;
                                            auto found = self->pending_.find(msg_id);
                                            if (found == self->pending_.end()) return;
                                            found->second.idle_timer = 0;
                                            found->second.got_idle = true;  // give up waiting for idle
                                            self->maybe_finish(msg_id);
                                          });
  }
}

void kernel_client::finish(const std::string& msg_id, result<message> outcome) {
  auto it = pending_.find(msg_id);
  if (it == pending_.end()) return;
  if (it->second.timeout_timer) reactor_.cancel_timer(it->second.timeout_timer);
  if (it->second.idle_timer) reactor_.cancel_timer(it->second.idle_timer);
  if (it->second.settle_timer) reactor_.cancel_timer(it->second.settle_timer);
  auto on_done = std::move(it->second.handlers.on_done);
  pending_.erase(it);
  if (on_done) on_done(std::move(outcome));
}

void kernel_client::fail_pending(const error& err) {
  std::vector<std::string> ids;
  for (auto& [id, entry] : pending_) ids.push_back(id);
  for (auto& id : ids) finish(id, std::unexpected(err));
}

void kernel_client::log_dropped(channel ch, const error& why) {
  // A kernel sending garbage in a loop must not flood the daemon's log: the counters count
  // every drop, the log says it once per interval.
  const auto now = reactor::clock::now();
  if (now < next_drop_log_) {
    ++drops_unlogged_;
    return;
  }
  next_drop_log_ = now + drop_log_interval;
  const auto suppressed = std::exchange(drops_unlogged_, 0);
  kh::log::get("contexts")->warn("dropped a message from kernel {} on {}: {}{}", info_.kernel_name, channel_name(ch),
                                 why.message,
                                 suppressed ? fmt::format(" ({} more dropped since the last report)", suppressed) : "");
}

void kernel_client::heartbeat_tick() {
  hb_timer_ = 0;
  if (!hb_) return;
  if (hb_outstanding_ && ++hb_misses_ >= options_.heartbeat_misses) {
    {
      std::lock_guard lock(shared_mutex_);
      ++counters_.heartbeat_failures;
    }
    // A REQ socket with an unanswered request cannot send again: start a fresh one.
    reactor_.remove_socket(*hb_);
    hb_ = std::make_unique<zmq::socket_t>(reactor_.zmq_context(), zmq::socket_type::req);
    hb_->set(zmq::sockopt::linger, 0);
    hb_->set(zmq::sockopt::reconnect_ivl, static_cast<int>(options_.reconnect_interval.count()));
    hb_->connect(info_.endpoint(channel::heartbeat));
    reactor_.add_socket(*hb_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->on_readable(channel::heartbeat);
    });
    hb_outstanding_ = false;
    hb_misses_ = 0;
    if (on_heartbeat_failure_) on_heartbeat_failure_();
    if (!hb_) return;  // the handler closed us
  }
  if (!hb_outstanding_) {
    hb_->send(zmq::str_buffer("ping"), zmq::send_flags::dontwait);
    hb_outstanding_ = true;
  }
  hb_timer_ = reactor_.add_timer(reactor::clock::now() + options_.heartbeat_interval, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->heartbeat_tick();
  });
}

}  // namespace kh::contexts
