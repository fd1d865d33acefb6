#pragma once
// A deliberately raw HTTP/1.1 client over a POSIX socket, for edge cases a library client would
// refuse to produce (malformed requests, slow headers, half-sent bodies, abrupt disconnects).

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kh::test {

struct raw_response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

class raw_http_client {
 public:
  explicit raw_http_client(int port);
  ~raw_http_client();
  raw_http_client(const raw_http_client&) = delete;
  raw_http_client& operator=(const raw_http_client&) = delete;

  bool connected() const { return fd_ >= 0; }
  void send_raw(const std::string& bytes);
  // Sends a request (Content-Length set from the body) and keeps the connection open.
  void send_request(const std::string& method, const std::string& target, const std::string& body = "",
                    const std::map<std::string, std::string>& headers = {});
  // Reads one response (Content-Length or chunked); nullopt when the server closed first.
  std::optional<raw_response> read_response();
  // Reads the status line and headers of a streamed response, then returns; body via read_some().
  std::optional<raw_response> read_head();
  // Reads more raw bytes (blocking, up to a few seconds of inactivity); "" on EOF.
  std::string read_some();
  // True when the server closed the connection (EOF or reset) within a few seconds.
  bool server_closed();
  void close();

  // One request on a fresh connection.
  static raw_response request(int port, const std::string& method, const std::string& target,
                              const std::string& body = "", const std::map<std::string, std::string>& headers = {});

 private:
  bool fill();  // reads into buffer_; false on EOF/error
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace kh::test
