#pragma once
// MIME type detection for file reads: the extension first, then the content (magic numbers, UTF-8).

#include <string>
#include <string_view>

namespace kh::sandbox_bridge {

std::string detect_mime(std::string_view file_name, std::string_view content);

// Text per the Cloudflare contract: text/*, +json/+xml, and a list of application types.
bool mime_is_text(std::string_view mime) noexcept;

// Valid UTF-8 with no NUL byte (truncated: a character cut at the end is accepted).
bool is_utf8_text(std::string_view bytes, bool truncated = false) noexcept;

}  // namespace kh::sandbox_bridge
