#include "renderers/code_highlighter.hpp"

#include <algorithm>
#include <set>

#include "renderers/ansi.hpp"

namespace kh::renderers {
namespace {

const std::set<std::string_view> python_keywords = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
    "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
    "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "match", "case"};
const std::set<std::string_view> python_builtins = {"print", "len", "range", "dict", "list", "set", "tuple", "str", "int",
                                                    "float", "bool", "open", "enumerate", "zip", "sum", "min", "max",
                                                    "sorted", "isinstance", "type", "super", "display", "self"};
const std::set<std::string_view> js_keywords = {
    "await", "break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do", "else",
    "export", "extends", "false", "finally", "for", "function", "if", "import", "in", "instanceof", "let", "new",
    "null", "return", "super", "switch", "this", "throw", "true", "try", "typeof", "undefined", "var", "void",
    "while", "with", "yield", "async", "of", "interface", "type", "enum", "implements", "readonly", "as", "from",
    "number", "string", "boolean", "any", "unknown", "never"};
const std::set<std::string_view> js_builtins = {"console", "Math", "JSON", "Object", "Array", "Promise", "Deno",
                                                "Map", "Set", "String", "Number", "Date", "globalThis"};

bool ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' || (c & 0x80); }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }

void span(std::string& out, const char* cls, std::string_view text) {
  out += "<span class=\"tok-";
  out += cls;
  out += "\">";
  out += html_escape(text);
  out += "</span>";
}

}  // namespace

code_highlighter::code_highlighter(std::string_view language) {
  if (language == "python" || language == "ipython" || language == "ipython3") family_ = family::python;
  else if (language == "javascript" || language == "typescript" || language == "js" || language == "ts")
    family_ = family::javascript;
  else family_ = family::plain;
}

std::string code_highlighter::to_html(std::string_view code) const {
  if (family_ == family::plain) return html_escape(code);
  const bool py = family_ == family::python;
  const auto& keywords = py ? python_keywords : js_keywords;
  const auto& builtins = py ? python_builtins : js_builtins;
  std::string out;
  out.reserve(code.size() * 2);
  std::size_t i = 0;
  while (i < code.size()) {
    const char c = code[i];
    // Comments.
    if ((py && c == '#') || (!py && c == '/' && i + 1 < code.size() && code[i + 1] == '/')) {
      std::size_t end = code.find('\n', i);
      if (end == std::string_view::npos) end = code.size();
      span(out, "comment", code.substr(i, end - i));
      i = end;
      continue;
    }
    if (!py && c == '/' && i + 1 < code.size() && code[i + 1] == '*') {
      std::size_t end = code.find("*/", i + 2);
      end = end == std::string_view::npos ? code.size() : end + 2;
      span(out, "comment", code.substr(i, end - i));
      i = end;
      continue;
    }
    // Strings (Python prefixes r, b, f, u and triple quotes; JS quotes and template literals).
    std::size_t open = std::string_view::npos;
    if (c == '"' || c == '\'' || (!py && c == '`')) {
      open = i;
    } else if (py && (i == 0 || !ident_char(code[i - 1]))) {
      std::size_t k = i;
      while (k < code.size() && k - i < 2 && std::string_view("rRbBfFuU").find(code[k]) != std::string_view::npos) ++k;
      if (k > i && k < code.size() && (code[k] == '"' || code[k] == '\'')) open = k;
    }
    if (open != std::string_view::npos) {
      const char q = code[open];
      const bool triple = py && open + 2 < code.size() && code[open + 1] == q && code[open + 2] == q;
      std::size_t j = open + (triple ? 3 : 1);
      while (j < code.size()) {
        if (code[j] == '\\') {
          j += 2;
          continue;
        }
        if (triple) {
          if (code[j] == q && j + 2 < code.size() && code[j + 1] == q && code[j + 2] == q) {
            j += 3;
            break;
          }
        } else if (code[j] == q) {
          ++j;
          break;
        } else if (code[j] == '\n' && q != '`') {
          break;
        }
        ++j;
      }
      j = std::min(j, code.size());
      span(out, "string", code.substr(i, j - i));
      i = j;
      continue;
    }
    if (c >= '0' && c <= '9' && (i == 0 || !ident_char(code[i - 1]))) {
      std::size_t j = i;
      while (j < code.size() && (ident_char(code[j]) || code[j] == '.')) ++j;
      span(out, "number", code.substr(i, j - i));
      i = j;
      continue;
    }
    if (py && c == '@' && i + 1 < code.size() && ident_start(code[i + 1])) {
      std::size_t j = i + 1;
      while (j < code.size() && (ident_char(code[j]) || code[j] == '.')) ++j;
      span(out, "decorator", code.substr(i, j - i));
      i = j;
      continue;
    }
    if (ident_start(c)) {
      std::size_t j = i;
      while (j < code.size() && ident_char(code[j])) ++j;
      const std::string_view word = code.substr(i, j - i);
      if (keywords.count(word)) span(out, "keyword", word);
      else if (builtins.count(word)) span(out, "builtin", word);
      else out += html_escape(word);
      i = j;
      continue;
    }
    out += html_escape(code.substr(i, 1));
    ++i;
  }
  return out;
}

}  // namespace kh::renderers
