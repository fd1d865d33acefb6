#pragma once
// What every handle of one client shares: the server's address, the options, and one keep-alive
// HTTP connection for plain calls (behind a mutex). Streams open connections of their own.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <nlohmann/json.hpp>

#include "kernel_host/client/sandbox_error.hpp"
#include "kernel_host/client/types.hpp"

namespace kh::client::detail {

namespace http = boost::beast::http;
using clock = std::chrono::steady_clock;
using deadline = std::optional<clock::time_point>;

struct endpoint {
  std::string host;
  std::string port;
  std::string prefix;  // the base URL's path, "" or "/x" (no trailing slash)
};

// "http://HOST[:PORT][/prefix]"; throws std::invalid_argument otherwise.
endpoint parse_base_url(std::string_view url);

// A deadline `timeout` from now, or none for a zero or absent timeout.
deadline deadline_after(std::optional<milliseconds> timeout);

struct http_reply {
  int status = 0;
  std::string body;
  std::string retry_after;
};

// One HTTP/1.1 connection with its own io_context (blocking calls).
class http_connection {
 public:
  explicit http_connection(const endpoint& ep);
  // Connects when not connected. Throws sandbox_error CONNECTION_ERROR / TIMEOUT.
  void open(deadline until);
  bool is_open() const { return open_; }
  void close();
  // Sends req and reads the whole response. Throws boost::system::system_error.
  http_reply round_trip(const http::request<http::string_body>& req, deadline until);
  boost::beast::tcp_stream& stream() { return stream_; }
  boost::beast::flat_buffer& buffer() { return buffer_; }
  bool used() const { return used_; }  // a response was already read on this connection

  // Runs one asynchronous operation to completion on this connection's io_context and returns
  // its error: Beast's tcp_stream deadlines only apply to asynchronous operations.
  template <class Initiate>
  boost::system::error_code run(Initiate&& initiate) {
    boost::system::error_code result = boost::asio::error::would_block;
    initiate([&result](boost::system::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

 private:
  endpoint ep_;
  boost::asio::io_context ioc_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  bool open_ = false;
  bool used_ = false;
};

// How a stream ended.
enum class stream_end { finished, stopped, timed_out };

struct client_state {
  client_state(endpoint ep, connect_options options) : ep(std::move(ep)), options(std::move(options)) {}

  endpoint ep;
  connect_options options;

  // "<prefix>/sandboxes/<sandbox><api_path>" (api_path starts with /api/).
  std::string sandbox_target(std::string_view api_path) const;
  // "<prefix><path>", for host-level routes such as /api/sandboxes/{id}.
  std::string host_target(std::string_view path) const;

  // A JSON call on the shared keep-alive connection: the parsed body of a 2xx answer. 503s are
  // retried with backoff; other errors throw sandbox_error. body null sends no body.
  nlohmann::json call(http::verb method, const std::string& target, const nlohmann::json& body = nullptr,
                      std::optional<milliseconds> extra_time = std::nullopt);

  // An SSE call on a connection of its own: on_event runs for each event's JSON as it arrives
  // and returns false to stop reading (the connection is then closed). A non-2xx answer throws
  // like call(). Events whose data is not JSON are skipped.
  stream_end stream(http::verb method, const std::string& target, const nlohmann::json& body,
                    const std::function<bool(const nlohmann::json&)>& on_event, deadline until = std::nullopt);

  http::request<http::string_body> make_request(http::verb method, const std::string& target, const nlohmann::json& body) const;

 private:
  http_reply send_shared(const http::request<http::string_body>& req, deadline until);

  std::mutex mutex_;
  std::unique_ptr<http_connection> shared_;
};

// The sandbox_error an error answer stands for (the API's error shape, the execute/code
// `{error, code, details}` shape, or anything else as INTERNAL_ERROR).
sandbox_error error_from_reply(int status, const std::string& body);

// A string field of a response, or fallback when it is absent, null or not a string.
std::string text_field(const nlohmann::json& j, const char* name, std::string fallback = {});

// An integer field, or fallback when it is absent, null or not an integer.
int int_field(const nlohmann::json& j, const char* name, int fallback);

// A byte field of a response: "<name>Base64" carries the exact bytes when they are not UTF-8.
std::string bytes_field(const nlohmann::json& j, const std::string& name);

// A process of the API (`id` or `processId`, pid, command, status, times, exitCode).
process_info process_from_json(const nlohmann::json& j);

// Whether the bytes are valid UTF-8 (so they can travel as a JSON string).
bool is_utf8(std::string_view bytes);

// A path segment or query value, percent-encoded (unreserved characters kept).
std::string encode_component(std::string_view text);

// Bytes <-> base64 (standard alphabet, padded).
std::string base64_encode(std::string_view bytes);
std::string base64_decode(std::string_view text);

}  // namespace kh::client::detail
