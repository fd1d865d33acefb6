#include "contexts/wire_codec.hpp"

#include <algorithm>

namespace kh::contexts {
namespace {

std::string dump(const nl::json& value) {
  // Kernels may send (and users may pass) invalid UTF-8: replace it instead of throwing.
  return value.dump(-1, ' ', false, nl::json::error_handler_t::replace);
}

result<nl::json> parse_frame(const std::string& frame, const char* name) {
  nl::json value = nl::json::parse(frame, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return fail(errc::protocol_error, std::string("invalid JSON in ") + name + " frame");
  if (!value.is_object()) return fail(errc::protocol_error, std::string(name) + " frame is not a JSON object");
  return value;
}

}  // namespace

std::vector<std::string> encode_message(const message& msg, const message_signer& signer) {
  std::vector<std::string> frames;
  frames.reserve(msg.identities.size() + 6 + msg.buffers.size());
  frames.insert(frames.end(), msg.identities.begin(), msg.identities.end());
  frames.emplace_back(wire_delimiter);
  std::string header = dump(msg.header);
  std::string parent = dump(msg.parent_header);
  std::string metadata = dump(msg.metadata);
  std::string content = dump(msg.content);
  frames.push_back(signer.sign(header, parent, metadata, content));
  frames.push_back(std::move(header));
  frames.push_back(std::move(parent));
  frames.push_back(std::move(metadata));
  frames.push_back(std::move(content));
  frames.insert(frames.end(), msg.buffers.begin(), msg.buffers.end());
  return frames;
}

result<message> decode_message(std::vector<std::string> frames, const message_signer& signer) {
  const auto delimiter = std::find(frames.begin(), frames.end(), wire_delimiter);
  if (delimiter == frames.end()) return fail(errc::protocol_error, "no <IDS|MSG> delimiter in message");
  const auto first = static_cast<std::size_t>(delimiter - frames.begin()) + 1;
  if (frames.size() < first + 5)
    return fail(errc::protocol_error, "truncated message: fewer than 5 frames after the delimiter");
  const std::string& signature = frames[first];
  if (!signer.verify(signature, frames[first + 1], frames[first + 2], frames[first + 3], frames[first + 4]))
    return fail(errc::protocol_error, "invalid message signature");

  message msg;
  msg.identities.assign(std::make_move_iterator(frames.begin()), std::make_move_iterator(delimiter));
  auto header = parse_frame(frames[first + 1], "header");
  if (!header) return std::unexpected(header.error());
  auto parent = parse_frame(frames[first + 2], "parent_header");
  if (!parent) return std::unexpected(parent.error());
  auto metadata = parse_frame(frames[first + 3], "metadata");
  if (!metadata) return std::unexpected(metadata.error());
  auto content = parse_frame(frames[first + 4], "content");
  if (!content) return std::unexpected(content.error());
  msg.header = std::move(*header);
  msg.parent_header = std::move(*parent);
  msg.metadata = std::move(*metadata);
  msg.content = std::move(*content);
  msg.buffers.assign(std::make_move_iterator(frames.begin() + static_cast<std::ptrdiff_t>(first + 5)),
                     std::make_move_iterator(frames.end()));
  if (msg.msg_type().empty()) return fail(errc::protocol_error, "message header has no msg_type");
  return msg;
}

}  // namespace kh::contexts
