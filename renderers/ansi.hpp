#pragma once
// ANSI escape sequences (SGR colours, cursor moves) as kernels emit them in tracebacks and reprs.

#include <string>
#include <string_view>

namespace kh::renderers {

// The text without any ANSI escape sequence (CSI "ESC [ ... final", OSC "ESC ] ... BEL|ESC \",
// and two-character escapes). Everything else, including invalid UTF-8, is kept as is.
std::string strip_ansi(std::string_view text);

// True when the text holds at least one ESC character.
bool has_ansi(std::string_view text) noexcept;

// HTML-escaped text with SGR colours (30-37, 90-97, 38;5;n, 38;2;r;g;b, bold, underline,
// backgrounds) turned into <span style="..."> elements; other sequences are dropped.
std::string ansi_to_html(std::string_view text);

// Escapes & < > " ' for HTML text and attribute values.
std::string html_escape(std::string_view text);

}  // namespace kh::renderers
