#include "kernel_host/notebook_commands.hpp"

#include <semaphore.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/log.hpp"
#include "contexts/kernel_manager.hpp"
#include "contexts/kernelspec.hpp"
#include "contexts/reactor.hpp"
#include "kernel_host/cli.hpp"
#include "renderers/html_exporter.hpp"
#include "renderers/markdown_exporter.hpp"
#include "renderers/notebook.hpp"
#include "renderers/notebook_runner.hpp"

namespace kh::host {
namespace {

namespace ctx = kh::contexts;
namespace rd = kh::renderers;
using namespace std::chrono_literals;

// Exit codes of `run`: 0 every cell ran; 1 a cell failed, timed out or the kernel died;
// 2 bad usage, invalid notebook or the kernel could not start; 130 interrupted (SIGINT/SIGTERM).
constexpr int exit_ok = 0, exit_failed = 1, exit_usage = 2, exit_interrupted = 130;

// Binds the runner to one kernel.
class kernel_cell_executor final : public rd::cell_executor {
 public:
  explicit kernel_cell_executor(ctx::kernel_manager& kernel) : kernel_(kernel) {}

  result<nl::json> execute(const std::string& code, bool stop_on_error, std::chrono::milliseconds timeout,
                           const std::function<void(const nl::json&)>& on_output) override {
    ctx::execute_request req{.code = code, .stop_on_error = stop_on_error};
    const auto limit = timeout.count() > 0 ? timeout : std::chrono::milliseconds(std::chrono::hours(24 * 30));
    auto r = kernel_.execute_blocking(req, limit, [&](const ctx::message& m) {
      on_output(nl::json{{"header", m.header}, {"content", m.content}});
    });
    if (!r) return std::unexpected(r.error());
    return nl::json{{"header", r->reply.header}, {"content", r->reply.content}, {"timing", r->timing}};
  }
  nl::json kernel_info() override { return kernel_.kernel_info(); }

 private:
  ctx::kernel_manager& kernel_;
};

// SIGINT and SIGTERM while a notebook runs: the first sets the cancel flag, and every one
// interrupts the kernel (from a watcher thread; the handler only posts a semaphore).
class interrupt_guard {
 public:
  explicit interrupt_guard(ctx::kernel_manager* kernel) : kernel_(kernel) {
    instance_ = this;
    ::sem_init(&wake_, 0, 0);
    struct sigaction sa {};
    sa.sa_handler = &interrupt_guard::on_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
    watcher_ = std::thread([this] {
      for (;;) {
        while (::sem_wait(&wake_) != 0) {
        }
        if (done_.load()) return;
        if (kernel_) (void)kernel_->interrupt();
      }
    });
  }
  ~interrupt_guard() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    done_.store(true);
    ::sem_post(&wake_);
    watcher_.join();
    ::sem_destroy(&wake_);
    instance_ = nullptr;
  }
  const std::atomic<bool>* flag() const { return &cancel_; }
  bool cancelled() const { return cancel_.load(); }

 private:
  static void on_signal(int) {
    if (auto* self = instance_) {
      self->cancel_.store(true);
      ::sem_post(&self->wake_);
    }
  }
  static inline interrupt_guard* instance_ = nullptr;
  ctx::kernel_manager* kernel_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> done_{false};
  sem_t wake_;
  struct sigaction old_int_ {}, old_term_ {};
  std::thread watcher_;
};

// Progress on stderr: a bar redrawn in place on a terminal, one line per cell otherwise.
class progress_printer {
 public:
  progress_printer() : tty_(::isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}
  void operator()(const rd::cell_progress& p, const rd::notebook& nb) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (tty_) {
      const std::size_t width = 30;
      const std::size_t done = p.when == rd::cell_progress::phase::finished ? p.position : p.position - 1;
      const std::size_t fill = p.total ? done * width / p.total : width;
      std::fprintf(stderr, "\r\033[K[%s%s] %zu/%zu %s %.1fs", std::string(fill, '#').c_str(),
                   std::string(width - fill, '.').c_str(), p.position, p.total, nb.cell_label(p.cell).c_str(), elapsed);
      if (p.when == rd::cell_progress::phase::finished && (p.position == p.total || p.status != "ok"))
        std::fputc('\n', stderr);
    } else if (p.when == rd::cell_progress::phase::finished) {
      std::fprintf(stderr, "[%zu/%zu] %s %s %.3fs\n", p.position, p.total, nb.cell_label(p.cell).c_str(), p.status.c_str(),
                   p.seconds);
    }
    std::fflush(stderr);
  }

 private:
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

struct run_args {
  std::string input, output, kernel, cwd;
  std::vector<std::string> parameters;
  double timeout_s = 0;
  bool allow_errors = false;
};

struct export_args {
  std::string input, output, to = "html";
};

int fail_usage(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return exit_usage;
}

int run_notebook(const run_args& args) {
  auto nb = rd::notebook::load(args.input);
  if (!nb) return fail_usage(nb.error().message);
  const std::filesystem::path input(args.input);
  std::filesystem::path output = args.output;
  if (output.empty()) output = input.parent_path() / (input.stem().string() + ".out.ipynb");

  nl::json params = nl::json::object();
  for (const auto& p : args.parameters) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) return fail_usage(fmt::format("parameter '{}' is not NAME=VALUE", p));
    params[p.substr(0, eq)] = rd::notebook_runner::parse_parameter_value(p.substr(eq + 1));
  }
  const std::string kernel_name = args.kernel.empty() ? nb->kernel_name() : args.kernel;
  if (kernel_name.empty())
    return fail_usage("the notebook names no kernel (metadata.kernelspec.name): pass --kernel NAME");
  auto spec = ctx::find_kernelspec(kernel_name, kernel_data_path());
  if (!spec) return fail_usage(spec.error().to_string());

  ctx::kernel_options options;
  std::filesystem::path cwd = args.cwd.empty() ? std::filesystem::absolute(input).parent_path() : std::filesystem::path(args.cwd);
  if (!std::filesystem::is_directory(cwd)) return fail_usage(fmt::format("--cwd {}: not a directory", cwd.string()));
  options.cwd = cwd;
  ctx::reactor reactor;
  auto kernel = ctx::kernel_manager::start(reactor, *spec, options);
  if (!kernel) {
    std::fprintf(stderr, "error: %s\n", kernel.error().to_string().c_str());
    if (auto tail = kernel.error().details.value("log_tail", ""); !tail.empty())
      std::fprintf(stderr, "--- kernel log ---\n%s\n", tail.c_str());
    return exit_usage;
  }

  rd::run_report report;
  {
    interrupt_guard guard(kernel->get());
    kernel_cell_executor executor(**kernel);
    progress_printer progress;
    const rd::notebook& view = *nb;
    rd::notebook_runner runner(
        executor, {.parameters = params,
                   .allow_errors = args.allow_errors,
                   .timeout = std::chrono::milliseconds(static_cast<long long>(args.timeout_s * 1000)),
                   .on_progress = [&](const rd::cell_progress& p) { progress(p, view); },
                   .cancel = guard.flag()});
    report = runner.run(*nb);
    // Written before the kernel shuts down: nothing executed is lost whatever happens next.
    if (auto saved = nb->save(output); !saved) {
      std::fprintf(stderr, "error: could not write %s: %s\n", output.c_str(), saved.error().to_string().c_str());
      (*kernel)->shutdown();
      return exit_failed;
    }
  }
  (*kernel)->shutdown();
  if (report.ok()) {
    std::fprintf(stderr, "%s: %zu cells executed, written to %s\n", args.input.c_str(), report.executed, output.c_str());
    return exit_ok;
  }
  std::fprintf(stderr, "error: %s; the notebook so far is written to %s\n", report.message.c_str(), output.c_str());
  if (report.status == rd::run_status::error && !report.stopped_at) return exit_usage;
  return report.status == rd::run_status::interrupted ? exit_interrupted : exit_failed;
}

int export_notebook(const export_args& args) {
  auto nb = rd::notebook::load(args.input);
  if (!nb) return fail_usage(nb.error().message);
  const std::filesystem::path input(args.input);
  std::filesystem::path output = args.output;
  if (output.empty()) output = input.parent_path() / (input.stem().string() + (args.to == "html" ? ".html" : ".md"));
  result<void> written;
  if (args.to == "html") {
    written = rd::write_file_atomic(output, rd::html_exporter().render(*nb, input.stem().string()));
  } else {
    written = rd::markdown_exporter().write(*nb, output);
  }
  if (!written) {
    std::fprintf(stderr, "error: %s\n", written.error().to_string().c_str());
    return exit_failed;
  }
  std::fprintf(stderr, "%s: written to %s\n", args.input.c_str(), output.c_str());
  return exit_ok;
}

}  // namespace

void add_notebook_commands(CLI::App& app) {
  // Subcommand callbacks run inside parse(), before run_cli applies --log-level: apply it here.
  auto apply_log_level = [&app] {
    if (auto* opt = app.get_option_no_throw("--log-level"); opt && opt->count() > 0) kh::log::set_level(opt->as<std::string>());
  };
  auto run = std::make_shared<run_args>();
  auto* run_cmd = app.add_subcommand(
      "run",
      "Run a notebook end to end (papermill-style parameters, nbclient-style outputs and metadata).\n"
      "The output notebook is written atomically even when a cell fails, times out or on Ctrl-C.\n"
      "Exit code 0 when every cell ran, 1 when a cell failed or timed out, 2 on bad input or when the\n"
      "kernel could not start, 130 when interrupted.");
  run_cmd->add_option("notebook", run->input, "The notebook to run (.ipynb)")->required()->check(CLI::ExistingFile);
  run_cmd->add_option("-o,--output", run->output, "Where to write the executed notebook (default: IN's stem + .out.ipynb)");
  run_cmd->add_option("-p,--parameter", run->parameters, "NAME=VALUE; VALUE is JSON when it parses, a string otherwise")
      ->allow_extra_args(false);
  run_cmd->add_option("-k,--kernel", run->kernel, "Kernelspec name (default: the notebook's metadata.kernelspec.name)");
  run_cmd->add_option("-t,--timeout", run->timeout_s, "Seconds each cell may run (default: no limit)")
      ->check(CLI::NonNegativeNumber);
  run_cmd->add_flag("--allow-errors", run->allow_errors, "Keep going after a cell raises an error");
  run_cmd->add_option("--cwd", run->cwd, "The kernel's working folder (default: the notebook's folder)");
  run_cmd->callback([run, apply_log_level] {
    apply_log_level();
    throw CLI::RuntimeError(run_notebook(*run)); });

  auto exp = std::make_shared<export_args>();
  auto* export_cmd = app.add_subcommand(
      "export", "Export a notebook as a self-contained HTML report or as Markdown with its images beside it.");
  export_cmd->add_option("notebook", exp->input, "The notebook to export (.ipynb)")->required()->check(CLI::ExistingFile);
  export_cmd->add_option("--to", exp->to, "html or markdown")->check(CLI::IsMember({"html", "markdown"}))->capture_default_str();
  export_cmd->add_option("-o,--output", exp->output, "The output file (default: IN's stem + .html or .md)");
  export_cmd->callback([exp, apply_log_level] {
    apply_log_level();
    throw CLI::RuntimeError(export_notebook(*exp)); });
}

}  // namespace kh::host
