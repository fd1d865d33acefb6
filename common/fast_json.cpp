#include "common/fast_json.hpp"

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace kh::fast_json {

using json = nlohmann::json;

namespace {

// Bytes a JSON string holds as they are (in both directions): printable ASCII but '"' and '\\'.
constexpr bool plain(unsigned char c) noexcept { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

// The first byte at or after p that is not plain: sixteen bytes at a time with SSE2 (every x86-64
// has it), else eight at a time.
const unsigned char* skip_plain(const unsigned char* p, const unsigned char* end) noexcept {
#if defined(__SSE2__)
  // As signed bytes, everything >= 0x80 is negative: "below 0x20" catches both ends at once.
  const __m128i low = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i stop = _mm_or_si128(_mm_cmplt_epi8(v, low), _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
    if (const int mask = _mm_movemask_epi8(stop)) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#else
  constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  auto has_zero = [](std::uint64_t v) { return (v - ones) & ~v & highs; };
  while (end - p >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    // A byte below 0x20, a '"', a '\\' or a byte >= 0x80 stops the fast loop.
    const std::uint64_t stop = ((v - ones * 0x20) & ~v & highs) | has_zero(v ^ (ones * '"')) |
                               has_zero(v ^ (ones * '\\')) | (v & highs);
    if (stop) break;
    p += 8;
  }
#endif
  while (p != end && plain(*p)) ++p;
  return p;
}

// The length of the well-formed UTF-8 sequence at p (RFC 3629, as nlohmann's lexer checks it), 0 if none.
std::size_t utf8_length(const unsigned char* p, const unsigned char* end) noexcept {
  const std::size_t left = static_cast<std::size_t>(end - p);
  auto cont = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) { return i < left && p[i] >= lo && p[i] <= hi; };
  const unsigned c = p[0];
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

void append_utf8(std::string& s, unsigned cp) {
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A recursive-descent reader for well-formed JSON. Every method returns false on anything it does
// not take (malformed input included): parse() then asks nlohmann, whose answer is the reference.
class reader {
 public:
  explicit reader(std::string_view text)
      : p_(reinterpret_cast<const unsigned char*>(text.data())), end_(p_ + text.size()) {}

  bool document(json& out) {
    skip_ws();
    if (!value(out, 0)) return false;
    skip_ws();
    return p_ == end_;
  }

 private:
  static constexpr int kMaxDepth = 128;  // deeper documents go to nlohmann (no recursion limit there)

  const unsigned char* p_;
  const unsigned char* end_;

  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool value(json& out, int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{': return object(out, depth);
      case '[': return array(out, depth);
      case '"': {
        std::string s;
        if (!string(s)) return false;
        out = std::move(s);
        return true;
      }
      case 't': return literal("true") && (out = true, true);
      case 'f': return literal("false") && (out = false, true);
      case 'n': return literal("null") && (out = nullptr, true);
      default: return number(out);
    }
  }

  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() || std::memcmp(p_, word.data(), word.size()) != 0) return false;
    p_ += word.size();
    return true;
  }

  // Numbers are few and short: nlohmann reads each one (integer/unsigned/float and overflow rules).
  bool number(json& out) {
    const unsigned char* start = p_;
    while (p_ != end_ && ((*p_ >= '0' && *p_ <= '9') || *p_ == '-' || *p_ == '+' || *p_ == '.' || *p_ == 'e' || *p_ == 'E'))
      ++p_;
    if (p_ == start) return false;
    out = json::parse(std::string_view(reinterpret_cast<const char*>(start), static_cast<std::size_t>(p_ - start)), nullptr, false);
    return out.is_number();
  }

  bool object(json& out, int depth) {
    if (depth >= kMaxDepth) return false;
    ++p_;
    out = json::object();
    auto& members = out.get_ref<json::object_t&>();
    skip_ws();
    if (p_ != end_ && *p_ == '}') return ++p_, true;
    for (;;) {
      skip_ws();
      if (p_ == end_ || *p_ != '"') return false;
      std::string key;
      if (!string(key)) return false;
      skip_ws();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      skip_ws();
      auto [slot, inserted] = members.emplace(std::move(key), json());
      if (!inserted) return false;  // a repeated key: nlohmann's rule applies
      if (!value(slot->second, depth + 1)) return false;
      skip_ws();
      if (p_ == end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == '}') return ++p_, true;
      return false;
    }
  }

  bool array(json& out, int depth) {
    if (depth >= kMaxDepth) return false;
    ++p_;
    out = json::array();
    auto& items = out.get_ref<json::array_t&>();
    skip_ws();
    if (p_ != end_ && *p_ == ']') return ++p_, true;
    for (;;) {
      skip_ws();
      items.emplace_back();
      if (!value(items.back(), depth + 1)) return false;
      skip_ws();
      if (p_ == end_) return false;
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == ']') return ++p_, true;
      return false;
    }
  }

  bool string(std::string& s) {
    ++p_;  // the opening quote
    const unsigned char* const start = p_;
    for (;;) {
      const unsigned char* run = p_;
      for (;;) {  // plain bytes and well-formed UTF-8 sequences are copied in one append
        p_ = skip_plain(p_, end_);
        if (p_ == end_ || *p_ < 0x80) break;
        const std::size_t n = utf8_length(p_, end_);
        if (n == 0) return false;
        p_ += n;
      }
      // A long string (a file's content): what it holds is at most its length in the input, so
      // one reservation instead of a dozen doublings, each a copy.
      if (run == start && p_ - start >= 4096) s.reserve(static_cast<std::size_t>(closing_quote(p_) - start));
      s.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p_ - run));
      if (p_ == end_) return false;
      if (*p_ == '"') return ++p_, true;
      if (*p_ != '\\' || !escape(s)) return false;  // a control character, or a bad escape
    }
  }

  // Where the string around p ends (its closing quote), or end_; escapes are skipped unchecked.
  const unsigned char* closing_quote(const unsigned char* p) const {
    for (;;) {
      p = skip_plain(p, end_);
      if (p == end_ || *p == '"') return p;
      p += (*p == '\\' && end_ - p >= 2) ? 2 : 1;
    }
  }

  int hex4() {
    if (end_ - p_ < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; ++i) {
      const unsigned char c = *p_++;
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return -1;
    }
    return v;
  }

  bool escape(std::string& s) {
    ++p_;  // the backslash
    if (p_ == end_) return false;
    switch (*p_++) {
      case '"': s.push_back('"'); return true;
      case '\\': s.push_back('\\'); return true;
      case '/': s.push_back('/'); return true;
      case 'b': s.push_back('\b'); return true;
      case 'f': s.push_back('\f'); return true;
      case 'n': s.push_back('\n'); return true;
      case 'r': s.push_back('\r'); return true;
      case 't': s.push_back('\t'); return true;
      case 'u': {
        int cp = hex4();
        if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair: the low half must follow
          if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
          p_ += 2;
          const int low = hex4();
          if (low < 0xDC00 || low > 0xDFFF) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(s, static_cast<unsigned>(cp));
        return true;
      }
      default: return false;
    }
  }
};

void dump_string(std::string& out, std::string_view text) {
  const std::size_t mark = out.size();
  out.push_back('"');
  auto p = reinterpret_cast<const unsigned char*>(text.data());
  const auto end = p + text.size();
  while (p != end) {
    const unsigned char* run = p;
    for (;;) {
      p = skip_plain(p, end);
      if (p == end || *p < 0x80) break;
      const std::size_t n = utf8_length(p, end);
      if (n == 0) {  // invalid UTF-8: nlohmann's replacement rules, exactly
        out.resize(mark);
        out += json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
        return;
      }
      p += n;
    }
    out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
    if (p == end) break;
    switch (const unsigned char c = *p++) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        static constexpr char hex[] = "0123456789abcdef";
        const char u[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
        out.append(u, sizeof u);
      }
    }
  }
  out.push_back('"');
}

}  // namespace

json parse(std::string_view text) {
  json out;
  if (reader(text).document(out)) return out;
  return json::parse(text, nullptr, false);
}

void dump_to(std::string& out, const json& value) {
  switch (value.type()) {
    case json::value_t::string: return dump_string(out, value.get_ref<const json::string_t&>());
    case json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, member] : value.get_ref<const json::object_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        dump_string(out, key);
        out.push_back(':');
        dump_to(out, member);
      }
      out.push_back('}');
      return;
    }
    case json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : value.get_ref<const json::array_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        dump_to(out, item);
      }
      out.push_back(']');
      return;
    }
    default: out += value.dump(-1, ' ', false, json::error_handler_t::replace);  // numbers, literals, binary
  }
}

std::string dump(const json& value) {
  std::string out;
  dump_to(out, value);
  return out;
}

}  // namespace kh::fast_json
