#pragma once
// The Jupyter message model (protocol 5.3+): header, parent header, metadata, content, buffers.

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kh::contexts {

namespace nl = nlohmann;

// The protocol version we speak and put in every header we create.
inline constexpr std::string_view protocol_version = "5.3";

struct message {
  std::vector<std::string> identities;  // ROUTER routing prefix, or the IOPub topic
  nl::json header = nl::json::object();
  nl::json parent_header = nl::json::object();
  nl::json metadata = nl::json::object();
  nl::json content = nl::json::object();
  std::vector<std::string> buffers;  // raw binary buffers (not signed)

  std::string msg_type() const;
  std::string msg_id() const;
  std::string parent_msg_id() const;  // "" when there is no parent
};

// A new message with a fresh unique msg_id, the given session and the current UTC date.
message make_message(std::string_view msg_type, nl::json content, std::string_view session,
                     std::string_view username = "kernel-host");

// ISO 8601 UTC with microseconds: "2026-11-26T23:53:03.123456Z".
std::string utc_timestamp();

// A unique message id: a per-process random prefix plus a counter (cheaper than a UUID each time).
std::string new_msg_id();

}  // namespace kh::contexts
