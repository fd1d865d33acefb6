#pragma once
// kernel_client: the conversation with one kernel over its five ZeroMQ channels.
//
// Requests are correlated with their replies and IOPub output by msg_id. A request completes
// once, when both its reply and its `status: idle` have arrived (or only the reply, for requests
// that do not wait for idle), or with an error: timeout, kernel died, kernel restarting.
// Every socket lives on the reactor thread; all handlers run there and must not block.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "common/error.hpp"
#include "contexts/connection_info.hpp"
#include "contexts/message.hpp"
#include "contexts/message_signer.hpp"
#include "contexts/reactor.hpp"

namespace kh::contexts {

struct client_options {
  // libzmq retries refused connects every 100-200 ms by default, which would quantize kernel
  // start-up; a few milliseconds lets us talk as soon as the kernel binds.
  std::chrono::milliseconds reconnect_interval{2};
  // Heartbeat pings while connected; 0 disables. After `heartbeat_misses` unanswered pings
  // in a row the heartbeat-failure handler is called.
  std::chrono::milliseconds heartbeat_interval{0};
  int heartbeat_misses = 5;
  // After the reply, how long to wait for `status: idle` before completing anyway
  // (a kernel whose IOPub is lost must not hang its caller).
  std::chrono::milliseconds idle_grace{3000};
  // After reply and idle, wait this long with no further output for the request before
  // completing it. Deno's kernel sometimes publishes a cell's last outputs after its
  // `status: idle`; 0 (the default) completes at once, as the protocol allows.
  std::chrono::milliseconds output_settle{0};
  // Messages ZeroMQ may queue for us on IOPub before it stops reading from the kernel (whose
  // PUB socket then drops, as the protocol allows). The high-water mark counts messages, not
  // bytes: libzmq's default of 1000 let a kernel flooding 1 MiB messages park about 1 GB in the
  // daemon. 64 bounds that to 64 MiB per kernel; the kernel's own PUB queue still absorbs bursts.
  int iopub_high_water_mark = 64;
  std::string session;  // empty: a new UUID
  std::string username = "kernel-host";
};

// What a caller hears about one request. All callbacks run on the reactor thread.
struct request_handlers {
  // Each IOPub message whose parent is this request, in order (status and execute_input included).
  std::function<void(const message&)> on_iopub;
  // An `input_request` on the stdin channel for this request; answer with send_input_reply().
  std::function<void(const message&)> on_input_request;
  // Exactly once: the reply message, or an error.
  std::function<void(result<message>)> on_done;
};

struct request_options {
  bool wait_for_idle = true;
  // Messages without a shell reply (comm_open, comm_msg) complete on idle; on_done then gets
  // the idle status message.
  bool expect_reply = true;
  std::chrono::milliseconds timeout{0};  // 0: none
};

struct execute_request {
  std::string code;
  bool silent = false;
  bool store_history = true;
  nl::json user_expressions = nl::json::object();
  bool allow_stdin = false;
  // Jupyter's default is true: after an error, ipykernel aborts the executes that reach it for a
  // moment, including a cell sent after the error reply. Our callers send a cell at a time and
  // decide themselves what follows an error, so a failed or interrupted cell must not abort it.
  bool stop_on_error = false;

  nl::json to_content() const;
};

struct client_counters {
  std::uint64_t messages_received = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t dropped_bad_signature = 0;  // failed HMAC verification
  std::uint64_t dropped_malformed = 0;      // unparsable frames
  std::uint64_t heartbeat_failures = 0;
};

class kernel_client : public std::enable_shared_from_this<kernel_client> {
 public:
  // Creates the sockets (on the reactor thread) and connects them.
  static std::shared_ptr<kernel_client> make(reactor& r, connection_info info, client_options options = {});
  ~kernel_client();

  // Sends a request on shell or control and tracks it. Returns the msg_id. Thread-safe.
  std::string request(channel ch, message msg, request_handlers handlers, request_options options = {});

  // Shorthand: an execute_request on shell that waits for idle.
  std::string execute(const execute_request& req, request_handlers handlers, std::chrono::milliseconds timeout);

  // A new message of this client's session (for callers building their own requests).
  message new_message(std::string_view msg_type, nl::json content = nl::json::object()) const;

  // Sends without tracking (comm messages, input replies). Thread-safe.
  void send(channel ch, message msg);

  // Answers an input_request.
  void send_input_reply(const message& input_request, std::string value);

  // Blocking request from a non-reactor thread: the reply, or an error after `timeout`.
  result<message> request_sync(channel ch, message msg, std::chrono::milliseconds timeout,
                               bool wait_for_idle = false);

  // Every IOPub message, whoever caused it. Returns a token for unsubscribe(). Thread-safe.
  std::uint64_t subscribe(std::function<void(const message&)> on_iopub);
  void unsubscribe(std::uint64_t token);

  // Changes output_settle (known only after kernel_info names the implementation). Thread-safe.
  void set_output_settle(std::chrono::milliseconds settle);

  // Called (on the reactor thread) when heartbeats stop being answered.
  void on_heartbeat_failure(std::function<void()> handler);

  // Fails every pending request with `err`. With `stop` set, later requests fail at once with
  // kernel_not_running until reconnect(). Thread-safe.
  void fail_all(error err, bool stop);

  // Closes and recreates every socket (after a kernel restart): queued bytes for the old
  // process are dropped, pending requests fail with kernel_restarting. Blocks until done.
  void reconnect(std::optional<connection_info> info = std::nullopt);

  // Closes every socket; pending requests fail with kernel_not_running. Blocks until done.
  void close();

  // True once any IOPub message has arrived since the last (re)connect: the SUB is live.
  bool iopub_seen() const noexcept { return iopub_seen_.load(); }
  // The last `execution_state` published by the kernel ("starting", "busy", "idle", or "").
  std::string execution_state() const;
  std::string session() const { return options_.session; }
  const connection_info& connection() const noexcept { return info_; }
  client_counters counters() const;

 private:
  struct pending {
    request_handlers handlers;
    bool wait_for_idle = true;
    bool expect_reply = true;
    bool got_reply = false;
    bool got_idle = false;
    std::optional<message> reply;
    reactor::timer_id timeout_timer = 0;
    reactor::timer_id idle_timer = 0;
    reactor::timer_id settle_timer = 0;
  };

  kernel_client(reactor& r, connection_info info, client_options options);

  // reactor thread only
  void open_sockets();
  void close_sockets();
  void send_now(channel ch, message& msg);
  void on_readable(channel ch);
  void handle(channel ch, message msg);
  void handle_iopub(message& msg);
  void finish(const std::string& msg_id, result<message> outcome);
  void maybe_finish(const std::string& msg_id);
  void fail_pending(const error& err);
  void heartbeat_tick();
  void log_dropped(channel ch, const error& why);
  zmq::socket_t* socket_for(channel ch);

  reactor& reactor_;
  connection_info info_;
  client_options options_;
  std::unique_ptr<message_signer> signer_;

  // reactor-thread state
  std::unique_ptr<zmq::socket_t> shell_, control_, stdin_, iopub_, hb_;
  std::map<std::string, pending> pending_;
  std::map<std::uint64_t, std::function<void(const message&)>> subscribers_;
  std::function<void()> on_heartbeat_failure_;
  bool stopped_ = false;
  std::optional<error> stop_error_;
  bool hb_outstanding_ = false;
  int hb_misses_ = 0;
  reactor::timer_id hb_timer_ = 0;
  // Dropped messages are logged once, then at most once per drop_log_interval with a count.
  static constexpr std::chrono::seconds drop_log_interval{10};
  reactor::clock::time_point next_drop_log_{};
  std::uint64_t drops_unlogged_ = 0;

  std::atomic<std::uint64_t> next_token_{1};
  std::atomic<bool> iopub_seen_{false};
  mutable std::mutex shared_mutex_;  // guards the copies below, read from other threads
  std::string execution_state_;
  client_counters counters_;
};

}  // namespace kh::contexts
