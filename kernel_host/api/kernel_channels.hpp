#pragma once
// kernel_channels: the Jupyter WebSocket side of one kernel (/api/kernels/{id}/channels), as
// jupyter_server's ZMQChannelsHandler + MappingKernelManager buffering do it:
//  - every IOPub message goes to every connection; shell/control replies and stdin requests go
//    back to the connection that sent the request;
//  - when the last connection closes, what the kernel still sends is buffered, and replayed to a
//    connection that comes back with the same session_id (another session discards it);
//  - a restart (other than one asked for by the Jupyter REST API, which the asking client awaits
//    itself) is announced as IOPub `status: restarting`, a death as `status: dead`; when the
//    kernel is shut down (whichever API removed it) its sockets are closed;
//  - IOPub rate limits per connection with jupyter_server's semantics and notice text
//    (iopub_msg_rate_limit, iopub_data_rate_limit, rate_limit_window).
// The legacy JSON protocol and v1.kernel.websocket.jupyter.org are both spoken.

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "contexts/message.hpp"
#include "kernel_host/context_manager.hpp"
#include "kernel_host/server/http_types.hpp"

namespace kh::api {

// jupyter_server's ServerApp.iopub_msg_rate_limit / iopub_data_rate_limit / rate_limit_window.
// A limit of 0 disables it.
struct iopub_limits {
  double msg_rate = 1000;        // messages per second
  double data_rate = 1'000'000;  // bytes per second (stream messages)
  double window_s = 3;           // seconds over which rates are averaged
};

// The limiter of one connection. Status, comm_open and execute_input are never limited.
class iopub_rate_limiter {
 public:
  explicit iopub_rate_limiter(iopub_limits limits) : limits_(limits) {}
  // True when the message may be sent. When a limit has just been exceeded, `notice` receives
  // jupyter_server's text to send (as stderr, with the message's parent) instead.
  bool admit(std::string_view msg_type, std::size_t bytes, double now_s, std::string& notice);

 private:
  iopub_limits limits_;
  std::deque<std::pair<double, std::size_t>> window_;  // (expiry, bytes) per counted message
  std::size_t msg_count_ = 0;
  std::size_t byte_count_ = 0;
  bool msgs_exceeded_ = false;
  bool data_exceeded_ = false;
};

class kernel_channels : public std::enable_shared_from_this<kernel_channels> {
 public:
  static std::shared_ptr<kernel_channels> make(std::shared_ptr<host::context> context, iopub_limits limits);
  ~kernel_channels();
  kernel_channels(const kernel_channels&) = delete;
  kernel_channels& operator=(const kernel_channels&) = delete;

  // Takes an accepted WebSocket over. `session_id` is the client's ?session_id=.
  void attach(std::shared_ptr<server::websocket_peer> peer, const std::string& session_id, bool v1);

  // The next `restarting` comes from a REST restart the client awaits: do not announce it.
  void expect_requested_restart() { quiet_restarts_++; }
  void requested_restart_done() { quiet_restarts_ = 0; }

  const std::shared_ptr<host::context>& context() const noexcept { return context_; }
  int connections() const;
  std::size_t buffered() const;

  static constexpr std::size_t max_buffered = 10'000;  // oldest dropped beyond

 private:
  struct connection;
  kernel_channels(std::shared_ptr<host::context> context, iopub_limits limits);
  void start();
  void on_iopub(const contexts::message& m);
  void on_lifecycle(contexts::kernel_state state);
  // To one connection (id), or to the buffer when it is gone and its session is buffered.
  void to_connection(std::uint64_t id, const std::string& session, const contexts::message& m, std::string_view channel);
  void detach(std::uint64_t id);
  void handle_frame(const std::shared_ptr<connection>& conn, std::string data, bool binary);
  static void send(connection& conn, const contexts::message& m, std::string_view channel);
  static void send_limited(connection& conn, const contexts::message& m, std::string_view channel);

  std::shared_ptr<host::context> context_;
  iopub_limits limits_;
  std::uint64_t iopub_token_ = 0;
  std::uint64_t lifecycle_token_ = 0;
  std::atomic<int> quiet_restarts_{0};

  mutable std::mutex mutex_;  // guards the members below; never held while calling the kernel
  std::map<std::uint64_t, std::shared_ptr<connection>> connections_;
  std::uint64_t next_id_ = 1;
  std::string buffer_session_;  // set while buffering (no connection since the last one closed)
  bool buffering_ = false;
  std::deque<std::pair<std::string, contexts::message>> buffer_;  // (channel, message)
};

// The kernel channels of every kernel with a WebSocket, by kernel id.
class kernel_channels_registry {
 public:
  explicit kernel_channels_registry(iopub_limits limits) : limits_(limits) {}
  // The hub of this context (made on first use; a stale one for a replaced context is dropped).
  std::shared_ptr<kernel_channels> for_context(const std::shared_ptr<host::context>& context);
  // The hub of a kernel id if one exists.
  std::shared_ptr<kernel_channels> find(const std::string& id) const;
  // Drops hubs whose kernel is no longer live.
  void prune(host::context_manager& contexts);
  int connections(const std::string& id) const;
  int total_connections() const;

 private:
  iopub_limits limits_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<kernel_channels>> hubs_;
};

}  // namespace kh::api
