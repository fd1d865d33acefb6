#pragma once
// code_highlighter: a small hand-written tokenizer that marks keywords, strings, comments,
// numbers and decorators of Python and JavaScript/TypeScript as <span class="tok-..."> in
// HTML-escaped code (other languages are escaped only). A library (Pygments, highlight.js)
// would know more languages and constructs; this keeps the report self-contained without them.

#include <string>
#include <string_view>

namespace kh::renderers {

class code_highlighter {
 public:
  explicit code_highlighter(std::string_view language);
  // HTML for the inside of <pre><code>: escaped text with token spans.
  std::string to_html(std::string_view code) const;

 private:
  enum class family { python, javascript, plain } family_;
};

}  // namespace kh::renderers
