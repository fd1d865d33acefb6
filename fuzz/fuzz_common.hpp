#pragma once
// Helpers shared by the fuzz targets: splitting one input into fields, and a check that aborts
// (so libFuzzer records the input) with a message saying which property broke.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace kh::fuzz {

[[noreturn]] inline void property_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", what, file, line);
  std::abort();
}

#define KH_FUZZ_CHECK(cond) \
  do {                      \
    if (!(cond)) ::kh::fuzz::property_failed(#cond, __FILE__, __LINE__); \
  } while (0)

// The input split at a separator byte sequence ("\n--\n" style seeds stay readable).
inline std::vector<std::string> split(std::string_view data, std::string_view sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const auto at = data.find(sep, start);
    if (at == std::string_view::npos) {
      parts.emplace_back(data.substr(start));
      return parts;
    }
    parts.emplace_back(data.substr(start, at - start));
    start = at + sep.size();
  }
}

// Consumes bytes from the front of an input: small integers and length-prefixed strings.
class reader {
 public:
  reader(const std::uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}
  bool empty() const { return rest_.empty(); }
  std::uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  std::string string(std::size_t max = 64) {
    const std::size_t n = std::min<std::size_t>({byte(), max, rest_.size()});
    std::string out(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return out;
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

}  // namespace kh::fuzz
