#pragma once
// markdown_renderer: Markdown cells to HTML for reports. A small hand-written subset of
// CommonMark + GFM: ATX headings, paragraphs, emphasis, inline code, links, images (with
// `attachment:` references resolved to data URIs), fenced code, block quotes, flat lists,
// pipe tables and rules. Raw HTML is escaped, not passed through, and only http(s), mailto,
// relative and fragment links are kept. A full library (cmark-gfm) would cover the rest.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kh::renderers {

namespace nl = nlohmann;

class markdown_renderer {
 public:
  // `attachments`: the cell's attachments ({"name": {"image/png": "base64..."}}).
  explicit markdown_renderer(nl::json attachments = nl::json::object());
  std::string to_html(std::string_view markdown) const;
  // Inline markup of one line or paragraph (emphasis, code, links, images).
  std::string inline_html(std::string_view text) const;

 private:
  std::string image_source(std::string_view url) const;
  nl::json attachments_;
};

}  // namespace kh::renderers
