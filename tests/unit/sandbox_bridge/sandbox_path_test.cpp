#include <gtest/gtest.h>

#include "sandbox_bridge/mime.hpp"
#include "sandbox_bridge/sandbox_files.hpp"
#include "sandbox_bridge/sandbox_path.hpp"
#include "sandbox_bridge/shell_session.hpp"
#include "sandbox_bridge/types.hpp"

namespace kh::sandbox_bridge {
namespace {

TEST(sandbox_path, joins_relative_paths_with_the_cwd) {
  EXPECT_EQ(normalize_sandbox_path("a/b.txt", "/workspace").value(), "/workspace/a/b.txt");
  EXPECT_EQ(normalize_sandbox_path("./a//b/../c", "/tmp").value(), "/tmp/a/c");
  EXPECT_EQ(normalize_sandbox_path("/etc/../workspace/", "/tmp").value(), "/workspace");
  EXPECT_EQ(normalize_sandbox_path("..", "/workspace").value(), "/");
  EXPECT_EQ(normalize_sandbox_path("x", "relative-cwd").value(), "/workspace/x");
}

TEST(sandbox_path, refuses_climbing_above_the_root) {
  auto r = normalize_sandbox_path("../../etc/passwd", "/workspace");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::permission_denied);
  EXPECT_EQ(r.error().details["reason"], "path_escape");
  EXPECT_FALSE(normalize_sandbox_path("/../etc", "/"));
}

TEST(sandbox_path, refuses_empty_nul_and_overlong_paths) {
  EXPECT_EQ(normalize_sandbox_path("", "/").error().code, errc::validation_failed);
  EXPECT_EQ(normalize_sandbox_path(std::string("a\0b", 3), "/").error().code, errc::validation_failed);
  EXPECT_EQ(normalize_sandbox_path(std::string(5000, 'a'), "/").error().code, errc::validation_failed);
}

TEST(sandbox_path, splits_and_compares) {
  EXPECT_EQ(split_parent("/workspace/a/b"), (std::pair<std::string, std::string>{"/workspace/a", "b"}));
  EXPECT_EQ(split_parent("/a"), (std::pair<std::string, std::string>{"/", "a"}));
  EXPECT_TRUE(is_within("/workspace", "/workspace"));
  EXPECT_TRUE(is_within("/workspace/x", "/workspace"));
  EXPECT_FALSE(is_within("/workspaces", "/workspace"));
}

TEST(sandbox_ids, ids_and_env_names) {
  EXPECT_TRUE(valid_id("sbx-1_a.b"));
  EXPECT_FALSE(valid_id(".."));
  EXPECT_FALSE(valid_id("a/b"));
  EXPECT_FALSE(valid_id(""));
  EXPECT_TRUE(valid_env_name("_A1"));
  EXPECT_FALSE(valid_env_name("1A"));
  EXPECT_FALSE(valid_env_name("A-B"));
}

TEST(sandbox_mime, detects_by_content_and_extension) {
  EXPECT_EQ(detect_mime("x.bin", "\x89PNG\r\n\x1a\nrest"), "image/png");
  EXPECT_EQ(detect_mime("a.json", "{}"), "application/json");
  EXPECT_EQ(detect_mime("noext", "hello\n"), "text/plain");
  EXPECT_EQ(detect_mime("noext", std::string("a\0b", 3)), "application/octet-stream");
  EXPECT_EQ(detect_mime("a.txt", "\xff\xfe"), "application/octet-stream");
  EXPECT_TRUE(mime_is_text("application/x-ipynb+json"));
  EXPECT_FALSE(mime_is_text("image/png"));
  EXPECT_TRUE(is_utf8_text("h\xc3\xa9llo"));
  EXPECT_FALSE(is_utf8_text("\xc3"));
  EXPECT_TRUE(is_utf8_text("\xc3", true));
}

TEST(sandbox_files_format, mode_and_time) {
  EXPECT_EQ(sandbox_files::mode_string(0755), "rwxr-xr-x");
  EXPECT_EQ(sandbox_files::mode_string(0640), "rw-r-----");
  EXPECT_EQ(sandbox_files::iso_time(timespec{0, 5000000}), "1970-01-01T00:00:00.005Z");
  EXPECT_EQ(file_error(ENOENT, "read", "/x").code, errc::file_not_found);
  EXPECT_EQ(file_error(EROFS, "write", "/usr/x").code, errc::read_only);
  EXPECT_EQ(file_error(EXDEV, "read", "/workspace/l").code, errc::permission_denied);
}

TEST(shell_protocol, quoting) {
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote(""), "''");
}

TEST(shell_protocol, marker_split_across_reads_is_found_and_output_is_exact) {
  std::string marker("\0KHabc:", 7);
  marker_scanner s(marker);
  std::string out;
  std::string stream = std::string("x\0K", 3) + "y" + std::string("\0K", 2);
  out += s.feed(stream);
  EXPECT_FALSE(s.found());
  out += s.feed("Habc:0:/w");
  EXPECT_TRUE(s.found());
  out += s.feed(std::string("\0", 1));
  EXPECT_EQ(out, std::string("x\0Ky", 4));
  EXPECT_EQ(s.trailer(), std::string("0:/w\0", 5));
}

}  // namespace
}  // namespace kh::sandbox_bridge
