#include "kernel_host/api/kernel_wire.hpp"

#include <cstdint>
#include <vector>

namespace kh::api {
namespace {

namespace ctx = kh::contexts;
namespace nl = nlohmann;

nl::json message_json(const ctx::message& m, std::string_view channel) {
  return {{"header", m.header},   {"parent_header", m.parent_header}, {"metadata", m.metadata},
          {"content", m.content}, {"buffers", nl::json::array()},     {"channel", channel},
          {"msg_id", m.msg_id()}, {"msg_type", m.msg_type()}};
}

void put_be32(std::string& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

nl::json parse_object(const std::string& text) {
  auto j = nl::json::parse(text, nullptr, false);
  return j.is_object() ? j : nl::json::object();
}

// An object member of a client's message; {} when it is absent or not an object (as the v1
// decoder does), so what reaches a kernel is always a well-formed message.
nl::json object_member(const nl::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : nl::json::object();
}

bool from_json(const nl::json& j, std::string& channel, ctx::message& msg) {
  if (!j.is_object()) return false;
  auto header = j.find("header");
  if (header == j.end() || !header->is_object()) return false;
  // "channel": 1 used to reach j.value("channel", "shell"), which throws on a non-string and
  // took the daemon down from a WebSocket read handler.
  auto ch = j.find("channel");
  if (ch == j.end() || ch->is_null()) channel = "shell";
  else if (ch->is_string()) channel = ch->get<std::string>();
  else return false;
  msg.header = *header;
  msg.parent_header = object_member(j, "parent_header");
  msg.metadata = object_member(j, "metadata");
  msg.content = object_member(j, "content");
  return true;
}

}  // namespace

std::pair<std::string, bool> to_wire_legacy(const ctx::message& m, std::string_view channel) {
  auto j = message_json(m, channel);
  if (m.buffers.empty()) return {j.dump(-1, ' ', false, nl::json::error_handler_t::replace), false};
  j.erase("buffers");
  std::vector<std::string_view> parts;
  const std::string json = j.dump(-1, ' ', false, nl::json::error_handler_t::replace);
  parts.push_back(json);
  for (const auto& b : m.buffers) parts.push_back(b);
  std::string out;
  put_be32(out, static_cast<std::uint32_t>(parts.size()));
  std::uint32_t offset = static_cast<std::uint32_t>(4 * (parts.size() + 1));
  for (const auto& p : parts) {
    put_be32(out, offset);
    offset += static_cast<std::uint32_t>(p.size());
  }
  for (const auto& p : parts) out += p;
  return {std::move(out), true};
}

std::string to_wire_v1(const ctx::message& m, std::string_view channel) {
  auto dump = [](const nl::json& j) { return j.dump(-1, ' ', false, nl::json::error_handler_t::replace); };
  std::vector<std::string> parts = {dump(m.header), dump(m.parent_header), dump(m.metadata), dump(m.content)};
  for (const auto& b : m.buffers) parts.push_back(b);
  std::vector<std::uint64_t> offsets;
  offsets.push_back(8 * (parts.size() + 3));
  offsets.push_back(offsets.back() + channel.size());
  for (const auto& p : parts) offsets.push_back(offsets.back() + p.size());
  std::string out;
  auto put = [&out](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put(offsets.size());
  for (auto o : offsets) put(o);
  out += channel;
  for (const auto& p : parts) out += p;
  return out;
}

bool from_wire_v1(const std::string& data, std::string& channel, ctx::message& msg) {
  auto get = [&data](std::size_t at) -> std::uint64_t {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data[at + i]);
    return v;
  };
  if (data.size() < 8) return false;
  const auto count = get(0);
  if (count < 6 || count > 1024 || data.size() < 8 * (count + 1)) return false;
  std::vector<std::uint64_t> offsets;
  for (std::uint64_t i = 0; i < count; ++i) offsets.push_back(get(8 * (i + 1)));
  for (std::size_t i = 1; i < offsets.size(); ++i)
    if (offsets[i] < offsets[i - 1] || offsets[i] > data.size()) return false;
  auto part = [&](std::size_t i) { return data.substr(offsets[i], offsets[i + 1] - offsets[i]); };
  channel = part(0);
  msg.header = parse_object(part(1));
  msg.parent_header = parse_object(part(2));
  msg.metadata = parse_object(part(3));
  msg.content = parse_object(part(4));
  for (std::size_t i = 5; i + 1 < offsets.size(); ++i) msg.buffers.push_back(part(i));
  if (offsets.back() < data.size()) msg.buffers.push_back(data.substr(offsets.back()));
  return !msg.header.empty();
}

// jupyter_server's deserialize_binary_message (legacy protocol with buffers).
bool from_wire_legacy_text(const std::string& data, std::string& channel, ctx::message& msg) {
  return from_json(nl::json::parse(data, nullptr, false), channel, msg);
}

bool from_wire_legacy_binary(const std::string& data, std::string& channel, ctx::message& msg) {
  auto get = [&data](std::size_t at) -> std::uint32_t {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(data[at + i]);
    return v;
  };
  if (data.size() < 8) return false;
  const auto count = get(0);
  if (count < 1 || count > 1024 || data.size() < 4 * (count + 1)) return false;
  std::vector<std::size_t> offsets;
  for (std::uint32_t i = 0; i < count; ++i) offsets.push_back(get(4 * (i + 1)));
  offsets.push_back(data.size());
  for (std::size_t i = 1; i < offsets.size(); ++i)
    if (offsets[i] < offsets[i - 1] || offsets[i] > data.size()) return false;
  auto j = nl::json::parse(data.substr(offsets[0], offsets[1] - offsets[0]), nullptr, false);
  if (!from_json(j, channel, msg)) return false;
  for (std::size_t i = 1; i + 1 < offsets.size(); ++i) msg.buffers.push_back(data.substr(offsets[i], offsets[i + 1] - offsets[i]));
  return true;
}

}  // namespace kh::api
