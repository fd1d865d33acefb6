#include "kernel_host/client/ws_stream.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>

#include "kernel_host/client/detail/client_state.hpp"
#include "kernel_host/client/sandbox.hpp"

namespace kh::client {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;

struct ws_stream::impl {
  boost::asio::io_context ioc;
  websocket::stream<beast::tcp_stream> ws{ioc};
  beast::flat_buffer buffer;
  bool closed = false;
};

ws_stream::ws_stream(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
ws_stream::ws_stream(ws_stream&&) noexcept = default;
ws_stream& ws_stream::operator=(ws_stream&&) noexcept = default;

ws_stream::~ws_stream() {
  if (!impl_ || impl_->closed || !impl_->ws.is_open()) return;
  boost::system::error_code ec;
  impl_->ws.next_layer().expires_after(std::chrono::seconds(2));
  impl_->ws.close(websocket::close_code::normal, ec);
}

namespace {

[[noreturn]] void fail(const char* what, const boost::system::error_code& ec) {
  throw sandbox_error("CONNECTION_ERROR", std::string("WebSocket ") + what + ": " + ec.message());
}

}  // namespace

void ws_stream::send_text(std::string_view text) {
  boost::system::error_code ec;
  impl_->ws.text(true);
  impl_->ws.write(boost::asio::buffer(text.data(), text.size()), ec);
  if (ec) fail("send", ec);
}

void ws_stream::send_binary(std::string_view bytes) {
  boost::system::error_code ec;
  impl_->ws.binary(true);
  impl_->ws.write(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec) fail("send", ec);
}

std::optional<ws_message> ws_stream::receive() {
  if (impl_->closed) return std::nullopt;
  boost::system::error_code ec;
  impl_->buffer.clear();
  impl_->ws.read(impl_->buffer, ec);
  if (ec == websocket::error::closed) {
    impl_->closed = true;
    return std::nullopt;
  }
  if (ec) fail("receive", ec);
  return ws_message{beast::buffers_to_string(impl_->buffer.data()), impl_->ws.got_binary()};
}

void ws_stream::close(int code, std::string_view reason) {
  if (impl_->closed || !impl_->ws.is_open()) return;
  boost::system::error_code ec;
  impl_->ws.close(websocket::close_reason(static_cast<websocket::close_code>(code), beast::string_view(reason.data(), reason.size())), ec);
  impl_->closed = true;
  if (ec && ec != websocket::error::closed) fail("close", ec);
}

bool ws_stream::is_open() const { return impl_ && !impl_->closed && impl_->ws.is_open(); }

int ws_stream::close_code() const { return impl_ ? static_cast<int>(impl_->ws.reason().code) : 0; }

ws_stream sandbox::ws_connect(int port) const {
  auto p = std::make_unique<ws_stream::impl>();
  const auto& ep = state_->ep;
  boost::system::error_code ec;
  tcp::resolver resolver(p->ioc);
  auto endpoints = resolver.resolve(ep.host, ep.port, ec);
  if (!ec) beast::get_lowest_layer(p->ws).connect(endpoints, ec);
  if (ec) throw sandbox_error("CONNECTION_ERROR", "cannot connect to " + ep.host + ":" + ep.port + ": " + ec.message());
  beast::get_lowest_layer(p->ws).socket().set_option(tcp::no_delay(true), ec);
  const std::string token = state_->options.token;
  p->ws.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
    req.set(beast::http::field::user_agent, "kh_client");
    if (!token.empty()) req.set(beast::http::field::authorization, "Bearer " + token);
  }));
  // The asynchronous handshake, run here to completion: Beast 1.74's blocking one drops the
  // response of a refused upgrade, and its body carries the server's error code.
  websocket::response_type res;
  beast::get_lowest_layer(p->ws).expires_after(std::chrono::seconds(60));
  p->ws.async_handshake(res, ep.host + ":" + ep.port, state_->sandbox_target("/api/ws-connect/" + std::to_string(port)),
                        [&ec](boost::system::error_code e) { ec = e; });
  p->ioc.run();
  p->ioc.restart();
  beast::get_lowest_layer(p->ws).expires_never();
  if (ec) {
    if (res.result_int() != 0 && res.result_int() != 101) throw detail::error_from_reply(res.result_int(), res.body());
    fail("handshake", ec);
  }
  p->ws.read_message_max(64ull << 20);
  return ws_stream(std::move(p));
}

}  // namespace kh::client
