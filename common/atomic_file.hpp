#pragma once
// Writing a small state file (a journal, a list) so that a crash leaves the old content or the
// new, never half of one: a temp file beside it, then a rename over it.

#include <filesystem>
#include <string_view>

#include "common/error.hpp"

namespace kh {

// Creates the parent folder if needed. io_error when the file cannot be written or renamed.
result<void> write_file_atomically(const std::filesystem::path& file, std::string_view text);

}  // namespace kh
