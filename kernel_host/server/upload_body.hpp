#pragma once
// upload_body: the body of a request whose connection a handler took over (takeover.hpp), read
// piece by piece as it arrives and without the server's body limit, so an upload of any size goes
// to its destination as it comes instead of being buffered whole. Blocking: use it on a pool
// thread, never on an I/O thread.

#include <chrono>
#include <memory>
#include <string_view>

#include "common/error.hpp"
#include "kernel_host/server/takeover.hpp"

namespace kh::server {

class upload_body {
 public:
  // Parses the request head again from conn.prelude; `idle`: the longest wait for the next byte.
  upload_body(taken_connection conn, std::chrono::milliseconds idle);
  ~upload_body();  // closes a connection that was not given back
  upload_body(const upload_body&) = delete;
  upload_body& operator=(const upload_body&) = delete;

  // The next piece of the body (at most 1 MiB), empty at its end; an error when the client left,
  // stalled for `idle` or sent a malformed request.
  result<std::string_view> next();

  // Sends the response as the server writes its own. When the body was read whole (or what is left
  // of it is small enough to skip) and the client keeps the connection alive, the connection goes
  // back to the server for the next request; otherwise it is closed.
  void respond(const http_response& response);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace kh::server
