#include "integration/server/raw_http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace kh::test {

raw_http_client::raw_http_client(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) close();
}

raw_http_client::~raw_http_client() { close(); }

void raw_http_client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void raw_http_client::send_raw(const std::string& bytes) {
  std::size_t sent = 0;
  while (fd_ >= 0 && sent < bytes.size()) {
    const auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<std::size_t>(n);
  }
}

void raw_http_client::send_request(const std::string& method, const std::string& target, const std::string& body,
                                   const std::map<std::string, std::string>& headers) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") {
    if (!headers.contains("Content-Type")) req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  send_raw(req);
}

bool raw_http_client::fill() {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, 60'000) <= 0) return false;
  char chunk[65536];
  const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) return false;
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

std::optional<raw_response> raw_http_client::read_head() {
  std::size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return std::nullopt;
  raw_response out;
  std::string head = buffer_.substr(0, end);
  buffer_.erase(0, end + 4);
  const auto first = head.find("\r\n");
  const std::string status_line = head.substr(0, first);
  out.status = std::atoi(status_line.substr(status_line.find(' ') + 1).c_str());
  std::size_t pos = first == std::string::npos ? head.size() : first + 2;
  while (pos < head.size()) {
    auto eol = head.find("\r\n", pos);
    if (eol == std::string::npos) eol = head.size();
    const std::string line = head.substr(pos, eol - pos);
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      out.headers[name] = value;
    }
    pos = eol + 2;
  }
  return out;
}

std::optional<raw_response> raw_http_client::read_response() {
  auto out = read_head();
  if (!out) return std::nullopt;
  if (out->headers["transfer-encoding"] == "chunked") {
    while (true) {
      std::size_t eol;
      while ((eol = buffer_.find("\r\n")) == std::string::npos)
        if (!fill()) return out;
      const std::size_t size = std::stoul(buffer_.substr(0, eol), nullptr, 16);
      while (buffer_.size() < eol + 2 + size + 2)
        if (!fill()) return out;
      out->body += buffer_.substr(eol + 2, size);
      buffer_.erase(0, eol + 2 + size + 2);
      if (size == 0) return out;
    }
  }
  const std::size_t length = out->headers.contains("content-length") ? std::stoul(out->headers["content-length"]) : 0;
  while (buffer_.size() < length)
    if (!fill()) break;
  out->body = buffer_.substr(0, length);
  buffer_.erase(0, std::min(length, buffer_.size()));
  return out;
}

std::string raw_http_client::read_some() {
  if (buffer_.empty() && !fill()) return "";
  return std::exchange(buffer_, {});
}

bool raw_http_client::server_closed() {
  while (fd_ >= 0) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 60'000) <= 0) return false;  // still open after a minute
    char chunk[4096];
    if (::recv(fd_, chunk, sizeof chunk, 0) <= 0) return true;
  }
  return true;
}

raw_response raw_http_client::request(int port, const std::string& method, const std::string& target,
                                      const std::string& body, const std::map<std::string, std::string>& headers) {
  raw_http_client c(port);
  c.send_request(method, target, body, headers);
  auto r = c.read_response();
  return r ? *r : raw_response{};
}

}  // namespace kh::test
