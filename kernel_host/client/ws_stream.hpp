#pragma once
// A WebSocket to a service inside a sandbox (sandbox::ws_connect), on its own connection.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace kh::client {

struct ws_message {
  std::string data;
  bool binary = false;
};

// Blocking, one reader and one writer at a time (a read and a write may run on two threads).
// Errors throw sandbox_error (CONNECTION_ERROR). Closed when destroyed.
class ws_stream {
 public:
  ws_stream(ws_stream&&) noexcept;
  ws_stream& operator=(ws_stream&&) noexcept;
  ~ws_stream();

  void send_text(std::string_view text);
  void send_binary(std::string_view bytes);
  // The next message; std::nullopt once the peer closed the WebSocket.
  std::optional<ws_message> receive();
  // Sends a close frame with this code and reason and waits for the peer's (idempotent).
  void close(int code = 1000, std::string_view reason = {});
  bool is_open() const;
  // The close code the peer sent (0 until it closed).
  int close_code() const;

  struct impl;
  explicit ws_stream(std::unique_ptr<impl> p);

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace kh::client
