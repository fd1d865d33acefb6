#pragma once
// notebook_runner: executes a notebook's code cells in order on a cell_executor and folds the
// outputs into the notebook, as nbclient and papermill do:
//  - papermill parameters: a cell tagged `injected-parameters` is inserted after the first cell
//    tagged `parameters` (at the top when there is none), replacing an earlier injected cell;
//  - nbclient's execution metadata per cell (metadata.execution: iopub.status.busy,
//    iopub.execute_input, shell.execute_reply, iopub.status.idle) and execution counts 1..n;
//  - skips empty cells and cells tagged `skip-execution`;
//  - stops at the first error unless allow_errors (or the cell is tagged `raises-exception`);
//  - a timed-out or dead-kernel cell gets an error output saying so; the run stops there;
//  - metadata.kernel_host.run says how the run ended and which cell stopped it.
// It starts no process: the executor (bound to a kernel elsewhere) does the executing.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "renderers/notebook.hpp"

namespace kh::renderers {

namespace nl = nlohmann;

// Runs one cell somewhere (a Jupyter kernel, in production).
class cell_executor {
 public:
  virtual ~cell_executor() = default;
  // Executes code. Each IOPub output message (stream, display_data, update_display_data,
  // execute_result, error, clear_output) goes to on_output as {"header", "content"} with
  // header.msg_type. Returns the execute_reply as {"header", "content"}, optionally with
  // "timing": the kernel's dates of iopub.status.busy / iopub.execute_input / iopub.status.idle
  // (used for nbclient's execution metadata instead of local clock readings). Errors:
  // errc::timeout (past `timeout`; the kernel was interrupted), errc::kernel_died, errc::cancelled.
  virtual result<nl::json> execute(const std::string& code, bool stop_on_error, std::chrono::milliseconds timeout,
                                    const std::function<void(const nl::json& message)>& on_output) = 0;
  // The kernel's kernel_info_reply content (language_info is copied into the notebook).
  virtual nl::json kernel_info() = 0;
};

enum class run_status { completed, failed, timed_out, interrupted, kernel_died, error };
std::string_view run_status_name(run_status status) noexcept;

struct cell_progress {
  enum class phase { started, finished } when = phase::started;
  std::size_t cell = 0;      // index in the notebook
  std::size_t position = 0;  // 1-based among the cells to run
  std::size_t total = 0;     // cells to run
  std::string status;        // finished: "ok", "error", "timeout", "interrupted", "kernel_died"
  double seconds = 0;        // finished: the cell's wall time
};

struct run_options {
  nl::json parameters = nl::json::object();  // name -> value (papermill's -p)
  bool allow_errors = false;
  std::chrono::milliseconds timeout{0};  // per cell; 0 or less: no limit
  std::function<void(const cell_progress&)> on_progress;
  const std::atomic<bool>* cancel = nullptr;  // set (e.g. by SIGINT) to stop after the current cell
};

struct run_report {
  run_status status = run_status::completed;
  std::optional<std::size_t> stopped_at;  // the cell that stopped the run
  std::string stopped_label;              // "cells[3] (id 'ab12')"
  std::string message;                    // for humans
  std::size_t executed = 0;               // cells executed
  std::size_t total = 0;                  // cells to run
  bool ok() const { return status == run_status::completed; }
  nl::json to_json() const;
};

class notebook_runner {
 public:
  notebook_runner(cell_executor& executor, run_options options);
  // Runs the notebook in place; it holds everything executed so far whatever the outcome.
  run_report run(notebook& nb);

  // Inserts the papermill parameters cell; errc::invalid_request for a bad name or a
  // language without a translator (python, javascript, typescript are known).
  static result<void> inject_parameters(notebook& nb, const nl::json& parameters, std::string_view language);
  // The source of the injected cell for a language ("# Parameters\nx = 1\n").
  static result<std::string> parameters_source(const nl::json& parameters, std::string_view language);
  // A JSON value as a Python literal (None, True, [1, 2], {"a": 1}).
  static std::string python_literal(const nl::json& value);
  // papermill's value parsing: JSON when it parses, else the string itself.
  static nl::json parse_parameter_value(std::string_view text);

 private:
  cell_executor& executor_;
  run_options options_;
};

}  // namespace kh::renderers
