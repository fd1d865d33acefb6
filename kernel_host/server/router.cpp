#include "kernel_host/server/router.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "kernel_host/api/error_mapping.hpp"

namespace kh::server {

std::string http_request::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (key == name) return value;
  return {};
}

std::string percent_decode(std::string_view in) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

void parse_target(std::string_view target, std::string& path, std::map<std::string, std::string>& query) {
  const auto q = target.find('?');
  path = percent_decode(target.substr(0, q));
  if (q == std::string_view::npos) return;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    std::string key(pair.substr(0, eq));
    std::string value(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    std::replace(key.begin(), key.end(), '+', ' ');
    std::replace(value.begin(), value.end(), '+', ' ');
    query[percent_decode(key)] = percent_decode(value);
  }
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  while (!path.empty()) {
    const auto slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (!part.empty()) out.emplace_back(part);
    if (slash == std::string_view::npos) break;
    path = path.substr(slash + 1);
  }
  return out;
}

void router::add(std::string method, std::string pattern, handler h) {
  routes_.push_back(route{std::move(method), split_path(pattern), std::move(h)});
}

void router::add_websocket(std::string pattern, websocket_handler h, websocket_admission admit) {
  websocket_routes_.push_back(websocket_endpoint{split_path(pattern), std::move(h), std::move(admit)});
}

namespace {
bool match_segments(const std::vector<std::string>& pattern, const std::vector<std::string>& segments,
                    std::map<std::string, std::string>& params) {
  if (pattern.size() != segments.size()) return false;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& pat = pattern[i];
    if (pat.size() > 2 && pat.front() == '{' && pat.back() == '}')
      params[pat.substr(1, pat.size() - 2)] = segments[i];
    else if (pat != segments[i])
      return false;
  }
  return true;
}
}  // namespace

const websocket_endpoint* router::match_websocket(request_context& ctx) const {
  auto segments = split_path(ctx.request.path);
  ctx.sandbox_id = "default";
  if (segments.size() >= 2 && segments[0] == "sandboxes") {
    ctx.sandbox_id = segments[1];
    segments.erase(segments.begin(), segments.begin() + 2);
  }
  for (const auto& r : websocket_routes_) {
    std::map<std::string, std::string> params;
    if (match_segments(r.segments, segments, params)) {
      ctx.params = std::move(params);
      return &r;
    }
  }
  return nullptr;
}

route_result router::match(request_context& ctx) const {
  auto segments = split_path(ctx.request.path);
  ctx.sandbox_id = "default";
  if (segments.size() >= 2 && segments[0] == "sandboxes") {
    ctx.sandbox_id = segments[1];
    segments.erase(segments.begin(), segments.begin() + 2);
  }
  route_result out;
  for (const auto& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (std::size_t i = 0; i < segments.size() && ok; ++i) {
      const auto& pat = r.segments[i];
      if (pat.size() > 2 && pat.front() == '{' && pat.back() == '}')
        params[pat.substr(1, pat.size() - 2)] = segments[i];
      else
        ok = pat == segments[i];
    }
    if (!ok) continue;
    out.path_known = true;
    if (std::find(out.allowed_methods.begin(), out.allowed_methods.end(), r.method) == out.allowed_methods.end())
      out.allowed_methods.push_back(r.method);
    if (!out.found && r.method == ctx.request.method) {
      out.found = &r.fn;
      ctx.params = std::move(params);
    }
  }
  return out;
}

void router::dispatch(request_context& ctx) const {
  const auto result = match(ctx);
  if (ctx.request.method == "OPTIONS") {
    ctx.out->send(http_response{.status = 204, .content_type = ""});
    return;
  }
  if (result.found) {
    (*result.found)(ctx);
    return;
  }
  if (result.path_known) {
    std::string allowed;
    for (const auto& m : result.allowed_methods) allowed += (allowed.empty() ? "" : ", ") + m;
    auto response = api::error_response(
        error{errc::method_not_allowed, fmt::format("{} is not allowed on {}; use {}", ctx.request.method, ctx.request.path, allowed),
              {{"method", ctx.request.method}, {"path", ctx.request.path}, {"allowed", result.allowed_methods}}});
    response.headers.emplace_back("Allow", allowed);
    ctx.out->send(std::move(response));
    return;
  }
  ctx.out->send(api::error_response(error{errc::not_found, "The requested endpoint was not found",
                                          {{"method", ctx.request.method}, {"path", ctx.request.path}}}));
}

}  // namespace kh::server
