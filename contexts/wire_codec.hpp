#pragma once
// Jupyter wire format: [identities..., "<IDS|MSG>", signature, header, parent, metadata, content, buffers...].

#include <string>
#include <vector>

#include "common/error.hpp"
#include "contexts/message.hpp"
#include "contexts/message_signer.hpp"

namespace kh::contexts {

inline constexpr std::string_view wire_delimiter = "<IDS|MSG>";

// Serializes and signs a message into frames. JSON is dumped with invalid UTF-8 replaced.
std::vector<std::string> encode_message(const message& msg, const message_signer& signer);

// Parses frames into a message. Fails with errc::protocol_error on a missing delimiter,
// too few frames, a bad signature or invalid JSON; the caller drops and counts such messages.
result<message> decode_message(std::vector<std::string> frames, const message_signer& signer);

}  // namespace kh::contexts
