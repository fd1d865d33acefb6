#pragma once
// html_exporter: a notebook as one self-contained HTML report. Code is highlighted
// (code_highlighter), Markdown rendered (markdown_renderer), images inline as data URIs,
// text/html and JavaScript outputs isolated in sandboxed iframes (srcdoc, scripts allowed but
// no same-origin access) so their scripts and styles cannot break the page, streams and
// tracebacks with ANSI colours turned into styled spans. Nothing is fetched from the network.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "renderers/notebook.hpp"

namespace kh::renderers {

namespace nl = nlohmann;

class html_exporter {
 public:
  std::string render(const notebook& nb, std::string_view title) const;
  // One output (nbformat dict) as HTML; `frame_id` numbers iframes uniquely in the page.
  std::string render_output(const nl::json& output, int& frame_id) const;
};

}  // namespace kh::renderers
