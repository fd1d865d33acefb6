#include "common/atomic_file.hpp"

#include <fstream>

#include <fmt/format.h>

namespace kh {

result<void> write_file_atomically(const std::filesystem::path& file, std::string_view text) {
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  const std::filesystem::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) return fail(errc::io_error, fmt::format("cannot write {}", tmp.string()));
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec) return fail(errc::io_error, fmt::format("rename {}: {}", tmp.string(), ec.message()));
  return {};
}

}  // namespace kh
