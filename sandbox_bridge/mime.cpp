#include "sandbox_bridge/mime.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace kh::sandbox_bridge {

namespace {

constexpr std::array<std::pair<std::string_view, std::string_view>, 44> kByExtension{{
    {"txt", "text/plain"}, {"md", "text/markdown"}, {"html", "text/html"}, {"htm", "text/html"},
    {"css", "text/css"}, {"csv", "text/csv"}, {"tsv", "text/tab-separated-values"},
    {"js", "text/javascript"}, {"mjs", "text/javascript"}, {"cjs", "text/javascript"},
    {"ts", "text/typescript"}, {"tsx", "text/typescript"}, {"jsx", "text/javascript"},
    {"json", "application/json"}, {"xml", "application/xml"}, {"yaml", "application/yaml"},
    {"yml", "application/yaml"}, {"toml", "application/toml"}, {"sql", "application/sql"},
    {"sh", "application/x-sh"}, {"py", "text/x-python"}, {"rb", "text/x-ruby"}, {"c", "text/x-c"},
    {"h", "text/x-c"}, {"cpp", "text/x-c++"}, {"hpp", "text/x-c++"}, {"rs", "text/x-rust"},
    {"go", "text/x-go"}, {"java", "text/x-java"}, {"ipynb", "application/x-ipynb+json"},
    {"svg", "image/svg+xml"}, {"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
    {"gif", "image/gif"}, {"webp", "image/webp"}, {"pdf", "application/pdf"},
    {"zip", "application/zip"}, {"gz", "application/gzip"}, {"tar", "application/x-tar"},
    {"wasm", "application/wasm"}, {"mp3", "audio/mpeg"}, {"mp4", "video/mp4"}, {"ico", "image/x-icon"},
}};

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

bool is_utf8_text(std::string_view b, bool truncated) noexcept {
  std::size_t i = 0;
  while (i < b.size()) {
    auto c = static_cast<unsigned char>(b[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n;
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c >= 0xE0 && c <= 0xEF) n = 2;
    else if (c >= 0xF0 && c <= 0xF4) n = 3;
    else return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= b.size()) return truncated;  // cut in the middle of a character
      if ((static_cast<unsigned char>(b[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

std::string detect_mime(std::string_view name, std::string_view content) {
  if (starts(content, "\x89PNG\r\n\x1a\n")) return "image/png";
  if (starts(content, "\xFF\xD8\xFF")) return "image/jpeg";
  if (starts(content, "GIF87a") || starts(content, "GIF89a")) return "image/gif";
  if (starts(content, "%PDF-")) return "application/pdf";
  if (starts(content, std::string_view("PK\x03\x04", 4))) return "application/zip";
  if (starts(content, "\x1f\x8b")) return "application/gzip";
  if (starts(content, "\x7f" "ELF")) return "application/x-executable";
  if (content.size() >= 12 && starts(content, "RIFF") && content.substr(8, 4) == "WEBP") return "image/webp";
  auto dot = name.rfind('.');
  auto slash = name.rfind('/');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
    std::string ext(name.substr(dot + 1));
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    for (auto& [e, m] : kByExtension)
      if (e == ext) {
        // A "text" extension holding binary bytes is binary.
        if (mime_is_text(m) && !is_utf8_text(content.substr(0, 65536), content.size() > 65536)) return "application/octet-stream";
        return std::string(m);
      }
  }
  if (content.empty()) return "text/plain";
  if (is_utf8_text(content.substr(0, 65536), content.size() > 65536)) return "text/plain";
  return "application/octet-stream";
}

bool mime_is_text(std::string_view m) noexcept {
  if (starts(m, "text/")) return true;
  if (m.ends_with("+json") || m.ends_with("+xml")) return true;
  for (std::string_view t : {"application/json", "application/javascript", "application/xml",
                             "application/yaml", "application/toml", "application/sql", "application/x-sh",
                             "application/x-empty", "application/x-yaml", "application/ld+json",
                             "application/typescript"})
    if (m == t) return true;
  return false;
}

}  // namespace kh::sandbox_bridge
