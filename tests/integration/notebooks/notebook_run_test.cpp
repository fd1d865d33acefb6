// `kernel-host run` and `kernel-host export` as a user runs them: the real binary on the example
// notebooks (notebooks/) with real kernels (kernel-host-python when built, else ipykernel; Deno).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/test_env.hpp"

extern char** environ;

namespace kh::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using nl = nlohmann::json;

fs::path binary() { return fs::path(KH_BIN_DIR) / "kernel-host"; }

struct run_result {
  int exit_code = -1;
  std::string log;  // stderr + stdout
};

// Spawns the binary with stdout/stderr to a log file; `on_started(pid, log)` may signal it.
run_result run_binary(std::vector<std::string> args, const fs::path& log,
                      const std::function<void(pid_t, const fs::path&)>& on_started = {}) {
  std::vector<char*> argv;
  std::string bin = binary().string();
  argv.push_back(bin.data());
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  run_result out;
  if (rc != 0) return out;
  if (on_started) on_started(pid, log);
  int status = 0;
  ::waitpid(pid, &status, 0);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  out.log = read_text(log);
  return out;
}

nl load_json(const fs::path& p) { return nl::parse(read_text(p)); }

std::string text_of(const nl& v) {
  if (v.is_string()) return v.get<std::string>();
  std::string s;
  for (const auto& part : v) s += part.get<std::string>();
  return s;
}

const nl& cell_by_id(const nl& nb, const std::string& id) {
  for (const auto& c : nb["cells"])
    if (c.value("id", "") == id) return c;
  static const nl none;
  ADD_FAILURE() << "no cell " << id;
  return none;
}

std::string all_stream(const nl& cell, const std::string& name = "stdout") {
  std::string s;
  for (const auto& o : cell["outputs"])
    if (o["output_type"] == "stream" && o["name"] == name) s += text_of(o["text"]);
  return s;
}

fs::path write_notebook(const fs::path& dir, const std::string& name, const std::vector<std::string>& sources) {
  nl cells = nl::array();
  int i = 0;
  for (const auto& s : sources)
    cells.push_back({{"cell_type", "code"}, {"id", "c" + std::to_string(i++)}, {"metadata", nl::object()}, {"source", s},
                     {"outputs", nl::array()}, {"execution_count", nullptr}});
  nl nb = {{"cells", cells}, {"metadata", {{"kernelspec", {{"name", "python3"}, {"display_name", "Python 3"}, {"language", "python"}}}}},
           {"nbformat", 4}, {"nbformat_minor", 5}};
  const auto path = dir / name;
  std::ofstream(path) << nb.dump(1);
  return path;
}

TEST(notebook_run, data_analysis_with_tables_and_two_charts) {
  const auto dir = temp_dir("nb-data");
  const auto out = dir / "out.ipynb";
  auto r = run_binary({"run", (repo_root() / "notebooks/data_analysis.ipynb").string(), "-o", out.string(), "--kernel",
                       python_kernel_name(), "-p", "title=Report", "--timeout", "120"},
                      dir / "log.txt");
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_THAT(r.log, HasSubstr("[7/8]"));  // one line per cell when stderr is not a terminal (7 + injected)
  auto nb = load_json(out);
  EXPECT_THAT(all_stream(cell_by_id(nb, "load")), HasSubstr("144 rows, 4 regions, 3 products"));
  EXPECT_THAT(text_of(cell_by_id(nb, "pivot")["outputs"][0]["data"]["text/html"]), HasSubstr("<table"));
  EXPECT_THAT(text_of(cell_by_id(nb, "grouped")["outputs"][0]["data"]["text/html"]), HasSubstr("share"));
  for (const char* chart : {"bar-chart", "line-chart"}) {
    int pngs = 0;
    for (const auto& o : cell_by_id(nb, chart)["outputs"])
      if (o.contains("data") && o["data"].contains("image/png")) ++pngs;
    EXPECT_EQ(pngs, 1) << chart;
  }
  EXPECT_THAT(all_stream(cell_by_id(nb, "summary")), HasSubstr("Best region:"));
  // The injected parameters cell follows the `parameters` cell.
  EXPECT_EQ(nb["cells"][2]["metadata"]["tags"][0], "injected-parameters");
  EXPECT_THAT(text_of(nb["cells"][2]["source"]), HasSubstr("title = \"Report\""));
  EXPECT_EQ(nb["metadata"]["kernel_host"]["run"]["status"], "completed");
  EXPECT_TRUE(cell_by_id(nb, "summary")["metadata"]["execution"].contains("shell.execute_reply"));
}

TEST(notebook_run, rich_output_gallery_folds_like_a_frontend) {
  const auto dir = temp_dir("nb-gallery");
  const auto out = dir / "out.ipynb";
  auto r = run_binary({"run", (repo_root() / "notebooks/rich_output_gallery.ipynb").string(), "-o", out.string(), "--kernel",
                       python_kernel_name()},
                      dir / "log.txt");
  ASSERT_EQ(r.exit_code, 0) << r.log;
  auto nb = load_json(out);
  std::set<std::string> mimes;
  for (const auto& c : nb["cells"])
    if (c["cell_type"] == "code")
      for (const auto& o : c["outputs"])
        if (o.contains("data"))
          for (auto it = o["data"].begin(); it != o["data"].end(); ++it) mimes.insert(it.key());
  for (const char* m : {"text/plain", "text/html", "text/markdown", "image/svg+xml", "image/png", "image/jpeg", "application/pdf",
                        "text/latex", "application/json", "application/javascript", "application/vnd.kernel-host.chart+json",
                        "application/vnd.plotly.v1+json"})
    EXPECT_TRUE(mimes.contains(m)) << m;
  EXPECT_EQ(text_of(cell_by_id(nb, "display-handle")["outputs"][0]["data"]["text/markdown"]), "step 3 of 3");
  EXPECT_EQ(cell_by_id(nb, "display-update")["outputs"].size(), 1u);
  EXPECT_EQ(all_stream(cell_by_id(nb, "progress")), "progress 100% ##########\n");
  EXPECT_EQ(all_stream(cell_by_id(nb, "clear-output")), "frame 2\n");
  EXPECT_EQ(cell_by_id(nb, "error")["outputs"][0]["ename"], "ZeroDivisionError");
  EXPECT_EQ(text_of(cell_by_id(nb, "after-error")["outputs"][0]["data"]["text/plain"]), "'after the error'");
}

TEST(notebook_run, javascript_and_typescript_on_deno) {
  const auto dir = temp_dir("nb-deno");
  const auto out = dir / "out.ipynb";
  auto r = run_binary({"run", (repo_root() / "notebooks/javascript_deno.ipynb").string(), "-o", out.string(), "-p", "count=4"}, dir / "log.txt");
  ASSERT_EQ(r.exit_code, 0) << r.log;
  auto nb = load_json(out);
  EXPECT_THAT(all_stream(cell_by_id(nb, "typescript")), HasSubstr("hello from Deno"));
  EXPECT_THAT(text_of(cell_by_id(nb, "typescript")["outputs"].back()["data"]["text/plain"]), HasSubstr("8"));
  EXPECT_THAT(text_of(cell_by_id(nb, "interfaces")["outputs"].back()["data"]["text/plain"]), HasSubstr("14"));
  EXPECT_THAT(text_of(cell_by_id(nb, "html")["outputs"][0]["data"]["text/html"]), HasSubstr("item 3"));
  EXPECT_THAT(text_of(cell_by_id(nb, "markdown")["outputs"][0]["data"]["text/markdown"]), HasSubstr("4 rows"));
  EXPECT_TRUE(cell_by_id(nb, "svg")["outputs"][0]["data"].contains("image/svg+xml"));
  EXPECT_THAT(all_stream(cell_by_id(nb, "object"), "stderr"), HasSubstr("a warning"));
  EXPECT_EQ(cell_by_id(nb, "error")["outputs"][0]["output_type"], "error");
  EXPECT_THAT(text_of(cell_by_id(nb, "after-error")["outputs"][0]["data"]["text/plain"]), HasSubstr("still running"));
}

TEST(notebook_run, stops_at_the_first_error_and_writes_what_ran) {
  const auto dir = temp_dir("nb-fail");
  const auto in = write_notebook(dir, "fail.ipynb", {"print('first')", "raise ValueError('stop here')", "print('never')"});
  auto r = run_binary({"run", in.string(), "-o", (dir / "out.ipynb").string(), "--kernel", python_kernel_name()}, dir / "log.txt");
  EXPECT_EQ(r.exit_code, 1) << r.log;
  EXPECT_THAT(r.log, HasSubstr("cells[1] (id 'c1') raised ValueError"));
  auto nb = load_json(dir / "out.ipynb");
  EXPECT_EQ(all_stream(nb["cells"][0]), "first\n");
  EXPECT_EQ(nb["cells"][1]["outputs"][0]["ename"], "ValueError");
  EXPECT_TRUE(nb["cells"][2]["outputs"].empty());
  EXPECT_EQ(nb["metadata"]["kernel_host"]["run"]["stopped_at"], "cells[1] (id 'c1')");

  auto allowed = run_binary({"run", in.string(), "-o", (dir / "out2.ipynb").string(), "--kernel", python_kernel_name(), "--allow-errors"},
                            dir / "log2.txt");
  EXPECT_EQ(allowed.exit_code, 0) << allowed.log;
  EXPECT_EQ(all_stream(load_json(dir / "out2.ipynb")["cells"][2]), "never\n");
}

TEST(notebook_run, timeout_interrupts_the_cell_and_fails) {
  const auto dir = temp_dir("nb-timeout");
  const auto in = write_notebook(dir, "slow.ipynb", {"print('before', flush=True)", "import time\ntime.sleep(60)", "print('never')"});
  auto r = run_binary({"run", in.string(), "-o", (dir / "out.ipynb").string(), "--kernel", python_kernel_name(), "--timeout", "1"},
                      dir / "log.txt");
  EXPECT_EQ(r.exit_code, 1) << r.log;
  EXPECT_THAT(r.log, HasSubstr("timed out"));
  auto nb = load_json(dir / "out.ipynb");
  EXPECT_EQ(all_stream(nb["cells"][0]), "before\n");
  EXPECT_EQ(nb["cells"][1]["outputs"].back()["ename"], "CellTimeoutError");
  EXPECT_EQ(nb["metadata"]["kernel_host"]["run"]["status"], "timed_out");
}

TEST(notebook_run, ctrl_c_writes_the_notebook_so_far) {
  const auto dir = temp_dir("nb-sigint");
  const auto in = write_notebook(dir, "long.ipynb", {"print('done first')", "import time\nfor i in range(600):\n    time.sleep(0.1)", "print('never')"});
  auto r = run_binary({"run", in.string(), "-o", (dir / "out.ipynb").string(), "--kernel", python_kernel_name()}, dir / "log.txt",
                      [](pid_t pid, const fs::path& log) {
                        // Once the first cell has finished, the second is running: interrupt.
                        for (int i = 0; i < 600 && read_text(log).find("[1/3]") == std::string::npos; ++i)
                          std::this_thread::sleep_for(std::chrono::milliseconds(50));
                        std::this_thread::sleep_for(std::chrono::milliseconds(300));
                        ::kill(pid, SIGINT);
                      });
  EXPECT_EQ(r.exit_code, 130) << r.log;
  EXPECT_THAT(r.log, HasSubstr("interrupted in cells[1]"));
  auto nb = load_json(dir / "out.ipynb");
  EXPECT_EQ(all_stream(nb["cells"][0]), "done first\n");
  EXPECT_EQ(nb["cells"][1]["outputs"].back()["ename"], "KeyboardInterrupt");
  EXPECT_TRUE(nb["cells"][2]["outputs"].empty());
  EXPECT_EQ(nb["metadata"]["kernel_host"]["run"]["status"], "interrupted");
}

TEST(notebook_run, bad_input_is_a_clear_usage_error) {
  const auto dir = temp_dir("nb-bad");
  std::ofstream(dir / "bad.ipynb") << R"({"cells":[{"cell_type":"code","id":"x1","metadata":{},"source":"","outputs":[]}],"metadata":{},"nbformat":4,"nbformat_minor":5})";
  auto r = run_binary({"run", (dir / "bad.ipynb").string()}, dir / "log.txt");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.log, HasSubstr("cells[0] (id 'x1').execution_count"));
  auto unknown = run_binary({"run", (repo_root() / "notebooks/data_analysis.ipynb").string(), "-o", (dir / "o.ipynb").string(),
                             "--kernel", "no-such-kernel"},
                            dir / "log2.txt");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.log, HasSubstr("no-such-kernel"));
}

}  // namespace
}  // namespace kh::test
