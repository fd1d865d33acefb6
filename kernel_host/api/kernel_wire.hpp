#pragma once
// The frames of the Jupyter kernel WebSocket (/api/kernels/{id}/channels), both protocols
// jupyter_server speaks: the legacy JSON one (text frames, or binary frames with buffers) and
// v1.kernel.websocket.jupyter.org. Pure functions over bytes, apart from kernel_channels so they
// can be tested and fuzzed without a server or a kernel.

#include <string>
#include <string_view>
#include <utility>

#include "contexts/message.hpp"

namespace kh::api {

// The legacy protocol: a JSON text frame, or (when the message has buffers) jupyter_server's
// binary frame: u32 BE count (buffers + 1), u32 BE offsets, the JSON, the buffers.
// Returns the frame and whether it is binary.
std::pair<std::string, bool> to_wire_legacy(const contexts::message& m, std::string_view channel);

// The v1 frame: offset count, offsets (little-endian u64), then channel, header, parent_header,
// metadata, content and the buffers.
std::string to_wire_v1(const contexts::message& m, std::string_view channel);

// Decoders of what a client sends. False (and nothing thrown) for any frame that is not a
// message: wrong sizes or offsets, invalid JSON, a header that is not a non-empty object.
bool from_wire_v1(const std::string& data, std::string& channel, contexts::message& msg);
bool from_wire_legacy_text(const std::string& data, std::string& channel, contexts::message& msg);
bool from_wire_legacy_binary(const std::string& data, std::string& channel, contexts::message& msg);

}  // namespace kh::api
