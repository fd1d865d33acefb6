#pragma once
// Base64 (RFC 4648, standard alphabet) for images in notebooks.

#include <optional>
#include <string>
#include <string_view>

namespace kh::renderers {

std::string base64_encode(std::string_view bytes);
// Decodes, ignoring whitespace (notebook images often end with "\n"); nullopt when invalid.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace kh::renderers
