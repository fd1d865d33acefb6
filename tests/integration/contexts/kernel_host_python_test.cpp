// kernel-host-python through our own kernel client: the behaviours issue 3 lists, end to end.

#include <signal.h>

#include <chrono>
#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_env.hpp"

namespace kh::contexts {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using clock = std::chrono::steady_clock;

class kernel_host_python : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto options = test::test_options();
    options.interrupt_grace = 10s;
    kernel_ = test::start_kernel("kernel-host-python", options).release();
  }
  static void TearDownTestSuite() {
    delete kernel_;
    kernel_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(kernel_, nullptr); }
  static result<execution_result> run(const std::string& code, std::chrono::milliseconds timeout = 60s) {
    return kernel_->execute_blocking({.code = code}, timeout);
  }
  static const message* find(const execution_result& r, const std::string& type) {
    for (const auto& m : r.outputs)
      if (m.msg_type() == type) return &m;
    return nullptr;
  }
  static kernel_manager* kernel_;
};
kernel_manager* kernel_host_python::kernel_ = nullptr;

TEST_F(kernel_host_python, kernel_info_is_complete) {
  auto info = kernel_->kernel_info();
  EXPECT_EQ(info["implementation"], "kernel-host-python");
  EXPECT_EQ(info["language_info"]["name"], "python");
  EXPECT_EQ(info["language_info"]["file_extension"], ".py");
  EXPECT_THAT(info["language_info"].value("version", ""), HasSubstr("3.11"));
}

TEST_F(kernel_host_python, last_expression_is_the_result_with_execution_count) {
  auto r = run("x = 20\nx * 2 + 2");
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->ok());
  const message* result = find(*r, "execute_result");
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(result->content["data"]["text/plain"], "42");
  EXPECT_EQ(result->content["execution_count"], r->reply.content["execution_count"]);
  auto next = run("None");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->reply.content["execution_count"].get<int>(), r->reply.content["execution_count"].get<int>() + 1);
  EXPECT_EQ(find(*next, "execute_result"), nullptr);  // None is not displayed
}

TEST_F(kernel_host_python, executable_is_debian_python) {
  auto r = run("import sys; print(sys.executable); import numpy; print('numpy', numpy.__version__ > '1')");
  ASSERT_TRUE(r);
  EXPECT_EQ(test::stream_text(*r), "/usr/bin/python3\nnumpy True\n");
}

TEST_F(kernel_host_python, output_streams_while_the_cell_runs) {
  std::vector<clock::time_point> arrivals;
  const auto start = clock::now();
  auto r = kernel_->execute_blocking({.code = "import time\nfor i in range(4):\n    print(i)\n    time.sleep(0.1)"}, 30s,
                                     [&](const message& m) {
                                       if (m.msg_type() == "stream") arrivals.push_back(clock::now());
                                     });
  ASSERT_TRUE(r);
  const auto end = clock::now();
  EXPECT_EQ(test::stream_text(*r), "0\n1\n2\n3\n");
  ASSERT_GE(arrivals.size(), 3u);  // not one chunk at the end
  EXPECT_LT(arrivals.front() - start, end - start - 200ms);
}

TEST_F(kernel_host_python, a_partial_line_is_sent_while_the_cell_runs) {
  // A line that stays partial is not held until the cell ends.
  std::vector<std::string> texts;
  auto r = kernel_->execute_blocking({.code = "import time\nprint('partial', end='', flush=True)\ntime.sleep(0.3)\nprint('rest')"},
                                     30s, [&](const message& m) {
                                       if (m.msg_type() == "stream") texts.push_back(m.content.value("text", ""));
                                     });
  ASSERT_TRUE(r);
  ASSERT_GE(texts.size(), 2u);
  EXPECT_EQ(texts[0], "partial");
  std::string joined;
  for (const auto& t : texts) joined += t;
  EXPECT_EQ(joined, "partialrest\n");
}

TEST_F(kernel_host_python, child_process_and_c_level_output_is_captured) {
  auto r = run("import os, subprocess, sys\nos.system('echo from-system')\n"
               "subprocess.run(['sh', '-c', 'echo from-sub; echo sub-err >&2'])\n"
               "os.write(1, b'raw-fd1\\n')");
  ASSERT_TRUE(r);
  const std::string out = test::stream_text(*r);
  EXPECT_THAT(out, HasSubstr("from-system"));
  EXPECT_THAT(out, HasSubstr("from-sub"));
  EXPECT_THAT(out, HasSubstr("raw-fd1"));
  EXPECT_THAT(test::stream_text(*r, "stderr"), HasSubstr("sub-err"));
}

TEST_F(kernel_host_python, ten_thousand_lines_arrive_complete_and_in_order) {
  auto r = run("for i in range(10000):\n    print(i)");
  ASSERT_TRUE(r);
  const std::string out = test::stream_text(*r);
  std::string expected;
  for (int i = 0; i < 10000; ++i) expected += std::to_string(i) + "\n";
  EXPECT_EQ(out.size(), expected.size());
  EXPECT_TRUE(out == expected);
}

TEST_F(kernel_host_python, display_protocol_and_display_updates) {
  auto r = run("class Rich:\n    def _repr_html_(self): return '<i>rich</i>'\n    def _repr_markdown_(self): return '*rich*'\n"
               "h = display(Rich(), display_id='d1')\nh.update('<updated>')\nRich()");
  ASSERT_TRUE(r) << r.error().to_string();
  const message* shown = find(*r, "display_data");
  ASSERT_NE(shown, nullptr);
  EXPECT_EQ(shown->content["data"]["text/html"], "<i>rich</i>");
  EXPECT_EQ(shown->content["data"]["text/markdown"], "*rich*");
  EXPECT_EQ(shown->content["transient"]["display_id"], "d1");
  const message* updated = find(*r, "update_display_data");
  ASSERT_NE(updated, nullptr);
  EXPECT_EQ(updated->content["transient"]["display_id"], "d1");
  const message* result = find(*r, "execute_result");
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(result->content["data"]["text/html"], "<i>rich</i>");
}

TEST_F(kernel_host_python, pandas_dataframe_has_html_and_plain) {
  auto r = run("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})");
  ASSERT_TRUE(r);
  const message* result = find(*r, "execute_result");
  ASSERT_NE(result, nullptr);
  EXPECT_THAT(result->content["data"]["text/html"].get<std::string>(), HasSubstr("<table"));
  EXPECT_THAT(result->content["data"]["text/plain"].get<std::string>(), HasSubstr("a  b"));
}

TEST_F(kernel_host_python, matplotlib_figure_without_show_gives_png_and_chart) {
  auto r = run("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [4, 5, 6], label='s')\nplt.title('T')\n"
               "plt.xlabel('x'); plt.ylabel('y');");
  ASSERT_TRUE(r) << r.error().to_string();
  const message* shown = find(*r, "display_data");
  ASSERT_NE(shown, nullptr);
  const auto& data = shown->content["data"];
  ASSERT_TRUE(data.contains("image/png"));
  EXPECT_GT(data["image/png"].get<std::string>().size(), 1000u);
  ASSERT_TRUE(data.contains("application/vnd.kernel-host.chart+json")) << data.dump().substr(0, 300);
  const auto& chart = data["application/vnd.kernel-host.chart+json"];
  EXPECT_EQ(chart["type"], "line");
  EXPECT_EQ(chart["title"], "T");
  EXPECT_EQ(chart["x_label"], "x");
  EXPECT_THAT(chart.dump(), HasSubstr("4"));
  auto after = run("len(plt.get_fignums())");  // closed after being sent
  ASSERT_TRUE(after);
  EXPECT_EQ(find(*after, "execute_result")->content["data"]["text/plain"], "0");
}

TEST_F(kernel_host_python, errors_point_at_cell_lines_without_kernel_frames) {
  auto r = run("def f():\n    return 1 / 0\n\nf()");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reply.content["ename"], "ZeroDivisionError");
  EXPECT_EQ(r->reply.content["evalue"], "division by zero");
  const std::string tb = r->reply.content["traceback"].dump();
  EXPECT_THAT(tb, HasSubstr("line 2"));
  EXPECT_THAT(tb, HasSubstr("line 4"));
  EXPECT_THAT(tb, Not(HasSubstr("kh_kernel")));
  auto syntax = run("x = (1,\ny = 2 +");
  ASSERT_TRUE(syntax);
  EXPECT_EQ(syntax->reply.content["ename"], "SyntaxError");
}

TEST_F(kernel_host_python, sys_exit_is_an_error_and_the_kernel_lives) {
  auto r = run("import sys; sys.exit(3)");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->reply.content["ename"], "SystemExit");
  auto after = run("'alive'");
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->ok());
}

TEST_F(kernel_host_python, input_through_stdin_and_clear_error_without_it) {
  std::string asked;
  auto r = kernel_->execute_blocking({.code = "v = input('value? ')\nprint(v * 2)", .allow_stdin = true}, 30s, {},
                                     [&](const std::string& prompt, bool) {
                                       asked = prompt;
                                       return std::string("ab");
                                     });
  ASSERT_TRUE(r);
  EXPECT_EQ(asked, "value? ");
  EXPECT_EQ(test::stream_text(*r), "abab\n");
  auto refused = run("input('x')");
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->ok());
  EXPECT_THAT(refused->reply.content.value("evalue", ""), HasSubstr("stdin"));
}

TEST_F(kernel_host_python, interrupt_stops_a_pure_python_loop) {
  std::promise<result<message>> done;
  kernel_->execute({.code = "n = 0\nwhile True:\n    n += 1"}, {.on_done = [&](result<message> r) { done.set_value(std::move(r)); }}, 0ms);
  std::this_thread::sleep_for(300ms);
  const auto start = clock::now();
  ASSERT_TRUE(kernel_->interrupt());
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(20s), std::future_status::ready);
  RecordProperty("interrupt_seconds", std::to_string(std::chrono::duration<double>(clock::now() - start).count()));
  auto r = future.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->content["ename"], "KeyboardInterrupt");
  auto after = run("n > 0");
  ASSERT_TRUE(after);
  EXPECT_EQ(find(*after, "execute_result")->content["data"]["text/plain"], "True");
}

TEST_F(kernel_host_python, sigint_between_cells_is_harmless) {
  ASSERT_EQ(::kill(kernel_->pid(), SIGINT), 0);
  std::this_thread::sleep_for(100ms);
  auto r = run("'still here'");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok());
}

TEST_F(kernel_host_python, invalid_utf8_is_replaced) {
  auto r = run("import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe end\\n'); sys.stdout.flush()\nprint('\\ud800 lone')");
  ASSERT_TRUE(r);
  EXPECT_THAT(test::stream_text(*r), HasSubstr("ok "));
  EXPECT_THAT(test::stream_text(*r), HasSubstr("lone"));
}

TEST_F(kernel_host_python, plain_cells_never_import_ipython_but_magics_do) {
  auto plain = run("import sys\n'IPython' in sys.modules");
  ASSERT_TRUE(plain);
  EXPECT_EQ(find(*plain, "execute_result")->content["data"]["text/plain"], "False");
  auto magic = run("%env KH_MAGIC_TEST=1\nimport os\nos.environ['KH_MAGIC_TEST']");
  ASSERT_TRUE(magic) << magic.error().to_string();
  EXPECT_EQ(find(*magic, "execute_result")->content["data"]["text/plain"], "'1'");
  auto shell = run("!echo from-bang");
  ASSERT_TRUE(shell);
  EXPECT_THAT(test::stream_text(*shell), HasSubstr("from-bang"));
}

TEST(kernel_host_python_lifecycle, os_exit_ends_the_kernel_and_the_host_notices) {
  auto kernel = test::start_kernel("kernel-host-python");
  ASSERT_TRUE(kernel);
  auto r = kernel->execute_blocking({.code = "import os; os._exit(7)"}, 30s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::kernel_died);
  EXPECT_EQ(r.error().details["exit_code"], 7);
}

TEST(kernel_host_python_lifecycle, shutdown_runs_atexit_handlers) {
  auto dir = test::temp_dir("atexit");
  auto kernel = test::start_kernel("kernel-host-python");
  ASSERT_TRUE(kernel);
  const auto marker = (dir / "atexit-ran").string();
  ASSERT_TRUE(kernel->execute_blocking({.code = "import atexit\natexit.register(lambda: open('" + marker + "', 'w').write('yes'))"}, 30s));
  ASSERT_TRUE(kernel->shutdown());
  EXPECT_EQ(kernel->last_shutdown_rung(), shutdown_rung::request);
  EXPECT_TRUE(std::filesystem::exists(marker));
}

}  // namespace
}  // namespace kh::contexts
