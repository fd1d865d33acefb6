#include "renderers/ansi.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include <fmt/format.h>

namespace kh::renderers {
namespace {

constexpr char esc = '\x1b';

// Length of the escape sequence starting at text[i] (text[i] == ESC); at least 1.
std::size_t escape_length(std::string_view text, std::size_t i) {
  if (i + 1 >= text.size()) return 1;
  const char kind = text[i + 1];
  if (kind == '[') {  // CSI: parameters and intermediates 0x20-0x3F, final byte 0x40-0x7E
    std::size_t j = i + 2;
    while (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x20 && static_cast<unsigned char>(text[j]) <= 0x3f) ++j;
    if (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x40 && static_cast<unsigned char>(text[j]) <= 0x7e) ++j;
    return j - i;
  }
  if (kind == ']') {  // OSC: up to BEL or ESC backslash
    std::size_t j = i + 2;
    while (j < text.size()) {
      if (text[j] == '\a') return j + 1 - i;
      if (text[j] == esc && j + 1 < text.size() && text[j + 1] == '\\') return j + 2 - i;
      ++j;
    }
    return j - i;
  }
  return 2;
}

constexpr std::array<const char*, 16> palette = {
    "#000000", "#cd3131", "#0dbc79", "#b58900", "#2472c8", "#bc3fbc", "#11a8cd", "#8a8a8a",
    "#666666", "#f14c4c", "#23d18b", "#c9a800", "#3b8eea", "#d670d6", "#29b8db", "#e5e5e5"};

std::string color_256(int n) {
  if (n < 16) return palette[static_cast<std::size_t>(n)];
  if (n < 232) {
    n -= 16;
    auto level = [](int v) { return v == 0 ? 0 : 55 + v * 40; };
    return fmt::format("#{:02x}{:02x}{:02x}", level(n / 36), level((n / 6) % 6), level(n % 6));
  }
  const int gray = 8 + (n - 232) * 10;
  return fmt::format("#{:02x}{:02x}{:02x}", gray, gray, gray);
}

struct sgr_state {
  std::string fg, bg;
  bool bold = false, underline = false, italic = false;
  bool plain() const { return fg.empty() && bg.empty() && !bold && !underline && !italic; }
  std::string style() const {
    std::string s;
    if (!fg.empty()) s += "color:" + fg + ";";
    if (!bg.empty()) s += "background-color:" + bg + ";";
    if (bold) s += "font-weight:bold;";
    if (italic) s += "font-style:italic;";
    if (underline) s += "text-decoration:underline;";
    return s;
  }
};

void apply_sgr(sgr_state& st, std::string_view params) {
  std::vector<int> codes;
  int value = 0;
  bool have = false;
  for (char c : params) {
    if (c >= '0' && c <= '9') {
      value = value * 10 + (c - '0');
      have = true;
    } else if (c == ';' || c == ':') {
      codes.push_back(have ? value : 0);
      value = 0;
      have = false;
    }
  }
  codes.push_back(have ? value : 0);
  for (std::size_t k = 0; k < codes.size(); ++k) {
    const int c = codes[k];
    auto extended = [&](std::string& target) {
      if (k + 2 < codes.size() + 0 && codes[k + 1] == 5) {
        target = color_256(std::clamp(codes[k + 2], 0, 255));
        k += 2;
      } else if (k + 4 < codes.size() + 0 && codes[k + 1] == 2) {
        target = fmt::format("#{:02x}{:02x}{:02x}", std::clamp(codes[k + 2], 0, 255), std::clamp(codes[k + 3], 0, 255),
                             std::clamp(codes[k + 4], 0, 255));
        k += 4;
      }
    };
    if (c == 0) st = {};
    else if (c == 1) st.bold = true;
    else if (c == 3) st.italic = true;
    else if (c == 4) st.underline = true;
    else if (c == 22) st.bold = false;
    else if (c == 23) st.italic = false;
    else if (c == 24) st.underline = false;
    else if (c >= 30 && c <= 37) st.fg = palette[static_cast<std::size_t>(c - 30)];
    else if (c == 38) extended(st.fg);
    else if (c == 39) st.fg.clear();
    else if (c >= 40 && c <= 47) st.bg = palette[static_cast<std::size_t>(c - 40)];
    else if (c == 48) extended(st.bg);
    else if (c == 49) st.bg.clear();
    else if (c >= 90 && c <= 97) st.fg = palette[static_cast<std::size_t>(c - 90 + 8)];
    else if (c >= 100 && c <= 107) st.bg = palette[static_cast<std::size_t>(c - 100 + 8)];
  }
}

void append_escaped(std::string& out, char c) {
  switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += c;
  }
}

}  // namespace

bool has_ansi(std::string_view text) noexcept { return text.find(esc) != std::string_view::npos; }

std::string strip_ansi(std::string_view text) {
  if (!has_ansi(text)) return std::string(text);
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == esc) {
      i += escape_length(text, i);
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) append_escaped(out, c);
  return out;
}

std::string ansi_to_html(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  sgr_state st;
  bool open = false;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] != esc) {
      append_escaped(out, text[i++]);
      continue;
    }
    const std::size_t len = escape_length(text, i);
    const std::string_view seq = text.substr(i, len);
    i += len;
    if (seq.size() < 3 || seq[1] != '[' || seq.back() != 'm') continue;  // not SGR: dropped
    apply_sgr(st, seq.substr(2, seq.size() - 3));
    if (open) out += "</span>";
    open = !st.plain();
    if (open) out += "<span style=\"" + st.style() + "\">";
  }
  if (open) out += "</span>";
  return out;
}

}  // namespace kh::renderers
