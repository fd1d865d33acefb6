#include "kernel_host/client/detail/client_state.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "kernel_host/client/sse_parser.hpp"

namespace kh::client::detail {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;
namespace nl = nlohmann;

namespace {

constexpr std::uint64_t kNoBodyLimit = std::numeric_limits<std::uint64_t>::max();

void set_expiry(beast::tcp_stream& s, const deadline& until) {
  if (until) s.expires_at(*until);
  else s.expires_never();
}

bool is_timeout(const boost::system::error_code& ec) {
  return ec == beast::error::timeout || ec == net::error::timed_out;
}

std::string origin(const endpoint& ep) { return "http://" + ep.host + ":" + ep.port; }

// Sleeps before the next try of a 503, or returns false when the retry budget is spent.
bool back_off(milliseconds& delay, clock::time_point retry_until) {
  if (clock::now() + delay > retry_until) return false;
  std::this_thread::sleep_for(delay);
  delay = std::min<milliseconds>(delay * 2, milliseconds(30'000));
  return true;
}

}  // namespace

endpoint parse_base_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.substr(0, scheme.size()) != scheme)
    throw std::invalid_argument("kh::client::connect: the URL must start with http://, got '" + std::string(url) + "'");
  url.remove_prefix(scheme.size());
  endpoint ep;
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) ep.prefix = std::string(url.substr(slash));
  while (!ep.prefix.empty() && ep.prefix.back() == '/') ep.prefix.pop_back();
  const auto bracket = authority.rfind(']');
  const auto colon = authority.rfind(':');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    ep.host = std::string(authority.substr(0, colon));
    ep.port = std::string(authority.substr(colon + 1));
  } else {
    ep.host = std::string(authority);
    ep.port = "80";
  }
  if (ep.host.size() > 2 && ep.host.front() == '[') ep.host = ep.host.substr(1, ep.host.size() - 2);
  if (ep.host.empty() || ep.port.empty() || ep.port.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument("kh::client::connect: no host:port in '" + std::string(url) + "'");
  return ep;
}

deadline deadline_after(std::optional<milliseconds> timeout) {
  if (!timeout || timeout->count() <= 0) return std::nullopt;
  return clock::now() + *timeout;
}

// ---- http_connection ----------------------------------------------------------------------------

http_connection::http_connection(const endpoint& ep) : ep_(ep), stream_(ioc_) {}

void http_connection::open(deadline until) {
  if (open_) return;
  boost::system::error_code ec;
  tcp::resolver resolver(ioc_);
  auto endpoints = resolver.resolve(ep_.host, ep_.port, ec);
  if (!ec) {
    set_expiry(stream_, until);
    ec = run([&](auto handler) { stream_.async_connect(endpoints, std::move(handler)); });
  }
  if (ec) {
    if (is_timeout(ec)) throw sandbox_error("TIMEOUT", "connecting to " + origin(ep_) + " timed out");
    throw sandbox_error("CONNECTION_ERROR", "cannot connect to " + origin(ep_) + ": " + ec.message());
  }
  stream_.socket().set_option(tcp::no_delay(true), ec);
  open_ = true;
}

void http_connection::close() {
  boost::system::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
  open_ = false;
}

http_reply http_connection::round_trip(const http::request<http::string_body>& req, deadline until) {
  set_expiry(stream_, until);
  if (auto ec = run([&](auto handler) { http::async_write(stream_, req, std::move(handler)); })) throw boost::system::system_error(ec);
  http::response_parser<http::string_body> parser;
  parser.body_limit(kNoBodyLimit);
  if (auto ec = run([&](auto handler) { http::async_read(stream_, buffer_, parser, std::move(handler)); }))
    throw boost::system::system_error(ec);
  used_ = true;
  auto& res = parser.get();
  http_reply out{static_cast<int>(res.result_int()), std::move(res.body()), std::string(res[http::field::retry_after])};
  if (!res.keep_alive()) close();
  return out;
}

// ---- client_state -------------------------------------------------------------------------------

std::string client_state::sandbox_target(std::string_view api_path) const {
  return ep.prefix + "/sandboxes/" + options.sandbox + std::string(api_path);
}

std::string client_state::host_target(std::string_view path) const { return ep.prefix + std::string(path); }

http::request<http::string_body> client_state::make_request(http::verb method, const std::string& target,
                                                            const nl::json& body) const {
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, ep.host + ":" + ep.port);
  req.set(http::field::user_agent, "kh_client");
  if (!options.token.empty()) req.set(http::field::authorization, "Bearer " + options.token);
  if (!body.is_null()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body.dump(-1, ' ', false, nl::json::error_handler_t::replace);
  }
  req.keep_alive(true);
  req.prepare_payload();
  return req;
}

http_reply client_state::send_shared(const http::request<http::string_body>& req, deadline until) {
  std::lock_guard lock(mutex_);
  for (int attempt = 0;; ++attempt) {
    if (!shared_) shared_ = std::make_unique<http_connection>(ep);
    const bool reused = shared_->used();
    try {
      shared_->open(until);
      return shared_->round_trip(req, until);
    } catch (const sandbox_error&) {
      shared_.reset();
      throw;
    } catch (const boost::system::system_error& e) {
      shared_.reset();
      if (is_timeout(e.code())) throw sandbox_error("TIMEOUT", "no answer from " + origin(ep) + " in time", 0, {{"target", std::string(req.target())}});
      // The server may close an idle keep-alive connection just as a request goes out: once on a
      // fresh connection.
      if (reused && attempt == 0) continue;
      throw sandbox_error("CONNECTION_ERROR", "the request to " + origin(ep) + " failed: " + e.code().message(), 0,
                          {{"target", std::string(req.target())}});
    }
  }
}

nl::json client_state::call(http::verb method, const std::string& target, const nl::json& body,
                            std::optional<milliseconds> extra_time) {
  const auto req = make_request(method, target, body);
  const auto retry_until = clock::now() + options.retry_timeout;
  auto delay = options.retry_delay;
  for (;;) {
    deadline until;
    if (options.request_timeout.count() > 0) until = clock::now() + options.request_timeout + extra_time.value_or(milliseconds(0));
    auto reply = send_shared(req, until);
    if (reply.status >= 200 && reply.status < 300) {
      if (reply.body.empty()) return nl::json::object();
      auto j = nl::json::parse(reply.body, nullptr, false);
      if (j.is_discarded())
        throw sandbox_error("INVALID_RESPONSE", "the answer to " + target + " is not JSON", reply.status, {{"body", reply.body.substr(0, 512)}});
      return j;
    }
    if (reply.status == 503 && back_off(delay, retry_until)) continue;
    throw error_from_reply(reply.status, reply.body);
  }
}

stream_end client_state::stream(http::verb method, const std::string& target, const nl::json& body,
                                const std::function<bool(const nl::json&)>& on_event, deadline until) {
  const auto req = make_request(method, target, body);
  const auto retry_until = clock::now() + options.retry_timeout;
  auto delay = options.retry_delay;
  for (;;) {
    http_connection c(ep);
    c.open(until);
    boost::system::error_code ec;
    auto failed = [&](const boost::system::error_code& e) -> stream_end {
      if (is_timeout(e)) return stream_end::timed_out;
      throw sandbox_error("CONNECTION_ERROR", "the stream " + target + " failed: " + e.message(), 0, {{"target", target}});
    };
    set_expiry(c.stream(), until);
    ec = c.run([&](auto handler) { http::async_write(c.stream(), req, std::move(handler)); });
    if (ec) return failed(ec);
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(kNoBodyLimit);
    ec = c.run([&](auto handler) { http::async_read_header(c.stream(), c.buffer(), parser, std::move(handler)); });
    if (ec) return failed(ec);
    const int status = parser.get().result_int();
    char buf[16 * 1024];
    auto read_piece = [&]() -> std::size_t {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      ec = c.run([&](auto handler) { http::async_read_some(c.stream(), c.buffer(), parser, std::move(handler)); });
      if (ec == http::error::need_buffer) ec = {};
      return sizeof buf - parser.get().body().size;
    };
    if (status < 200 || status >= 300) {
      std::string text;
      while (!parser.is_done()) {
        const std::size_t n = read_piece();
        text.append(buf, n);
        if (ec) break;
      }
      if (status == 503 && back_off(delay, retry_until)) continue;
      throw error_from_reply(status, text);
    }
    sse_parser sse;
    bool stop = false;
    auto deliver = [&](sse_event&& e) {
      if (stop) return;
      auto j = nl::json::parse(e.data, nullptr, false);
      if (j.is_discarded()) return;  // a malformed frame: skip it, as the SDK does
      if (!on_event(j)) stop = true;
    };
    while (!parser.is_done()) {
      const std::size_t n = read_piece();
      if (n > 0) {
        try {
          sse.feed(std::string_view(buf, n), deliver);
        } catch (const std::length_error& e) {
          throw sandbox_error("INVALID_RESPONSE", std::string(e.what()) + " in " + target);
        }
      }
      if (stop) {
        c.close();
        return stream_end::stopped;
      }
      if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == net::error::eof) break;
      if (ec) return failed(ec);
    }
    return stream_end::finished;
  }
}

sandbox_error error_from_reply(int status, const std::string& body) {
  auto j = nl::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("code") && j["code"].is_string()) {
    std::string message = text_field(j, "message", "");
    if (message.empty() && j.contains("error") && j["error"].is_string()) message = j["error"].get<std::string>();
    nl::json context = nl::json::object();
    if (j.contains("context") && j["context"].is_object()) context = j["context"];
    else if (j.contains("details") && j["details"].is_object()) context = j["details"];
    return sandbox_error(j["code"].get<std::string>(), message, status, std::move(context));
  }
  return sandbox_error("INTERNAL_ERROR", "HTTP " + std::to_string(status) + (body.empty() ? "" : ": " + body.substr(0, 512)), status);
}

// A byte field of a response: "<name>Base64" carries the exact bytes when they are not UTF-8.
std::string text_field(const nl::json& j, const char* name, std::string fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

int int_field(const nl::json& j, const char* name, int fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(name);
  return it != j.end() && it->is_number_integer() ? it->get<int>() : fallback;
}

std::string bytes_field(const nl::json& j, const std::string& name) {
  if (auto it = j.find(name + "Base64"); it != j.end() && it->is_string()) return base64_decode(it->get<std::string>());
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

process_info process_from_json(const nl::json& j) {
  process_info p;
  p.id = text_field(j, "id", text_field(j, "processId", ""));
  p.pid = int_field(j, "pid", 0);
  p.command = text_field(j, "command", "");
  p.status = text_field(j, "status", "");
  p.start_time = text_field(j, "startTime", "");
  p.end_time = text_field(j, "endTime", "");
  if (auto it = j.find("exitCode"); it != j.end() && it->is_number_integer()) p.exit_code = it->get<int>();
  p.session_id = text_field(j, "sessionId", "");
  return p;
}

bool is_utf8(std::string_view bytes) {
  try {
    (void)nl::json(std::string(bytes)).dump();
    return true;
  } catch (const nl::json::type_error&) {
    return false;
  }
}

std::string encode_component(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out(beast::detail::base64::encoded_size(bytes.size()), '\0');
  out.resize(beast::detail::base64::encode(out.data(), bytes.data(), bytes.size()));
  return out;
}

std::string base64_decode(std::string_view text) {
  std::string out(beast::detail::base64::decoded_size(text.size()), '\0');
  out.resize(beast::detail::base64::decode(out.data(), text.data(), text.size()).first);
  return out;
}

}  // namespace kh::client::detail
