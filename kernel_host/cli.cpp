#include "kernel_host/cli.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>

#include <CLI/CLI.hpp>

#include "common/log.hpp"
#include "contexts/kernel_manager.hpp"
#include "contexts/kernelspec.hpp"
#include "contexts/reactor.hpp"
#include "kernel_host/notebook_commands.hpp"
#include "kernel_host/kernelspec_install.hpp"
#include "kernel_host/remote_run_code.hpp"
#include "kernel_host/serve.hpp"

namespace kh::host {
namespace {

using namespace std::chrono_literals;
namespace ctx = kh::contexts;

std::vector<std::filesystem::path> split_path(const std::string& value) {
  std::vector<std::filesystem::path> out;
  std::stringstream in(value);
  for (std::string part; std::getline(in, part, ':');)
    if (!part.empty()) out.emplace_back(part);
  return out;
}

int list_kernelspecs(bool as_json) {
  std::vector<kh::error> invalid;
  auto specs = ctx::find_kernelspecs(kernel_data_path(), &invalid);
  if (as_json) {
    nl::json out = nl::json::object();
    for (const auto& spec : specs)
      out[spec.name] = {{"resource_dir", spec.resource_dir.string()}, {"spec", spec.to_json()}};
    std::cout << nl::json{{"kernelspecs", out}}.dump(2) << "\n";
  } else {
    std::size_t width = 4;
    for (const auto& spec : specs) width = std::max(width, spec.name.size());
    std::printf("%-*s  %-12s  %s\n", static_cast<int>(width), "NAME", "LANGUAGE", "PATH");
    for (const auto& spec : specs)
      std::printf("%-*s  %-12s  %s\n", static_cast<int>(width), spec.name.c_str(), spec.language.c_str(),
                  spec.resource_dir.c_str());
  }
  for (const auto& err : invalid) std::fprintf(stderr, "warning: skipped %s\n", err.message.c_str());
  return specs.empty() ? 1 : 0;
}

// Prints one output message as a terminal user wants to see it.
void print_output(const ctx::message& msg) {
  const std::string type = msg.msg_type();
  const auto& c = msg.content;
  if (type == "stream") {
    const std::string text = c.value("text", "");
    std::FILE* out = c.value("name", "") == "stderr" ? stderr : stdout;
    std::fwrite(text.data(), 1, text.size(), out);
    std::fflush(out);
  } else if (type == "execute_result" || type == "display_data" || type == "update_display_data") {
    const auto& data = c.contains("data") && c["data"].is_object() ? c["data"] : nl::json::object();
    if (auto it = data.find("text/plain"); it != data.end() && it->is_string()) {
      if (type == "execute_result") std::printf("Out[%d]: ", c.value("execution_count", 0));
      std::printf("%s\n", it->get<std::string>().c_str());
    }
    for (auto it = data.begin(); it != data.end(); ++it) {
      if (it.key() == "text/plain") continue;
      const std::size_t size = it->is_string() ? it->get<std::string>().size() : it->dump().size();
      std::printf("[%s output: %s, %zu bytes]\n", type.c_str(), it.key().c_str(), size);
    }
    std::fflush(stdout);
  } else if (type == "error") {
    for (const auto& line : c.value("traceback", nl::json::array()))
      if (line.is_string()) std::fprintf(stderr, "%s\n", line.get<std::string>().c_str());
    if (!c.contains("traceback") || c["traceback"].empty())
      std::fprintf(stderr, "%s: %s\n", c.value("ename", "").c_str(), c.value("evalue", "").c_str());
  } else if (type == "clear_output") {
    // Nothing to clear on a terminal stream.
  }
}

int run_code(const std::string& kernel_name, double timeout_s, std::string code) {
  if (code == "-") code.assign(std::istreambuf_iterator<char>(std::cin), {});
  auto spec = ctx::find_kernelspec(kernel_name, kernel_data_path());
  if (!spec) {
    std::fprintf(stderr, "error: %s\n", spec.error().to_string().c_str());
    return 2;
  }
  ctx::reactor reactor;
  auto manager = ctx::kernel_manager::start(reactor, *spec);
  if (!manager) {
    std::fprintf(stderr, "error: %s\n", manager.error().to_string().c_str());
    if (auto tail = manager.error().details.value("log_tail", ""); !tail.empty())
      std::fprintf(stderr, "--- kernel log ---\n%s\n", tail.c_str());
    return 2;
  }
  ctx::execute_request req{.code = code, .allow_stdin = ::isatty(STDIN_FILENO) != 0};
  const auto timeout = std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000));
  auto outcome = (*manager)->execute_blocking(req, timeout, print_output, [](const std::string& prompt, bool) {
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
    std::string line;
    std::getline(std::cin, line);
    return line;
  });
  (*manager)->shutdown();
  if (!outcome) {
    std::fprintf(stderr, "error: %s\n", outcome.error().to_string().c_str());
    return 1;
  }
  return outcome->ok() ? 0 : 1;
}

}  // namespace

std::vector<std::filesystem::path> kernel_data_path() {
  std::vector<std::filesystem::path> extra;
  if (const char* env = std::getenv("KH_DATA_PATH")) extra = split_path(env);
  for (auto& dir : split_path(KH_DEFAULT_DATA_PATH)) extra.push_back(dir);
  return ctx::jupyter_data_path(extra);
}

int run_cli(int argc, char** argv) {
  CLI::App app{"kernel-host: a host of code-execution sandboxes with persistent language contexts (Jupyter kernels)."};
  app.set_version_flag("--version", std::string("kernel-host ") + KH_VERSION);
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log-level", log_level, "Log level: trace, debug, info, warn, error, off (env KH_LOG_LEVEL)");

  bool as_json = false;
  auto* specs_cmd = app.add_subcommand("kernelspecs", "List the kernels kernel-host can launch (name, language, path).");
  specs_cmd->add_flag("--json", as_json, "Print the kernelspecs as JSON, as Jupyter Server's /api/kernelspecs");

  // Our own Python kernel when it is installed (fast start, fast cells), else Debian's ipykernel.
  std::string kernel = ctx::find_kernelspec("kernel-host-python", kernel_data_path()) ? "kernel-host-python" : "python3";
  double timeout_s = 60;
  std::string code;
  auto* run_cmd = app.add_subcommand("run-code", "Start a kernel, run one cell, print its outputs, shut the kernel down.\n"
                                                 "Exit code 0 on success, 1 when the cell raised an error, 2 when the kernel could not start.");
  run_cmd->add_option("--kernel,-k", kernel, "Kernelspec name (see `kernel-host kernelspecs`)")->capture_default_str();
  run_cmd->add_option("--timeout,-t", timeout_s, "Seconds before the cell is interrupted")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  run_cmd->add_option("code", code, "The code to run, or - to read it from standard input")->required();
  remote_run_options remote;
  add_remote_run_options(*run_cmd, remote);  // --server: through a running host (kernel_host/remote_run_code.cpp)
  add_notebook_commands(app);  // run, export (kernel_host/notebook_commands.cpp)
  add_install_kernelspec_command(app);  // kernel_host/kernelspec_install.cpp

  serve_options serve_opts;
  auto* serve_cmd = add_serve_command(app, serve_opts);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!log_level.empty()) kh::log::set_level(log_level);
  if (*specs_cmd) return list_kernelspecs(as_json);
  if (*run_cmd && !remote.server.empty()) {
    if (run_cmd->get_option("--timeout")->count() > 0) remote.timeout_s = timeout_s;
    return run_code_remote(remote, code);
  }
  if (*run_cmd) return run_code(kernel, timeout_s, code);
  if (*serve_cmd) return run_serve(serve_opts);
  return 0;
}

}  // namespace kh::host
