#include "kernel_host/remote_run_code.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <limits>
#include <optional>

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kh::host {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
namespace nl = nlohmann;

struct server_url {
  std::string host;
  std::string port;
  std::string base;  // "" or "/sandboxes/ID"
};

std::optional<server_url> parse_url(std::string url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return std::nullopt;
  url = url.substr(scheme.size());
  server_url out;
  const auto slash = url.find('/');
  std::string authority = url.substr(0, slash);
  if (slash != std::string::npos) out.base = url.substr(slash);
  while (!out.base.empty() && out.base.back() == '/') out.base.pop_back();
  const auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    out.host = authority.substr(0, colon);
    out.port = authority.substr(colon + 1);
  } else {
    out.host = authority;
    out.port = "80";
  }
  if (out.host.size() > 2 && out.host.front() == '[') out.host = out.host.substr(1, out.host.size() - 2);
  if (out.host.empty()) return std::nullopt;
  return out;
}

// One HTTP/1.1 connection to the host.
class connection {
 public:
  connection(const server_url& url, std::string token) : url_(url), token_(std::move(token)), stream_(ioc_) {}

  bool open(std::string& error) {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto endpoints = resolver.resolve(url_.host, url_.port, ec);
    if (!ec) stream_.connect(endpoints, ec);
    if (ec) error = fmt::format("cannot connect to {}:{}: {}", url_.host, url_.port, ec.message());
    else stream_.socket().set_option(tcp::no_delay(true), ec);
    return error.empty();
  }

  bool send(http::verb method, const std::string& path, const std::string& body, std::string& error) {
    http::request<http::string_body> req{method, url_.base + path, 11};
    req.set(http::field::host, url_.host);
    req.set(http::field::user_agent, "kernel-host run-code");
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    http::write(stream_, req, ec);
    if (ec) error = fmt::format("cannot send the request: {}", ec.message());
    return !ec;
  }

  // A whole (small) response.
  std::optional<http::response<http::string_body>> read(std::string& error) {
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(stream_, buffer_, res, ec);
    if (ec) {
      error = fmt::format("no answer from the server: {}", ec.message());
      return std::nullopt;
    }
    return res;
  }

  beast::tcp_stream& stream() { return stream_; }
  beast::flat_buffer& buffer() { return buffer_; }

 private:
  server_url url_;
  std::string token_;
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

// A JSON request on a fresh connection; the parsed body, or an error message.
std::optional<nl::json> call(const server_url& url, const std::string& token, http::verb method, const std::string& path,
                             const nl::json& body, std::string& error) {
  connection c(url, token);
  if (!c.open(error) || !c.send(method, path, body.is_null() ? "" : body.dump(), error)) return std::nullopt;
  auto res = c.read(error);
  if (!res) return std::nullopt;
  auto j = nl::json::parse(res->body(), nullptr, false);
  if (res->result_int() >= 400) {
    error = j.is_object() && j.contains("message")
                ? fmt::format("{} {}: {}", res->result_int(), j.value("code", ""), j.value("message", ""))
                : fmt::format("HTTP {}: {}", res->result_int(), res->body());
    return std::nullopt;
  }
  return j.is_discarded() ? nl::json::object() : j;
}

// Prints one event as a terminal user wants it; returns false for a terminal event.
// Reads the next piece of a streamed answer's body onto `out`; false on an error (in ec).
template <class Connection>
bool read_piece(Connection& c, http::response_parser<http::buffer_body>& parser, std::string& out, beast::error_code& ec) {
  char chunk[8192];
  parser.get().body().data = chunk;
  parser.get().body().size = sizeof(chunk);
  http::read(c.stream(), c.buffer(), parser, ec);
  if (ec == http::error::need_buffer) ec = {};
  if (ec) return false;
  out.append(chunk, sizeof(chunk) - parser.get().body().size);
  return true;
}

void print_event(const nl::json& e) {
  const std::string type = e.value("type", "");
  if (type == "stdout" || type == "stderr") {
    const std::string text = e.value("text", "");
    std::FILE* out = type == "stderr" ? stderr : stdout;
    std::fwrite(text.data(), 1, text.size(), out);
    std::fflush(out);
  } else if (type == "result") {
    if (e.contains("text") && e["text"].is_string()) {
      std::printf("%s\n", e["text"].get<std::string>().c_str());
    } else {
      std::vector<std::string> kinds;
      for (const char* k : {"html", "markdown", "svg", "png", "jpeg", "pdf", "latex", "json", "javascript", "chart"})
        if (e.contains(k) && !e[k].is_null()) kinds.emplace_back(k);
      std::printf("[%s result]\n", fmt::format("{}", fmt::join(kinds, ", ")).c_str());
    }
    std::fflush(stdout);
  } else if (type == "error") {
    for (const auto& line : e.value("traceback", nl::json::array()))
      if (line.is_string()) std::fprintf(stderr, "%s\n", line.get<std::string>().c_str());
    std::fprintf(stderr, "%s: %s\n", e.value("ename", "Error").c_str(), e.value("evalue", "").c_str());
  }
}

}  // namespace

void add_remote_run_options(CLI::App& run_cmd, remote_run_options& o) {
  run_cmd.add_option("--server", o.server,
                     "Run through a running kernel-host (http://HOST:PORT, or .../sandboxes/ID) instead of a local kernel")
      ->envname("KH_SERVER");
  run_cmd.add_option("--token", o.token, "The server's token (sent as Authorization: Bearer)")->envname("KH_TOKEN");
  auto* context = run_cmd.add_option("--context", o.context, "With --server: run in this existing context");
  run_cmd.add_option("--language,-l", o.language, "With --server: a new context of this language (deleted after)")
      ->capture_default_str()
      ->excludes(context);
}

int run_code_remote(const remote_run_options& o, std::string code) {
  if (code == "-") code.assign(std::istreambuf_iterator<char>(std::cin), {});
  auto url = parse_url(o.server);
  if (!url) {
    std::fprintf(stderr, "error: --server must be http://HOST:PORT[/sandboxes/ID], got '%s'\n", o.server.c_str());
    return 2;
  }
  std::string error;
  std::string context = o.context;
  const bool own_context = context.empty();
  if (own_context) {
    auto made = call(*url, o.token, http::verb::post, "/api/contexts", {{"language", o.language}}, error);
    if (!made) {
      std::fprintf(stderr, "error: cannot create a %s context: %s\n", o.language.c_str(), error.c_str());
      return 2;
    }
    context = made->value("contextId", "");
  }
  const bool interactive = ::isatty(STDIN_FILENO) != 0;
  nl::json body = {{"context_id", context}, {"code", code}, {"allow_stdin", interactive}};
  if (o.timeout_s > 0) body["timeout_ms"] = static_cast<long long>(o.timeout_s * 1000);

  int exit_code = 2;
  connection c(*url, o.token);
  if (c.open(error) && c.send(http::verb::post, "/api/execute/code", body.dump(), error)) {
    // The body arrives as SSE chunks: read it piecewise and print each event as it completes.
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // a cell may print a lot
    beast::error_code ec;
    http::read_header(c.stream(), c.buffer(), parser, ec);
    if (ec) {
      error = fmt::format("no answer from the server: {}", ec.message());
    } else if (parser.get().result_int() != 200) {
      std::string text;
      while (!parser.is_done() && read_piece(c, parser, text, ec)) {
      }
      auto j = nl::json::parse(text, nullptr, false);
      error = j.is_object() ? fmt::format("{} {}: {}", parser.get().result_int(), j.value("code", ""), j.value("message", ""))
                            : fmt::format("HTTP {}", parser.get().result_int());
    } else {
      std::string pending;
      while (!parser.is_done()) {
        if (!read_piece(c, parser, pending, ec)) {
          error = fmt::format("the stream broke: {}", ec.message());
          break;
        }
        for (std::size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
          std::string event = pending.substr(0, end);
          pending.erase(0, end + 2);
          if (event.rfind("data: ", 0) != 0) continue;
          auto e = nl::json::parse(event.substr(6), nullptr, false);
          if (!e.is_object()) continue;
          print_event(e);
          const std::string type = e.value("type", "");
          if (type == "execution_complete") exit_code = 0;
          if (type == "error") exit_code = 1;
          if (type == "input_request") {
            std::fputs(e.value("prompt", "").c_str(), stdout);
            std::fflush(stdout);
            std::string line;
            std::getline(std::cin, line);
            std::string input_error;
            if (!call(*url, o.token, http::verb::post, "/api/contexts/" + context + "/input", {{"value", line}}, input_error))
              std::fprintf(stderr, "error: cannot answer input: %s\n", input_error.c_str());
          }
        }
      }
    }
  }
  if (!error.empty()) std::fprintf(stderr, "error: %s\n", error.c_str());
  if (own_context) {
    std::string ignored;
    (void)call(*url, o.token, http::verb::delete_, "/api/contexts/" + context, nullptr, ignored);
  }
  return exit_code;
}

}  // namespace kh::host
