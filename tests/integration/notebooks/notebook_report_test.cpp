// Reports and parity: exported HTML rendered in headless Chromium (browser_check.py, DevTools
// protocol over a pipe), Markdown export, and the same notebooks run by Debian's nbclient on the
// same kernel compared with our outputs (nbclient_parity.py).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/test_env.hpp"

namespace kh::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using nl = nlohmann::json;

fs::path helpers() { return fs::path(KH_TEST_SOURCE_DIR) / "integration/notebooks"; }

struct shell_result {
  int exit_code = -1;
  std::string out;
};

// Runs a shell command, capturing stdout and stderr.
shell_result sh(const std::string& cmd) {
  shell_result r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }
std::string kh_bin() { return q(fs::path(KH_BIN_DIR) / "kernel-host"); }

// Runs an example notebook with our runner into dir/name.ipynb.
fs::path run_example(const fs::path& dir, const std::string& name, const std::string& kernel) {
  const auto out = dir / (name + ".ipynb");
  auto r = sh(kh_bin() + " run " + q(repo_root() / "notebooks" / (name + ".ipynb")) + " -o " + q(out) + " --kernel " + kernel);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return out;
}

class notebook_report : public ::testing::TestWithParam<std::string> {};

TEST_P(notebook_report, html_renders_in_chromium_without_errors) {
  // scripts/setup.sh installs chromium: its absence is a broken setup, not a reason to skip.
  ASSERT_TRUE(fs::exists("/usr/bin/chromium")) << "chromium is not installed (run scripts/setup.sh)";
  const auto dir = temp_dir("nb-html");
  const std::string name = GetParam();
  const auto executed = run_example(dir, name, name == "javascript_deno" ? "deno" : python_kernel_name());
  const auto html = dir / (name + ".html");
  auto exp = sh(kh_bin() + " export " + q(executed) + " --to html -o " + q(html));
  ASSERT_EQ(exp.exit_code, 0) << exp.out;
  auto check = sh("/usr/bin/python3 " + q(helpers() / "browser_check.py") + " " + q(html));
  ASSERT_EQ(check.exit_code, 0) << check.out;
  const auto line = check.out.substr(check.out.rfind('{', check.out.find("\"images\"")));
  auto dom = nl::parse(line, nullptr, false);
  ASSERT_FALSE(dom.is_discarded()) << check.out;
  EXPECT_TRUE(dom["errors"].empty()) << dom["errors"].dump();
  for (const auto& img : dom["images"]) {
    EXPECT_TRUE(img["complete"].get<bool>());
    EXPECT_GT(img["w"].get<int>(), 0) << "an image did not decode";
    EXPECT_GT(img["h"].get<int>(), 0);
  }
  for (const auto& frame : dom["iframes"]) EXPECT_EQ(frame["sandbox"], "allow-scripts");
  if (name == "data_analysis") {
    EXPECT_EQ(dom["images"].size(), 2u);  // two matplotlib charts
    EXPECT_GE(dom["tables"].get<int>(), 2);  // pivot and grouped tables (inside their frames)
  } else if (name == "rich_output_gallery") {
    EXPECT_EQ(dom["images"].size(), 3u);  // svg, png, jpeg
    EXPECT_GE(dom["tables"].get<int>(), 1);
  } else {
    EXPECT_EQ(dom["images"].size(), 1u);  // svg
    EXPECT_GE(dom["tables"].get<int>(), 1);
  }
}

INSTANTIATE_TEST_SUITE_P(examples, notebook_report, ::testing::Values("data_analysis", "rich_output_gallery", "javascript_deno"));

TEST(notebook_export, markdown_with_images_beside) {
  const auto dir = temp_dir("nb-md");
  const auto executed = run_example(dir, "data_analysis", python_kernel_name());
  auto r = sh(kh_bin() + " export " + q(executed) + " --to markdown -o " + q(dir / "report.md"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::ifstream in(dir / "report.md");
  std::stringstream md;
  md << in.rdbuf();
  EXPECT_THAT(md.str(), HasSubstr("# Sales analysis"));
  EXPECT_THAT(md.str(), HasSubstr("![png](report_files/output_6_0.png)"));
  EXPECT_TRUE(fs::exists(dir / "report_files/output_6_0.png"));
  EXPECT_GT(fs::file_size(dir / "report_files/output_7_0.png"), 1000u);
}

class nbclient_parity : public ::testing::TestWithParam<std::string> {};

TEST_P(nbclient_parity, outputs_match_nbclient_on_the_same_kernel) {
  ASSERT_EQ(sh("/usr/bin/python3 -c 'import nbclient'").exit_code, 0) << "python3-nbclient is not installed (run scripts/setup.sh)";
  const auto dir = temp_dir("nb-parity");
  const std::string kernel = python_kernel_name();
  const auto ours = run_example(dir, GetParam(), kernel);
  const std::string jupyter_path = std::string(KH_BUILD_DATA_DIR) + ":" + KH_DEPS_DATA_DIR;
  auto r = sh("JUPYTER_PATH=" + q(jupyter_path) + " /usr/bin/python3 " + q(helpers() / "nbclient_parity.py") + " --kernel " +
              kernel + " --input " + q(repo_root() / "notebooks" / (GetParam() + ".ipynb")) + " --ours " + q(ours));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("code cells match"));
}

INSTANTIATE_TEST_SUITE_P(examples, nbclient_parity, ::testing::Values("data_analysis", "rich_output_gallery"));

}  // namespace
}  // namespace kh::test
